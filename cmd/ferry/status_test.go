package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ferry-server/ferry/internal/admin"
	"github.com/ferry-server/ferry/internal/config"
	"github.com/ferry-server/ferry/internal/pool"
	"github.com/ferry-server/ferry/internal/turbocache"
)

// now is the fixed "now" of the golden tests.
var now = time.Date(2026, 11, 21, 13, 30, 0, 0, time.UTC)

var fixtureInfo = admin.Info{
	Version:   "1.2.3",
	PID:       4242,
	StartedAt: now.Add(-(2*time.Hour + 5*time.Minute + 7*time.Second)),
	Uptime:    (2*time.Hour + 5*time.Minute + 7*time.Second).Seconds(),
	Listen:    []string{"0.0.0.0:3000", "[::]:3000"},
	Instance:  "/run/ferry/ferry-123456",
	Config: map[string]any{
		"address":               "0.0.0.0",
		"port":                  float64(3000),
		"shutdown_timeout":      float64(30),
		"request_buffer_memory": "128k",
		"pid_file":              "",
		"trusted_proxies":       []any{},
		"app": []any{map[string]any{
			"name":                    "shop",
			"max_pool_size":           float64(6),
			"max_preloader_idle_time": float64(300),
			"rolling_restarts":        true,
			"server_names":            []any{"shop.example.com", "*.shop.example.com"},
			"envvars":                 map[string]any{"SECRET_BASE": "x"},
			"friendly_error_pages":    nil,
		}},
	},
}

func proc(pid, gen int, state string, sessions, conc int, processed uint64, up, lastUsed time.Duration, cpu float64, rss, pss int64) admin.ProcessStatus {
	return admin.ProcessStatus{
		ProcessStatus: pool.ProcessStatus{
			PID: pid, Generation: gen, State: state, Sessions: sessions, Concurrency: conc,
			Processed: processed, Started: now.Add(-up), LastUsed: now.Add(-lastUsed),
		},
		UptimeSeconds: up.Seconds(), CPUPercent: cpu, RSS: rss, PSS: pss, PrivateDirty: pss / 2,
	}
}

var fixturePool = admin.PoolStatus{Apps: []admin.AppStatus{
	{
		GroupStatus: pool.GroupStatus{
			Name: "shop", Min: 2, Max: 6, Queued: 3, Spawning: 1, Generation: 4, Restarting: true,
			Stats: pool.Stats{Spawned: 12, SpawnFailed: 1, Died: 2, Recycled: 3, Restarts: 4, RequestsDone: 98765},
		},
		Root: "/srv/shop", Type: "wsgi", SpawnMethod: "smart", Preloader: 5000,
		Cache: &turbocache.Stats{Hits: 5400, Misses: 1200, Stores: 310, Entries: 290, Bytes: 3 << 20},
		Processes: []admin.ProcessStatus{
			proc(5001, 3, "retiring", 1, 1, 1500, 3*time.Minute+12*time.Second, 2*time.Second, 12.5, 60<<20, 25<<20),
			proc(5002, 4, "serving", 0, 1, 0, 4*time.Second, 4*time.Second, 0, 40<<20, 0),
			proc(5003, 4, "serving", 1, 1, 17, 26*time.Hour+3*time.Minute, 350*time.Millisecond, 101, 0, 0),
		},
	},
	{
		GroupStatus: pool.GroupStatus{
			Name: "api", Min: 1, Max: 4, Generation: 1,
			LastError:   "the app failed to start: ImportError: No module named 'flask'",
			RetryAt:     new(now.Add(8 * time.Second)),
			DeployError: "rolling restart to generation 1 failed: the new version did not start",
		},
		Root: "/srv/api", Type: "node", SpawnMethod: "direct",
		Processes: []admin.ProcessStatus{},
	},
}}

var fixtureRequests = []admin.RequestInfo{
	{App: "shop", Method: "POST", Path: "/cart/checkout?step=2", Client: "203.0.113.7:51234", State: "forwarding", AgeMS: 12345, PID: 5001},
	{App: "shop", Method: "GET", Path: "/search?q=" + strings.Repeat("very+long+query+", 8), Client: "[2001:db8::1]:40000", State: "queued", AgeMS: 250},
}

