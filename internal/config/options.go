package config

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
)

// scope says where an option lives.
type scope int

const (
	serverScope scope = iota // the core as a whole
	appScope                 // each app (in a multi-app file: per [[app]], or for all at top level)
)

// option is one setting with its names in every source. The file key (also
// the environment name, upper-cased, after FERRY_ or PASSENGER_) is the flag
// name with '-' turned into '_', unless Key says otherwise.
type option struct {
	Name  string // flag name without dashes; "" for file-only settings
	Short string // one-letter flag alias
	Key   string // file/environment key; "-" for flag-only options
	Scope scope
	Usage string // may name the value in `backquotes`
	// Exactly one of server and app binds the option to a field.
	server func(*Server) flag.Value
	app    func(*App) flag.Value
}

func (o *option) key() string {
	switch o.Key {
	case "-":
		return ""
	case "":
		return strings.ReplaceAll(o.Name, "-", "_")
	}
	return o.Key
}

// bind returns the option's value bound to the field it sets in c (for app
// options, in app i).
func (o *option) bindServer(s *Server) flag.Value { return o.server(s) }
func (o *option) bindApp(a *App) flag.Value       { return o.app(a) }

// options is the table; register adds to it (files of this package may
// register their own sections from init).
var options []*option

func register(os ...*option) { options = append(options, os...) }

func srv(name, usage string, f func(*Server) flag.Value) *option {
	return &option{Name: name, Scope: serverScope, Usage: usage, server: f}
}

func app(name, usage string, f func(*App) flag.Value) *option {
	return &option{Name: name, Scope: appScope, Usage: usage, app: f}
}

func (o *option) short(s string) *option { o.Short = s; return o }
func (o *option) withKey(k string) *option {
	o.Key = k
	return o
}

