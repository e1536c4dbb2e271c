package config

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// problems collects validation errors, each naming its option.
type problems struct {
	prefix string
	errs   []error
}

func (p *problems) bad(key, format string, args ...any) {
	name := "--" + key
	if strings.Contains(key, "_") { // a file-only key: no flag to name
		name = key
	}
	p.errs = append(p.errs, fmt.Errorf("%s%s: %s", p.prefix, name, fmt.Sprintf(format, args...)))
}

func (p *problems) add(err error) {
	if err != nil {
		p.errs = append(p.errs, fmt.Errorf("%s%w", p.prefix, err))
	}
}

// Finish resolves derived values (absolute roots, detected app types,
// default startup files, names) and validates everything, reporting every
// problem, each naming its option (and app, when there are several).
func (c *Config) Finish() error {
	var errs []error
	sp := &problems{}
	c.prepareACME(sp)
	c.Server.finish(sp)
	c.Passenger.finish(&c.Server, func(w string) { c.Warnings = append(c.Warnings, w) })
	errs = append(errs, sp.errs...)
	if len(c.Apps) == 0 {
		errs = append(errs, errors.New("no app to serve"))
	}
	for i := range c.Apps {
		ap := &problems{}
		if len(c.Apps) > 1 {
			ap.prefix = fmt.Sprintf("app %d (%s): ", i+1, c.Apps[i].Root)
		}
		c.Apps[i].finish(ap)
		errs = append(errs, ap.errs...)
	}
	if len(errs) == 0 {
		errs = append(errs, c.checkRoutes()...)
		errs = append(errs, c.checkProcessesTotal())
	}
	return errors.Join(errs...)
}

func (s *Server) finish(p *problems) {
	if s.Port < 0 || s.Port > 65535 {
		p.bad("port", "must be between 0 and 65535 (got %d)", s.Port)
	}
	if s.Address == "" {
		p.bad("address", "must not be empty")
	}
	if n := s.CoreFileDescriptorUlimit; n != 0 && (n < MinCoreFileDescriptors || n > 1<<30) {
		// Below it the core cannot even write its loaders or remove its
		// instance directory on the way out.
		p.bad("core-file-descriptor-ulimit", "must be 0 (inherited) or between %d and 1073741824 (got %d)", MinCoreFileDescriptors, n)
	}
	if s.MetricsAddress != "" {
		_, port, err := net.SplitHostPort(s.MetricsAddress)
		if n, perr := strconv.Atoi(port); err != nil || perr != nil || n < 0 || n > 65535 {
			p.bad("metrics-address", "must be HOST:PORT, such as 127.0.0.1:9100 (got %q)", s.MetricsAddress)
		}
	}
	switch s.LogFormat {
	case "text", "json":
	default:
		p.bad("log-format", "must be text or json (got %q)", s.LogFormat)
	}
	if s.ShutdownTimeout <= 0 {
		p.bad("shutdown-timeout", "must be more than 0 (got %s)", s.ShutdownTimeout)
	}
	if s.RequestBufferMemory < 0 {
		p.bad("request-buffer-memory", "must be 0 or more (got %d)", s.RequestBufferMemory)
	}
	if s.ResponseBufferMemory < 0 {
		p.bad("response-buffer-memory", "must be 0 or more (got %d)", s.ResponseBufferMemory)
	}
	if s.ResponseBufferHighWatermark < s.ResponseBufferMemory {
		p.bad("response-buffer-high-watermark", "must be at least --response-buffer-memory %d (got %d)", s.ResponseBufferMemory, s.ResponseBufferHighWatermark)
	}
	if s.TurbocacheMaxEntries < 1 {
		p.bad("turbocache-max-entries", "must be at least 1 (got %d)", s.TurbocacheMaxEntries)
	}
	if s.TurbocacheMaxBytes < 1 {
		p.bad("turbocache-max-bytes", "must be at least 1 (got %d)", s.TurbocacheMaxBytes)
	}
	if s.TurbocacheMaxEntrySize < 1 || s.TurbocacheMaxEntrySize > s.TurbocacheMaxBytes {
		p.bad("turbocache-max-entry-size", "must be between 1 and --turbocache-max-bytes (got %d)", s.TurbocacheMaxEntrySize)
	}
	if s.InstanceRegistryDir == "" {
		s.InstanceRegistryDir = DefaultRegistryDir()
	}
	s.Front.finish(p)
	s.Drain.finish(p)
	s.Security.finish(p)
	s.Dashboard.finish(p)
	s.SocketAccess.finish(p, s.Socket)
	s.finishACME(p)
}