func TestStatusGolden(t *testing.T) {
	tests := []struct {
		name   string
		render func(pal palette) string
	}{
		{"status", func(pal palette) string {
			var b strings.Builder
			writeStatus(&b, fixtureInfo, fixturePool, now, pal)
			return b.String()
		}},
		{"status-empty", func(pal palette) string {
			var b strings.Builder
			writeStatus(&b, admin.Info{Version: "1.2.3", PID: 1, Instance: "/tmp/i"}, admin.PoolStatus{}, now, pal)
			return b.String()
		}},
		{"requests", func(pal palette) string {
			var b strings.Builder
			writeRequests(&b, fixtureRequests, pal)
			return b.String()
		}},
		{"requests-none", func(pal palette) string {
			var b strings.Builder
			writeRequests(&b, nil, pal)
			return b.String()
		}},
		{"server", func(pal palette) string {
			var b strings.Builder
			writeServer(&b, fixtureInfo, pal)
			return b.String()
		}},
		{"top", func(pal palette) string {
			f := topFrame{At: now, Info: fixtureInfo, Pool: fixturePool, Requests: fixtureRequests}
			lines := renderTop(f, map[string]float64{"shop": 41.25}, topView{width: 100, height: 40, interactive: true, pal: pal})
			return strings.Join(lines, "\n") + "\n"
		}},
		{"top-small", func(pal palette) string {
			f := topFrame{At: now, Info: fixtureInfo, Pool: fixturePool, Requests: fixtureRequests}
			return strings.Join(renderTop(f, nil, topView{width: 40, height: 8, interactive: true, pal: pal}), "\n") + "\n"
		}},
		{"top-error", func(pal palette) string {
			f := topFrame{At: now, Err: os.ErrDeadlineExceeded}
			return strings.Join(renderTop(f, nil, topView{interactive: true, pal: pal}), "\n") + "\n"
		}},
		{"memory-stats", func(pal palette) string {
			var b strings.Builder
			writeMemoryStats(&b, fixtureMemory(), 40, pal)
			return b.String()
		}},
		{"memory-stats-apps", func(pal palette) string {
			rep := fixtureMemory()
			rep.Problems = nil
			for i := range rep.Processes {
				if rep.Processes[i].Role != "core" {
					rep.Processes[i].AppRoot = "/srv/shop"
				}
			}
			rep.Processes = append(rep.Processes, memProcess{PID: 6000, PPID: 4242, Role: "app", AppRoot: "/srv/api",
				Command: "node /srv/api/app.js", memUsage: memUsage{RSS: 50 << 20, PSS: 45 << 20, PrivateDirty: 40 << 20, Shared: 5 << 20}})
			rep.Total = memUsage{}
			for _, p := range rep.Processes {
				rep.Total.add(p.memUsage)
			}
			var b strings.Builder
			writeMemoryStats(&b, rep, 30, pal)
			return b.String()
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			golden(t, tc.name+".golden", tc.render(palette{}))
		})
	}
	// Colour changes nothing but the escapes: one golden file pins them.
	t.Run("status-color", func(t *testing.T) {
		var b strings.Builder
		writeStatus(&b, fixtureInfo, fixturePool, now, palette{on: true})
		golden(t, "status-color.golden", b.String())
	})
}

func fixtureMemory() memReport {
	mb := func(n int64) int64 { return n << 20 }
	rep := memReport{Instance: "/run/ferry/ferry-123456", CorePID: 4242, Processes: []memProcess{
		{PID: 4242, Role: "core", Command: "ferry start /srv/shop --port 3000 --min-instances 2",
			memUsage: memUsage{RSS: mb(30), PSS: mb(28), PrivateDirty: mb(20), Shared: mb(3)}},
		{PID: 5000, PPID: 4242, Role: "preloader", Command: "python3 /run/ferry/ferry-123456/wsgi.py",
			memUsage: memUsage{RSS: mb(60), PSS: mb(22), PrivateDirty: mb(5), Shared: mb(55)}},
		{PID: 5001, PPID: 5000, Role: "app", Command: "python3 /run/ferry/ferry-123456/wsgi.py",
			memUsage: memUsage{RSS: mb(62), PSS: mb(24), PrivateDirty: mb(7), Shared: mb(55)}},
		{PID: 5009, PPID: 5001, Role: "child", Command: "convert in.png out.jpg",
			memUsage: memUsage{RSS: mb(12)}},
	}, Problems: []string{"read process 5010: permission denied"}}
	for _, p := range rep.Processes {
		rep.Total.add(p.memUsage)
	}
	return rep
}

func TestHumanDuration(t *testing.T) {
	tests := []struct {
		d    time.Duration
		want string
	}{
		{-time.Second, "0s"},
		{0, "0s"},
		{time.Millisecond, "1ms"},
		{350 * time.Millisecond, "350ms"},
		{4200 * time.Millisecond, "4.2s"},
		{45 * time.Second, "45s"},
		{3*time.Minute + 12*time.Second, "3m12s"},
		{2*time.Hour + 5*time.Minute + 59*time.Second, "2h5m"},
		{3*24*time.Hour + 4*time.Hour, "3d4h"},
	}
	for _, tc := range tests {
		if got := humanDuration(tc.d); got != tc.want {
			t.Errorf("humanDuration(%v) = %q, want %q", tc.d, got, tc.want)
		}
	}
}

