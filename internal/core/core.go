// Package core is the composition root of `ferry start`: it turns a Config
// into a running instance (instance directory, per-app spawner, pool,
// cache and metrics, the HTTP front, the admin API), runs it until its
// context ends, and shuts it down in order. It owns no request or process
// logic of its own.
package core

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/ferry-server/ferry/internal/hooks"

	"github.com/ferry-server/ferry/internal/admin"
	"github.com/ferry-server/ferry/internal/certs"
	"github.com/ferry-server/ferry/internal/config"
	"github.com/ferry-server/ferry/internal/dashboard"
	"github.com/ferry-server/ferry/internal/health"
	"github.com/ferry-server/ferry/internal/instance"
	"github.com/ferry-server/ferry/internal/logs"
	"github.com/ferry-server/ferry/internal/metrics"
	"github.com/ferry-server/ferry/internal/pool"
	"github.com/ferry-server/ferry/internal/procstat"
	"github.com/ferry-server/ferry/internal/sdnotify"
	"github.com/ferry-server/ferry/internal/server"
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
func Run(ctx context.Context, o Options) (err error) {
	cfg, out, version := o.Config, o.Logs, o.Version
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
		if err := instance.WritePidFile(cfg.PidFile, os.Getpid()); err != nil {
			return fmt.Errorf("--pid-file: cannot write %s: %w", cfg.PidFile, unwrapPath(err))
		}
		// Removed on exit unless a new ferry (an upgrade) wrote its own.
		defer instance.RemovePidFile(cfg.PidFile, os.Getpid())
	}

	if cfg.CoreFileDescriptorUlimit > 0 {
		lim := syscall.Rlimit{Cur: uint64(cfg.CoreFileDescriptorUlimit), Max: uint64(cfg.CoreFileDescriptorUlimit)}
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
			return fmt.Errorf("--core-file-descriptor-ulimit %d: %w", cfg.CoreFileDescriptorUlimit, err)
		}
	}
	hk, err := hooks.New(cfg.Hooks, 0, 0, log)
	if err != nil {
		return err
	}
	defer hk.Wait()

	st := &state{cfg: cfg, inst: inst, out: out, reg: metrics.New(), reloadFn: o.Reload, hooks: hk}
	defer st.closeAll()
	for _, ac := range cfg.Apps {
		a, err := buildApp(cfg, ac, inst, out, st.reg, hk)
		if err != nil {
			return fmt.Errorf("app %s: %w", ac.Name, err)
		}
		st.apps = append(st.apps, a)
	}
	st.reg.RegisterPoolCollector(poolSnapshots(st.current))
	probes := health.New(st.groups, version, 0)
	defer probes.Close()

	bufferDir := inst.BufferDir()
	if cfg.DataBufferDir != "" {
		bufferDir = cfg.DataBufferDir
	}
	cm, err := newCertManager(cfg, log)
	if err != nil {
		return err
	}
	if cm != nil {
		cm.LoadStored(ctx)
	}
	tracer, stopTracer, err := newTracer(ctx, cfg, version, log)
	if err != nil {
		return err
	}
	defer stopTracer() // after the front's shutdown: the last requests' spans go out
	handler, front, closeFront, err := newFront(cfg, frontApps(st.apps), bufferDir, out, cm, tracer)
	if err != nil {
		return err
	}
	defer closeFront()
	st.handler = handler
	st.reg.RegisterFront(front.LeanStats)
	if cm != nil {
		defer cm.Stop()
		if err := startCerts(ctx, cm, front, st.reg, cfg, log); err != nil {
			return err
		}
	}
	src := &source{
		info: admin.Info{Version: version, PID: os.Getpid(), StartedAt: started,
			Listen: front.URLs(), Instance: inst.Path(), Config: configMap(cfg)},
		st: st, metrics: st.reg, logs: out, probes: probes, certs: cm,
	}
	adm, err := admin.Listen(inst.Path(), src, log)
	if err != nil {
		return err
	}

	var ms *metricsServer
	if cfg.MetricsAddress == "" {
		// Handed over by an upgrade, but no longer asked for.
		if ln, _ := inheritedMetrics(); ln != nil {
			ln.Close()
		}
	} else {
		var dash http.Handler
		if !cfg.DashboardOff {
			d := dashboard.New(dashboard.Options{Source: src, Auth: adm, Actions: adm.Handler(),
				Refresh: cfg.DashboardRefresh, MaxViewers: cfg.DashboardMaxViewers, Log: log})
			go d.Run(ctx)
			dash = d.Handler()
		}
		ms, err = serveMetrics(cfg.MetricsAddress, st.reg, probes.Handler(), dash, log)
		if err != nil {
			return err
		}
		defer ms.stop()
	}
	for _, a := range st.apps {
		a.group.Start()
	}
	errc := make(chan error, 2)
	probes.SetListening()
	go func() { errc <- front.Serve() }()
	go func() { errc <- adm.Serve() }()
	for _, a := range cfg.Apps {
		logApp(log, a)
	}
	_, upgrading := os.LookupEnv(supervisorNotify)
	if !upgrading {
		ms.start()
	} else {
		// The old ferry stops accepting, and leaves the probes to us, when
		// we say READY: say it once our apps can serve, so that neither
		// requests nor a balancer's checks meet an app still booting. An
		// app that cannot start ends this upgrade; the old ferry serves on.
		if err := waitAppsReady(ctx, probes, upgradeReadyTimeout(cfg)); err != nil {
			return fmt.Errorf("upgrade: %w", err)
		}
		ms.start()
	}
	// A systemd Type=notify unit, or `ferry start --daemonize`, waits for this.
	ready := "READY=1\nSTATUS=serving " + strconv.Itoa(len(st.apps)) + " apps on " + front.Addr().String() + "\nMAINPID=" + strconv.Itoa(os.Getpid())
	sdnotify.Notify(ready)
	if sup := os.Getenv(supervisorNotify); sup != "" {
		// Started by an upgrade under systemd: we are its main process now.
		sdnotify.NotifySocket(sup, ready)
		os.Setenv("NOTIFY_SOCKET", sup)
		os.Unsetenv(supervisorNotify)
	}
	log.Info("ferry started", "version", version, "listen", front.Addr().String(), "apps", len(st.apps),
		"app_type", cfg.Apps[0].AppType, "spawn_method", cfg.Apps[0].SpawnMethod, "instance", inst.Path())

	upgraded := false
