package server

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"path"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ferry-server/ferry/internal/compress"
	"github.com/ferry-server/ferry/internal/metrics"
	"github.com/ferry-server/ferry/internal/pool"
	"github.com/ferry-server/ferry/internal/proxy"
	"github.com/ferry-server/ferry/internal/restartfile"
	"github.com/ferry-server/ferry/internal/static"
	"github.com/ferry-server/ferry/internal/tracing"
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
	// ErrorPage, if set, is the body of the error pages Ferry generates
	// (--custom-error-page).
	ErrorPage []byte
	// Sticky, if set, routes clients carrying its cookie to the process
	// that served them before (--sticky-sessions).
	Sticky *Sticky
	// UnlimitedPaths are path prefixes whose requests ignore the process's
	// concurrency limit and never queue (--unlimited-concurrency-path).
	UnlimitedPaths []string
	// AbortTunnels ends a process's WebSockets when it starts to leave
	// (--abort-websockets-on-process-shutdown).
	AbortTunnels bool
	// OnMaxRequestTime, if set, is told of a process killed for
	// --max-request-time (for hooks).
	OnMaxRequestTime func(pid int, method, path string)

	noPre preAbsent // static files without a precompressed variant
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
	// BodyTimeout drops a client that sends no request body byte for this
	// long (408). 0 = no limit.
	BodyTimeout time.Duration
	// WriteTimeout drops a client that takes no response byte for this
	// long; the app's response is still read to its end. 0 = no limit.
	WriteTimeout time.Duration
	// MaxURILength bounds the request target (414 past it). 0 = no limit.
	MaxURILength int
	// Trusted are the proxies whose X-Forwarded-For and -Proto are
	// believed; nil: none.
	Trusted *Trusted
	// Compression compresses what it allows (zstd, brotli, gzip); nil:
	// nothing is compressed.
	Compression *compress.Policy
	// AccessLog receives one line per request; nil: none.
	AccessLog *AccessLog
	// Tracer traces requests (OpenTelemetry); nil: tracing is off.
	Tracer *tracing.Tracer
}

// Handler is the request path.
type Handler struct {
	router   atomic.Pointer[router]
	opts     Options
	log      *slog.Logger
	inflight inflightSet
	// closeConns: every response says Connection: close (draining).
	closeConns atomic.Bool
}

var _ http.Handler = (*Handler)(nil)

// NewHandler returns the request path for apps.
func NewHandler(apps []*App, opts Options, log *slog.Logger) *Handler {
	h := &Handler{opts: opts, log: log}
	h.router.Store(newRouter(apps))
	return h
}

// SetApps replaces the apps requests are routed to (a configuration
// reload); requests already routed finish with the app they got.
func (h *Handler) SetApps(apps []*App) { h.router.Store(newRouter(apps)) }

// CloseConnections makes every response from now on close its connection
// (HTTP/2: a graceful GOAWAY). While the core drains, a client's next
// request then opens a new connection, which the balancer or Kubernetes
// Service, told by readiness, sends to another host; a kept-alive one
// would come back here. Upgrades are left alone.
func (h *Handler) CloseConnections() { h.closeConns.Store(true) }

// request is the request path's state of one request, pooled.
type request struct {
	w     respWriter
	body  bodyReader
	info  inflight
	start time.Time
	app   *App
	// status and bytes, when set, are logged instead of what w wrote: 499
	// for a client gone before any answer, a tunnel's figures.
	status int
	bytes  int64
	pid    int
	scheme string
	reason string // why the front refused the request
	// abort: the app's response broke off after its head was sent; the
	// client must see the response truncated.
	abort bool
	done  bool // the request path returned normally
	// fill: the turbocache's, when the response may be stored.
	fill  *turbocache.Fill
	trace tracing.Request
	// ids makes request ids; kept when the rest is reset.
	ids idSource
}

var requests = sync.Pool{New: func() any { return new(request) }}

// ServeHTTP is the request path, one straight line: who the client is,
// refuse what is malformed, route, static file, cache, buffer the body,
// check out a process, forward, stream the response back, log.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rq := h.begin(w, r)
	defer h.end(rq, r)
	h.serve(rq, r)
	rq.done = true
}

