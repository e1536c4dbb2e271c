package core

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/ferry-server/ferry/internal/admin"
	"github.com/ferry-server/ferry/internal/certs"
	"github.com/ferry-server/ferry/internal/config"
	"github.com/ferry-server/ferry/internal/dashboard"
	"github.com/ferry-server/ferry/internal/health"
	"github.com/ferry-server/ferry/internal/hooks"
	"github.com/ferry-server/ferry/internal/instance"
	"github.com/ferry-server/ferry/internal/logs"
	"github.com/ferry-server/ferry/internal/metrics"
	"github.com/ferry-server/ferry/internal/sdnotify"
	"github.com/ferry-server/ferry/internal/server"
	"github.com/ferry-server/ferry/internal/tracing"
)

// Options are what Run needs besides its context.
type Options struct {
	Config  *config.Config
	Logs    *logs.Outputs
	Version string
	// Reload loads the configuration again (SIGHUP, ferry reload); nil: no
	// reloading.
	Reload func() (*config.Config, error)
	// Reloads delivers reload requests (SIGHUP).
	Reloads <-chan struct{}
	// Upgrades delivers binary upgrade requests (SIGUSR2).
	Upgrades <-chan struct{}
	// Hurry is closed by a second stop signal: skip what is left of the
	// drain delay (requests in flight still get --shutdown-timeout).
	Hurry <-chan struct{}
}

// StopSignal is the cause of Run's context ending on a signal. SIGTERM
// drains with --drain-delay; SIGINT (Ctrl-C at a terminal) skips it.
type StopSignal struct{ Signal os.Signal }

func (s StopSignal) Error() string { return s.Signal.String() + " received" }

// Run serves the configuration until ctx ends, then shuts down gracefully:
// stop accepting, let in-flight requests finish, stop app processes, remove
// the instance directory.
func Run(ctx context.Context, o Options) error {
	r := &runner{o: o, cfg: o.Config, out: o.Logs, log: o.Logs.Core, started: time.Now()}
	defer r.cleanup()
	for _, w := range r.cfg.Warnings {
		r.log.Warn(w)
	}
	for _, step := range []func(context.Context) error{
		r.createInstance, r.limitFiles, r.startHooks, r.buildApps,
		r.loadCerts, r.startTracer, r.openFront, r.listenAdmin, r.listenMetrics,
	} {
		if err := step(ctx); err != nil {
			return err
		}
	}
	errc := r.serve()
	if err := r.announce(ctx); err != nil {
		return err
	}
	upgraded, err := r.wait(ctx, errc)
	r.shutdown(ctx, upgraded)
	return err
}

// runner is one run of the core: what Run builds, in the order it builds
// it, and what takes it down again in reverse order.
type runner struct {
	o       Options
	cfg     *config.Config
	out     *logs.Outputs
	log     *slog.Logger
	started time.Time

	inst    *instance.Dir
	hooks   *hooks.Runner
	st      *state
	probes  *health.Checker
	certs   *certs.Manager // nil: no automatic HTTPS
	tracer  *tracing.Tracer
	handler *server.Handler
	front   *server.Server
	src     *source // what the admin API and the dashboard report on
	adm     *admin.Server
	ms      *metricsServer // nil: no --metrics-address

	undo []func()
}

// onExit has f run when Run returns, before what was registered earlier.
func (r *runner) onExit(f func()) { r.undo = append(r.undo, f) }

func (r *runner) cleanup() {
	for i := len(r.undo) - 1; i >= 0; i-- {
		r.undo[i]()
	}
}

// createInstance makes the instance directory and the --pid-file.
func (r *runner) createInstance(context.Context) error {
	roots := make([]string, len(r.cfg.Apps))
	for i, a := range r.cfg.Apps {
		roots[i] = a.Root
	}
	inst, err := instance.Create(r.cfg.InstanceRegistryDir, instance.Properties{
		PID: os.Getpid(), AppRoot: roots[0], AppRoots: roots, Listen: r.cfg.ListenAddr(), StartedAt: r.started, Version: r.o.Version,
	})
	if err != nil {
		return err
	}
	r.inst = inst
	r.onExit(func() { inst.Remove() })
	if path := r.cfg.PidFile; path != "" {
		if err := instance.WritePidFile(path, os.Getpid()); err != nil {
			return fmt.Errorf("--pid-file: cannot write %s: %w", path, unwrapPath(err))
		}
		// Removed on exit unless a new ferry (an upgrade) wrote its own.
		pid := os.Getpid()
		r.onExit(func() { instance.RemovePidFile(path, pid) })
	}
	return nil
}

// limitFiles applies --core-file-descriptor-ulimit.
func (r *runner) limitFiles(context.Context) error {
	n := r.cfg.CoreFileDescriptorUlimit
	if n <= 0 {
		return nil
	}
	lim := syscall.Rlimit{Cur: uint64(n), Max: uint64(n)}
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return fmt.Errorf("--core-file-descriptor-ulimit %d: %w", n, err)
	}
	return nil
}