func init() {
	register(
		srv("address", "`HOST` address to listen on", func(s *Server) flag.Value { return (*strValue)(&s.Address) }).short("a"),
		srv("port", "TCP `PORT` to listen on (0: any free port)", func(s *Server) flag.Value { return (*intValue)(&s.Port) }).short("p"),
		srv("log-file", "log to this `FILE` (default: standard error)", func(s *Server) flag.Value { return (*strValue)(&s.LogFile) }),
		srv("log-format", "log `FORMAT`: text or json", func(s *Server) flag.Value { return (*strValue)(&s.LogFormat) }),
		srv("log-level", "`LEVEL`: debug, info, warn, error, or Passenger's 0-7", func(s *Server) flag.Value { return (*levelValue)(&s.LogLevel) }),
		srv("pid-file", "write the core's pid to this `FILE`", func(s *Server) flag.Value { return (*strValue)(&s.PidFile) }),
		srv("metrics-address", "also serve Prometheus metrics (only) at http://`HOST:PORT`/metrics", func(s *Server) flag.Value { return (*strValue)(&s.MetricsAddress) }),
		srv("daemonize", "run in the background once serving and each app with --min-instances has a process; if one cannot start, say why, stop, and exit 1 (log: APP_DIR/ferry.PORT.log unless --log-file)", func(s *Server) flag.Value { return (*boolValue)(&s.Daemonize) }).short("d"),
		srv("instance-registry-dir", "`DIR` where instance directories are created (default: /run/ferry as root, else $XDG_RUNTIME_DIR/ferry)", func(s *Server) flag.Value { return (*strValue)(&s.InstanceRegistryDir) }),
		srv("shutdown-timeout", "`SECONDS` requests in flight may take to finish once accepting stops (default 20)", func(s *Server) flag.Value { return (*secondsValue)(&s.ShutdownTimeout) }),
		srv("request-buffer-memory", "`BYTES` of a request body kept in memory before spilling to disk", func(s *Server) flag.Value { return (*bytesValue)(&s.RequestBufferMemory) }),
		srv("response-buffer-memory", "`BYTES` of a response kept in memory before spilling to disk", func(s *Server) flag.Value { return (*bytesValue)(&s.ResponseBufferMemory) }),
		srv("response-buffer-high-watermark", "`BYTES` of a response held for a slow client before reading from the app pauses", func(s *Server) flag.Value { return (*bytesValue)(&s.ResponseBufferHighWatermark) }),
		srv("turbocache-max-entries", "most responses the cache of one app holds (`N`)", func(s *Server) flag.Value { return (*intValue)(&s.TurbocacheMaxEntries) }),
		srv("turbocache-max-bytes", "most `BYTES` the cache of one app holds", func(s *Server) flag.Value { return (*bytesValue)(&s.TurbocacheMaxBytes) }),
		srv("turbocache-max-entry-size", "largest response (`BYTES`) the cache stores", func(s *Server) flag.Value { return (*bytesValue)(&s.TurbocacheMaxEntrySize) }),

		app("", "the app's name in logs and status", func(a *App) flag.Value { return (*strValue)(&a.Name) }).withKey("name"),
		app("", "the app directory", func(a *App) flag.Value { return (*strValue)(&a.Root) }).withKey("root"),
		app("", "Host names routed to the app", func(a *App) flag.Value { return (*listValue)(&a.ServerNames) }).withKey("server_names"),
		app("", "path prefix the app is mounted at", func(a *App) flag.Value { return (*strValue)(&a.BaseURI) }).withKey("base_uri"),
		app("environment", "app environment `NAME` (development shows error details)", func(a *App) flag.Value { return (*strValue)(&a.Environment) }).short("e"),
		app("app-type", "app `TYPE`: rack, wsgi, asgi, node or generic (default: autodetect)", func(a *App) flag.Value { return (*strValue)(&a.AppType) }),
		app("startup-file", "startup `FILE` relative to APP_DIR (default: by app type)", func(a *App) flag.Value { return (*strValue)(&a.StartupFile) }),
		app("app-start-command", "run a generic app: a `COMMAND` that listens on $PORT", func(a *App) flag.Value { return (*strValue)(&a.AppStartCommand) }),
		app("python", "Python interpreter `COMMAND` for WSGI and ASGI apps", func(a *App) flag.Value { return (*strValue)(&a.Python) }),
		app("ruby", "Ruby interpreter `COMMAND` for Rack apps", func(a *App) flag.Value { return (*strValue)(&a.Ruby) }),
		app("nodejs", "Node.js interpreter `COMMAND` for Node apps", func(a *App) flag.Value { return (*strValue)(&a.Nodejs) }),
		app("envvar", "set `NAME=VALUE` in the app's environment (repeatable)", func(a *App) flag.Value { return (*envValue)(&a.Envvars) }).withKey("envvars"),
		app("spawn-method", "`METHOD` smart (preload once, fork workers) or direct (default: smart for Rack and WSGI)", func(a *App) flag.Value { return (*strValue)(&a.SpawnMethod) }),
		app("max-preloader-idle-time", "`SECONDS` an unused preloader is kept (0 = forever)", func(a *App) flag.Value { return (*secondsValue)(&a.MaxPreloaderIdleTime) }),
		app("start-timeout", "`SECONDS` one process may take to start", func(a *App) flag.Value { return (*secondsValue)(&a.StartTimeout) }),
		app("concurrency-model", "`MODEL` process or thread (Rack and WSGI)", func(a *App) flag.Value { return (*strValue)(&a.ConcurrencyModel) }),
		app("thread-count", "requests one process serves at once with --concurrency-model thread (`N`)", func(a *App) flag.Value { return (*intValue)(&a.ThreadCount) }),
		app("force-max-concurrent-requests-per-process", "cap on requests one Node, ASGI or generic process is given (`N`; -1 = no cap)", func(a *App) flag.Value {
			return (*intValue)(&a.ForceMaxConcurrentRequestsPerProcess)
		}),
		app("concurrency-target", "open requests per process past which a Node, ASGI or generic app gets another process (`N`; 0 = never)", func(a *App) flag.Value { return (*intValue)(&a.ConcurrencyTarget) }),
		app("max-pool-size", "most processes per app (`N`)", func(a *App) flag.Value { return (*intValue)(&a.MaxPoolSize) }),
		app("min-instances", "processes started at boot and kept when idle (`N`)", func(a *App) flag.Value { return (*intValue)(&a.MinInstances) }),
		app("max-request-queue-size", "requests that may wait for a process (`N`; 0 = unlimited)", func(a *App) flag.Value { return (*intValue)(&a.MaxRequestQueueSize) }),
		app("pool-idle-time", "`SECONDS` a process may idle before it is stopped (0 = never)", func(a *App) flag.Value { return (*secondsValue)(&a.PoolIdleTime) }),
		app("max-requests", "replace a process after it served `N` requests (0 = never)", func(a *App) flag.Value { return (*uint64Value)(&a.MaxRequests) }),
		app("max-requests-jitter", "add a random 0..`N` to --max-requests per process", func(a *App) flag.Value { return (*uint64Value)(&a.MaxRequestsJitter) }),
		app("memory-limit", "replace a process whose own memory (PSS) exceeds `MB` (0 = no limit)", func(a *App) flag.Value { return (*int64Value)(&a.MemoryLimit) }),
		app("max-request-time", "`SECONDS` after which a request gets a 504 and its process is replaced (0 = no limit)", func(a *App) flag.Value { return (*secondsValue)(&a.MaxRequestTime) }),
		app("max-request-queue-time", "`SECONDS` a request may wait for a process before a 504 (0 = no limit)", func(a *App) flag.Value { return (*secondsValue)(&a.MaxRequestQueueTime) }),
		app("stat-throttle-rate", "check tmp/restart.txt at most every `SECONDS`", func(a *App) flag.Value { return (*secondsValue)(&a.StatThrottleRate) }),
		app("restart-dir", "`DIR` with restart.txt and always_restart.txt (default APP_DIR/tmp)", func(a *App) flag.Value { return (*strValue)(&a.RestartDir) }),
		app("rolling-restarts", "restart through restart.txt one process at a time, never dropping capacity", func(a *App) flag.Value { return (*boolValue)(&a.RollingRestarts) }),
		app("turbocaching", "cache responses the app marks cacheable", func(a *App) flag.Value { return (*boolValue)(&a.TurboCaching) }),
		app("disable-turbocaching", "turn the response cache off", func(a *App) flag.Value { return (*negBoolValue)(&a.TurboCaching) }).withKey("-"),
		app("vary-turbocache-by-cookie", "key cached responses by this cookie's value (`NAME`)", func(a *App) flag.Value { return (*strValue)(&a.VaryTurbocacheByCookie) }),
		app("app-log-file", "write what app processes print to this `FILE` instead of the main log", func(a *App) flag.Value { return (*strValue)(&a.AppLogFile) }),
	)
}

