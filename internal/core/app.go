package core

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/ferry-server/ferry/internal/admin"
	"github.com/ferry-server/ferry/internal/config"
	"github.com/ferry-server/ferry/internal/hooks"
	"github.com/ferry-server/ferry/internal/identity"
	"github.com/ferry-server/ferry/internal/instance"
	"github.com/ferry-server/ferry/internal/launch"
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

// app is one hosted app, assembled.
type app struct {
	cfg   config.App
	group *pool.Group
	front *server.App
	admin admin.App
	close func()
}

// buildApp assembles one app from the configs it is made of: its spawner
// (smart or direct), pool, static files, and the front's view of it
// (restart watcher, cache, error pages, metrics).
func buildApp(cfg *config.Config, ac config.App, inst *instance.Dir, out *logs.Outputs, reg *metrics.Metrics, hk *hooks.Runner) (_ *app, err error) {
	log := out.Core
	var closers []func()
	closeAll := func() {
		for _, c := range closers {
			c()
		}
	}
	defer func() {
		if err != nil {
			closeAll()
		}
	}()
	user, err := appUser(ac, log)
	if err != nil {
		return nil, err
	}
	am := reg.App(ac.Name)
	sp, err := newAppSpawner(cfg, ac, inst, out, user, am)
	if err != nil {
		return nil, err
	}
	closers = append(closers, sp.closers...)
	group := pool.NewGroup(poolConfig(cfg, ac, am, hk), sp.spawner, log)
	public, err := static.New(publicDir(ac), staticOptions(ac, user))
	if err != nil {
		return nil, fmt.Errorf("open public directory: %w", err)
	}
	closers = append(closers, func() { public.Close() })
	fa, err := frontApp(cfg, ac, group, public, am, hk)
	if err != nil {
		return nil, err
	}
	return &app{
		cfg:   ac,
		group: group,
		front: fa,
		admin: admin.App{Group: group, Root: ac.Root, Type: ac.AppType, SpawnMethod: ac.SpawnMethod,
			Preloader: sp.preloader, Cache: fa.Cache},
		close: closeAll,
	}, nil
}

// appSpawner is the spawn side of one app: what the pool spawns with, its
// preloader's pid when spawning is smart, and what closes them.
type appSpawner struct {
	spawner   pool.Spawner
	preloader func() int
	closers   []func()
}

// newAppSpawner starts nothing yet: it writes the app's loader, opens its
// output log and makes the spawner (smart or direct) the pool will use.
func newAppSpawner(cfg *config.Config, ac config.App, inst *instance.Dir, out *logs.Outputs, user identity.Choice, am *metrics.AppMetrics) (appSpawner, error) {
	command, err := launch.Command(ac, inst.Path())
	if err != nil {
		return appSpawner{}, err
	}
	output, err := out.App(ac.AppLogFile)
	if err != nil {
		return appSpawner{}, fmt.Errorf("--app-log-file: %w", err)
	}
	sc := spawnConfig(cfg, ac, command, launch.Env(ac, inst.Path(), user.User), inst.WorkDir(), user)
	sc.Output = output
	sp := spawn.New(sc, out.Core)
	s := appSpawner{spawner: directSpawner{sp, am}, closers: []func(){sp.Close}}
	if ac.SpawnMethod == "smart" {
		smart := sp.Smart(ac.MaxPreloaderIdleTime)
		s.spawner = smartSpawner{smart, am}
		s.preloader = smart.Preloader
		s.closers = append(s.closers, func() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			smart.Stop(ctx)
		})
	}
	return s, nil
}

// spawnConfig is how one app's processes start (but for their output).
func spawnConfig(cfg *config.Config, ac config.App, command, env []string, workDir string, user identity.Choice) spawn.Config {
	startupFile := ac.StartupFile
	if ac.AppType == config.AppTypeGeneric {
		startupFile = ""
	}
	return spawn.Config{
		App:                 ac.Name,
		Root:                ac.Root,
		Command:             command,
		Env:                 env,
		WorkDir:             workDir,
		HTTPOnly:            ac.Wire == config.WireHTTP1,
		StartTimeout:        ac.StartTimeout,
		Generic:             ac.AppType == config.AppTypeGeneric,
		User:                user.User,
		UserReason:          user.Why,
		StartupFile:         startupFile,
		FileDescriptorLimit: ac.AppFileDescriptorUlimit,
		CoreDumps:           ac.AppCoreDumps,
		Limit:               spawn.SharedLimit(cfg.MaxProcessesTotal),
		Reserve:             ac.MinInstances,
	}
}

// poolConfig is the app's pool: its sizes, queue, recycling, and events
// (restarts counted in the metrics, hooks fired).
func poolConfig(cfg *config.Config, ac config.App, am *metrics.AppMetrics, hk *hooks.Runner) pool.Config {
	pc := pool.Config{
		Name:               ac.Name,
		Min:                ac.MinInstances,
		Max:                ac.MaxPoolSize,
		MaxQueue:           ac.MaxRequestQueueSize,
		MaxQueueTime:       ac.MaxRequestQueueTime,
		IdleTime:           ac.PoolIdleTime,
		StopTimeout:        cfg.ShutdownTimeout,
		MaxRequests:        ac.MaxRequests,
		MaxRequestsJitter:  ac.MaxRequestsJitter,
		MemoryLimit:        ac.MemoryLimit << 20,
		Memory:             ownMemory,
		MaxConnectFailures: ac.MaxConnectFailures,
		OutOfBand:          proxy.OutOfBand,
		Events: func(e pool.Event) {
			if e.Kind == pool.EventRestarted || e.Kind == pool.EventRollingRestartFinished {
				am.Restart()
			}
			fireHook(hk, ac.Name, e)
		},
	}
	if ac.ForceMaxConcurrentRequestsPerProcess > 0 {
		pc.ConcurrencyCap = ac.ForceMaxConcurrentRequestsPerProcess
	}
	if ac.ManyPerProcess() {
		pc.ConcurrencyTarget = ac.ConcurrencyTarget
	}
	return pc
}