func (r *runner) startHooks(context.Context) error {
	hk, err := hooks.New(r.cfg.Hooks, 0, 0, r.log)
	if err != nil {
		return err
	}
	r.hooks = hk
	r.onExit(hk.Wait)
	return nil
}

// buildApps assembles every app (nothing spawns yet) and the probes that
// watch their pools.
func (r *runner) buildApps(context.Context) error {
	st := &state{cfg: r.cfg, inst: r.inst, out: r.out, reg: metrics.New(), reloadFn: r.o.Reload, hooks: r.hooks}
	r.st = st
	r.onExit(st.closeAll)
	for _, ac := range r.cfg.Apps {
		a, err := buildApp(r.cfg, ac, r.inst, r.out, st.reg, r.hooks)
		if err != nil {
			return fmt.Errorf("app %s: %w", ac.Name, err)
		}
		st.apps = append(st.apps, a)
	}
	st.reg.RegisterPoolCollector(poolSnapshots(st.current))
	r.probes = health.New(st.groups, r.o.Version, 0)
	r.onExit(r.probes.Close)
	return nil
}

// loadCerts makes the automatic HTTPS manager, if asked for, with the
// certificates it has stored.
func (r *runner) loadCerts(ctx context.Context) error {
	cm, err := newCertManager(r.cfg, r.log)
	if err != nil {
		return err
	}
	if cm != nil {
		cm.LoadStored(ctx)
	}
	r.certs = cm
	return nil
}

func (r *runner) startTracer(ctx context.Context) error {
	tracer, stop, err := newTracer(ctx, r.cfg, r.o.Version, r.log)
	if err != nil {
		return err
	}
	r.tracer = tracer
	r.onExit(stop) // after the front's shutdown: the last requests' spans go out
	return nil
}

// openFront opens the listeners and the request path over the apps, and
// starts obtaining certificates.
func (r *runner) openFront(ctx context.Context) error {
	bufferDir := r.inst.BufferDir()
	if r.cfg.DataBufferDir != "" {
		bufferDir = r.cfg.DataBufferDir
	}
	handler, front, closeFront, err := newFront(r.cfg, frontApps(r.st.apps), bufferDir, r.out, r.certs, r.tracer)
	if err != nil {
		return err
	}
	r.onExit(closeFront)
	r.handler, r.front = handler, front
	r.st.handler = handler
	r.st.reg.RegisterFront(front.LeanStats)
	if len(front.HTTP3Addrs()) > 0 {
		r.st.reg.RegisterHTTP3(front.HTTP3Stats)
	}
	if r.certs == nil {
		return nil
	}
	r.onExit(r.certs.Stop)
	return startCerts(ctx, r.certs, front, r.st.reg, r.cfg, r.log)
}

// listenAdmin opens the admin API on the instance socket.
func (r *runner) listenAdmin(context.Context) error {
	r.src = r.source()
	adm, err := admin.Listen(r.inst.Path(), r.src, r.log)
	if err != nil {
		return err
	}
	r.adm = adm
	return nil
}

// source is what the admin API and the dashboard report on.
func (r *runner) source() *source {
	return &source{
		info: admin.Info{Version: r.o.Version, PID: os.Getpid(), StartedAt: r.started,
			Listen: r.front.URLs(), Instance: r.inst.Path(), Config: configMap(r.cfg)},
		st: r.st, metrics: r.st.reg, logs: r.out, probes: r.probes, certs: r.certs,
	}
}

// listenMetrics opens --metrics-address (metrics, probes, the dashboard);
// it serves from announce on.
func (r *runner) listenMetrics(ctx context.Context) error {
	if r.cfg.MetricsAddress == "" {
		// Handed over by an upgrade, but no longer asked for.
		if ln, _ := inheritedMetrics(); ln != nil {
			ln.Close()
		}
		return nil
	}
	var dash http.Handler
	if !r.cfg.DashboardOff {
		d := dashboard.New(dashboard.Options{Source: r.src, Auth: r.adm, Actions: r.adm.Handler(),
			Refresh: r.cfg.DashboardRefresh, MaxViewers: r.cfg.DashboardMaxViewers, Log: r.log})
		go d.Run(ctx)
		dash = d.Handler()
	}
	ms, err := serveMetrics(r.cfg.MetricsAddress, r.st.reg, r.probes.Handler(), dash, r.log)
	if err != nil {
		return err
	}
	r.ms = ms
	r.onExit(ms.stop)
	return nil
}

// serve starts the apps' pools, the front and the admin API; errc gets
// the error of either server.
func (r *runner) serve() (errc chan error) {
	for _, a := range r.st.apps {
		a.group.Start()
	}
	errc = make(chan error, 2)
	r.probes.SetListening()
	go func() { errc <- r.front.Serve() }()
	go func() { errc <- r.adm.Serve() }()
	for _, a := range r.cfg.Apps {
		logApp(r.log, a)
	}
	return errc
}

