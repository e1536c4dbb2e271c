package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode/utf8"

	"golang.org/x/term"

	"github.com/ferry-server/ferry/internal/admin"
	"github.com/ferry-server/ferry/internal/instance"
)

const statusHelp = `Usage: ferry status [APP_DIR | --instance DIR | --pid-file FILE] [options]

Shows what a running instance is doing, like passenger-status: the core, then
each app with its processes. --show picks another view:

  pool      the core and each app's processes (default)
  requests  the requests in flight
  server    the core and the configuration in effect
  metrics   the Prometheus metrics, as exposed
  backtraces  the stack of every thread of each Ruby, Python and Node.js
            process, taken without stopping it (--pid N: that process only)

--json prints the admin API's JSON answer for the view instead of text.
`

// statusTimeout bounds the admin API calls of status and top: a wedged core
// must not hang them (memory-stats works without the core).
const statusTimeout = 15 * time.Second

func statusCommand(fs *flag.FlagSet) func(context.Context, string) error {
	var o statusOptions
	o.target.register(fs)
	fs.StringVar(&o.show, "show", "pool", "the `VIEW` to show: pool, requests, server or metrics")
	fs.BoolVar(&o.asJSON, "json", false, "print the admin API's JSON answer instead of text")
	fs.IntVar(&o.pid, "pid", 0, "with --show=backtraces: only the app process with this `PID`")
	return func(ctx context.Context, appDir string) error { return status(ctx, &o, appDir) }
}

// statusOptions are the options of ferry status.
type statusOptions struct {
	target targetFlags
	show   string
	asJSON bool
	pid    int
}

func status(ctx context.Context, o *statusOptions, appDir string) error {
	paths := map[string]string{"pool": "/pool", "requests": "/requests", "server": "/server", "metrics": "/metrics",
		"backtraces": "/backtraces"}
	path, ok := paths[o.show]
	if !ok {
		return fmt.Errorf("status: --show must be pool, requests, server, metrics or backtraces, not %q", o.show)
	}
	path, err := backtracesPath(path, o.show, o.pid)
	if err != nil {
		return fmt.Errorf("status: %w", err)
	}
	if o.show == "metrics" && o.asJSON {
		return fmt.Errorf("status: the metrics are Prometheus text, not JSON; drop --json")
	}
	in, err := o.target.pick(appDir)
	if err != nil {
		return fmt.Errorf("status: %w", err)
	}
	c := admin.NewClient(in.Dir)
	ctx, cancel := context.WithTimeout(ctx, statusTimeout)
	defer cancel()
	get := func(path string) ([]byte, error) {
		var raw []byte
		if err := c.Do(ctx, "GET", path, &raw); err != nil {
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return nil, fmt.Errorf("status: the core of %s did not answer within %s (wedged?); ferry memory-stats works without it", in.Dir, statusTimeout)
			}
			return nil, fmt.Errorf("status: %w", err)
		}
		return raw, nil
	}

	raw, err := get(path)
	if err != nil {
		return err
	}
	if o.asJSON || o.show == "metrics" {
		_, err := os.Stdout.Write(raw)
		return err
	}
	pal := paletteFor(os.Stdout)
	var out bytes.Buffer
	switch o.show {
	case "pool":
		var ps admin.PoolStatus
		if err := json.Unmarshal(raw, &ps); err != nil {
			return fmt.Errorf("status: decode /pool: %w", err)
		}
		rawInfo, err := get("/server")
		if err != nil {
			return err
		}
		var info admin.Info
		if err := json.Unmarshal(rawInfo, &info); err != nil {
			return fmt.Errorf("status: decode /server: %w", err)
		}
		writeStatus(&out, info, ps, time.Now(), pal)
	case "requests":
		var rs requestsAnswer
		if err := json.Unmarshal(raw, &rs); err != nil {
			return fmt.Errorf("status: decode /requests: %w", err)
		}
		writeRequests(&out, rs.Requests, pal)
	case "server":
		var info admin.Info
		if err := json.Unmarshal(raw, &info); err != nil {
			return fmt.Errorf("status: decode /server: %w", err)
		}
		writeServer(&out, info, pal)
	case "backtraces":
		if err := writeBacktraces(&out, raw, pal); err != nil {
			return fmt.Errorf("status: %w", err)
		}
	}
	_, err = os.Stdout.Write(out.Bytes())
	return err
}

