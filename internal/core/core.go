// Package core is the composition root of `ferry start`: it turns a Config
// into a running instance (instance directory, per-app spawner, pool,
// cache and metrics, the HTTP front, the admin API), runs it until its
// context ends, and shuts it down in order. It owns no request or process
// logic of its own.
package core

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ferry-server/ferry/internal/admin"
	"github.com/ferry-server/ferry/internal/config"
	"github.com/ferry-server/ferry/internal/identity"
	"github.com/ferry-server/ferry/internal/instance"
	"github.com/ferry-server/ferry/internal/loaders"
	"github.com/ferry-server/ferry/internal/logs"
	"github.com/ferry-server/ferry/internal/metrics"
	"github.com/ferry-server/ferry/internal/pool"
	"github.com/ferry-server/ferry/internal/procstat"
	"github.com/ferry-server/ferry/internal/proxy"
	"github.com/ferry-server/ferry/internal/restartfile"
	"github.com/ferry-server/ferry/internal/server"
	"github.com/ferry-server/ferry/internal/spawn"
	"github.com/ferry-server/ferry/internal/static"
	"github.com/ferry-server/ferry/internal/turbocache"
)

// Run serves cfg until ctx ends, then shuts down gracefully: stop accepting,
// let in-flight requests finish, stop app processes, remove the instance
// directory.
func Run(ctx context.Context, cfg *config.Config, out *logs.Outputs, version string) (err error) {
	log := out.Core
	for _, w := range cfg.Warnings {
		log.Warn(w)
	}
	started := time.Now()
	roots := make([]string, len(cfg.Apps))
	for i, a := range cfg.Apps {
		roots[i] = a.Root
	}
	inst, err := instance.Create(cfg.InstanceRegistryDir, instance.Properties{
		PID: os.Getpid(), AppRoot: roots[0], AppRoots: roots, Listen: cfg.ListenAddr(), StartedAt: started, Version: version,
	})
	if err != nil {
		return err
	}
	defer inst.Remove()
	if cfg.PidFile != "" {
		if err := os.WriteFile(cfg.PidFile, []byte(strconv.Itoa(os.Getpid())+"\n"), 0o644); err != nil {
			return fmt.Errorf("write pid file: %w", err)
		}
		defer os.Remove(cfg.PidFile)
	}

	reg := metrics.New()
	var (
		apps      []*app
		frontApps []*server.App
		adminApps []admin.App
	)
	defer func() {
		for _, a := range apps {
			a.close()
		}
	}()
	for _, ac := range cfg.Apps {
		a, err := buildApp(cfg, ac, inst, out, reg)
		if err != nil {
			return fmt.Errorf("app %s: %w", ac.Name, err)
		}
		apps = append(apps, a)
		frontApps = append(frontApps, a.front)
		adminApps = append(adminApps, a.admin)
	}
	reg.RegisterPoolCollector(poolSnapshots(apps))

	handler, front, closeFront, err := newFront(cfg, frontApps, inst.BufferDir(), log)
	if err != nil {
		return err
	}
	defer closeFront()
	src := &source{
		info: admin.Info{Version: version, PID: os.Getpid(), StartedAt: started,
			Listen: front.URLs(), Instance: inst.Path(), Config: configMap(cfg)},
		apps: adminApps, handler: handler, metrics: reg, logs: out,
	}
	src.ready.Store(true)
	adm, err := admin.Listen(inst.Path(), src, log)
	if err != nil {
		return err
	}

	for _, a := range apps {
		a.group.Start()
	}
	errc := make(chan error, 2)
	go func() { errc <- front.Serve() }()
	go func() { errc <- adm.Serve() }()
	for _, a := range cfg.Apps {
		log.Info("serving app", "app", a.Name, "app_type", a.AppType, "spawn_method", a.SpawnMethod,
			"app_root", a.Root, "environment", a.Environment, "server_names", a.ServerNames, "base_uri", a.BaseURI)
	}
	log.Info("ferry started", "version", version, "listen", front.Addr().String(), "apps", len(apps),
		"app_type", cfg.Apps[0].AppType, "spawn_method", cfg.Apps[0].SpawnMethod, "instance", inst.Path())

	select {
	case <-ctx.Done():
		log.Info("shutting down", "reason", context.Cause(ctx))
	case err = <-errc:
		log.Error("server failed, shutting down", "error", err)
	}

	// Load balancers asking /ready learn at once that we are leaving.
	src.ready.Store(false)
	// Requests in flight finish first, then the processes serving them stop;
	// --shutdown-timeout bounds the whole, with a short grace for SIGTERM
	// even when draining used it all up.
	deadline := time.Now().Add(cfg.ShutdownTimeout)
	drain, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	if serr := front.Shutdown(drain); serr != nil {
		log.Warn("in-flight requests did not finish in time", "error", serr)
	}
	stop, cancelStop := context.WithDeadline(context.Background(), later(deadline, time.Now().Add(2*time.Second)))
	defer cancelStop()
	var wg sync.WaitGroup
	for _, a := range apps {
		wg.Add(1)
		go func() {
			defer wg.Done()
			a.group.Close(stop)
		}()
	}
	wg.Wait()
	adm.Shutdown(stop)
	log.Info("ferry stopped")
	return err
}

