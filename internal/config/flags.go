package config

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"
)

// StartFlags binds the options of `ferry start` to c. Flag names follow
// Passenger Standalone. Go's flag package accepts both -name and --name.
func StartFlags(c *Config) *flag.FlagSet {
	fs := flag.NewFlagSet("start", flag.ContinueOnError)
	fs.StringVar(&c.Address, "address", c.Address, "`HOST` address to listen on")
	fs.IntVar(&c.Port, "port", c.Port, "TCP `PORT` to listen on")
	fs.IntVar(&c.Port, "p", c.Port, "shorthand for --port")
	fs.StringVar(&c.Environment, "environment", c.Environment, "app environment `NAME` (development shows error details)")
	fs.StringVar(&c.Environment, "e", c.Environment, "shorthand for --environment")
	fs.StringVar(&c.AppType, "app-type", c.AppType, "app `TYPE`: rack, wsgi, asgi, node or generic (default: autodetect)")
	fs.StringVar(&c.StartupFile, "startup-file", c.StartupFile, "startup `FILE` relative to APP_DIR (default: by app type)")
	fs.StringVar(&c.AppStartCommand, "app-start-command", c.AppStartCommand, "run a generic app: a `COMMAND` that listens on $PORT")
	fs.StringVar(&c.Python, "python", c.Python, "Python interpreter `COMMAND` for WSGI and ASGI apps")
	fs.StringVar(&c.Ruby, "ruby", c.Ruby, "Ruby interpreter `COMMAND` for Rack apps")
	fs.StringVar(&c.Nodejs, "nodejs", c.Nodejs, "Node.js interpreter `COMMAND` for Node apps")
	fs.Var(envvars{&c.Envvars}, "envvar", "set `NAME=VALUE` in the app's environment (repeatable)")
	fs.StringVar(&c.SpawnMethod, "spawn-method", c.SpawnMethod, "`METHOD` smart (preload once, fork workers) or direct (default: smart for Rack and WSGI)")
	fs.Var(seconds{&c.MaxPreloaderIdleTime}, "max-preloader-idle-time", "`SECONDS` an unused preloader is kept (0 = forever)")
	fs.StringVar(&c.ConcurrencyModel, "concurrency-model", c.ConcurrencyModel, "`MODEL` process or thread (Rack and WSGI)")
	fs.IntVar(&c.ThreadCount, "thread-count", c.ThreadCount, "requests one process serves at once with --concurrency-model thread (`N`)")
	fs.IntVar(&c.ForceMaxConcurrentRequestsPerProcess, "force-max-concurrent-requests-per-process", c.ForceMaxConcurrentRequestsPerProcess, "cap on requests one Node, ASGI or generic process is given (`N`; -1 = no cap)")
	fs.IntVar(&c.ConcurrencyTarget, "concurrency-target", c.ConcurrencyTarget, "open requests per process past which a Node, ASGI or generic app gets another process (`N`; 0 = never)")
	fs.IntVar(&c.MaxPoolSize, "max-pool-size", c.MaxPoolSize, "most processes per app (`N`)")
	fs.IntVar(&c.MinInstances, "min-instances", c.MinInstances, "processes started at boot and kept when idle (`N`)")
	fs.IntVar(&c.MaxRequestQueueSize, "max-request-queue-size", c.MaxRequestQueueSize, "requests that may wait for a process (`N`; 0 = unlimited)")
	fs.Var(seconds{&c.PoolIdleTime}, "pool-idle-time", "`SECONDS` a process may idle before it is stopped (0 = never)")
	fs.Var(seconds{&c.StartTimeout}, "start-timeout", "`SECONDS` one process may take to start")
	fs.Var(uint64Value{&c.MaxRequests}, "max-requests", "replace a process after it served `N` requests (0 = never)")
	fs.Var(uint64Value{&c.MaxRequestsJitter}, "max-requests-jitter", "add a random 0..`N` to --max-requests per process")
	fs.Int64Var(&c.MemoryLimit, "memory-limit", c.MemoryLimit, "replace a process whose own memory (PSS) exceeds `MB` (0 = no limit)")
	fs.Var(seconds{&c.MaxRequestTime}, "max-request-time", "`SECONDS` after which a request gets a 504 and its process is replaced (0 = no limit)")
	fs.Var(seconds{&c.MaxRequestQueueTime}, "max-request-queue-time", "`SECONDS` a request may wait for a process before a 504 (0 = no limit)")
	fs.Var(seconds{&c.StatThrottleRate}, "stat-throttle-rate", "check tmp/restart.txt at most every `SECONDS`")
	fs.StringVar(&c.RestartDir, "restart-dir", c.RestartDir, "`DIR` with restart.txt and always_restart.txt (default APP_DIR/tmp)")
	fs.BoolVar(&c.RollingRestarts, "rolling-restarts", c.RollingRestarts, "restart through restart.txt one process at a time, never dropping capacity")
	fs.BoolVar(&c.TurboCaching, "turbocaching", c.TurboCaching, "cache responses the app marks cacheable")
	fs.Var(negBool{&c.TurboCaching}, "disable-turbocaching", "turn the response cache off")
	fs.IntVar(&c.TurbocacheMaxEntries, "turbocache-max-entries", c.TurbocacheMaxEntries, "most responses the cache holds (`N`)")
	fs.Var(byteSize{&c.TurbocacheMaxBytes}, "turbocache-max-bytes", "most `BYTES` the cache holds")
	fs.Var(byteSize{&c.TurbocacheMaxEntrySize}, "turbocache-max-entry-size", "largest response (`BYTES`) the cache stores")
	fs.StringVar(&c.VaryTurbocacheByCookie, "vary-turbocache-by-cookie", c.VaryTurbocacheByCookie, "key cached responses by this cookie's value (`NAME`)")
	fs.Var(seconds{&c.ShutdownTimeout}, "shutdown-timeout", "`SECONDS` graceful shutdown may take before processes are killed")
	fs.Var(byteSize{&c.RequestBufferMemory}, "request-buffer-memory", "`BYTES` of a request body kept in memory before spilling to disk")
	fs.Var(byteSize{&c.ResponseBufferMemory}, "response-buffer-memory", "`BYTES` of a response kept in memory before spilling to disk")
	fs.Var(byteSize{&c.ResponseBufferHighWatermark}, "response-buffer-high-watermark", "`BYTES` of a response held for a slow client before reading from the app pauses")
	fs.StringVar(&c.LogFile, "log-file", c.LogFile, "log to this `FILE` (default: standard error)")
	fs.StringVar(&c.LogFormat, "log-format", "text", "log `FORMAT`: text or json")
	fs.StringVar(&c.AppLogFile, "app-log-file", c.AppLogFile, "write what app processes print to this `FILE` instead of the main log")
	fs.Var(logLevel{&c.LogLevel}, "log-level", "`LEVEL`: debug, info, warn, error, or Passenger's 0-7")
	fs.StringVar(&c.PidFile, "pid-file", c.PidFile, "write the core's pid to this `FILE`")
	fs.StringVar(&c.InstanceRegistryDir, "instance-registry-dir", c.InstanceRegistryDir, "`DIR` where instance directories are created (default: /run/ferry as root, else $XDG_RUNTIME_DIR/ferry)")
	fs.SetOutput(io.Discard)
	return fs
}