// requestsAnswer is the answer of GET /requests.
type requestsAnswer struct {
	Requests []admin.RequestInfo `json:"requests"`
}

// targetFlags are how status, memory-stats and top find the instance: the
// instanceFlags of every client command, plus the pid file of `ferry start
// --pid-file`.
type targetFlags struct {
	instanceFlags
	pidFile string
}

func (f *targetFlags) register(fs *flag.FlagSet) {
	f.instanceFlags.register(fs)
	fs.StringVar(&f.pidFile, "pid-file", "", "find the instance whose core's pid is in `FILE` (ferry start --pid-file)")
}

// pick finds the instance as instanceFlags.pick does, or by the pid in the
// pid file. An instance given with --instance is checked to be one.
func (f *targetFlags) pick(appDir string) (admin.Instance, error) {
	if f.pidFile != "" && (f.dir != "" || appDir != "") {
		return admin.Instance{}, errors.New("give one of APP_DIR, --instance and --pid-file")
	}
	if f.pidFile != "" {
		return findByPIDFile(f.registry, f.pidFile)
	}
	in, err := f.instanceFlags.pick(appDir)
	if err != nil {
		return in, err
	}
	return in, nil
}

// readProperties reads the properties.json the core writes into its
// instance directory.
func readProperties(dir string) (instance.Properties, error) {
	var p instance.Properties
	b, err := os.ReadFile(filepath.Join(dir, "properties.json"))
	if errors.Is(err, os.ErrNotExist) {
		return p, fmt.Errorf("%s is not a running Ferry instance (no properties.json)", dir)
	}
	if errors.Is(err, os.ErrPermission) {
		return p, fmt.Errorf("read instance properties: %w (the instance is another user's: run as its owner or root)", err)
	}
	if err != nil {
		return p, fmt.Errorf("read instance properties: %w", err)
	}
	if err := json.Unmarshal(b, &p); err != nil || p.PID <= 0 {
		return p, fmt.Errorf("%s/properties.json has no valid pid", dir)
	}
	return p, nil
}

