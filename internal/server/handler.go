// Package server owns the HTTP front: the request path from an accepted
// request to a response (static files, body buffering, checkout, forwarding),
// error pages, the access log, and the http.Server with its timeouts and
// graceful shutdown. It does not spawn or choose processes itself.
package server

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ferry-server/ferry/internal/metrics"
	"github.com/ferry-server/ferry/internal/pool"
	"github.com/ferry-server/ferry/internal/proxy"
	"github.com/ferry-server/ferry/internal/restartfile"
	"github.com/ferry-server/ferry/internal/static"
	"github.com/ferry-server/ferry/internal/turbocache"
)

// App is one app as the request path sees it.
type App struct {
	Name string
	// ServerNames are the hosts routed to it (exact or "*.suffix"); none:
	// every host.
	ServerNames []string
	// BaseURI is the path prefix it is mounted at ("" for the root).
	BaseURI string
	Group   *pool.Group
	Static  *static.Handler // nil: no public/ directory
	// Transport forwards to the app's processes.
	Transport *proxy.Transport
	// Restarts watches tmp/restart.txt; nil: not watched.
	Restarts *restartfile.Watcher
	// RollingRestarts makes restart.txt restarts rolling.
	RollingRestarts bool
	// MaxRequestTime kills the process of a request that runs longer, and
	// answers 504. 0 = no limit.
	MaxRequestTime time.Duration
	// Metrics records the app's requests; nil records nothing.
	Metrics *metrics.AppMetrics
	// Cache is the app's response cache; nil: no caching.
	Cache *turbocache.Cache
	// Development shows error details (spawn output, tracebacks) to clients.
	Development bool
}

// Options tune the request path.
type Options struct {
	// RequestBufferMemory is how much of a request body stays in memory
	// before spilling to BufferDir.
	RequestBufferMemory int64
	// MaxBodySize bounds request bodies (413 past it); 0 = unlimited.
	MaxBodySize int64
	// BufferDir holds spill files of request and response bodies.
	BufferDir string
	// Response bounds response buffering.
	Response proxy.ResponseOptions
}

// Handler is the request path.
type Handler struct {
	router   atomic.Pointer[router]
	opts     Options
	log      *slog.Logger
	access   *slog.Logger
	inflight inflightSet
}

// Requests lists the requests in flight, oldest first.
func (h *Handler) Requests() []RequestInfo { return h.inflight.list() }

var _ http.Handler = (*Handler)(nil)

// NewHandler returns the request path for apps. access receives one line
// per request.
func NewHandler(apps []*App, opts Options, log, access *slog.Logger) *Handler {
	h := &Handler{opts: opts, log: log, access: access}
	h.router.Store(newRouter(apps))
	return h
}

// SetApps replaces the apps requests are routed to (a configuration
// reload); requests already routed finish with the app they got.
func (h *Handler) SetApps(apps []*App) { h.router.Store(newRouter(apps)) }

// ServeHTTP is the request path, one straight line: sanitise, static file,
// buffer the body, check out a process, forward, stream the response back.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	proxy.SanitizeRequest(r.Header)
	app := h.router.Load().route(r)
	if app == nil {
		status := writeError(w, errNoApp, false)
		h.logAccess(r, nil, status, 0, 0, start)
		return
	}
	req := &inflight{app: app.Name, method: r.Method, path: r.URL.RequestURI(), client: r.RemoteAddr, start: start}
	req.set(stateReceiving)
	defer h.inflight.add(req)()

	if app.Static != nil && (r.Method == http.MethodGet || r.Method == http.MethodHead) {
		sw := getStatusWriter(w)
		served := app.Static.Serve(sw, withoutBase(r, app.BaseURI))
		status, bytes := sw.status, sw.bytes
		putStatusWriter(sw)
		if served {
			h.logAccess(r, app, status, bytes, 0, start)
			return
		}
	}

	var fill *turbocache.Fill
	if app.Cache != nil {
		sw := getStatusWriter(w)
		served, f := app.Cache.Lookup(sw, r)
		status, bytes := sw.status, sw.bytes
		putStatusWriter(sw)
		if served {
			app.Metrics.CacheHit()
			h.logAccess(r, app, status, bytes, 0, start)
			return
		}
		if f != nil {
			app.Metrics.CacheMiss()
			fill = f
			defer fill.Done()
		}
	}

	var body *proxy.Body
	if r.ContentLength != 0 && r.Body != nil && r.Body != http.NoBody {
		var err error
		body, err = proxy.BufferBody(r.Body, r.ContentLength, h.opts.RequestBufferMemory, h.opts.MaxBodySize, h.opts.BufferDir)
		if err != nil {
			h.fail(w, r, app, err, 0, start)
			return
		}
		defer body.Close()
	}

	if app.Restarts != nil {
		h.checkRestart(r, app)
	}

	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	for attempt := 0; ; attempt++ {
		if retry := h.forward(w, r, req, app, body, fill, scheme, attempt, start); !retry {
			return
		}
	}
}