// finish validates an app's settings and derives what follows from them:
// its root, paths, type, startup file and spawn method. The type is
// looked at only once everything else is valid.
func (a *App) finish(p *problems) {
	rootOK := a.resolveRoot(p)
	a.checkLimits(p)
	a.checkRouting(p)
	a.AppSecurity.finish(p)
	a.AppPassenger.finish(p)
	a.AppUpstream.finish(p)
	a.AppWire.finish(p)
	a.AppResponseHead.finish(p)
	a.resolvePaths(p)
	if len(p.errs) > 0 || !rootOK {
		return
	}
	if !a.resolveType(p) {
		return
	}
	a.checkStartupFile(p)
	a.resolveSpawnMethod(p)
}

// resolveRoot makes the app's root absolute and names the app after it
// by default; false when the root cannot serve.
func (a *App) resolveRoot(p *problems) bool {
	if a.Root == "" {
		a.Root = "."
	}
	if abs, err := filepath.Abs(a.Root); err == nil {
		a.Root = abs
	}
	rootOK := true
	if err := checkRoot(a.Root); err != nil {
		p.add(err)
		rootOK = false
	}
	if a.Name == "" {
		a.Name = filepath.Base(a.Root)
	}
	return rootOK
}

// checkLimits checks the pool's sizes, times and concurrency, and the
// environment given to the app.
func (a *App) checkLimits(p *problems) {
	if a.Environment == "" {
		p.bad("environment", "must not be empty")
	}
	if a.MaxPoolSize < 1 {
		p.bad("max-pool-size", "must be at least 1 (got %d)", a.MaxPoolSize)
	}
	if a.MinInstances < 0 {
		p.bad("min-instances", "must be 0 or more (got %d)", a.MinInstances)
	}
	if a.MinInstances > a.MaxPoolSize && a.MaxPoolSize >= 1 {
		p.bad("min-instances", "must not exceed --max-pool-size %d (got %d)", a.MaxPoolSize, a.MinInstances)
	}
	if a.MaxRequestQueueSize < 0 {
		p.bad("max-request-queue-size", "must be 0 (unlimited) or more (got %d)", a.MaxRequestQueueSize)
	}
	if a.PoolIdleTime < 0 {
		p.bad("pool-idle-time", "must be 0 (never) or more (got %s)", a.PoolIdleTime)
	}
	if a.StartTimeout <= 0 {
		p.bad("start-timeout", "must be more than 0 (got %s)", a.StartTimeout)
	}
	if a.MemoryLimit < 0 {
		p.bad("memory-limit", "must be 0 (no limit) or more (got %d)", a.MemoryLimit)
	}
	if a.MaxRequestTime < 0 {
		p.bad("max-request-time", "must be 0 (no limit) or more (got %s)", a.MaxRequestTime)
	}
	if a.MaxRequestQueueTime < 0 {
		p.bad("max-request-queue-time", "must be 0 (no limit) or more (got %s)", a.MaxRequestQueueTime)
	}
	if a.StatThrottleRate < 0 {
		p.bad("stat-throttle-rate", "must be 0 or more (got %s)", a.StatThrottleRate)
	}
	if a.ThreadCount < 1 {
		p.bad("thread-count", "must be at least 1 (got %d)", a.ThreadCount)
	}
	if a.MaxPreloaderIdleTime < 0 {
		p.bad("max-preloader-idle-time", "must be 0 (never) or more (got %s)", a.MaxPreloaderIdleTime)
	}
	if a.ConcurrencyTarget < 0 {
		p.bad("concurrency-target", "must be 0 or more (got %d)", a.ConcurrencyTarget)
	}
	if a.ForceMaxConcurrentRequestsPerProcess == 0 || a.ForceMaxConcurrentRequestsPerProcess < -1 {
		p.bad("force-max-concurrent-requests-per-process", "must be -1 (no cap) or at least 1 (got %d)", a.ForceMaxConcurrentRequestsPerProcess)
	}
	switch a.ConcurrencyModel {
	case "process", "thread":
	default:
		p.bad("concurrency-model", "must be process or thread (got %q)", a.ConcurrencyModel)
	}
	for k := range a.Envvars {
		if k == "" || strings.ContainsAny(k, "=\x00") {
			p.bad("envvar", "invalid variable name %q", k)
		}
	}
}