// byName finds an option by flag name or file key.
func byName(name string) *option {
	for _, o := range options {
		if o.Name == name || (o.key() != "" && o.key() == name) {
			return o
		}
	}
	return nil
}

// PrintStartUsage writes every option of `ferry start` with its default, in
// Passenger's --long-name style, sorted by name.
func PrintStartUsage(w io.Writer) {
	s, a := DefaultServer(), DefaultApp()
	type line struct{ name, text string }
	var lines []line
	for _, o := range options {
		if o.Name == "" {
			continue
		}
		var v flag.Value
		if o.Scope == serverScope {
			v = o.bindServer(&s)
		} else {
			v = o.bindApp(&a)
		}
		f := &flag.Flag{Name: o.Name, Usage: o.Usage, Value: v, DefValue: v.String()}
		typ, usage := flag.UnquoteUsage(f)
		if _, isBool := v.(interface{ IsBoolFlag() bool }); isBool {
			typ = ""
		}
		name := "--" + o.Name
		if o.Short != "" {
			name = "-" + o.Short + ", " + name
		}
		if typ != "" {
			name += " " + strings.ToUpper(typ)
		}
		if !strings.Contains(usage, "(default") && f.DefValue != "" && f.DefValue != "false" {
			usage += " (default " + f.DefValue + ")"
		}
		lines = append(lines, line{o.Name, fmt.Sprintf("  %-38s %s", name, usage)})
	}
	sort.Slice(lines, func(i, j int) bool { return lines[i].name < lines[j].name })
	for _, l := range lines {
		fmt.Fprintln(w, l.text)
	}
}