// forward sends the request to one process and the response to the client.
// It returns true when the request may be sent to another process.
func (h *Handler) forward(w http.ResponseWriter, r *http.Request, req *inflight, app *App, body *proxy.Body, fill *turbocache.Fill, scheme string, attempt int, start time.Time) (retry bool) {
	req.set(stateQueued)
	queued := time.Now()
	sess, err := app.Group.Checkout(r.Context())
	app.Metrics.QueueWait(time.Since(queued))
	if err != nil {
		h.fail(w, r, app, err, 0, start)
		return false
	}
	pid := sess.PID()
	req.pid.Store(int64(pid))
	req.set(stateApp)
	var timedOut atomic.Bool
	if app.MaxRequestTime > 0 {
		t := time.AfterFunc(app.MaxRequestTime, func() {
			timedOut.Store(true)
			h.log.LogAttrs(context.Background(), slog.LevelError, "request ran longer than --max-request-time; killing its process",
				slog.String("method", r.Method), slog.String("path", r.URL.RequestURI()),
				slog.Duration("duration", time.Since(start)), slog.Int("pid", pid))
			sess.Abort("a request ran longer than --max-request-time")
		})
		defer t.Stop()
	}
	x, err := app.Transport.RoundTrip(sess, r, body, scheme)
	if err != nil {
		if timedOut.Load() {
			err = ErrRequestTimeout
		} else if attempt == 0 && proxy.Retryable(err) {
			h.log.LogAttrs(r.Context(), slog.LevelDebug, "retrying request on another process",
				slog.Int("pid", pid), slog.String("error", err.Error()))
			return true
		}
		h.fail(w, r, app, err, pid, start)
		return false
	}
	if proxy.TakeOOBRequest(x.Resp) {
		sess.OutOfBandWork()
	}
	if app.Cache != nil {
		app.Cache.Invalidate(r, x.Resp.StatusCode, x.Resp.Header) // unsafe methods only
	}
	var capture *proxy.Capture
	if fill != nil {
		if fill.Storable(x.Resp.StatusCode, x.Resp.Header) {
			status, header := x.Resp.StatusCode, x.Resp.Header
			capture = &proxy.Capture{Limit: fill.Limit(), Done: func(body []byte) {
				fill.Store(status, header, body)
				app.Metrics.CacheStore()
			}}
		} else {
			fill.Done() // requests waiting for this one go to the app now
		}
	}
	if x.Resp.StatusCode == http.StatusSwitchingProtocols {
		// WebSocket and friends: a tunnel for as long as both sides want.
		res := x.Tunnel(w)
		if res.AppErr != nil {
			h.log.LogAttrs(r.Context(), slog.LevelWarn, "upgrade failed",
				slog.Int("pid", pid), slog.String("error", res.AppErr.Error()))
		}
		h.logAccess(r, app, res.Status, res.Bytes, pid, start)
		return false
	}
	req.set(stateSending)
	res := x.WriteTo(w, h.opts.Response, capture)
	if res.AppErr != nil {
		appErr := error(&proxy.RoundTripError{Err: res.AppErr})
		if timedOut.Load() {
			appErr = ErrRequestTimeout
		}
		h.log.LogAttrs(r.Context(), slog.LevelWarn, "app response broke off",
			slog.Int("pid", pid), slog.String("path", r.URL.Path), slog.String("error", res.AppErr.Error()))
		if !res.Wrote {
			h.fail(w, r, app, appErr, pid, start)
			return false
		}
		h.logAccess(r, app, res.Status, res.Bytes, pid, start)
		// The client must see the response as truncated.
		panic(http.ErrAbortHandler)
	}
	h.logAccess(r, app, res.Status, res.Bytes, pid, start)
	return false
}