// publicDir is where the app's static files are: APP_DIR/public unless
// --static-files-dir says otherwise.
func publicDir(ac config.App) string {
	if ac.StaticFilesDir != "" {
		return ac.StaticFilesDir
	}
	return filepath.Join(ac.Root, "public")
}

func staticOptions(ac config.App, user identity.Choice) static.Options {
	o := static.Options{FollowSymlinks: ac.StaticFollowSymlinks, Revalidate: ac.StaticRevalidate}
	if user.User != nil {
		o.As = user.Do // symlinks out of public/ open as the app's user
	}
	return o
}

// frontApp is what the request path knows of the app.
func frontApp(cfg *config.Config, ac config.App, group *pool.Group, public *static.Handler, am *metrics.AppMetrics, hk *hooks.Runner) (*server.App, error) {
	fa := &server.App{
		Name:           ac.Name,
		ServerNames:    ac.ServerNames,
		BaseURI:        ac.BaseURI,
		Group:          group,
		Static:         public,
		Development:    ac.Environment == "development",
		UnlimitedPaths: ac.UnlimitedConcurrencyPaths,
		AbortTunnels:   ac.AbortWebsocketsOnProcessShutdown,
		OnMaxRequestTime: func(pid int, method, path string) {
			hk.Fire(hooks.MaxRequestTimeReached, map[string]string{"app": ac.Name, "pid": strconv.Itoa(pid), "method": method, "path": path})
		},
		Transport:       transport(ac),
		Restarts:        restartfile.New(ac.RestartDir, ac.StatThrottleRate),
		RollingRestarts: ac.RollingRestarts,
		MaxRequestTime:  ac.MaxRequestTime,
		Metrics:         am,
		Cache:           appCache(cfg, ac),
	}
	if ac.CustomErrorPage != "" {
		page, err := os.ReadFile(ac.CustomErrorPage)
		if err != nil {
			return nil, fmt.Errorf("--custom-error-page: %w", err)
		}
		fa.ErrorPage = page
	}
	if ac.FriendlyErrorPages != nil {
		fa.Development = *ac.FriendlyErrorPages
	}
	if ac.StickySessions {
		fa.Sticky = &server.Sticky{CookieName: ac.StickySessionsCookieName, Attributes: ac.StickySessionsCookieAttributes}
	}
	return fa, nil
}

// transport is how requests reach the app's processes.
func transport(ac config.App) *proxy.Transport {
	t := &proxy.Transport{Forwarded: ac.AppType == config.AppTypeGeneric, MaxTunnels: ac.MaxWebsocketTunnels,
		MaxResponseHead: ac.MaxResponseHeadSize}
	if ac.AppType == config.AppTypeNode || ac.AppType == config.AppTypeGeneric {
		// No SCRIPT_NAME for these: they see the path below their base URI.
		t.StripPrefix = ac.BaseURI
	}
	return t
}

// appCache is the app's turbocache; nil without --turbocaching.
func appCache(cfg *config.Config, ac config.App) *turbocache.Cache {
	if !ac.TurboCaching {
		return nil
	}
	return turbocache.New(turbocache.Options{
		MaxEntries:   cfg.TurbocacheMaxEntries,
		MaxBytes:     cfg.TurbocacheMaxBytes,
		MaxEntrySize: cfg.TurbocacheMaxEntrySize,
		VaryByCookie: ac.VaryTurbocacheByCookie,

		MaxVariants:        cfg.TurbocacheMaxVariants,
		StaleIfUnreachable: cfg.TurbocacheStaleIfUnreachable,
	})
}

// hookEvents maps the pool's events to hook events.
var hookEvents = map[pool.EventKind]string{
	pool.EventProcessAttached:        hooks.AttachedProcess,
	pool.EventProcessDetached:        hooks.DetachedProcess,
	pool.EventSpawnFailed:            hooks.SpawnFailed,
	pool.EventQueueFull:              hooks.QueueFullError,
	pool.EventRestarted:              hooks.AppRestarted,
	pool.EventRollingRestartFinished: hooks.RollingRestartFinished,
}

// fireHook runs the hooks of a pool event with its details: FERRY_APP,
// FERRY_PID, FERRY_ERROR (and their PASSENGER_ twins).
func fireHook(hk *hooks.Runner, app string, e pool.Event) {
	ev, ok := hookEvents[e.Kind]
	if !ok {
		return
	}
	d := map[string]string{"app": app}
	if e.PID != 0 {
		d["pid"] = strconv.Itoa(e.PID)
	}
	if e.Err != nil {
		d["error"] = e.Err.Error()
	}
	hk.Fire(ev, d)
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