// checkRouting checks and cleans what routes requests to the app: its
// base URI and host names.
func (a *App) checkRouting(p *problems) {
	if a.BaseURI != "" {
		if !strings.HasPrefix(a.BaseURI, "/") || strings.ContainsAny(a.BaseURI, "?#") {
			p.bad("base_uri", "must be a path starting with / (got %q)", a.BaseURI)
		} else {
			a.BaseURI = strings.TrimSuffix(path.Clean(a.BaseURI), "/")
		}
	}
	for _, n := range a.ServerNames {
		if n == "" || strings.ContainsAny(n, " /") {
			p.bad("server_names", "invalid host name %q", n)
		}
	}
}

// resolvePaths makes the app's files relative to its root (the startup
// file) or absolute (static files, the restart directory).
func (a *App) resolvePaths(p *problems) {
	if a.Rackup != "" {
		a.AppType, a.StartupFile = AppTypeRack, a.Rackup
	}
	if filepath.IsAbs(a.StartupFile) {
		// Passenger takes an absolute path: inside the app, it is the path
		// relative to the app.
		a.StartupFile = insideRoot(a.Root, a.StartupFile)
		if filepath.IsAbs(a.StartupFile) {
			p.bad("startup-file", "%s is not inside the app directory %s; give a file in it, relative to it or absolute", a.StartupFile, a.Root)
		}
	}
	if a.StaticFilesDir != "" && !filepath.IsAbs(a.StaticFilesDir) {
		a.StaticFilesDir = filepath.Join(a.Root, a.StaticFilesDir)
	}
	if a.RestartDir == "" {
		a.RestartDir = filepath.Join(a.Root, "tmp")
	} else if !filepath.IsAbs(a.RestartDir) {
		a.RestartDir = filepath.Join(a.Root, a.RestartDir)
	}
}

// resolveType detects the app's type unless given, and turns a raw Meteor
// app into a generic one; false when there is none to serve.
func (a *App) resolveType(p *problems) bool {
	if a.AppType == "" && a.AppStartCommand != "" {
		a.AppType = AppTypeGeneric
	}
	if a.AppType == "" {
		t, err := detect(a.Root, a.StartupFile)
		if err != nil {
			p.add(err)
			return false
		}
		a.AppType = t
	}
	if !slices.Contains(appTypes, a.AppType) {
		p.bad("app-type", "unknown app type %q (supported: %s)", a.AppType, strings.Join(appTypes, ", "))
		return false
	}
	if a.AppType == AppTypeMeteor {
		// A raw Meteor app: meteor itself runs it on the port Ferry picks.
		if _, err := exec.LookPath("meteor"); err != nil {
			p.add(fmt.Errorf("%s is a raw Meteor app (it has .meteor/), and the meteor command is not installed. "+
				"Bundle it instead: `meteor build ../build --directory`, `cd ../build/bundle/programs/server && npm install`, "+
				"then run ../build/bundle as a Node.js app (ferry start ../build/bundle --startup-file main.js)", a.Root))
			return false
		}
		if a.AppStartCommand == "" {
			a.AppStartCommand = "meteor run --production --port $PORT"
		}
		a.AppType = AppTypeGeneric
	}
	if a.AppType == AppTypeGeneric && strings.TrimSpace(a.AppStartCommand) == "" {
		p.bad("app-start-command", "a generic app needs a command that listens on $PORT")
	}
	return true
}

