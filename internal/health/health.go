// Package health owns Ferry's two answers to the platforms it runs under:
// liveness (GET /health: the core still works, so do not restart it) and
// readiness (GET /ready: send it traffic). Both are served on the admin
// socket and on the --metrics-address TCP listener, where load balancers
// and Kubernetes probes reach them. The decision per app is a pure function
// of the pool's status (AppReady); this package reads the pools, never
// changes them.
package health

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/ferry-server/ferry/internal/pool"
)

// DefaultTimeout bounds how long a probe waits for the pools' status. A
// pool's lock is only ever held briefly; one held longer means the core is
// stuck. It is below Kubernetes' default probe timeout (1 s), so a stuck
// core answers 503 rather than not at all.
const DefaultTimeout = 800 * time.Millisecond

// Checker answers the probes. The zero value is not usable: use New.
type Checker struct {
	apps      func() []*pool.Group
	version   string
	started   time.Time
	timeout   time.Duration
	listening atomic.Bool
	draining  atomic.Bool
	// reads is served by one goroutine that reads the pools' status: a
	// pool stuck on its lock stops that goroutine only, and every probe
	// after it times out, without piling up goroutines.
	reads chan chan []pool.GroupStatus
	stop  context.CancelFunc
}

// New returns a checker of the groups apps returns (read at each probe,
// so that a reload's new apps count). timeout ≤ 0 means DefaultTimeout.
// Close ends its goroutine.
func New(apps func() []*pool.Group, version string, timeout time.Duration) *Checker {
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	ctx, cancel := context.WithCancel(context.Background())
	c := &Checker{apps: apps, version: version, started: time.Now(), timeout: timeout,
		reads: make(chan chan []pool.GroupStatus), stop: cancel}
	go c.reader(ctx)
	return c
}

func (c *Checker) reader(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case reply := <-c.reads:
			var out []pool.GroupStatus
			for _, g := range c.apps() {
				out = append(out, g.Status())
			}
			reply <- out // buffered: an abandoned probe does not block us
		}
	}
}

// Close stops the checker's goroutine.
func (c *Checker) Close() { c.stop() }

// SetListening records that the front accepts connections.
func (c *Checker) SetListening() { c.listening.Store(true) }

// StartDrain turns readiness off for good: the core is leaving. It is the
// first thing shutdown does, before anything stops accepting.
func (c *Checker) StartDrain() { c.draining.Store(true) }

// Draining reports whether StartDrain was called.
func (c *Checker) Draining() bool { return c.draining.Load() }

var errStuck = errors.New("the pools did not answer in time")