// app is one hosted app, assembled.
type app struct {
	cfg   config.App
	group *pool.Group
	front *server.App
	admin admin.App
	close func()
}

// buildApp assembles one app: its loader command and environment, spawner
// (smart or direct), pool, static files, restart watcher, cache and metrics.
func buildApp(cfg *config.Config, ac config.App, inst *instance.Dir, out *logs.Outputs, reg *metrics.Metrics) (*app, error) {
	log := out.Core
	command, err := appCommand(ac, inst.Path())
	if err != nil {
		return nil, err
	}
	output, err := out.App(ac.AppLogFile)
	if err != nil {
		return nil, err
	}
	user, err := appUser(ac, log)
	if err != nil {
		return nil, err
	}
	startupFile := ac.StartupFile
	if ac.AppType == config.AppTypeGeneric {
		startupFile = ""
	}
	sp := spawn.New(spawn.Config{
		App:                 ac.Name,
		Root:                ac.Root,
		Command:             command,
		Env:                 appEnv(ac, inst.Path(), user.User),
		WorkDir:             inst.WorkDir(),
		StartTimeout:        ac.StartTimeout,
		Generic:             ac.AppType == config.AppTypeGeneric,
		Output:              output,
		User:                user.User,
		UserReason:          user.Why,
		StartupFile:         startupFile,
		FileDescriptorLimit: ac.AppFileDescriptorUlimit,
		CoreDumps:           ac.AppCoreDumps,
		Limit:               spawn.SharedLimit(cfg.MaxProcessesTotal),
		Reserve:             ac.MinInstances,
	}, log)
	am := reg.App(ac.Name)
	closers := []func(){sp.Close}
	var spawner pool.Spawner = directSpawner{sp, am}
	var preloader func() int
	if ac.SpawnMethod == "smart" {
		smart := sp.Smart(ac.MaxPreloaderIdleTime)
		spawner = smartSpawner{smart, am}
		preloader = smart.Preloader
		closers = append(closers, func() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			smart.Stop(ctx)
		})
	}
	poolCfg := pool.Config{
		Name:              ac.Name,
		Min:               ac.MinInstances,
		Max:               ac.MaxPoolSize,
		MaxQueue:          ac.MaxRequestQueueSize,
		MaxQueueTime:      ac.MaxRequestQueueTime,
		IdleTime:          ac.PoolIdleTime,
		StopTimeout:       cfg.ShutdownTimeout,
		MaxRequests:       ac.MaxRequests,
		MaxRequestsJitter: ac.MaxRequestsJitter,
		MemoryLimit:       ac.MemoryLimit << 20,
		Memory:            ownMemory,
		OutOfBand:         proxy.OutOfBand,
		Events: func(e pool.Event) {
			if e.Kind == "restarted" || e.Kind == "rolling_restart_finished" {
				am.Restart()
			}
		},
	}
	if ac.ForceMaxConcurrentRequestsPerProcess > 0 {
		poolCfg.ConcurrencyCap = ac.ForceMaxConcurrentRequestsPerProcess
	}
	if ac.ManyPerProcess() {
		poolCfg.ConcurrencyTarget = ac.ConcurrencyTarget
	}
	group := pool.NewGroup(poolCfg, spawner, log)

	staticOpts := static.Options{FollowSymlinks: ac.StaticFollowSymlinks}
	if user.User != nil {
		staticOpts.As = user.Do // symlinks out of public/ open as the app's user
	}
	public, err := static.New(filepath.Join(ac.Root, "public"), staticOpts)
	if err != nil {
		return nil, fmt.Errorf("open public directory: %w", err)
	}
	closers = append(closers, func() { public.Close() })
	transport := &proxy.Transport{Forwarded: ac.AppType == config.AppTypeGeneric, MaxTunnels: ac.MaxWebsocketTunnels}
	if ac.AppType == config.AppTypeNode || ac.AppType == config.AppTypeGeneric {
		// No SCRIPT_NAME for these: they see the path below their base URI.
		transport.StripPrefix = ac.BaseURI
	}
	fa := &server.App{
		Name:            ac.Name,
		ServerNames:     ac.ServerNames,
		BaseURI:         ac.BaseURI,
		Group:           group,
		Static:          public,
		Development:     ac.Environment == "development",
		Transport:       transport,
		Restarts:        restartfile.New(ac.RestartDir, ac.StatThrottleRate),
		RollingRestarts: ac.RollingRestarts,
		MaxRequestTime:  ac.MaxRequestTime,
		Metrics:         am,
	}
	if ac.TurboCaching {
		fa.Cache = turbocache.New(turbocache.Options{
			MaxEntries:   cfg.TurbocacheMaxEntries,
			MaxBytes:     cfg.TurbocacheMaxBytes,
			MaxEntrySize: cfg.TurbocacheMaxEntrySize,
			VaryByCookie: ac.VaryTurbocacheByCookie,
		})
	}
	return &app{
		cfg:   ac,
		group: group,
		front: fa,
		admin: admin.App{Group: group, Root: ac.Root, Type: ac.AppType, SpawnMethod: ac.SpawnMethod,
			Preloader: preloader, Cache: fa.Cache},
		close: func() {
			for _, c := range closers {
				c()
			}
		},
	}, nil
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// directSpawner and smartSpawner adapt the spawn package to the pool; the
// smart one can drop its preloader on restart. Both count spawns and their
// duration for the metrics.
type directSpawner struct {
	sp *spawn.Spawner
	m  *metrics.AppMetrics
}