// Value types: each is a flag.Value bound to one field. Repeatable ones
// implement multi().

type strValue string

func (v *strValue) String() string     { return string(*v) }
func (v *strValue) Set(s string) error { *v = strValue(s); return nil }

type intValue int

func (v *intValue) String() string { return strconv.Itoa(int(*v)) }
func (v *intValue) Set(s string) error {
	n, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil {
		return errors.New("want a whole number")
	}
	*v = intValue(n)
	return nil
}

type int64Value int64

func (v *int64Value) String() string { return strconv.FormatInt(int64(*v), 10) }
func (v *int64Value) Set(s string) error {
	n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
	if err != nil {
		return errors.New("want a whole number")
	}
	*v = int64Value(n)
	return nil
}

type uint64Value uint64

func (v *uint64Value) String() string { return strconv.FormatUint(uint64(*v), 10) }
func (v *uint64Value) Set(s string) error {
	n, err := strconv.ParseUint(strings.TrimSpace(s), 10, 64)
	if err != nil {
		return errors.New("want a whole number, 0 or more")
	}
	*v = uint64Value(n)
	return nil
}

type boolValue bool

func (v *boolValue) String() string   { return strconv.FormatBool(bool(*v)) }
func (v *boolValue) IsBoolFlag() bool { return true }
func (v *boolValue) Set(s string) error {
	b, err := strconv.ParseBool(strings.TrimSpace(s))
	if err != nil {
		return errors.New("want true or false")
	}
	*v = boolValue(b)
	return nil
}

// negBoolValue is a --disable-X flag: setting it true turns X off.
type negBoolValue bool

func (v *negBoolValue) String() string   { return "false" }
func (v *negBoolValue) IsBoolFlag() bool { return true }
func (v *negBoolValue) Set(s string) error {
	b, err := strconv.ParseBool(strings.TrimSpace(s))
	if err != nil {
		return errors.New("want true or false")
	}
	*v = negBoolValue(!b)
	return nil
}

// secondsValue takes Passenger's whole seconds ("300", "0.5") or a Go
// duration ("5m").
type secondsValue time.Duration

func (v *secondsValue) String() string {
	return strconv.FormatFloat(time.Duration(*v).Seconds(), 'f', -1, 64)
}
func (v *secondsValue) Set(s string) error {
	d, err := ParseSeconds(s)
	if err != nil {
		return err
	}
	*v = secondsValue(d)
	return nil
}

// ParseSeconds reads a number of seconds ("300", "0.5") or a Go duration ("5m").
func ParseSeconds(v string) (time.Duration, error) {
	v = strings.TrimSpace(v)
	if f, err := strconv.ParseFloat(v, 64); err == nil && !math.IsNaN(f) && !math.IsInf(f, 0) && math.Abs(f) < 1e9 {
		return time.Duration(f * float64(time.Second)), nil
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		return 0, errors.New("want seconds (e.g. 300) or a duration (e.g. 5m)")
	}
	return d, nil
}

type bytesValue int64

