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
	"log/slog"
	"net/http"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/ferry-server/ferry/internal/admin"
	"github.com/ferry-server/ferry/internal/certs"
	"github.com/ferry-server/ferry/internal/config"
	"github.com/ferry-server/ferry/internal/health"
	"github.com/ferry-server/ferry/internal/hooks"
	"github.com/ferry-server/ferry/internal/instance"
	"github.com/ferry-server/ferry/internal/logs"
	"github.com/ferry-server/ferry/internal/metrics"
	"github.com/ferry-server/ferry/internal/pool"
	"github.com/ferry-server/ferry/internal/procstat"
	"github.com/ferry-server/ferry/internal/server"
)

// logApp logs what the core serves of an app.
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