wait:
	for {
		select {
		case <-ctx.Done():
			log.Info("shutting down", "reason", context.Cause(ctx))
			break wait
		case err = <-errc:
			log.Error("server failed, shutting down", "error", err)
			break wait
		case <-o.Reloads:
			sdnotify.Notify("RELOADING=1")
			if rerr := st.reload(); rerr != nil {
				log.Error("configuration reload failed; the running configuration stays", "error", rerr)
			}
			sdnotify.Notify("READY=1")
		case <-o.Upgrades:
			pid, uerr := upgrade(front, ms, log)
			if uerr != nil {
				log.Error("upgrade failed; this ferry keeps serving", "error", uerr)
				continue
			}
			log.Info("upgrade: the new ferry serves; this one drains and exits", "new_pid", pid)
			// The new ferry answers the probes on the same socket from
			// now on; this one would only say it is draining.
			ms.stop()
			upgraded = true
			break wait
		}
	}

	if upgraded {
		// The new ferry listens on the same sockets: stop accepting here,
		// finish what is in flight, stop this ferry's apps.
		log.Info("handing over to the new ferry")
	}
	// Load balancers asking /ready learn at once that we are leaving. The
	// three steps are each bounded (docs/deploying.md has the arithmetic):
	// serve on for --drain-delay, then stop accepting and let requests in
	// flight finish within --shutdown-timeout, then stop the apps within
	// --app-stop-timeout.
	probes.StartDrain()
	sdnotify.Notify("STOPPING=1")
	if delay := drainDelay(ctx, cfg, upgraded); delay > 0 {
		handler.CloseConnections()
		log.Info("draining: /ready answers 503; serving on while load balancers notice", "drain_delay", delay)
		t := time.NewTimer(delay)
		select {
		case <-t.C:
		case <-o.Hurry:
			log.Info("second stop signal: ending the drain delay")
		}
		t.Stop()
	}
	log.Info("stopping: no new connections; requests in flight finish", "shutdown_timeout", cfg.ShutdownTimeout)
	drain, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancel()
	if serr := front.Shutdown(drain); serr != nil || drain.Err() != nil {
		log.Warn("in-flight requests did not finish in time; their connections are closed", "error", errors.Join(serr, drain.Err()))
	}
	stop, cancelStop := context.WithTimeout(context.Background(), cfg.AppStopTimeout)
	defer cancelStop()
	var wg sync.WaitGroup
	for _, a := range st.current() {
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

func logApp(log *slog.Logger, a config.App) {
	log.Info("serving app", "app", a.Name, "app_type", a.AppType, "spawn_method", a.SpawnMethod,
		"app_root", a.Root, "environment", a.Environment, "server_names", a.ServerNames, "base_uri", a.BaseURI)
}

// state is the running set of apps, which a reload changes.
type state struct {
	cfg      *config.Config
	inst     *instance.Dir
	out      *logs.Outputs
	reg      *metrics.Metrics
	handler  *server.Handler
	reloadFn func() (*config.Config, error)
	hooks    *hooks.Runner

	mu   sync.Mutex
	apps []*app
}

// groups are the pools of the current apps, for the probes.
func (st *state) groups() []*pool.Group {
	var out []*pool.Group
	for _, a := range st.current() {
		out = append(out, a.group)
	}
	return out
}

func (st *state) current() []*app {
	st.mu.Lock()
	defer st.mu.Unlock()
	return slices.Clone(st.apps)
}

func frontApps(apps []*app) []*server.App {
	out := make([]*server.App, len(apps))
	for i, a := range apps {
		out[i] = a.front
	}
	return out
}

func (st *state) closeAll() {
	for _, a := range st.current() {
		a.close()
	}
}

// drainDelay is how long to serve on after readiness went off: the
// configured delay when the core was told to stop (SIGTERM, or its context
// ended otherwise); none for Ctrl-C, an upgrade (the new core already
// accepts on the same sockets) or a failed front.
func drainDelay(ctx context.Context, cfg *config.Config, upgraded bool) time.Duration {
	if upgraded || ctx.Err() == nil {
		return 0
	}
	if sig, ok := errors.AsType[StopSignal](context.Cause(ctx)); ok && sig.Signal == os.Interrupt {
		return 0
	}
	return cfg.DrainDelay
}

// source is what the admin API reports on.
type source struct {
	info    admin.Info
	st      *state
	metrics *metrics.Metrics
	logs    *logs.Outputs
	probes  *health.Checker
	certs   *certs.Manager // nil: no automatic HTTPS
}

func (s *source) Info() admin.Info {
	i := s.info
	if s.certs != nil {
		i.Certificates = s.certs.Status()
	}
	return i
}
func (s *source) Apps() []admin.App {
	var out []admin.App
	for _, a := range s.st.current() {
		out = append(out, a.admin)
	}
	return out
}
func (s *source) Requests() []admin.RequestInfo {
	return s.st.handler.Requests()
}
func (s *source) Probes() http.Handler { return s.probes.Handler() }
func (s *source) Ready() bool {
	return s.probes.Readiness(context.Background()).Ready
}
func (s *source) Metrics() http.Handler { return s.metrics.Handler() }
func (s *source) ReopenLogs() error     { return s.logs.Reopen() }
func (s *source) Reload() error         { return s.st.reload() }
func (s *source) Logs() *logs.Recent    { return s.logs.Recent }

// poolSnapshots feeds the pools' state to the metrics at scrape time.
func poolSnapshots(apps func() []*app) func() []metrics.AppSnapshot {
	var cpu procstat.Tracker
	return func() []metrics.AppSnapshot {
		var out []metrics.AppSnapshot
		for _, a := range apps() {
			st := a.group.Status()
			snap := metrics.AppSnapshot{App: st.Name, Queued: st.Queued, ProcessesByState: map[string]int{},
				MaxProcesses: st.Max, MaxQueued: a.cfg.MaxRequestQueueSize,
				RecycledMaxRequests: st.Stats.Recycled - st.Stats.RecycledMem, RecycledMemory: st.Stats.RecycledMem,
				Died: st.Stats.Died, QueueFull: st.Stats.QueueFull, QueueTimeout: st.Stats.QueueTimeout}
			for _, p := range st.Processes {
				snap.ProcessesByState[p.State]++
				if p.State == "serving" && p.Capacity > 0 && p.Sessions >= p.Capacity {
					snap.Busy++
				}
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
	// Through JSON, so that the numbers are what a client decodes.
	var m map[string]any
	json.Unmarshal(cfg.EffectiveJSON(), &m)
	return m
}
