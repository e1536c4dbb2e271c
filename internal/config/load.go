package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
)

// DefaultServer is the core's configuration before any source is applied.
func DefaultServer() Server {
	return Server{
		Address:                     "0.0.0.0",
		Port:                        3000,
		LogFormat:                   "text",
		ShutdownTimeout:             DefaultShutdownTimeout,
		Drain:                       Drain{DrainDelay: DefaultDrainDelay, AppStopTimeout: DefaultAppStopTimeout, FirstRequestGrace: DefaultFirstRequestGrace},
		RequestBufferMemory:         128 << 10,
		ResponseBufferMemory:        1 << 20,
		ResponseBufferHighWatermark: 128 << 20,
		TurbocacheMaxEntries:        10000,
		TurbocacheMaxBytes:          64 << 20,
		TurbocacheMaxEntrySize:      1 << 20,

		// turbocache.go
		TurbocacheMaxVariants:        32,
		TurbocacheStaleIfUnreachable: 10 * time.Second,

		Memory: Memory{MemoryTrim: true},
	}
}

// DefaultApp is an app's configuration before any source is applied.
func DefaultApp() App {
	return App{
		Environment:                          "development",
		Python:                               "python3",
		Ruby:                                 "ruby",
		Nodejs:                               "node",
		MaxPreloaderIdleTime:                 300 * time.Second,
		StartTimeout:                         90 * time.Second,
		ConcurrencyModel:                     "process",
		ThreadCount:                          1,
		ForceMaxConcurrentRequestsPerProcess: -1,
		ConcurrencyTarget:                    16,
		MaxPoolSize:                          6,
		MinInstances:                         1,
		MaxRequestQueueSize:                  100,
		PoolIdleTime:                         300 * time.Second,
		StatThrottleRate:                     10 * time.Second,
		TurboCaching:                         true,
		AppPassenger: AppPassenger{
			StickySessionsCookieName:         "_passenger_route",
			StickySessionsCookieAttributes:   "SameSite=Lax; Secure;",
			AbortWebsocketsOnProcessShutdown: true,
		},
	}
}

// setting is one value from one source, applied in order.
type setting struct {
	o      *option
	raw    string
	source string // how to name it in errors: "--port", "FERRY_PORT", "Passengerfile.json: port"
}

func (s setting) apply(c *Config, apps []int) error {
	var err error
	if s.o.Scope == serverScope {
		err = s.o.bindServer(&c.Server).Set(s.raw)
	} else {
		for _, i := range apps {
			if err = s.o.bindApp(&c.Apps[i]).Set(s.raw); err != nil {
				break
			}
		}
	}
	if err != nil {
		return fmt.Errorf("%s: %w (got %q)", s.source, err, s.raw)
	}
	return nil
}

// StartFlags parses the command line of `ferry start`: the settings given
// (in order), the positional APP_DIR and --config FILE.
func StartFlags(args []string) (settings []setting, appDir, configFile string, err error) {
	fs := flag.NewFlagSet("start", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&configFile, "config", "", "multi-app configuration `FILE` (TOML)")
	scratchS, scratchA := DefaultServer(), DefaultApp()
	var valueErr error // the last bad value, as its Set said it
	for _, o := range options {
		if o.Name == "" {
			continue
		}
		var probe flag.Value
		if o.Scope == serverScope {
			probe = o.bindServer(&scratchS)
		} else {
			probe = o.bindApp(&scratchA)
		}
		rec := &recorder{o: o, probe: probe, out: &settings, err: &valueErr}
		fs.Var(rec, o.Name, o.Usage)
		if o.Short != "" {
			fs.Var(rec, o.Short, "shorthand for --"+o.Name)
		}
	}
	positional, err := ParseInterleaved(fs, args)
	if err != nil {
		return nil, "", "", FlagError(fs, "ferry start", err, valueErr)
	}
	if len(positional) > 1 {
		return nil, "", "", fmt.Errorf("expected one APP_DIR, got %d: %s", len(positional), strings.Join(positional, " "))
	}
	if len(positional) == 1 {
		appDir = positional[0]
	}
	return settings, appDir, configFile, nil
}