// checkRestart restarts the app when tmp/restart.txt was touched (the
// restart proceeds while this request waits in the queue, like any), or
// before this request while tmp/always_restart.txt exists.
func (h *Handler) checkRestart(r *http.Request, app *App) {
	switch app.Restarts.Check() {
	case restartfile.Once:
		h.log.Info("restart.txt touched, restarting", "app", app.Name, "rolling", app.RollingRestarts)
		app.Group.Restart(app.RollingRestarts)
	case restartfile.Always:
		if rs, _ := app.Group.Restart(false); rs != nil {
			rs.Wait(r.Context())
		}
	}
}

// fail answers with the status and page for err (or, when the client is
// gone, nothing) and logs it.
func (h *Handler) fail(w http.ResponseWriter, r *http.Request, app *App, err error, pid int, start time.Time) {
	if errors.Is(err, context.Canceled) && r.Context().Err() != nil {
		h.logAccess(r, app, StatusClientClosed, 0, pid, start)
		return
	}
	status := writeError(w, err, app.Development)
	if status >= 500 {
		h.log.LogAttrs(r.Context(), slog.LevelWarn, "request failed",
			slog.String("method", r.Method), slog.String("path", r.URL.Path),
			slog.Int("status", status), slog.Int("pid", pid), slog.String("error", err.Error()))
	}
	h.logAccess(r, app, status, 0, pid, start)
}

func (h *Handler) logAccess(r *http.Request, app *App, status int, bytes int64, pid int, start time.Time) {
	dur := time.Since(start)
	if app != nil {
		app.Metrics.Request(status, dur, max(r.ContentLength, 0), bytes)
	}
	if h.access == nil {
		return
	}
	name := ""
	if app != nil {
		name = app.Name
	}
	h.access.LogAttrs(r.Context(), slog.LevelInfo, "request",
		slog.String("app", name),
		slog.String("client", r.RemoteAddr),
		slog.String("method", r.Method),
		slog.String("path", r.URL.RequestURI()),
		slog.Int("status", status),
		slog.Int64("bytes", bytes),
		slog.Duration("duration", dur),
		slog.Int("pid", pid),
	)
}

var statusWriters = sync.Pool{New: func() any { return new(statusWriter) }}

func getStatusWriter(w http.ResponseWriter) *statusWriter {
	sw := statusWriters.Get().(*statusWriter)
	*sw = statusWriter{ResponseWriter: w}
	return sw
}

func putStatusWriter(sw *statusWriter) {
	sw.ResponseWriter = nil
	statusWriters.Put(sw)
}

// statusWriter records what a static or cached response was, for the access
// log, and keeps sendfile by passing ReadFrom through.
type statusWriter struct {
	http.ResponseWriter
	status int
	bytes  int64
}

func (s *statusWriter) WriteHeader(code int) {
	if s.status == 0 {
		s.status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusWriter) Write(p []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	n, err := s.ResponseWriter.Write(p)
	s.bytes += int64(n)
	return n, err
}

func (s *statusWriter) ReadFrom(r io.Reader) (int64, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	n, err := io.Copy(s.ResponseWriter, r)
	s.bytes += n
	return n, err
}

func (s *statusWriter) Unwrap() http.ResponseWriter { return s.ResponseWriter }
