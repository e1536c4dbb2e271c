// Package config owns Ferry's configuration: the typed Config, its defaults,
// loading it from the command line, and validating it before anything
// listens. It does not start anything.
package config

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Config is the effective configuration of one `ferry start`. Each field's
// comment is its user documentation and names its default.
type Config struct {
	// AppRoot is the application directory (positional APP_DIR). Default: the
	// current directory. Always absolute after Load.
	AppRoot string

	// Address is the address to listen on (--address). Default 0.0.0.0.
	Address string
	// Port is the TCP port to listen on (--port, -p). Default 3000.
	Port int

	// Environment is the app environment name (--environment, -e), passed to
	// the app as RAILS_ENV, RACK_ENV, WSGI_ENV, NODE_ENV, PASSENGER_APP_ENV and
	// FERRY_APP_ENV. Default development. In development, error pages show the
	// app's output and error details.
	Environment string

	// AppType is the kind of app (--app-type): rack, wsgi, asgi, node, or
	// generic. Empty means autodetect (config.ru, passenger_wsgi.py, asgi.py,
	// app.js/package.json); --app-start-command means generic.
	AppType string
	// StartupFile is the file the loader loads, relative to AppRoot
	// (--startup-file). Default by app type: config.ru, passenger_wsgi.py,
	// asgi.py, app.js (or package.json "main").
	StartupFile string
	// AppStartCommand runs a generic app (--app-start-command): any program
	// that listens on the port in $PORT. "$PORT" in the command is replaced
	// too (by the shell).
	AppStartCommand string
	// Python is the interpreter for WSGI and ASGI apps (--python). Default
	// python3.
	Python string
	// Ruby is the interpreter for Rack apps (--ruby). Default ruby.
	Ruby string
	// Nodejs is the interpreter for Node.js apps (--nodejs). Default node.
	Nodejs string
	// Envvars are set in every app process (--envvar NAME=VALUE, repeatable).
	Envvars map[string]string

	// SpawnMethod is smart (load the app once in a preloader and fork
	// workers from it) or direct (start each process from scratch)
	// (--spawn-method). Default smart for Rack and WSGI, direct otherwise.
	SpawnMethod string
	// MaxPreloaderIdleTime stops an unused preloader (--max-preloader-idle-time,
	// seconds). Default 300s; 0 = never.
	MaxPreloaderIdleTime time.Duration
	// ConcurrencyModel is process (one request per process at a time) or
	// thread (ThreadCount at once) for Rack and WSGI apps
	// (--concurrency-model). Default process.
	ConcurrencyModel string
	// ThreadCount is how many requests one process serves at once in the
	// thread model (--thread-count). Default 1.
	ThreadCount int
	// ForceMaxConcurrentRequestsPerProcess caps how many requests one process
	// of an app that serves many at once (Node, ASGI, generic) is given
	// (--force-max-concurrent-requests-per-process). Default -1: no cap.
	ForceMaxConcurrentRequestsPerProcess int
	// ConcurrencyTarget is the soft target of open requests per process for
	// apps that serve many at once: when every process has at least this many,
	// Ferry starts another, up to MaxPoolSize (--concurrency-target).
	// Default 16; 0 = never grow past MinInstances on load.
	ConcurrencyTarget int

	// MaxPoolSize is the most processes an app may have (--max-pool-size).
	// Default 6.
	MaxPoolSize int
	// MinInstances is how many processes are started at boot and kept through
	// idle periods (--min-instances). Default 1.
	MinInstances int
	// MaxRequestQueueSize is how many requests may wait for a process before
	// new ones get 503 (--max-request-queue-size). Default 100; 0 = unlimited.
	MaxRequestQueueSize int
	// PoolIdleTime is how long a process may sit idle before it is stopped,
	// down to MinInstances (--pool-idle-time, seconds). Default 300s; 0 = never.
	PoolIdleTime time.Duration
	// StartTimeout bounds one process start-up (--start-timeout, seconds).
	// Default 90s.
	StartTimeout time.Duration
	// ShutdownTimeout bounds graceful shutdown: waiting for in-flight requests,
	// then for app processes to exit after SIGTERM before SIGKILL
	// (--shutdown-timeout, seconds). Default 30s.
	ShutdownTimeout time.Duration

	// MaxRequests replaces a process after it served this many requests
	// (--max-requests). Default 0: never.
	MaxRequests uint64
	// MaxRequestsJitter adds a random 0..N to MaxRequests per process, so
	// processes do not all recycle together (--max-requests-jitter). Default 0.
	MaxRequestsJitter uint64
	// MemoryLimit replaces a process whose own memory (proportional set
	// size, so copy-on-write pages shared with the preloader count only in
	// part) exceeds this many MiB (--memory-limit). Default 0: no limit.
	MemoryLimit int64
	// MaxRequestTime gives a request that runs longer a 504 and kills and
	// replaces its process (--max-request-time, seconds). Default 0: no limit.
	MaxRequestTime time.Duration
	// MaxRequestQueueTime gives a request that waits longer for a process a
	// 504 (--max-request-queue-time, seconds). Default 0: no limit.
	MaxRequestQueueTime time.Duration
	// StatThrottleRate is how often, at most, tmp/restart.txt is checked
	// (--stat-throttle-rate, seconds). Default 10; 0 checks on every request.
	StatThrottleRate time.Duration
	// RestartDir holds restart.txt and always_restart.txt (--restart-dir).
	// Default APP_DIR/tmp.
	RestartDir string
	// RollingRestarts makes restarts through restart.txt rolling
	// (--rolling-restarts). Default false: blocking.
	RollingRestarts bool

	// TurboCaching caches responses the app marks cacheable (--turbocaching,
	// off with --disable-turbocaching). Default on.
	TurboCaching bool
	// TurbocacheMaxEntries, TurbocacheMaxBytes and TurbocacheMaxEntrySize
	// bound the cache (--turbocache-max-entries, --turbocache-max-bytes,
	// --turbocache-max-entry-size). Defaults 10000, 64 MiB, 1 MiB.
	TurbocacheMaxEntries   int
	TurbocacheMaxBytes     int64
	TurbocacheMaxEntrySize int64
	// VaryTurbocacheByCookie keys cache entries by this cookie's value, so
	// that anonymous users share entries and each user gets their own
	// (--vary-turbocache-by-cookie). Default: none.
	VaryTurbocacheByCookie string

	// RequestBufferMemory is how much of one request body is kept in memory
	// before the rest spills to a temp file (--request-buffer-memory, bytes).
	// Default 128 KiB.
	RequestBufferMemory int64
	// ResponseBufferMemory is how much of one response is kept in memory
	// before the rest spills to a temp file (--response-buffer-memory, bytes).
	// Default 1 MiB.
	ResponseBufferMemory int64
	// ResponseBufferHighWatermark is the most of one response Ferry holds for
	// a slow client (memory plus file) before it stops reading from the app
	// (--response-buffer-high-watermark, bytes). Default 128 MiB.
	ResponseBufferHighWatermark int64

	// LogFile is where Ferry logs (--log-file). Default: standard error.
	LogFile string
	// LogFormat is text or json (--log-format). Default text.
	LogFormat string
	// AppLogFile receives what app processes print, instead of the main log
	// (--app-log-file). Default: the main log.
	AppLogFile string
	// LogLevel is the least severe level logged (--log-level): debug, info,
	// warn, error, or Passenger's numbers 0-7. Default info.
	LogLevel slog.Level
	// PidFile is written with the core's pid at start and removed on exit
	// (--pid-file). Default: none (the instance directory always has one).
	PidFile string
	// InstanceRegistryDir is where instance directories are created
	// (--instance-registry-dir). Default /run/ferry as root, else
	// $XDG_RUNTIME_DIR/ferry, else $TMPDIR/ferry-UID.
	InstanceRegistryDir string
}