func (v *bytesValue) String() string { return strconv.FormatInt(int64(*v), 10) }
func (v *bytesValue) Set(s string) error {
	n, err := ParseBytes(s)
	if err != nil {
		return err
	}
	*v = bytesValue(n)
	return nil
}

// ParseBytes reads "1048576", "512k", "1m", "1g" (powers of 1024; "1mb" and
// "1mib" too).
func ParseBytes(v string) (int64, error) {
	s := strings.ToLower(strings.TrimSpace(v))
	s = strings.TrimSuffix(strings.TrimSuffix(s, "b"), "i")
	mult := int64(1)
	if s != "" {
		switch s[len(s)-1] {
		case 'k':
			mult, s = 1<<10, s[:len(s)-1]
		case 'm':
			mult, s = 1<<20, s[:len(s)-1]
		case 'g':
			mult, s = 1<<30, s[:len(s)-1]
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 || n > math.MaxInt64/mult {
		return 0, errors.New("want a byte count such as 1048576, 512k, 1m or 1g")
	}
	return n * mult, nil
}

type levelValue slog.Level

func (v *levelValue) String() string { return strings.ToLower(slog.Level(*v).String()) }
func (v *levelValue) Set(s string) error {
	l, err := ParseLogLevel(s)
	if err != nil {
		return err
	}
	*v = levelValue(l)
	return nil
}

// ParseLogLevel accepts slog names and Passenger's numeric levels (0 crit …
// 7 debug3; 3 notice is Passenger's default).
func ParseLogLevel(s string) (slog.Level, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "debug", "5", "6", "7":
		return slog.LevelDebug, nil
	case "info", "notice", "3", "4":
		return slog.LevelInfo, nil
	case "warn", "warning", "2":
		return slog.LevelWarn, nil
	case "error", "crit", "0", "1":
		return slog.LevelError, nil
	}
	return 0, errors.New("want debug, info, warn, error, or Passenger's 0-7")
}

// envValue is a repeatable NAME=VALUE; from a file, a map.
type envValue map[string]string

func (v *envValue) multi() {}
func (v *envValue) String() string {
	var parts []string
	for _, k := range slices.Sorted(func(yield func(string) bool) {
		for k := range *v {
			if !yield(k) {
				return
			}
		}
	}) {
		parts = append(parts, k+"="+(*v)[k])
	}
	return strings.Join(parts, " ")
}
func (v *envValue) Set(s string) error {
	name, value, ok := strings.Cut(s, "=")
	if !ok || name == "" {
		return errors.New("want NAME=VALUE")
	}
	if *v == nil {
		*v = map[string]string{}
	}
	(*v)[name] = value
	return nil
}

// listValue is a repeatable value; from a file, an array (or one string).
type listValue []string

func (v *listValue) multi()             {}
func (v *listValue) String() string     { return strings.Join(*v, ",") }
func (v *listValue) Set(s string) error { *v = append(*v, s); return nil }

// multi marks repeatable values.
type multi interface{ multi() }

// PrintUsage writes every flag of fs (a client command's) with its default,
// in the same style as PrintStartUsage.
func PrintUsage(w io.Writer, fs *flag.FlagSet) {
	type line struct{ name, text string }
	var lines []line
	fs.VisitAll(func(f *flag.Flag) {
		if len(f.Name) == 1 {
			return
		}
		typ, usage := flag.UnquoteUsage(f)
		name := "--" + f.Name
		if typ != "" && typ != "value" {
			name += " " + strings.ToUpper(typ)
		}
		if !strings.Contains(usage, "(default") && f.DefValue != "" && f.DefValue != "false" {
			usage += " (default " + f.DefValue + ")"
		}
		lines = append(lines, line{f.Name, fmt.Sprintf("  %-38s %s", name, usage)})
	})
	sort.Slice(lines, func(i, j int) bool { return lines[i].name < lines[j].name })
	for _, l := range lines {
		fmt.Fprintln(w, l.text)
	}
}