// statuses reads every pool's status within the checker's timeout.
func (c *Checker) statuses(ctx context.Context) ([]pool.GroupStatus, error) {
	t := time.NewTimer(c.timeout)
	defer t.Stop()
	reply := make(chan []pool.GroupStatus, 1)
	select {
	case c.reads <- reply:
	case <-t.C:
		return nil, errStuck
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	select {
	case st := <-reply:
		return st, nil
	case <-t.C:
		return nil, errStuck
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// Liveness is the answer of GET /health.
type Liveness struct {
	Live     bool    `json:"live"`
	Ready    bool    `json:"ready"`
	Draining bool    `json:"draining"`
	Version  string  `json:"version"`
	Uptime   float64 `json:"uptime_seconds"`
	Error    string  `json:"error,omitempty"`
}

// Readiness is the answer of GET /ready.
type Readiness struct {
	Ready     bool       `json:"ready"`
	Listening bool       `json:"listening"`
	Draining  bool       `json:"draining"`
	Apps      []AppState `json:"apps"`
	Error     string     `json:"error,omitempty"`
}

// AppState is one app's part of readiness.
type AppState struct {
	Name    string `json:"name"`
	Ready   bool   `json:"ready"`
	Reason  string `json:"reason"`
	Serving int    `json:"serving_processes"`
	Error   string `json:"last_spawn_error,omitempty"`
}

// Reasons an app is or is not ready.
const (
	ReasonServing  = "serving"        // a process takes requests
	ReasonIdle     = "idle"           // none runs, none is needed; one spawns on demand
	ReasonSpawning = "spawning"       // replacing processes (restart, crash); requests wait briefly
	ReasonStarting = "starting"       // its first process is not up yet
	ReasonFailing  = "spawn_failing"  // no process, and the last spawn failed
	ReasonClosing  = "shutting_down"  // the pool is closed
	ReasonUnknown  = "not_responding" // its status could not be read
)

// AppReady decides whether one app can serve: it has a process taking
// requests, or it has none yet its spawns are not failing. Before its
// first process is up (with --min-instances ≥ 1) it is not ready, so a
// host that starts, or comes back, joins its balancer only once its app
// answers rather than queueing the balancer's traffic behind a boot.
func AppReady(st pool.GroupStatus) AppState {
	s := AppState{Name: st.Name, Error: st.LastError}
	for _, p := range st.Processes {
		if p.State == "serving" || p.State == "out_of_band" {
			s.Serving++
		}
	}
	switch {
	case st.ShuttingOff:
		s.Reason = ReasonClosing
	case s.Serving > 0:
		s.Ready, s.Reason = true, ReasonServing
	case st.LastError != "":
		s.Reason = ReasonFailing
	case st.Min > 0 && st.Stats.Spawned == 0:
		s.Reason = ReasonStarting
	case st.Spawning > 0 || st.Restarting || st.Queued > 0:
		s.Ready, s.Reason = true, ReasonSpawning
	default:
		s.Ready, s.Reason = true, ReasonIdle
	}
	return s
}

// Ready decides readiness of the whole core from its parts: listening, not
// draining, and every app ready.
func Ready(listening, draining bool, apps []AppState) bool {
	if !listening || draining {
		return false
	}
	for _, a := range apps {
		if !a.Ready {
			return false
		}
	}
	return true
}

// Readiness reads the pools and decides.
func (c *Checker) Readiness(ctx context.Context) Readiness {
	r := Readiness{Listening: c.listening.Load(), Draining: c.draining.Load(), Apps: []AppState{}}
	if r.Draining {
		// No need to read the pools: the answer is no, at once.
		return r
	}
	st, err := c.statuses(ctx)
	if err != nil {
		r.Error = err.Error()
		return r
	}
	for _, s := range st {
		r.Apps = append(r.Apps, AppReady(s))
	}
	r.Ready = Ready(r.Listening, r.Draining, r.Apps)
	return r
}

// Liveness reports whether the core works: its pools answer. Draining is
// alive: a platform must not kill a core that is finishing its requests.
func (c *Checker) Liveness(ctx context.Context) Liveness {
	l := Liveness{Draining: c.draining.Load(), Version: c.version, Uptime: time.Since(c.started).Seconds()}
	st, err := c.statuses(ctx)
	if err != nil {
		l.Error = err.Error()
		return l
	}
	l.Live = true
	apps := make([]AppState, len(st))
	for i, s := range st {
		apps[i] = AppReady(s)
	}
	l.Ready = Ready(c.listening.Load(), l.Draining, apps)
	return l
}

// Handler serves GET (and HEAD) /health and /ready: 200 when live or
// ready, 503 when not, with a JSON body either way.
func (c *Checker) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /health", http.HandlerFunc(c.serveHealth))
	mux.Handle("GET /ready", http.HandlerFunc(c.serveReady))
	return mux
}

func (c *Checker) serveHealth(w http.ResponseWriter, r *http.Request) {
	l := c.Liveness(r.Context())
	writeJSON(w, l.Live, l)
}

func (c *Checker) serveReady(w http.ResponseWriter, r *http.Request) {
	rd := c.Readiness(r.Context())
	writeJSON(w, rd.Ready, rd)
}

func writeJSON(w http.ResponseWriter, ok bool, v any) {
	status := http.StatusOK
	if !ok {
		status = http.StatusServiceUnavailable
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	// A probe's answer is about this instant.
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}