// Default returns the configuration before any source is applied.
func Default() Config {
	return Config{
		Address:              "0.0.0.0",
		Port:                 3000,
		Environment:          "development",
		Python:               "python3",
		Ruby:                 "ruby",
		Nodejs:               "node",
		ConcurrencyModel:     "process",
		ThreadCount:          1,
		MaxPreloaderIdleTime: 300 * time.Second,
		ConcurrencyTarget:    16,
		StatThrottleRate:     10 * time.Second,
		TurboCaching:         true,
		TurbocacheMaxEntries: 10000,
		TurbocacheMaxBytes:   64 << 20,

		TurbocacheMaxEntrySize: 1 << 20,

		ForceMaxConcurrentRequestsPerProcess: -1,
		MaxPoolSize:                          6,
		MinInstances:                         1,
		MaxRequestQueueSize:                  100,
		PoolIdleTime:                         300 * time.Second,
		StartTimeout:                         90 * time.Second,
		ShutdownTimeout:                      30 * time.Second,
		RequestBufferMemory:                  128 << 10,
		ResponseBufferMemory:                 1 << 20,
		ResponseBufferHighWatermark:          128 << 20,
		LogLevel:                             slog.LevelInfo,
	}
}

// App types Ferry knows.
const (
	AppTypeRack    = "rack"
	AppTypeWSGI    = "wsgi"
	AppTypeASGI    = "asgi"
	AppTypeNode    = "node"
	AppTypeGeneric = "generic"
)