func (d directSpawner) Spawn(ctx context.Context) (pool.Proc, error) {
	start := time.Now()
	p, err := d.sp.Spawn(ctx)
	d.m.Spawn(err == nil, time.Since(start))
	if err != nil {
		return nil, err
	}
	return p, nil
}

type smartSpawner struct {
	sm *spawn.Smart
	m  *metrics.AppMetrics
}

func (s smartSpawner) Spawn(ctx context.Context) (pool.Proc, error) {
	start := time.Now()
	p, err := s.sm.Spawn(ctx)
	s.m.Spawn(err == nil, time.Since(start))
	if err != nil {
		return nil, err
	}
	return p, nil
}

func (s smartSpawner) Reset(ctx context.Context) { s.sm.Stop(ctx) }

// ownMemory is a process's own memory for --memory-limit: its proportional
// set size, in which pages shared copy-on-write with the preloader and
// siblings count only in part, rather than RSS, which counts them whole.
func ownMemory(pid int) (int64, error) {
	s, err := procstat.Read(pid)
	if err != nil {
		return 0, err
	}
	if s.Memory.PSS == 0 {
		return s.Memory.RSS, nil
	}
	return s.Memory.PSS, nil
}

// source is what the admin API reports on.
type source struct {
	info    admin.Info
	apps    []admin.App
	handler *server.Handler
	metrics *metrics.Metrics
	logs    *logs.Outputs
	ready   atomic.Bool
}

func (s *source) Info() admin.Info      { return s.info }
func (s *source) Apps() []admin.App     { return s.apps }
func (s *source) Requests() any         { return s.handler.Requests() }
func (s *source) Ready() bool           { return s.ready.Load() }
func (s *source) Metrics() http.Handler { return s.metrics.Handler() }
func (s *source) ReopenLogs() error     { return s.logs.Reopen() }

// poolSnapshots feeds the pools' state to the metrics at scrape time.
func poolSnapshots(apps []*app) func() []metrics.AppSnapshot {
	var cpu procstat.Tracker
	return func() []metrics.AppSnapshot {
		var out []metrics.AppSnapshot
		for _, a := range apps {
			st := a.group.Status()
			snap := metrics.AppSnapshot{App: st.Name, Queued: st.Queued, ProcessesByState: map[string]int{}}
			for _, p := range st.Processes {
				snap.ProcessesByState[p.State]++
				ps := metrics.ProcSnapshot{PID: p.PID, Sessions: p.Sessions, Processed: p.Processed}
				if sample, _, err := cpu.Read(p.PID); err == nil {
					ps.RSS, ps.PSS, ps.CPUSeconds = sample.Memory.RSS, sample.Memory.PSS, sample.CPUTime.Seconds()
				}
				snap.Processes = append(snap.Processes, ps)
			}
			out = append(out, snap)
		}
		return out
	}
}