// checkStartupFile defaults the startup file by the app's type and checks
// it is there, inside the app.
func (a *App) checkStartupFile(p *problems) {
	if a.StartupFile == "" {
		a.StartupFile = defaultStartupFile(a.Root, a.AppType)
	}
	if a.StartupFile != "" {
		if !filepath.IsLocal(a.StartupFile) {
			p.bad("startup-file", "%s is not inside the app directory %s; give a file in it, relative to it or absolute", a.StartupFile, a.Root)
		} else if _, err := os.Stat(filepath.Join(a.Root, a.StartupFile)); err != nil {
			p.bad("startup-file", "%s not found in %s", a.StartupFile, a.Root)
		}
	}
}

// resolveSpawnMethod chooses the spawn method by the app's type unless
// given, and checks it and the concurrency model fit the type.
func (a *App) resolveSpawnMethod(p *problems) {
	preloadable := a.AppType == AppTypeRack || a.AppType == AppTypeWSGI
	switch a.SpawnMethod {
	case "":
		a.SpawnMethod = "direct"
		if preloadable {
			a.SpawnMethod = "smart"
		}
	case "direct":
	case "smart":
		if !preloadable {
			p.bad("spawn-method", "smart spawning is for Rack and WSGI apps; a %s app is started directly", a.AppType)
		}
	default:
		p.bad("spawn-method", "must be smart or direct (got %q)", a.SpawnMethod)
	}
	if a.ConcurrencyModel == "thread" && !preloadable {
		p.bad("concurrency-model", "threads are for Rack and WSGI apps; a %s app already serves many requests per process", a.AppType)
	}
	if a.ConcurrencyModel == "process" && a.ThreadCount > 1 {
		p.bad("thread-count", "needs --concurrency-model thread")
	}
}

// checkRoutes refuses apps that could never get a request: same name, or
// the same host and base URI as another.
func (c *Config) checkRoutes() []error {
	var errs []error
	names := map[string]bool{}
	routes := map[string]string{}
	for _, a := range c.Apps {
		if names[a.Name] {
			errs = append(errs, fmt.Errorf("two apps are named %q; give them distinct names", a.Name))
		}
		names[a.Name] = true
		hosts := a.ServerNames
		if len(hosts) == 0 {
			hosts = []string{"*"}
		}
		for _, h := range hosts {
			r := strings.ToLower(h) + a.BaseURI
			if other, ok := routes[r]; ok {
				errs = append(errs, fmt.Errorf("apps %q and %q both claim host %q and base URI %q", other, a.Name, h, a.BaseURI+"/"))
			}
			routes[r] = a.Name
		}
	}
	return errs
}

// startupFiles are the files autodetection looks for, in order, as
// Passenger does (Rack first).
var startupFiles = []struct{ appType, file string }{
	{AppTypeRack, "config.ru"},
	{AppTypeWSGI, "passenger_wsgi.py"},
	{AppTypeASGI, "asgi.py"},
	{AppTypeMeteor, ".meteor"}, // before package.json, which a Meteor app has too
	{AppTypeNode, "app.js"},
	{AppTypeNode, "package.json"},
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

// insideRoot is the absolute path file relative to root when it lies inside
// it (also through symbolic links in either path), else file unchanged.
func insideRoot(root, file string) string {
	rel := func(root, file string) (string, bool) {
		r, err := filepath.Rel(root, file)
		return r, err == nil && filepath.IsLocal(r)
	}
	if r, ok := rel(root, filepath.Clean(file)); ok {
		return r
	}
	realRoot, err1 := filepath.EvalSymlinks(root)
	realDir, err2 := filepath.EvalSymlinks(filepath.Dir(file))
	if err1 == nil && err2 == nil {
		if r, ok := rel(realRoot, filepath.Join(realDir, filepath.Base(file))); ok {
			return r
		}
	}
	return file
}