func TestPlural(t *testing.T) {
	for n, want := range map[uint64]string{0: "0 processes", 1: "1 process", 2: "2 processes"} {
		if got := plural(n, "process"); got != want {
			t.Errorf("plural(%d, process) = %q, want %q", n, got, want)
		}
	}
	if got := plural(3, "request"); got != "3 requests" {
		t.Errorf("plural(3, request) = %q", got)
	}
}

func TestTruncate(t *testing.T) {
	for _, tc := range []struct {
		s    string
		n    int
		want string
	}{
		{"short", 10, "short"},
		{"exactly10!", 10, "exactly10!"},
		{"much too long", 5, "much…"},
		{"ünïcödé", 4, "ünï…"},
		{"no limit", 0, "no limit"},
	} {
		if got := truncate(tc.s, tc.n); got != tc.want {
			t.Errorf("truncate(%q, %d) = %q, want %q", tc.s, tc.n, got, tc.want)
		}
	}
}

func TestPalette(t *testing.T) {
	if got := (palette{}).red("x"); got != "x" {
		t.Errorf("plain red = %q", got)
	}
	if got := (palette{on: true}).red("x"); got != "\x1b[31mx\x1b[0m" {
		t.Errorf("red = %q", got)
	}
	if got := (palette{on: true}).bold(""); got != "" {
		t.Errorf("bold of nothing = %q, want nothing", got)
	}
	// A file is no terminal: never colour.
	f, err := os.Create(filepath.Join(t.TempDir(), "out"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if paletteFor(f).on {
		t.Error("colour on for a regular file")
	}
}

func TestRequestRates(t *testing.T) {
	frame := func(at time.Duration, pid int, done map[string]uint64) topFrame {
		f := topFrame{At: now.Add(at), Info: admin.Info{PID: pid}}
		for name, n := range done {
			f.Pool.Apps = append(f.Pool.Apps, admin.AppStatus{GroupStatus: pool.GroupStatus{Name: name, Stats: pool.Stats{RequestsDone: n}}})
		}
		return f
	}
	got := requestRates(frame(0, 1, map[string]uint64{"a": 100, "b": 50}), frame(2*time.Second, 1, map[string]uint64{"a": 150, "b": 40, "c": 9}))
	want := map[string]float64{"a": 25}
	if len(got) != len(want) || got["a"] != want["a"] {
		t.Errorf("rates = %v, want %v (b went back, c is new)", got, want)
	}
	if got := requestRates(frame(0, 1, map[string]uint64{"a": 1}), frame(time.Second, 2, map[string]uint64{"a": 5})); len(got) != 0 {
		t.Errorf("rates across a new core = %v, want none", got)
	}
	if got := requestRates(frame(time.Second, 1, nil), frame(time.Second, 1, nil)); got != nil {
		t.Errorf("rates over no interval = %v, want nil", got)
	}
}

func TestClassify(t *testing.T) {
	const core = 100
	got := classify(core, []found{
		{pid: 205, ppid: 200, smart: true},  // worker forked by the preloader
		{pid: 200, ppid: core, smart: true}, // preloader
		{pid: 300, ppid: core},              // direct-spawned process
		{pid: 301, ppid: 300},               // something it started
		{pid: 206, ppid: 205, smart: true},  // something a worker started
		{pid: 207, ppid: 1, smart: true},    // a worker whose preloader exited
	})
	want := []found{
		{pid: core, role: "core"},
		{pid: 200, ppid: core, smart: true, role: "preloader"},
		{pid: 205, ppid: 200, smart: true, role: "app"},
		{pid: 207, ppid: 1, smart: true, role: "app"},
		{pid: 300, ppid: core, role: "app"},
		{pid: 206, ppid: 205, smart: true, role: "child"},
		{pid: 301, ppid: 300, role: "child"},
	}
	if len(got) != len(want) {
		t.Fatalf("got %+v\nwant %+v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("[%d] = %+v, want %+v", i, got[i], want[i])
		}
	}
}

func TestHasAny(t *testing.T) {
	markers := instanceMarkers("/run/ferry/ferry-1")
	tests := []struct {
		env  string
		want bool
	}{
		{"PATH=/bin\x00FERRY_INSTANCE=/run/ferry/ferry-1\x00HOME=/\x00", true},
		{"FERRY_INSTANCE=/run/ferry/ferry-1\x00", true},
		{"FERRY_INSTANCE=/run/ferry/ferry-12\x00", false},
		{"X_FERRY_INSTANCE=/run/ferry/ferry-1\x00", false},
		{"PATH=/bin\x00", false},
	}
	for _, tc := range tests {
		if got := hasAny([]byte(tc.env), markers); got != tc.want {
			t.Errorf("hasAny(%q) = %v, want %v", tc.env, got, tc.want)
		}
	}
}

// TestPickPIDFile finds an instance by the pid in a pid file. The instance
// is this test process, which is certainly running.
func TestPickPIDFile(t *testing.T) {
	reg := t.TempDir()
	dir := filepath.Join(reg, "ferry-1")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	props, _ := json.Marshal(map[string]any{"pid": os.Getpid(), "app_root": "/srv/app", "listen": "0.0.0.0:3000"})
	if err := os.WriteFile(filepath.Join(dir, "properties.json"), props, 0o600); err != nil {
		t.Fatal(err)
	}
	pidFile := filepath.Join(t.TempDir(), "ferry.pid")
	os.WriteFile(pidFile, []byte(strconv.Itoa(os.Getpid())+"\n"), 0o644)
	otherPID := filepath.Join(t.TempDir(), "other.pid")
	os.WriteFile(otherPID, []byte("999999999\n"), 0o644)
	garbage := filepath.Join(t.TempDir(), "garbage.pid")
	os.WriteFile(garbage, []byte("hello\n"), 0o644)

	parse := func(args ...string) (*targetFlags, string) {
		fs := flag.NewFlagSet("t", flag.ContinueOnError)
		var f targetFlags
		f.register(fs)
		appDir, err := parseWithPositional(fs, append(args, "--instance-registry-dir", reg))
		if err != nil {
			t.Fatal(err)
		}
		return &f, appDir
	}

	f, appDir := parse("--pid-file", pidFile)
	in, err := f.pick(appDir)
	if err != nil || in.Dir != dir || in.AppRoot != "/srv/app" {
		t.Errorf("pick by pid file = %+v, %v; want %s", in, err, dir)
	}
	f, appDir = parse("--instance", dir)
	if in, err := f.pick(appDir); err != nil || in.PID != os.Getpid() {
		t.Errorf("pick --instance = %+v, %v; want pid %d from properties.json", in, err, os.Getpid())
	}
	for name, args := range map[string][]string{
		"other pid":        {"--pid-file", otherPID},
		"no pid":           {"--pid-file", garbage},
		"missing pid file": {"--pid-file", filepath.Join(reg, "nope")},
		"pid file and dir": {"--pid-file", pidFile, "/srv/app"},
		"not an instance":  {"--instance", reg},
	} {
		f, appDir := parse(args...)
		if in, err := f.pick(appDir); err == nil {
			t.Errorf("%s: pick = %+v, want an error", name, in)
		} else {
			t.Logf("%s: %v", name, err)
		}
	}
}

func TestConfigValue(t *testing.T) {
	for _, tc := range []struct {
		v    any
		want string
	}{
		{float64(30), "30"},
		{float64(0.5), "0.5"},
		{"64k", "64k"},
		{"", `""`},
		{nil, "-"},
		{true, "true"},
	} {
		if got := configValue(tc.v); got != tc.want {
			t.Errorf("configValue(%v) = %q, want %q", tc.v, got, tc.want)
		}
	}
}

// The configuration in effect, as a real core reports it, names options as
// users write them: no Go field names, no nanoseconds.
func TestServerViewOptionNames(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "passenger_wsgi.py"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load([]string{dir, "--shutdown-timeout", "45", "--max-header-size", "32k"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(cfg.EffectiveJSON(), &m); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	writeServer(&out, admin.Info{Config: m}, palette{})
	_, text, _ := strings.Cut(out.String(), "Configuration in effect")
	for _, want := range []string{"\nshutdown_timeout ", " 45\n", "\nmax_header_size ", " 32k\n", "\napp[0].max_pool_size ", "\napp[0].start_timeout "} {
		if !strings.Contains(text, want) {
			t.Errorf("no %q in:\n%s", want, text)
		}
	}
	if regexp.MustCompile(`(?m)^(app\[0\]\.)?[A-Z]`).MatchString(text) || strings.Contains(text, "30000000000") {
		t.Errorf("Go field names or nanoseconds in:\n%s", text)
	}
}

// A core is stopped once it is gone, a zombie, or its instance directory
// is: removing it is the last thing a core does.
func TestStopped(t *testing.T) {
	dir := t.TempDir()
	if stopped(os.Getpid(), dir) {
		t.Error("this process with its directory: stopped")
	}
	if !stopped(os.Getpid(), filepath.Join(dir, "gone")) {
		t.Error("this process without its instance directory: not stopped")
	}
	if stopped(os.Getpid(), "") {
		t.Error("this process, no directory known: stopped")
	}
}
