// Package config owns Ferry's configuration: the typed Config (server-wide
// settings and one App per hosted app), the table of options with their
// names in every source (flag, Passengerfile.json / multi-app file key,
// FERRY_ and PASSENGER_ environment variables), loading them in order
// (defaults < file < environment < command line), and validating the result
// before anything listens. It does not start anything.
package config

import (
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Config is the effective configuration of one core.
type Config struct {
	Server
	// Apps are the apps the core hosts; at least one.
	Apps []App
	// File is the multi-app file this came from, if any.
	File string
	// Warnings are things worth telling the operator that are not errors
	// (unknown keys, options Ferry accepts but ignores).
	Warnings []string
}

// Server holds the settings of the core as a whole. Each field's comment is
// its documentation; the option table (options.go) gives its names and
// default.
type Server struct {
	// Address and Port are where the HTTP front listens.
	Address string
	Port    int
	// LogFile is Ferry's log ("" or "-": standard error).
	LogFile string
	// LogFormat is text or json.
	LogFormat string
	// LogLevel is the least severe level logged.
	LogLevel slog.Level
	// PidFile is written with the core's pid and removed on exit.
	PidFile string
	// MetricsAddress, if set, serves the Prometheus metrics (and only them)
	// on this host:port, for scrapers that cannot reach the admin socket.
	MetricsAddress string
	// Daemonize runs Ferry in the background, logging to LogFile (default
	// APP_DIR/ferry.PORT.log) with its pid in PidFile (default
	// APP_DIR/ferry.PORT.pid).
	Daemonize bool
	// InstanceRegistryDir is where instance directories are created.
	InstanceRegistryDir string
	// ShutdownTimeout bounds how long requests in flight may take to
	// finish once the core stops accepting (after --drain-delay); then
	// their connections are closed and the apps stopped. Default 20 s.
	ShutdownTimeout time.Duration
	// RequestBufferMemory is how much of a request body stays in memory.
	RequestBufferMemory int64
	// ResponseBufferMemory is how much of a response stays in memory.
	ResponseBufferMemory int64
	// ResponseBufferHighWatermark is the most of one response held for a
	// slow client before reading from the app pauses.
	ResponseBufferHighWatermark int64
	// Turbocache bounds, per app.
	TurbocacheMaxEntries   int
	TurbocacheMaxBytes     int64
	TurbocacheMaxEntrySize int64
	// TurbocacheMaxVariants and TurbocacheStaleIfUnreachable: turbocache.go.
	TurbocacheMaxVariants        int
	TurbocacheStaleIfUnreachable time.Duration
	// Ignored records options that are accepted for Passenger compatibility
	// but have no effect in Ferry (name → why).
	Ignored map[string]string

	Front        // front.go
	Drain        // drain.go
	Security     // security.go
	Passenger    // passenger.go
	SocketAccess // socketaccess.go
	ACME         // acme.go
	Logging      // logging.go
	Dashboard    // dashboard.go
	Tracing      // tracing.go
	Memory       // memory.go
}

// App holds the settings of one hosted app.
type App struct {
	// Name identifies the app in logs, status and the admin API. Default:
	// the base name of Root.
	Name string
	// Root is the app directory; absolute after loading.
	Root string
	// ServerNames are the Host names routed to the app (exact, or
	// "*.example.com"); empty: every host.
	ServerNames []string
	// BaseURI mounts the app under a path prefix ("/blog"); "" or "/": root.
	BaseURI string

	Environment     string
	AppType         string
	StartupFile     string
	AppStartCommand string
	Python          string
	Ruby            string
	Nodejs          string
	Envvars         map[string]string

	SpawnMethod                          string
	MaxPreloaderIdleTime                 time.Duration
	StartTimeout                         time.Duration
	ConcurrencyModel                     string
	ThreadCount                          int
	ForceMaxConcurrentRequestsPerProcess int
	ConcurrencyTarget                    int

	MaxPoolSize         int
	MinInstances        int
	MaxRequestQueueSize int
	PoolIdleTime        time.Duration
	MaxRequests         uint64
	MaxRequestsJitter   uint64
	MemoryLimit         int64 // MiB
	MaxRequestTime      time.Duration
	MaxRequestQueueTime time.Duration

	StatThrottleRate time.Duration
	RestartDir       string
	RollingRestarts  bool

	TurboCaching           bool
	VaryTurbocacheByCookie string

	// AppLogFile receives what the app's processes print instead of the
	// main log.
	AppLogFile string

	AppSecurity     // security.go
	AppPassenger    // passenger.go
	AppUpstream     // upstream.go
	AppACME         // acme.go
	AppStatic       // staticrevalidate.go
	AppWire         // appwire.go
	AppResponseHead // responsehead.go
}

// App types Ferry knows.
const (
	AppTypeRack    = "rack"
	AppTypeWSGI    = "wsgi"
	AppTypeASGI    = "asgi"
	AppTypeNode    = "node"
	AppTypeGeneric = "generic"
	// AppTypeMeteor is a raw Meteor app directory (.meteor/); it runs as a
	// generic app through `meteor run`. A bundled Meteor app is a Node app.
	AppTypeMeteor = "meteor"
)

var appTypes = []string{AppTypeRack, AppTypeWSGI, AppTypeASGI, AppTypeNode, AppTypeGeneric, AppTypeMeteor}

// ManyPerProcess reports whether the app's processes serve many requests at
// once by nature (rather than one, or a fixed thread count).
func (a *App) ManyPerProcess() bool {
	return a.AppType == AppTypeNode || a.AppType == AppTypeASGI || a.AppType == AppTypeGeneric
}

// ListenAddr is the host:port the HTTP front listens on.
func (s *Server) ListenAddr() string {
	host := s.Address
	if strings.Contains(host, ":") && !strings.HasPrefix(host, "[") {
		host = "[" + host + "]"
	}
	return host + ":" + strconv.Itoa(s.Port)
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
