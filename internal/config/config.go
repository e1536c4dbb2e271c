// Package config owns Ferry's configuration: the typed Config, its defaults,
// loading it from the command line, and validating it before anything
// listens. It does not start anything.
package config

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
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

	// AppType is the kind of app (--app-type). Empty means autodetect.
	// Supported: wsgi.
	AppType string
	// StartupFile is the file the loader loads, relative to AppRoot
	// (--startup-file). Default by app type (wsgi: passenger_wsgi.py).
	StartupFile string
	// Python is the Python interpreter for WSGI apps (--python). Default python3.
	Python string

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
		Address:                     "0.0.0.0",
		Port:                        3000,
		Environment:                 "development",
		Python:                      "python3",
		MaxPoolSize:                 6,
		MinInstances:                1,
		MaxRequestQueueSize:         100,
		PoolIdleTime:                300 * time.Second,
		StartTimeout:                90 * time.Second,
		ShutdownTimeout:             30 * time.Second,
		RequestBufferMemory:         128 << 10,
		ResponseBufferMemory:        1 << 20,
		ResponseBufferHighWatermark: 128 << 20,
		LogLevel:                    slog.LevelInfo,
	}
}

// App types Ferry knows, and the startup file each is detected by.
const (
	AppTypeWSGI = "wsgi"
)

var startupFiles = map[string]string{
	AppTypeWSGI: "passenger_wsgi.py",
}

// detectOrder is the order autodetection looks for startup files in.
var detectOrder = []string{AppTypeWSGI}

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

	if c.AppType == "" && len(errs) == 0 {
		t, err := detect(c.AppRoot, c.StartupFile)
		if err != nil {
			errs = append(errs, err)
		}
		c.AppType = t
	}
	if c.AppType != "" {
		def, ok := startupFiles[c.AppType]
		if !ok {
			bad("app-type", "unknown app type %q (supported: %s)", c.AppType, strings.Join(detectOrder, ", "))
		} else if c.StartupFile == "" {
			c.StartupFile = def
		}
	}
	if c.StartupFile != "" && len(errs) == 0 {
		if !filepath.IsLocal(c.StartupFile) {
			bad("startup-file", "must be a path inside the app directory (got %q)", c.StartupFile)
		} else if _, err := os.Stat(filepath.Join(c.AppRoot, c.StartupFile)); err != nil {
			bad("startup-file", "%s not found in %s", c.StartupFile, c.AppRoot)
		}
	}
	if c.InstanceRegistryDir == "" {
		c.InstanceRegistryDir = defaultRegistryDir()
	}
	return errors.Join(errs...)
}

// detect finds the app type from the files in root.
func detect(root, startupFile string) (string, error) {
	var looked []string
	for _, t := range detectOrder {
		f := startupFiles[t]
		if startupFile != "" && filepath.Ext(startupFile) == filepath.Ext(f) {
			return t, nil
		}
		looked = append(looked, f)
		if _, err := os.Stat(filepath.Join(root, f)); err == nil {
			return t, nil
		}
	}
	return "", fmt.Errorf("cannot tell what kind of app %s is: none of %s found (use --app-type and --startup-file)",
		root, strings.Join(looked, ", "))
}

func defaultRegistryDir() string {
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