// begin sets up the per-request state: the response writer with its
// deadline, request id and compression.
func (h *Handler) begin(w http.ResponseWriter, r *http.Request) *request {
	rq := requests.Get().(*request)
	rq.start = time.Now()
	rq.w = respWriter{w: w, policy: h.opts.Compression, head: r.Method == http.MethodHead, h2: r.ProtoMajor == 2}
	rq.w.sink.rw = &rq.w
	if h.opts.WriteTimeout > 0 {
		if dl, ok := w.(interface{ SetWriteDeadline(time.Time) error }); ok {
			rq.w.dl, rq.w.timeout = dl, h.opts.WriteTimeout
		}
	}
	rq.w.ae = r.Header["Accept-Encoding"]
	rq.w.coding = rq.w.policy.Negotiate(rq.w.ae)
	if h.closeConns.Load() && len(r.Header["Upgrade"]) == 0 {
		w.Header()["Connection"] = []string{"close"}
	}
	return rq
}

// end finishes the response (the gzip trailer), logs it and recycles the
// state; an aborted response is then aborted for net/http too.
func (h *Handler) end(rq *request, r *http.Request) {
	rq.w.finish(rq.done && !rq.abort)
	h.logAccess(rq, r)
	abort := rq.abort && rq.done
	*rq = request{ids: rq.ids}
	requests.Put(rq)
	if abort {
		panic(http.ErrAbortHandler) // the client must see the response as truncated
	}
}

func (h *Handler) serve(rq *request, r *http.Request) {
	c := connFrom(r)
	if c != nil {
		c.served.Add(1)
	}
	rq.w.id = requestID(r, &rq.ids)
	proxy.SanitizeRequest(r.Header)
	if h.opts.Tracer != nil { // before client(): trust is the peer's, not X-Forwarded-For's
		rq.trace = h.opts.Tracer.Start(r, rq.start, h.opts.Trusted.trusts(r.RemoteAddr))
	}
	rq.scheme = h.opts.Trusted.client(r)
	app := h.router.Load().route(r)
	rq.app = app
	if err := h.check(r, c); err != nil {
		h.fail(rq, r, err)
		return
	}
	if app == nil {
		h.fail(rq, r, errNoApp)
		return
	}
	path, query, hasQuery := requestURI(r.URL)
	rq.info = inflight{app: app.Name, method: r.Method, path: path, query: query, hasQuery: hasQuery, client: r.RemoteAddr, start: rq.start}
	rq.info.set(&stateReceiving)
	defer h.inflight.add(&rq.info).remove(&rq.info)

	if h.serveStatic(rq, r, app) {
		return
	}
	fill, served := h.lookupCache(rq, r, app)
	if served {
		return
	}
	if fill != nil {
		defer fill.Done()
	}
	body, err := h.bufferBody(rq, r)
	if err != nil {
		h.fail(rq, r, err)
		return
	}
	if body != nil {
		defer body.Close()
	}

	if app.Restarts != nil {
		h.checkRestart(r, app)
	}

	for attempt := 0; ; attempt++ {
		if retry := h.forward(rq, r, body, fill, attempt); !retry {
			return
		}
	}
}

// serveStatic serves a file under public/ to a GET or HEAD, a
// precompressed variant if the client takes one; false: there is none.
func (h *Handler) serveStatic(rq *request, r *http.Request, app *App) bool {
	if app.Static == nil || (r.Method != http.MethodGet && r.Method != http.MethodHead) {
		return false
	}
	if rq.w.coding != compress.Identity && r.Method == http.MethodGet && h.servePrecompressed(rq, r, app) {
		return true
	}
	return app.Static.Serve(&rq.w, withoutBase(r, app.BaseURI))
}

// lookupCache answers from the turbocache (served; stale within
// stale-while-revalidate also starts one background revalidation), or
// returns the fill of a miss that may be stored (its Done is the caller's).
func (h *Handler) lookupCache(rq *request, r *http.Request, app *App) (fill *turbocache.Fill, served bool) {
	if app.Cache == nil {
		return nil, false
	}
	rq.w.immutable = true // a hit writes the entry's body, which never changes
	span := rq.trace.Child("cache lookup")
	served, f := app.Cache.Lookup(&rq.w, r)
	span.Hit(served)
	rq.w.immutable = false
	if served {
		app.Metrics.CacheHit()
		if f != nil { // stale-while-revalidate: one background revalidation
			go h.revalidate(app, f.Request(r), f, rq.scheme)
		}
		return nil, true
	}
	if f != nil {
		app.Metrics.CacheMiss()
		rq.fill = f
	}
	return f, false
}