func findByPIDFile(registry, pidFile string) (admin.Instance, error) {
	b, err := os.ReadFile(pidFile)
	if err != nil {
		return admin.Instance{}, fmt.Errorf("read pid file: %w", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return admin.Instance{}, fmt.Errorf("pid file %s holds no pid", pidFile)
	}
	all, err := admin.FindInstances(registry)
	if err != nil {
		return admin.Instance{}, err
	}
	for _, in := range all {
		if in.PID == pid {
			return in, nil
		}
	}
	return admin.Instance{}, fmt.Errorf("no running Ferry instance with pid %d (from %s) in %s; is --instance-registry-dir right?", pid, pidFile, registry)
}

// palette colours text for a terminal; the zero value leaves it plain.
type palette struct{ on bool }

// paletteFor colours output to f when it is a terminal and NO_COLOR
// (https://no-color.org) is not set.
func paletteFor(f *os.File) palette {
	return palette{on: os.Getenv("NO_COLOR") == "" && term.IsTerminal(int(f.Fd()))}
}

func (p palette) bold(s string) string { return p.wrap("1", s) }
func (p palette) red(s string) string  { return p.wrap("31", s) }

func (p palette) wrap(code, s string) string {
	if !p.on || s == "" {
		return s
	}
	return "\x1b[" + code + "m" + s + "\x1b[0m"
}

// writeStatus writes the text of `ferry status`: the core from GET
// /server, then each app of GET /pool with a table of its processes. now is
// the time "last used" is counted from. It does no I/O but writing to w, so
// that golden files can pin it down.
func writeStatus(w io.Writer, info admin.Info, ps admin.PoolStatus, now time.Time, pal palette) {
	writeGeneral(w, info, pal)
	writeCertificates(w, info.Certificates, now, pal)
	if len(ps.Apps) == 0 {
		fmt.Fprintf(w, "\n%s\n", "No apps.")
	}
	for _, a := range ps.Apps {
		fmt.Fprintf(w, "\n%s\n", pal.bold(section("Application: "+a.Name)))
		for _, kv := range appFields(a, now) {
			v := kv[1]
			if kv[0] == "Last spawn error" || kv[0] == "Deploy error" {
				v = pal.red(v)
			}
			fmt.Fprintf(w, "%-18s%s\n", kv[0]+":", v)
		}
		fmt.Fprintln(w)
		if len(a.Processes) == 0 {
			fmt.Fprintln(w, "  No processes running.")
			continue
		}
		writeLines(w, "  ", processTable(a.Processes, now), pal)
	}
}

// plural is "1 request", "2 requests", "2 processes".
func plural(n uint64, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	if strings.HasSuffix(noun, "s") {
		noun += "e"
	}
	return strconv.FormatUint(n, 10) + " " + noun + "s"
}

func section(title string) string { return "----------- " + title + " -----------" }

func writeGeneral(w io.Writer, info admin.Info, pal palette) {
	fmt.Fprintln(w, pal.bold(section("General information")))
	listen := strings.Join(info.Listen, ", ")
	if listen == "" {
		listen = "-"
	}
	for _, kv := range [][2]string{
		{"Ferry version", info.Version},
		{"PID", strconv.Itoa(info.PID)},
		{"Uptime", humanDuration(seconds(info.Uptime))},
		{"Listening on", listen},
		{"Instance", info.Instance},
	} {
		fmt.Fprintf(w, "%-18s%s\n", kv[0]+":", kv[1])
	}
}

// appFields are the lines about one app above its process table.
func appFields(a admin.AppStatus, now time.Time) [][2]string {
	spawn := a.SpawnMethod
	if a.SpawnMethod == "smart" {
		if a.Preloader > 0 {
			spawn += fmt.Sprintf(" (preloader pid %d)", a.Preloader)
		} else {
			spawn += " (no preloader running)"
		}
	}
	procs := fmt.Sprintf("%d (min %d, max %d)", len(a.Processes), a.Min, a.Max)
	if a.Spawning > 0 {
		procs += fmt.Sprintf(", %d starting", a.Spawning)
	}
	restarting := "no"
	if a.Restarting {
		restarting = "yes"
	}
	s := a.Stats
	out := [][2]string{
		{"Root", a.Root},
		{"Type", a.Type},
		{"Spawn method", spawn},
		{"Generation", strconv.Itoa(a.Generation)},
		{"Processes", procs},
		{"Queue", strconv.Itoa(a.Queued)},
		{"Restarting", restarting},
		{"Totals", fmt.Sprintf("%s, %d spawned, %d failed to spawn, %d died, %d recycled, %s",
			plural(s.RequestsDone, "request"), s.Spawned, s.SpawnFailed, s.Died, s.Recycled, plural(s.Restarts, "restart"))},
	}
	if c := a.Cache; c != nil {
		out = append(out, [2]string{"Turbocache", fmt.Sprintf("%d hits, %d misses, %d stored, %d entries (%s)",
			c.Hits, c.Misses, c.Stores, c.Entries, humanBytes(c.Bytes))})
	}
	if a.ShuttingOff {
		out = append(out, [2]string{"Shutting down", "yes"})
	}
	if a.LastError != "" {
		e := a.LastError
		if a.RetryAt != nil && a.RetryAt.After(now) {
			e += " (retrying in " + humanDuration(a.RetryAt.Sub(now)) + ")"
		}
		out = append(out, [2]string{"Last spawn error", e})
	}
	if a.DeployError != "" {
		out = append(out, [2]string{"Deploy error", a.DeployError})
	}
	return out
}

// processTable lays out processes: a header line, then one line each.
func processTable(procs []admin.ProcessStatus, now time.Time) []string {
	rows := [][]string{{"PID", "STATE", "GEN", "SESSIONS", "PROCESSED", "UPTIME", "CPU", "MEMORY", "LAST USED"}}
	for _, p := range procs {
		state := p.State
		if p.Reason != "" {
			state += " (" + p.Reason + ")"
		}
		sessions := strconv.Itoa(p.Sessions)
		if p.Concurrency > 0 {
			sessions += "/" + strconv.Itoa(p.Concurrency)
		}
		mem := "-"
		switch {
		case p.PSS > 0:
			mem = humanBytes(p.PSS)
		case p.RSS > 0:
			mem = humanBytes(p.RSS) + " (RSS)"
		}
		last := "never"
		if !p.LastUsed.IsZero() && (p.Processed > 0 || p.Sessions > 0) {
			last = humanDuration(now.Sub(p.LastUsed)) + " ago"
		}
		rows = append(rows, []string{
			strconv.Itoa(p.PID), state, strconv.Itoa(p.Generation), sessions,
			strconv.FormatUint(p.Processed, 10), humanDuration(seconds(p.UptimeSeconds)),
			fmt.Sprintf("%.1f%%", p.CPUPercent), mem, last,
		})
	}
	return tabulate(rows)
}

// writeRequests writes the text of `ferry status --show=requests`.
func writeRequests(w io.Writer, reqs []admin.RequestInfo, pal palette) {
	switch len(reqs) {
	case 0:
		fmt.Fprintln(w, "No requests in flight.")
		return
	case 1:
		fmt.Fprintln(w, "1 request in flight:")
	default:
		fmt.Fprintf(w, "%d requests in flight:\n", len(reqs))
	}
	fmt.Fprintln(w)
	writeLines(w, "  ", requestTable(reqs, 60), pal)
}

// requestTable lays out requests in flight, oldest first as the API gives
// them; paths longer than pathWidth are cut.
func requestTable(reqs []admin.RequestInfo, pathWidth int) []string {
	apps := map[string]bool{}
	for _, r := range reqs {
		apps[r.App] = true
	}
	head := []string{"METHOD", "PATH", "CLIENT", "STATE", "AGE", "PID"}
	if len(apps) > 1 {
		head = append([]string{"APP"}, head...)
	}
	rows := [][]string{head}
	for _, r := range reqs {
		pid := "-"
		if r.PID > 0 {
			pid = strconv.Itoa(r.PID)
		}
		row := []string{r.Method, truncate(r.Path, pathWidth), r.Client, r.State,
			humanDuration(time.Duration(r.AgeMS) * time.Millisecond), pid}
		if len(apps) > 1 {
			row = append([]string{r.App}, row...)
		}
		rows = append(rows, row)
	}
	return tabulate(rows)
}

// writeServer writes the text of `ferry status --show=server`: the core and
// the configuration in effect, one option per line by its Passengerfile.json
// key; an app's options are named by their path, as app[0].max_pool_size.
func writeServer(w io.Writer, info admin.Info, pal palette) {
	writeGeneral(w, info, pal)
	fmt.Fprintf(w, "\n%s\n", pal.bold(section("Configuration in effect")))
	if len(info.Config) == 0 {
		fmt.Fprintln(w, "(not reported)")
		return
	}
	var kvs [][2]string
	flattenConfig("", "", info.Config, &kvs)
	width := 0
	for _, kv := range kvs {
		width = max(width, len(kv[0]))
	}
	for _, kv := range kvs {
		fmt.Fprintf(w, "%-*s  %s\n", width, kv[0], kv[1])
	}
}

// flattenConfig appends the leaves of the JSON value v to out as (path,
// text), objects in key order; a map of strings (envvars) is one leaf.
func flattenConfig(path, name string, v any, out *[][2]string) {
	switch v := v.(type) {
	case map[string]any:
		if len(v) == 0 {
			*out = append(*out, [2]string{path, "{}"})
			return
		}
		for _, k := range slices.Sorted(maps.Keys(v)) {
			p := k
			if path != "" {
				p = path + "." + k
			}
			flattenConfig(p, k, v[k], out)
		}
	case []any:
		nested := slices.ContainsFunc(v, func(e any) bool {
			_, isMap := e.(map[string]any)
			return isMap
		})
		if !nested {
			b, _ := json.Marshal(v)
			*out = append(*out, [2]string{path, string(b)})
			return
		}
		for i, e := range v {
			flattenConfig(fmt.Sprintf("%s[%d]", path, i), name, e, out)
		}
	default:
		*out = append(*out, [2]string{path, configValue(v)})
	}
}

// configValue is one option's value as GET /server gives it, which is as
// users write it (config.Effective).
func configValue(v any) string {
	switch v := v.(type) {
	case nil:
		return "-"
	case string:
		if v == "" {
			return `""`
		}
		return v
	case float64:
		return strconv.FormatFloat(v, 'f', -1, 64)
	case bool:
		return strconv.FormatBool(v)
	}
	b, _ := json.Marshal(v)
	return string(b)
}

// printFlags prints the options of fs, sorted, for --help.
func printFlags(w io.Writer, fs *flag.FlagSet) {
	fs.VisitAll(func(f *flag.Flag) {
		name, usage := flag.UnquoteUsage(f)
		opt := "--" + f.Name
		if name != "" {
			opt += " " + strings.ToUpper(name)
		}
		if f.DefValue != "" && f.DefValue != "false" && !strings.Contains(usage, "(default") {
			usage += " (default " + f.DefValue + ")"
		}
		fmt.Fprintf(w, "  %-32s %s\n", opt, usage)
	})
}

// tabulate aligns rows into columns two spaces apart.
func tabulate(rows [][]string) []string {
	var buf bytes.Buffer
	tw := tabwriter.NewWriter(&buf, 0, 0, 2, ' ', 0)
	for _, r := range rows {
		fmt.Fprintln(tw, strings.Join(r, "\t"))
	}
	tw.Flush()
	return strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
}

// writeLines writes a table from tabulate, indented, its header in bold.
func writeLines(w io.Writer, indent string, lines []string, pal palette) {
	for i, l := range lines {
		if i == 0 {
			l = pal.bold(l)
		}
		fmt.Fprintln(w, indent+l)
	}
}

func seconds(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }

// humanDuration is d the way people say it, to two units at most: 350ms,
// 4.2s, 45s, 3m12s, 2h5m, 3d4h.
func humanDuration(d time.Duration) string {
	switch {
	case d <= 0:
		return "0s"
	case d < time.Second:
		return strconv.FormatInt(d.Milliseconds(), 10) + "ms"
	case d < 10*time.Second:
		return strconv.FormatFloat(d.Seconds(), 'f', 1, 64) + "s"
	case d < time.Minute:
		return strconv.Itoa(int(d.Seconds())) + "s"
	case d < time.Hour:
		return fmt.Sprintf("%dm%ds", int(d.Minutes()), int(d.Seconds())%60)
	case d < 24*time.Hour:
		return fmt.Sprintf("%dh%dm", int(d.Hours()), int(d.Minutes())%60)
	}
	return fmt.Sprintf("%dd%dh", int(d.Hours())/24, int(d.Hours())%24)
}

// humanBytes is n in megabytes (of 2^20 bytes, as passenger-memory-stats and
// top count them) with one decimal.
func humanBytes(n int64) string {
	return strconv.FormatFloat(float64(n)/(1<<20), 'f', 1, 64) + " MB"
}

// truncate cuts s to at most n characters, ending with … when cut.
func truncate(s string, n int) string {
	if n <= 0 || utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:max(n-1, 0)]) + "…"
}