// configMap is the configuration in effect, for GET /server.
func configMap(cfg *config.Config) map[string]any {
	b, _ := json.Marshal(cfg)
	var m map[string]any
	json.Unmarshal(b, &m)
	return m
}

// appCommand is the argv that starts one process of the app: its loader
// under its interpreter, or the generic app's command under a shell.
func appCommand(cfg config.App, dir string) ([]string, error) {
	var interpreter, loader string
	switch cfg.AppType {
	case config.AppTypeGeneric:
		return []string{"/bin/sh", "-c", execPrefix(cfg.AppStartCommand)}, nil
	case config.AppTypeWSGI:
		interpreter, loader = cfg.Python, "wsgi.py"
	case config.AppTypeASGI:
		interpreter, loader = cfg.Python, "asgi.py"
	case config.AppTypeRack:
		interpreter, loader = cfg.Ruby, "rack.rb"
	case config.AppTypeNode:
		interpreter, loader = cfg.Nodejs, "node.cjs"
	default:
		return nil, fmt.Errorf("no loader for app type %q", cfg.AppType)
	}
	path, err := loaders.Write(dir, loader)
	if err != nil {
		return nil, err
	}
	return []string{interpreter, path}, nil
}

// execPrefix makes the shell replace itself with a simple command, so the
// app itself is the process Ferry started (and gets its Pdeathsig). A
// compound command (;, &&, |, …) runs as written: it should exec its last
// step itself.
func execPrefix(cmd string) string {
	c := strings.TrimSpace(cmd)
	if strings.HasPrefix(c, "exec ") || strings.ContainsAny(c, ";&|<>()`\n") {
		return c
	}
	return "exec " + c
}

// appUser is who the app's processes run as: when Ferry runs as root, the
// user chosen by the app's security settings (logged, with why); otherwise
// nil, i.e. Ferry's own user.
func appUser(ac config.App, log *slog.Logger) (identity.Choice, error) {
	if os.Geteuid() != 0 {
		return identity.Choice{}, nil
	}
	c, err := ac.RunAs()
	if err != nil {
		return c, err
	}
	level := slog.LevelInfo
	if c.UID == 0 || c.GID == 0 {
		level = slog.LevelWarn // only with --allow-root-apps
	}
	log.Log(context.Background(), level, "app user", "app", ac.Name, "user", c.Name, "uid", c.UID,
		"group", c.Group, "gid", c.GID, "groups", c.Groups, "why", c.Why)
	return c, nil
}

// appEnv builds an app's environment explicitly (spawn.Inherit says what
// of the core's own it gets), plus what the app is told about itself. user
// is who it runs as when that is not Ferry's own user.
func appEnv(cfg config.App, instanceDir string, user *identity.User) []string {
	env := spawn.Inherit(os.Environ(), user)
	if cfg.ConcurrencyModel == "thread" {
		env = append(env, "FERRY_THREADS="+strconv.Itoa(cfg.ThreadCount))
	}
	e := cfg.Environment
	env = append(env,
		"FERRY_APP_ROOT="+cfg.Root,
		// Marks the instance's processes, so that memory-stats finds them
		// from /proc even when the core cannot answer.
		"FERRY_INSTANCE="+instanceDir,
		"FERRY_STARTUP_FILE="+cfg.StartupFile,
		"FERRY_BASE_URI="+cfg.BaseURI,
		"FERRY_APP_ENV="+e,
		"PASSENGER_APP_ENV="+e,
		"RAILS_ENV="+e,
		"RACK_ENV="+e,
		"WSGI_ENV="+e,
		"NODE_ENV="+e,
		"PYTHONUNBUFFERED=1",
	)
	// The user's --envvar come last and win (exec keeps the last value of a
	// repeated name); the spawner's FERRY_SOCKET & co. come after them.
	for _, k := range slices.Sorted(maps.Keys(cfg.Envvars)) {
		if strings.HasPrefix(k, "FERRY_") {
			continue
		}
		env = append(env, k+"="+cfg.Envvars[k])
	}
	return env
}