// bufferBody reads the request body whole (memory, then a spill file),
// giving the client --client-body-timeout per read; nil when there is
// none. Closing it is the caller's.
func (h *Handler) bufferBody(rq *request, r *http.Request) (*proxy.Body, error) {
	if r.ContentLength == 0 || r.Body == nil || r.Body == http.NoBody {
		return nil, nil
	}
	rq.body = bodyReader{r: r.Body}
	if h.opts.BodyTimeout > 0 {
		if dl, ok := rq.w.w.(interface{ SetReadDeadline(time.Time) error }); ok {
			rq.body.dl, rq.body.timeout = dl, h.opts.BodyTimeout
		}
	}
	body, err := proxy.BufferBody(&rq.body, r.ContentLength, h.opts.RequestBufferMemory, h.opts.MaxBodySize, h.opts.BufferDir)
	rq.body.done()
	if err != nil {
		if rq.body.err != nil {
			err = clientBodyError(rq.body.err)
		}
		return nil, err
	}
	return body, nil
}

// check refuses what net/http let through but the front does not take:
// heads a proxy in front could frame differently, CONNECT and other
// targets that are not a resource of the app, over-long targets and
// over-large declared bodies.
func (h *Handler) check(r *http.Request, c *httpConn) error {
	if c != nil {
		if why := c.scan.problem(r.ProtoMajor == 1 && r.ProtoMinor == 0); why != "" {
			return &clientError{status: http.StatusBadRequest, msg: "The request is malformed: " + why + ".", close: true}
		}
	}
	switch r.Method {
	case http.MethodConnect:
		return &clientError{status: http.StatusBadRequest, msg: "CONNECT is not supported: this is not a forward proxy.", close: true}
	case "PRI":
		return &clientError{status: http.StatusBadRequest, msg: "HTTP/2 without TLS (h2c) is not supported.", close: true}
	}
	if rt := r.RequestURI; rt != "" && rt[0] != '/' {
		switch {
		case rt == "*":
			if r.Method != http.MethodOptions {
				return &clientError{status: http.StatusBadRequest, msg: "The target * is for OPTIONS only.", close: true}
			}
		case r.URL.Scheme != "http" && r.URL.Scheme != "https":
			return &clientError{status: http.StatusBadRequest, msg: "The request target is neither a path nor an http or https URL.", close: true}
		}
	}
	if h.opts.MaxURILength > 0 && len(r.RequestURI) > h.opts.MaxURILength {
		return &clientError{status: http.StatusRequestURITooLong, msg: "The request target is longer than this server accepts."}
	}
	if h.opts.MaxBodySize > 0 && r.ContentLength > h.opts.MaxBodySize {
		return proxy.ErrBodyTooLarge
	}
	return nil
}

// servePrecompressed serves a precompressed variant of a static file,
// NAME.zst, NAME.br or NAME.gz beside it, to a client that takes its
// coding: of the variants present, the one Accept-Encoding and the
// policy's preference choose. Ranges and HEAD get the plain file. Where a
// variant is missing is remembered for a while, so that the common case
// (none) costs a map lookup per coding.
func (h *Handler) servePrecompressed(rq *request, r *http.Request, app *App) bool {
	if len(r.Header["Range"]) > 0 || h.opts.Compression == nil {
		return false
	}
	ct := mime.TypeByExtension(path.Ext(r.URL.Path))
	if ct == "" || !h.opts.Compression.TypeListed(ct) {
		return false
	}
	key := r.URL.Path
	var buf [4]compress.Coding
	offered := buf[:0]
	for _, c := range h.opts.Compression.Codings() {
		if len(offered) < len(buf) && !app.noPre.absent(key, c, rq.start) {
			offered = append(offered, c)
		}
	}
	ae := r.Header["Accept-Encoding"]
	for len(offered) > 0 {
		c := compress.Negotiate(ae, offered)
		if c == compress.Identity {
			return false
		}
		if h.serveVariant(rq, r, app, ct, c) {
			return true
		}
		app.noPre.remember(key, c, rq.start)
		offered = slices.DeleteFunc(offered, func(o compress.Coding) bool { return o == c })
	}
	return false
}