// announce says the core serves: to the old ferry of an upgrade once the
// apps can serve, to systemd or `ferry start --daemonize`, in the log.
func (r *runner) announce(ctx context.Context) error {
	if _, upgrading := os.LookupEnv(supervisorNotify); upgrading {
		// The old ferry stops accepting, and leaves the probes to us, when
		// we say READY: say it once our apps can serve, so that neither
		// requests nor a balancer's checks meet an app still booting. An
		// app that cannot start ends this upgrade; the old ferry serves on.
		if err := waitAppsReady(ctx, r.probes, upgradeReadyTimeout(r.cfg)); err != nil {
			return fmt.Errorf("upgrade: %w", err)
		}
	}
	r.ms.start()
	// A systemd Type=notify unit, or `ferry start --daemonize`, waits for this.
	ready := "READY=1\nSTATUS=serving " + strconv.Itoa(len(r.st.apps)) + " apps on " + r.front.Addr().String() + "\nMAINPID=" + strconv.Itoa(os.Getpid())
	sdnotify.Notify(ready)
	if sup := os.Getenv(supervisorNotify); sup != "" {
		// Started by an upgrade under systemd: we are its main process now.
		sdnotify.NotifySocket(sup, ready)
		os.Setenv("NOTIFY_SOCKET", sup)
		os.Unsetenv(supervisorNotify)
	}
	r.log.Info("ferry started", "version", r.o.Version, "listen", r.front.Addr().String(), "apps", len(r.st.apps),
		"app_type", r.cfg.Apps[0].AppType, "spawn_method", r.cfg.Apps[0].SpawnMethod, "instance", r.inst.Path())
	trimMemoryLater(ctx, r.cfg.MemoryTrim, r.log)
	return nil
}

// wait serves until ctx ends, a server fails or an upgrade hands over,
// reloading the configuration when asked meanwhile.
func (r *runner) wait(ctx context.Context, errc <-chan error) (upgraded bool, err error) {
	for {
		select {
		case <-ctx.Done():
			r.log.Info("shutting down", "reason", context.Cause(ctx))
			return false, nil
		case err := <-errc:
			r.log.Error("server failed, shutting down", "error", err)
			return false, err
		case <-r.o.Reloads:
			sdnotify.Notify("RELOADING=1")
			if err := r.st.reload(); err != nil {
				r.log.Error("configuration reload failed; the running configuration stays", "error", err)
			}
			sdnotify.Notify("READY=1")
		case <-r.o.Upgrades:
			if r.handOver() {
				return true, nil
			}
		}
	}
}

// handOver starts the new ferry of an upgrade; true once it serves.
func (r *runner) handOver() bool {
	pid, err := upgrade(r.front, r.ms, r.log)
	if err != nil {
		r.log.Error("upgrade failed; this ferry keeps serving", "error", err)
		return false
	}
	r.log.Info("upgrade: the new ferry serves; this one drains and exits", "new_pid", pid)
	// The new ferry answers the probes on the same socket from now on;
	// this one would only say it is draining.
	r.ms.stop()
	// The new ferry listens on the same sockets: stop accepting here,
	// finish what is in flight, stop this ferry's apps.
	r.log.Info("handing over to the new ferry")
	return true
}

// shutdown takes the core down in three steps, each bounded
// (docs/deploying.md has the arithmetic): serve on for --drain-delay, then
// stop accepting and let requests in flight finish within
// --shutdown-timeout, then stop the apps within --app-stop-timeout.
func (r *runner) shutdown(ctx context.Context, upgraded bool) {
	// Load balancers asking /ready learn at once that we are leaving.
	r.probes.StartDrain()
	sdnotify.Notify("STOPPING=1")
	r.drainDelay(drainDelay(ctx, r.cfg, upgraded))
	r.stopFront()
	r.stopApps()
	r.log.Info("ferry stopped")
}

// drainDelay serves on while load balancers notice /ready's 503; a second
// stop signal ends it early.
func (r *runner) drainDelay(delay time.Duration) {
	if delay <= 0 {
		return
	}
	r.handler.CloseConnections()
	r.log.Info("draining: /ready answers 503; serving on while load balancers notice", "drain_delay", delay)
	t := time.NewTimer(delay)
	defer t.Stop()
	select {
	case <-t.C:
	case <-r.o.Hurry:
		r.log.Info("second stop signal: ending the drain delay")
	}
}

// stopFront stops accepting and lets requests in flight finish within
// --shutdown-timeout.
func (r *runner) stopFront() {
	r.log.Info("stopping: no new connections; requests in flight finish", "shutdown_timeout", r.cfg.ShutdownTimeout)
	drain, cancel := context.WithTimeout(context.Background(), r.cfg.ShutdownTimeout)
	defer cancel()
	if err := r.front.Shutdown(drain); err != nil || drain.Err() != nil {
		r.log.Warn("in-flight requests did not finish in time; their connections are closed", "error", errors.Join(err, drain.Err()))
	}
}

// stopApps stops every app's processes, and then the admin API, within
// --app-stop-timeout.
func (r *runner) stopApps() {
	stop, cancel := context.WithTimeout(context.Background(), r.cfg.AppStopTimeout)
	defer cancel()
	var wg sync.WaitGroup
	for _, a := range r.st.current() {
		wg.Go(func() { a.group.Close(stop) })
	}
	wg.Wait()
	r.adm.Shutdown(stop)
}