// startupFiles are the files autodetection looks for, in order, as
// Passenger does (Rack first).
var startupFiles = []struct{ appType, file string }{
	{AppTypeRack, "config.ru"},
	{AppTypeWSGI, "passenger_wsgi.py"},
	{AppTypeASGI, "asgi.py"},
	{AppTypeNode, "app.js"},
	{AppTypeNode, "package.json"},
}

var appTypes = []string{AppTypeRack, AppTypeWSGI, AppTypeASGI, AppTypeNode, AppTypeGeneric}

// ManyPerProcess reports whether processes of the app serve many requests at
// once by nature (rather than one, or a fixed thread count).
func (c *Config) ManyPerProcess() bool {
	return c.AppType == AppTypeNode || c.AppType == AppTypeASGI || c.AppType == AppTypeGeneric
}

// Finish resolves derived values (absolute app root, detected app type,
// default startup file) and validates the result. Every problem is reported,
// each naming its option.
func (c *Config) Finish() error {
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("--%s: %s", key, fmt.Sprintf(format, args...)))
	}

	if c.AppRoot == "" {
		c.AppRoot = "."
	}
	if abs, err := filepath.Abs(c.AppRoot); err == nil {
		c.AppRoot = abs
	}
	if fi, err := os.Stat(c.AppRoot); err != nil || !fi.IsDir() {
		errs = append(errs, fmt.Errorf("APP_DIR %s: not a directory", c.AppRoot))
	}

	if c.Port < 0 || c.Port > 65535 {
		bad("port", "must be between 0 and 65535 (got %d)", c.Port)
	}
	if c.Address == "" {
		bad("address", "must not be empty")
	}
	if c.Environment == "" {
		bad("environment", "must not be empty")
	}
	if c.MaxPoolSize < 1 {
		bad("max-pool-size", "must be at least 1 (got %d)", c.MaxPoolSize)
	}
	if c.MinInstances < 0 {
		bad("min-instances", "must be 0 or more (got %d)", c.MinInstances)
	}
	if c.MinInstances > c.MaxPoolSize && c.MaxPoolSize >= 1 {
		bad("min-instances", "must not exceed --max-pool-size %d (got %d)", c.MaxPoolSize, c.MinInstances)
	}
	if c.MaxRequestQueueSize < 0 {
		bad("max-request-queue-size", "must be 0 (unlimited) or more (got %d)", c.MaxRequestQueueSize)
	}
	if c.PoolIdleTime < 0 {
		bad("pool-idle-time", "must be 0 (never) or more (got %s)", c.PoolIdleTime)
	}
	if c.StartTimeout <= 0 {
		bad("start-timeout", "must be more than 0 (got %s)", c.StartTimeout)
	}
	if c.ShutdownTimeout <= 0 {
		bad("shutdown-timeout", "must be more than 0 (got %s)", c.ShutdownTimeout)
	}
	if c.RequestBufferMemory < 0 {
		bad("request-buffer-memory", "must be 0 or more (got %d)", c.RequestBufferMemory)
	}
	if c.ResponseBufferMemory < 0 {
		bad("response-buffer-memory", "must be 0 or more (got %d)", c.ResponseBufferMemory)
	}
	if c.ResponseBufferHighWatermark < c.ResponseBufferMemory {
		bad("response-buffer-high-watermark", "must be at least --response-buffer-memory %d (got %d)", c.ResponseBufferMemory, c.ResponseBufferHighWatermark)
	}

	if c.MemoryLimit < 0 {
		bad("memory-limit", "must be 0 (no limit) or more (got %d)", c.MemoryLimit)
	}
	if c.MaxRequestTime < 0 {
		bad("max-request-time", "must be 0 (no limit) or more (got %s)", c.MaxRequestTime)
	}
	if c.MaxRequestQueueTime < 0 {
		bad("max-request-queue-time", "must be 0 (no limit) or more (got %s)", c.MaxRequestQueueTime)
	}
	if c.StatThrottleRate < 0 {
		bad("stat-throttle-rate", "must be 0 or more (got %s)", c.StatThrottleRate)
	}
	if c.RestartDir == "" {
		c.RestartDir = filepath.Join(c.AppRoot, "tmp")
	} else if !filepath.IsAbs(c.RestartDir) {
		c.RestartDir = filepath.Join(c.AppRoot, c.RestartDir)
	}
	switch c.LogFormat {
	case "", "text", "json":
	default:
		bad("log-format", "must be text or json (got %q)", c.LogFormat)
	}
	if c.TurbocacheMaxEntries < 1 {
		bad("turbocache-max-entries", "must be at least 1 (got %d)", c.TurbocacheMaxEntries)
	}
	if c.TurbocacheMaxBytes < 1 {
		bad("turbocache-max-bytes", "must be at least 1 (got %d)", c.TurbocacheMaxBytes)
	}
	if c.TurbocacheMaxEntrySize < 1 || c.TurbocacheMaxEntrySize > c.TurbocacheMaxBytes {
		bad("turbocache-max-entry-size", "must be between 1 and --turbocache-max-bytes (got %d)", c.TurbocacheMaxEntrySize)
	}
	if c.ThreadCount < 1 {
		bad("thread-count", "must be at least 1 (got %d)", c.ThreadCount)
	}
	if c.MaxPreloaderIdleTime < 0 {
		bad("max-preloader-idle-time", "must be 0 (never) or more (got %s)", c.MaxPreloaderIdleTime)
	}
	if c.ConcurrencyTarget < 0 {
		bad("concurrency-target", "must be 0 or more (got %d)", c.ConcurrencyTarget)
	}
	if c.ForceMaxConcurrentRequestsPerProcess == 0 || c.ForceMaxConcurrentRequestsPerProcess < -1 {
		bad("force-max-concurrent-requests-per-process", "must be -1 (no cap) or at least 1 (got %d)", c.ForceMaxConcurrentRequestsPerProcess)
	}
	switch c.ConcurrencyModel {
	case "process", "thread":
	default:
		bad("concurrency-model", "must be process or thread (got %q)", c.ConcurrencyModel)
	}
	for k := range c.Envvars {
		if k == "" || strings.ContainsAny(k, "=\x00") {
			bad("envvar", "invalid variable name %q", k)
		}
	}

	if c.AppType == "" && c.AppStartCommand != "" {
		c.AppType = AppTypeGeneric
	}
	if c.AppType == "" && len(errs) == 0 {
		t, err := detect(c.AppRoot, c.StartupFile)
		if err != nil {
			errs = append(errs, err)
		}
		c.AppType = t
	}
	if c.AppType != "" && !slices.Contains(appTypes, c.AppType) {
		bad("app-type", "unknown app type %q (supported: %s)", c.AppType, strings.Join(appTypes, ", "))
	}
	if c.AppType == AppTypeGeneric && strings.TrimSpace(c.AppStartCommand) == "" {
		bad("app-start-command", "a generic app needs a command that listens on $PORT")
	}
	if c.StartupFile == "" && len(errs) == 0 {
		c.StartupFile = defaultStartupFile(c.AppRoot, c.AppType)
	}
	if c.StartupFile != "" && len(errs) == 0 {
		if !filepath.IsLocal(c.StartupFile) {
			bad("startup-file", "must be a path inside the app directory (got %q)", c.StartupFile)
		} else if _, err := os.Stat(filepath.Join(c.AppRoot, c.StartupFile)); err != nil {
			bad("startup-file", "%s not found in %s", c.StartupFile, c.AppRoot)
		}
	}

	// Spawn method and concurrency follow from the type.
	preloadable := c.AppType == AppTypeRack || c.AppType == AppTypeWSGI
	switch c.SpawnMethod {
	case "":
		c.SpawnMethod = "direct"
		if preloadable {
			c.SpawnMethod = "smart"
		}
	case "direct":
	case "smart":
		if !preloadable && c.AppType != "" {
			bad("spawn-method", "smart spawning is for Rack and WSGI apps; a %s app is started directly", c.AppType)
		}
	default:
		bad("spawn-method", "must be smart or direct (got %q)", c.SpawnMethod)
	}
	if c.ConcurrencyModel == "thread" && c.AppType != "" && !preloadable {
		bad("concurrency-model", "threads are for Rack and WSGI apps; a %s app already serves many requests per process", c.AppType)
	}
	if c.ConcurrencyModel == "process" && c.ThreadCount > 1 {
		bad("thread-count", "needs --concurrency-model thread")
	}
	if c.InstanceRegistryDir == "" {
		c.InstanceRegistryDir = DefaultRegistryDir()
	}
	return errors.Join(errs...)
}