// serveVariant serves the file of r's path with c's suffix, if it exists.
func (h *Handler) serveVariant(rq *request, r *http.Request, app *App, ct string, c compress.Coding) bool {
	r2 := withoutBase(r, app.BaseURI)
	if r2 == r {
		r2 = new(http.Request)
		*r2 = *r
		u := *r.URL
		r2.URL = &u
	}
	r2.URL.Path += c.Ext()
	if r2.URL.RawPath != "" {
		r2.URL.RawPath += c.Ext()
	}
	rq.w.preStatic, rq.w.preCoding = ct, c
	served := app.Static.Serve(&rq.w, r2)
	if !served {
		rq.w.preStatic, rq.w.preCoding = "", compress.Identity
	}
	return served
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
func (h *Handler) fail(rq *request, r *http.Request, err error) {
	if errors.Is(err, errClientGone) || (errors.Is(err, context.Canceled) && r.Context().Err() != nil) {
		rq.status = StatusClientClosed
		return
	}
	if h.staleOnError(rq, err) {
		return
	}
	dev := rq.app != nil && rq.app.Development
	var custom []byte
	if rq.app != nil {
		custom = rq.app.ErrorPage
	}
	status := writeErrorPage(&rq.w, err, dev, custom)
	if status >= 500 {
		rq.trace.Fail(err)
		h.log.LogAttrs(r.Context(), slog.LevelWarn, "request failed",
			slog.String("method", r.Method), slog.String("path", r.URL.Path),
			slog.Int("status", status), slog.Int("pid", rq.pid), slog.String("error", err.Error()))
	} else if status != http.StatusNotFound {
		rq.reason = err.Error()
	}
}

func (h *Handler) logAccess(rq *request, r *http.Request) {
	dur := time.Since(rq.start)
	status, bytes := rq.status, rq.bytes
	if status == 0 {
		status, bytes = rq.w.status, rq.w.bytes
	}
	if rq.app != nil {
		rq.trace.SetApp(rq.app.Name)
		rq.app.Metrics.RequestTraced(status, dur, max(r.ContentLength, 0), bytes, rq.trace.TraceID())
	}
	rq.trace.End(status, rq.start.Add(dur))
	if h.opts.AccessLog == nil {
		return
	}
	e := accessEntry{status: status, bytes: bytes, pid: rq.pid, start: rq.start, dur: dur, reason: rq.reason}
	if rq.app != nil {
		e.app = rq.app.Name
	}
	if len(rq.w.id) > 0 {
		e.id = rq.w.id[0]
	}
	h.opts.AccessLog.log(r, &e)
}

// logRejected logs a request that net/http answered itself or that never
// arrived whole.
func (h *Handler) logRejected(rj rejection) {
	if h.opts.AccessLog != nil {
		h.opts.AccessLog.rejected(rj)
	}
}

// bodyReader reads the request body for BufferBody, giving the client
// --client-body-timeout per read, and keeps the first read error: the
// client's fault, not the spill file's.
type bodyReader struct {
	r       io.Reader
	dl      interface{ SetReadDeadline(time.Time) error }
	timeout time.Duration
	renew   time.Time
	err     error
}

func (b *bodyReader) Read(p []byte) (int, error) {
	if b.dl != nil {
		if now := time.Now(); !now.Before(b.renew) {
			b.dl.SetReadDeadline(now.Add(b.timeout))
			b.renew = now.Add(b.timeout / 16)
		}
	}
	n, err := b.r.Read(p)
	if err != nil && err != io.EOF && b.err == nil {
		b.err = err
	}
	return n, err
}

// done lifts the read deadline: net/http goes on reading the connection in
// the background (to notice a client that leaves), and a deadline firing
// there would cancel the request.
func (b *bodyReader) done() {
	if b.dl != nil {
		b.dl.SetReadDeadline(time.Time{})
	}
}

// preAbsent remembers, for a few seconds, which precompressed variants
// static files lack. Bounded: it forgets everything when full.
type preAbsent struct {
	mu sync.RWMutex
	m  map[preKey]time.Time
}

type preKey struct {
	path string
	c    compress.Coding
}

const (
	preAbsentTTL = 10 * time.Second
	preAbsentMax = 10000
)

func (g *preAbsent) absent(path string, c compress.Coding, now time.Time) bool {
	g.mu.RLock()
	until, ok := g.m[preKey{path, c}]
	g.mu.RUnlock()
	return ok && now.Before(until)
}

func (g *preAbsent) remember(path string, c compress.Coding, now time.Time) {
	g.mu.Lock()
	if g.m == nil || len(g.m) >= preAbsentMax {
		g.m = make(map[preKey]time.Time)
	}
	g.m[preKey{path, c}] = now.Add(preAbsentTTL)
	g.mu.Unlock()
}