// recorder records a flag's values in order, checking each on a scratch
// value so that a bad one is an error naming the flag at once.
type recorder struct {
	o     *option
	probe flag.Value
	out   *[]setting
	err   *error
}

func (r *recorder) String() string { return "" }
func (r *recorder) IsBoolFlag() bool {
	b, ok := r.probe.(interface{ IsBoolFlag() bool })
	return ok && b.IsBoolFlag()
}
func (r *recorder) Set(s string) error {
	if err := r.probe.Set(s); err != nil {
		*r.err = err
		return err
	}
	*r.out = append(*r.out, setting{o: r.o, raw: s, source: "--" + r.o.Name})
	return nil
}

// envSettings reads PASSENGER_<KEY> and then FERRY_<KEY> (which wins) for
// every option; empty values are ignored.
func envSettings(environ []string) []setting {
	env := map[string]string{}
	for _, kv := range environ {
		if k, v, ok := strings.Cut(kv, "="); ok {
			env[k] = v
		}
	}
	var out []setting
	for _, prefix := range []string{"PASSENGER_", "FERRY_"} {
		for _, o := range options {
			k := o.key()
			if k == "" || k == "root" || k == "name" {
				continue
			}
			name := prefix + strings.ToUpper(k)
			v := env[name]
			if v == "" {
				continue
			}
			if _, ok := o.bindApp0().(multi); ok {
				for _, part := range strings.Fields(v) {
					out = append(out, setting{o: o, raw: part, source: name})
				}
				continue
			}
			out = append(out, setting{o: o, raw: v, source: name})
		}
	}
	return out
}

// bindApp0 binds the option to a scratch config, to learn its value type.
func (o *option) bindApp0() flag.Value {
	if o.Scope == serverScope {
		s := DefaultServer()
		return o.bindServer(&s)
	}
	a := DefaultApp()
	return o.bindApp(&a)
}

// fileSettings turns the decoded keys of a file into settings. Unknown keys
// are warnings; values of the wrong shape are errors naming file and key.
func fileSettings(file string, m map[string]any, skip []string, warn func(string)) ([]setting, error) {
	var out []setting
	var errs []error
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		if slices.Contains(skip, k) {
			continue
		}
		v := m[k]
		o := fileOption(k)
		if o == nil {
			warn(fmt.Sprintf("%s: unknown key %q (ignored)", file, k))
			continue
		}
		source := file + ": " + k
		raws, err := rawValues(o, v)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", source, err))
			continue
		}
		for _, raw := range raws {
			out = append(out, setting{o: o, raw: raw, source: source})
		}
	}
	return out, errors.Join(errs...)
}

func fileOption(key string) *option {
	for _, o := range options {
		if o.key() == key {
			return o
		}
	}
	return nil
}

// rawValues converts a decoded JSON or TOML value into flag strings.
func rawValues(o *option, v any) ([]string, error) {
	_, isMulti := o.bindApp0().(multi)
	switch x := v.(type) {
	case string:
		return []string{x}, nil
	case bool:
		return []string{strconv.FormatBool(x)}, nil
	case json.Number:
		return []string{x.String()}, nil
	case int64:
		return []string{strconv.FormatInt(x, 10)}, nil
	case float64:
		return []string{strconv.FormatFloat(x, 'f', -1, 64)}, nil
	case []any:
		if !isMulti {
			return nil, errors.New("want a single value, not a list")
		}
		var out []string
		for _, e := range x {
			s, err := scalar(e)
			if err != nil {
				return nil, err
			}
			out = append(out, s)
		}
		return out, nil
	case map[string]any:
		if _, ok := o.bindApp0().(*envValue); !ok {
			return nil, errors.New("want a single value, not a map")
		}
		var out []string
		for _, k := range slices.Sorted(func(yield func(string) bool) {
			for k := range x {
				if !yield(k) {
					return
				}
			}
		}) {
			s, err := scalar(x[k])
			if err != nil {
				return nil, fmt.Errorf("%s: %w", k, err)
			}
			out = append(out, k+"="+s)
		}
		return out, nil
	case nil:
		return nil, nil
	}
	return nil, fmt.Errorf("unexpected value %v", v)
}