// detect finds the app type from the startup file's name, if given, or from
// the files in root.
func detect(root, startupFile string) (string, error) {
	if startupFile != "" {
		switch base := filepath.Base(startupFile); {
		case strings.HasSuffix(base, ".ru"):
			return AppTypeRack, nil
		case base == "asgi.py":
			return AppTypeASGI, nil
		case strings.HasSuffix(base, ".py"):
			return AppTypeWSGI, nil
		case strings.HasSuffix(base, ".js"), strings.HasSuffix(base, ".mjs"), strings.HasSuffix(base, ".cjs"):
			return AppTypeNode, nil
		}
	}
	var looked []string
	for _, sf := range startupFiles {
		looked = append(looked, sf.file)
		if _, err := os.Stat(filepath.Join(root, sf.file)); err == nil {
			return sf.appType, nil
		}
	}
	return "", fmt.Errorf("cannot tell what kind of app %s is: none of %s found (use --app-type and --startup-file, or --app-start-command)",
		root, strings.Join(looked, ", "))
}

// defaultStartupFile is the startup file of an app type; for Node, app.js
// or else package.json's "main" (default index.js).
func defaultStartupFile(root, appType string) string {
	switch appType {
	case AppTypeRack:
		return "config.ru"
	case AppTypeWSGI:
		return "passenger_wsgi.py"
	case AppTypeASGI:
		return "asgi.py"
	case AppTypeNode:
		if _, err := os.Stat(filepath.Join(root, "app.js")); err == nil {
			return "app.js"
		}
		var pkg struct {
			Main string `json:"main"`
		}
		if b, err := os.ReadFile(filepath.Join(root, "package.json")); err == nil && json.Unmarshal(b, &pkg) == nil && pkg.Main != "" {
			return filepath.Clean(pkg.Main)
		}
		return "index.js"
	}
	return ""
}

// DefaultRegistryDir is where instances register unless told otherwise.
func DefaultRegistryDir() string {
	if os.Geteuid() == 0 {
		return "/run/ferry"
	}
	if d := os.Getenv("XDG_RUNTIME_DIR"); d != "" {
		return filepath.Join(d, "ferry")
	}
	return filepath.Join(os.TempDir(), "ferry-"+strconv.Itoa(os.Geteuid()))
}

// ListenAddr is the host:port the HTTP front listens on.
func (c *Config) ListenAddr() string {
	return netJoin(c.Address, c.Port)
}

func netJoin(host string, port int) string {
	if strings.Contains(host, ":") && !strings.HasPrefix(host, "[") {
		host = "[" + host + "]"
	}
	return host + ":" + strconv.Itoa(port)
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
	return 0, fmt.Errorf("unknown log level %q (use debug, info, warn, error or 0-7)", s)
}