// ParseStart parses `ferry start` arguments into a Config: defaults, then
// flags. Flags may come before or after APP_DIR, as with Passenger.
func ParseStart(args []string) (Config, error) {
	c := Default()
	fs := StartFlags(&c)
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			return c, err
		}
		rest := fs.Args()
		if len(rest) == 0 {
			break
		}
		positional = append(positional, rest[0])
		args = rest[1:]
	}
	if len(positional) > 1 {
		return c, fmt.Errorf("expected one APP_DIR, got %d: %s", len(positional), strings.Join(positional, " "))
	}
	if len(positional) == 1 {
		c.AppRoot = positional[0]
	}
	return c, c.Finish()
}

// PrintUsage writes every flag of fs with its default, in Passenger's
// --long-name style.
func PrintUsage(w io.Writer, fs *flag.FlagSet) {
	var lines [][2]string
	fs.VisitAll(func(f *flag.Flag) {
		if len(f.Name) == 1 {
			return // shorthands are mentioned by their long form
		}
		name := "--" + f.Name
		if short := shorthand(fs, f); short != "" {
			name = "-" + short + ", " + name
		}
		typ, usage := flag.UnquoteUsage(f)
		if typ != "" {
			name += " " + strings.ToUpper(typ)
		}
		if !strings.Contains(usage, "(default") && f.DefValue != "" {
			usage += " (default " + f.DefValue + ")"
		}
		lines = append(lines, [2]string{f.Name, fmt.Sprintf("  %-38s %s", name, usage)})
	})
	sort.Slice(lines, func(i, j int) bool { return lines[i][0] < lines[j][0] })
	for _, l := range lines {
		fmt.Fprintln(w, l[1])
	}
}