func scalar(v any) (string, error) {
	switch x := v.(type) {
	case string:
		return x, nil
	case bool:
		return strconv.FormatBool(x), nil
	case json.Number:
		return x.String(), nil
	case int64:
		return strconv.FormatInt(x, 10), nil
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64), nil
	}
	return "", fmt.Errorf("want a string, number or boolean, got %v", v)
}

// readPassengerfile reads APP_DIR/Passengerfile.json, if there is one.
func readPassengerfile(root string, warn func(string)) ([]setting, error) {
	path := filepath.Join(root, "Passengerfile.json")
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("%s: not a JSON object: %s", path, jsonError(b, err))
	}
	if dec.More() {
		return nil, fmt.Errorf("%s: not a JSON object: %s", path, jsonError(b, errors.New("more after the object")))
	}
	return fileSettings(path, m, nil, warn)
}

// Load builds the configuration of `ferry start args...`: defaults, then the
// app's Passengerfile.json (or, with --config, the multi-app file and each
// app's Passengerfile.json), then FERRY_*/PASSENGER_* environment variables,
// then the command line. Command-line and environment app options apply to
// every app.
func Load(args, environ []string) (*Config, error) {
	flags, appDir, file, err := StartFlags(args)
	if err != nil {
		return nil, err
	}
	if file != "" && appDir != "" {
		return nil, errors.New("give either APP_DIR or --config, not both")
	}
	c := &Config{Server: DefaultServer(), File: file}
	// As in Passenger Standalone, the environment defaults to what the
	// shell says the app's environment is.
	defaultEnv := ""
	for _, k := range []string{"RAILS_ENV", "RACK_ENV", "NODE_ENV", "PASSENGER_APP_ENV"} {
		for _, kv := range environ {
			if v, ok := strings.CutPrefix(kv, k+"="); ok && v != "" && defaultEnv == "" {
				defaultEnv = v
			}
		}
	}
	newApp := func() App {
		a := DefaultApp()
		if defaultEnv != "" {
			a.Environment = defaultEnv
		}
		return a
	}
	warn := func(s string) { c.Warnings = append(c.Warnings, s) }
	var perApp [][]setting // settings of app i from files
	var serverFile []setting
	if file == "" {
		if appDir == "" {
			appDir = "."
		}
		a := newApp()
		a.Root = appDir
		c.Apps = []App{a}
		if err := checkRoot(appDir); err != nil {
			return nil, err
		}
		pf, err := readPassengerfile(appDir, warn)
		if err != nil {
			return nil, err
		}
		perApp = [][]setting{pf}
	} else {
		serverFile, perApp, err = readMultiApp(c, file, newApp, warn)
		if err != nil {
			return nil, err
		}
	}
	all := make([]int, len(c.Apps))
	for i := range all {
		all[i] = i
	}
	var errs []error
	for _, s := range serverFile {
		if err := s.apply(c, all); err != nil {
			errs = append(errs, err)
		}
	}
	for i, ss := range perApp {
		for _, s := range ss {
			if err := s.apply(c, []int{i}); err != nil {
				errs = append(errs, err)
			}
		}
	}
	for _, s := range append(envSettings(environ), flags...) {
		if err := s.apply(c, all); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return c, c.Finish()
}

// readMultiApp reads a multi-app file (TOML): top-level keys are
// server-wide settings or defaults for every app; each [[app]] table is one
// app. Each app's own Passengerfile.json applies first.
func readMultiApp(c *Config, file string, newApp func() App, warn func(string)) (server []setting, perApp [][]setting, err error) {
	var m map[string]any
	if _, err := toml.DecodeFile(file, &m); err != nil {
		return nil, nil, fmt.Errorf("--config %s: %w", file, unwrapPathErr(err))
	}
	rawApps, _ := m["app"].([]map[string]any)
	if _, ok := m["app"]; ok && rawApps == nil {
		return nil, nil, fmt.Errorf("%s: app: want [[app]] tables", file)
	}
	if len(rawApps) == 0 {
		return nil, nil, fmt.Errorf("%s: no [[app]] tables: a multi-app file lists its apps as [[app]] tables with at least a root", file)
	}
	server, err = fileSettings(file, m, []string{"app"}, warn)
	if err != nil {
		return nil, nil, err
	}
	base := filepath.Dir(file)
	var errs []error
	for i, ra := range rawApps {
		a := newApp()
		root, _ := ra["root"].(string)
		if root == "" {
			errs = append(errs, fmt.Errorf("%s: app %d: root is missing", file, i+1))
			continue
		}
		if !filepath.IsAbs(root) {
			root = filepath.Join(base, root)
		}
		if err := checkRoot(root); err != nil {
			errs = append(errs, fmt.Errorf("%s: app %d: %w", file, i+1, err))
			continue
		}
		a.Root = root
		c.Apps = append(c.Apps, a)
		pf, err := readPassengerfile(root, warn)
		if err != nil {
			errs = append(errs, err)
		}
		fs, err := fileSettings(fmt.Sprintf("%s: app %d", file, i+1), ra, []string{"root"}, warn)
		if err != nil {
			errs = append(errs, err)
		}
		for _, s := range fs {
			if s.o.Scope == serverScope {
				errs = append(errs, fmt.Errorf("%s: %s is server-wide; set it outside the [[app]] tables", s.source, s.o.key()))
			}
		}
		perApp = append(perApp, append(pf, fs...))
	}
	return server, perApp, errors.Join(errs...)
}

// checkRoot says what is wrong with an app directory that cannot be
// served, or nil.
func checkRoot(root string) error {
	fi, err := os.Stat(root)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return fmt.Errorf("APP_DIR %s: no such directory; give the directory of the app to serve", root)
	case err != nil:
		return fmt.Errorf("APP_DIR %s: %w", root, unwrapPathErr(err))
	case !fi.IsDir():
		return fmt.Errorf("APP_DIR %s: not a directory; give the directory of the app, not a file in it", root)
	}
	d, err := os.Open(root)
	if err == nil {
		_, err = d.Readdirnames(1)
		d.Close()
		if errors.Is(err, io.EOF) {
			err = nil
		}
	}
	if err != nil {
		return fmt.Errorf("APP_DIR %s: cannot read it (%v); Ferry's user (uid %d) needs to read the app directory", root, unwrapPathErr(err), os.Geteuid())
	}
	return nil
}

func unwrapPathErr(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// jsonError adds the line and column to a JSON decoding error, which
// encoding/json gives as a byte offset.
func jsonError(b []byte, err error) string {
	var off int64 = -1
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		off = se.Offset - 1 // it counts the offending byte
	case errors.As(err, &te):
		off = te.Offset - 1
		err = fmt.Errorf("want an object of settings such as {\"port\": 3000}, not %s", te.Value)
	case errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF):
		off = int64(len(b))
		err = errors.New("it ends before the object does")
	}
	off = max(off, 0)
	if off > int64(len(b)) {
		return err.Error()
	}
	line := 1 + bytes.Count(b[:off], []byte("\n"))
	col := int(off) - bytes.LastIndexByte(b[:off], '\n')
	return fmt.Sprintf("line %d, column %d: %v", line, col, err)
}

// ParseInterleaved parses the options of fs in args, where they may come
// before and after positional arguments, and returns those in order.
func ParseInterleaved(fs *flag.FlagSet, args []string) ([]string, error) {
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return positional, nil
		}
		positional = append(positional, rest[0])
		args = rest[1:]
	}
}