func shorthand(fs *flag.FlagSet, long *flag.Flag) string {
	var s string
	fs.VisitAll(func(f *flag.Flag) {
		if len(f.Name) == 1 && f.Usage == "shorthand for --"+long.Name {
			s = f.Name
		}
	})
	return s
}

// seconds is a duration flag that takes Passenger's whole seconds ("300") or
// a Go duration ("5m").
type seconds struct{ d *time.Duration }

func (s seconds) String() string {
	if s.d == nil {
		return ""
	}
	return strconv.FormatFloat(s.d.Seconds(), 'f', -1, 64)
}

func (s seconds) Set(v string) error {
	d, err := ParseSeconds(v)
	if err != nil {
		return err
	}
	*s.d = d
	return nil
}

// ParseSeconds reads a number of seconds ("300", "0.5") or a Go duration ("5m").
func ParseSeconds(v string) (time.Duration, error) {
	if f, err := strconv.ParseFloat(v, 64); err == nil {
		return time.Duration(f * float64(time.Second)), nil
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		return 0, errors.New("want seconds (e.g. 300) or a duration (e.g. 5m)")
	}
	return d, nil
}

// byteSize is a size flag: a number of bytes, optionally with a k/m/g suffix
// (powers of 1024).
type byteSize struct{ n *int64 }

func (b byteSize) String() string {
	if b.n == nil {
		return ""
	}
	return strconv.FormatInt(*b.n, 10)
}

func (b byteSize) Set(v string) error {
	n, err := ParseBytes(v)
	if err != nil {
		return err
	}
	*b.n = n
	return nil
}

// ParseBytes reads "1048576", "512k", "1m", "1g" (powers of 1024).
func ParseBytes(v string) (int64, error) {
	s := strings.ToLower(strings.TrimSpace(v))
	// "1m", "1mb", "1mib" all mean 1 MiB.
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

type logLevel struct{ l *slog.Level }

func (l logLevel) String() string {
	if l.l == nil {
		return ""
	}
	return strings.ToLower(l.l.String())
}

func (l logLevel) Set(v string) error {
	lv, err := ParseLogLevel(v)
	if err != nil {
		return err
	}
	*l.l = lv
	return nil
}

// envvars is a repeatable NAME=VALUE flag.
type envvars struct{ m *map[string]string }

func (e envvars) String() string {
	if e.m == nil || len(*e.m) == 0 {
		return ""
	}
	var parts []string
	for k, v := range *e.m {
		parts = append(parts, k+"="+v)
	}
	sort.Strings(parts)
	return strings.Join(parts, " ")
}

func (e envvars) Set(v string) error {
	name, value, ok := strings.Cut(v, "=")
	if !ok || name == "" {
		return errors.New("want NAME=VALUE")
	}
	if *e.m == nil {
		*e.m = map[string]string{}
	}
	(*e.m)[name] = value
	return nil
}

type uint64Value struct{ n *uint64 }

func (u uint64Value) String() string {
	if u.n == nil {
		return ""
	}
	return strconv.FormatUint(*u.n, 10)
}

func (u uint64Value) Set(v string) error {
	n, err := strconv.ParseUint(v, 10, 64)
	if err != nil {
		return errors.New("want a whole number, 0 or more")
	}
	*u.n = n
	return nil
}

// negBool is a flag that sets a bool to false (--disable-X).
type negBool struct{ b *bool }

func (n negBool) String() string   { return "false" }
func (n negBool) IsBoolFlag() bool { return true }

func (n negBool) Set(v string) error {
	on, err := strconv.ParseBool(v)
	if err != nil {
		return errors.New("want true or false")
	}
	*n.b = !on
	return nil
}
