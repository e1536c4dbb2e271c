package server

import (
	"context"
	"log/slog"
	"maps"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/ferry-server/ferry/internal/pool"
	"github.com/ferry-server/ferry/internal/proxy"
	"github.com/ferry-server/ferry/internal/turbocache"
)

// The forward step of the request path: one process, one exchange. Its
// decisions (which process to ask for, whether a failure is retried, what
// a broken response becomes) are the pure functions at the end; the steps
// apply them.

// clientWatcher is a ResponseWriter that notices a client leaving only
// while asked to (the lean engine's): forward asks for the time an app has
// the request. net/http's own background read needs no asking.
type clientWatcher interface {
	WatchClient() (stop func())
}

// forward sends the request to one process and the response to the client:
// check out a process, start the --max-request-time timer, send the
// request and read the response head, let the cache answer or take a
// copy, then tunnel (101) or stream the body. It returns true when the
// request may be sent to another process.
func (h *Handler) forward(rq *request, r *http.Request, body *proxy.Body, fill *turbocache.Fill, attempt int) (retry bool) {
	if cw, ok := rq.w.w.(clientWatcher); ok {
		defer cw.WatchClient()() // the lean engine: notice a client that leaves
	}
	sess, err := h.checkout(rq, r, attempt)
	if err != nil {
		h.fail(rq, r, err)
		return false
	}
	timer := h.startTimer(rq, r, sess)
	defer timer.stop()
	appSpan := rq.trace.App(r, rq.pid)
	defer appSpan.EndOK()
	x, err := rq.app.Transport.RoundTripInterim(sess, r, body, rq.scheme, rq.interimFor(r))
	if err != nil {
		appSpan.Fail(err)
		err, retry = afterFailedRoundTrip(err, timer.fired(), attempt)
		if retry {
			h.log.LogAttrs(r.Context(), slog.LevelDebug, "retrying request on another process",
				slog.Int("pid", rq.pid), slog.String("error", err.Error()))
			return true
		}
		h.fail(rq, r, err)
		return false
	}
	appSpan.Status(x.Resp.StatusCode)
	capture, answered := h.afterHead(rq, r, sess, x, fill)
	switch {
	case answered:
	case x.Resp.StatusCode == http.StatusSwitchingProtocols:
		h.tunnel(rq, r, sess, x)
	default:
		h.stream(rq, r, x, capture, timer)
	}
	return false
}

// checkout waits for a session on a process (the queue, a spawn), traced
// and timed, and records its pid on the request.
func (h *Handler) checkout(rq *request, r *http.Request, attempt int) (*pool.Session, error) {
	app := rq.app
	rq.info.set(&stateQueued)
	queued := time.Now()
	span := rq.trace.Queue(queued)
	sess, err := app.Group.CheckoutWith(r.Context(), checkoutOptions(app, r, attempt, rq.pid))
	span.Spawn(sess.Spawned())
	span.End(err)
	app.Metrics.QueueWaitTraced(time.Since(queued), rq.trace.TraceID())
	if err != nil {
		return nil, err
	}
	pid := sess.PID()
	rq.pid = pid
	rq.info.pid.Store(int64(pid))
	rq.info.set(&stateApp)
	return sess, nil
}

// requestTimer is --max-request-time for one exchange; nil: no limit.
type requestTimer struct {
	t        *time.Timer
	timedOut atomic.Bool
}

// startTimer starts --max-request-time: when it fires, the process is
// killed (its session aborted) and the request answers 504.
func (h *Handler) startTimer(rq *request, r *http.Request, sess *pool.Session) *requestTimer {
	app := rq.app
	if app.MaxRequestTime <= 0 {
		return nil
	}
	// The timer may fire as the request ends, and Stop does not wait for
	// it: it reads copies, never r or rq, which the next request may be
	// using by then.
	start, method, path, pid := rq.start, r.Method, rq.info.uri(), rq.pid
	rt := new(requestTimer)
	rt.t = time.AfterFunc(app.MaxRequestTime, func() {
		rt.timedOut.Store(true)
		h.log.LogAttrs(context.Background(), slog.LevelError, "request ran longer than --max-request-time; killing its process",
			slog.String("method", method), slog.String("path", path),
			slog.Duration("duration", time.Since(start)), slog.Int("pid", pid))
		sess.Abort("a request ran longer than --max-request-time")
		if app.OnMaxRequestTime != nil {
			app.OnMaxRequestTime(pid, method, path)
		}
	})
	return rt
}

func (t *requestTimer) stop() {
	if t != nil {
		t.t.Stop()
	}
}

// fired reports whether the request ran past --max-request-time.
func (t *requestTimer) fired() bool { return t != nil && t.timedOut.Load() }

// interimFor is where the app's interim (1xx) responses go: to the
// client, except an HTTP/1.0 one (RFC 9110 §15.2).
func (rq *request) interimFor(r *http.Request) proxy.InterimFunc {
	if !r.ProtoAtLeast(1, 1) {
		return nil
	}
	return rq.sendInterim
}

// afterHead does what the app's response head asks of the front before
// its body: the sticky cookie, out-of-band work, the cache's invalidation,
// and, for a request that may fill the cache, the cache answering in the
// app's place (answered: the app's response was dropped) or the capture
// that stores the response as it streams.
func (h *Handler) afterHead(rq *request, r *http.Request, sess *pool.Session, x *proxy.Exchange, fill *turbocache.Fill) (capture *proxy.Capture, answered bool) {
	app := rq.app
	if app.Sticky != nil {
		app.Sticky.set(x.Resp.Header, sess.Route())
	}
	if proxy.TakeOOBRequest(x.Resp) {
		sess.OutOfBandWork()
	}
	if app.Cache != nil {
		app.Cache.Invalidate(r, x.Resp.StatusCode, x.Resp.Header) // unsafe methods only
	}
	if fill == nil {
		return nil, false
	}
	if h.cacheAnswered(rq, fill, x) {
		return nil, true
	}
	// The cache gets the app's own head and body, before the front
	// compresses anything or adds its headers.
	if !fill.Storable(x.Resp.StatusCode, x.Resp.Header) {
		fill.Done() // requests waiting for this one go to the app now
		return nil, false
	}
	status, header := x.Resp.StatusCode, x.Resp.Header
	return &proxy.Capture{Limit: fill.Limit(), Done: func(body []byte) {
		fill.Store(status, header, body)
		app.Metrics.CacheStore()
	}}, false
}

// tunnel serves a 101 (WebSocket and friends): both ways for as long as
// both sides want, or until the process leaves with
// --abort-websockets-on-process-shutdown.
func (h *Handler) tunnel(rq *request, r *http.Request, sess *pool.Session, x *proxy.Exchange) {
	var closing <-chan struct{}
	if rq.app.AbortTunnels {
		closing = sess.Closing()
	}
	res := x.Tunnel(&rq.w, closing)
	if res.AppErr != nil {
		h.log.LogAttrs(r.Context(), slog.LevelWarn, "upgrade failed",
			slog.Int("pid", rq.pid), slog.String("error", res.AppErr.Error()))
	}
	rq.status, rq.bytes = res.Status, res.Bytes
}

// stream sends the response body through a spool: the app is read as fast
// as it sends (and its session released when the body ends), the client
// written at its own pace.
func (h *Handler) stream(rq *request, r *http.Request, x *proxy.Exchange, capture *proxy.Capture, timer *requestTimer) {
	rq.info.set(&stateSending)
	res := x.WriteTo(&rq.w, h.opts.Response, capture)
	if res.AppErr != nil {
		h.log.LogAttrs(r.Context(), slog.LevelWarn, "app response broke off",
			slog.Int("pid", rq.pid), slog.String("path", r.URL.Path), slog.String("error", res.AppErr.Error()))
		page, abort := afterBrokenResponse(res.AppErr, res.Wrote, timer.fired())
		if abort {
			rq.abort = true
			return
		}
		h.fail(rq, r, page)
		return
	}
	if res.ClientErr != nil {
		rq.reason = "client gone or too slow: " + res.ClientErr.Error()
	}
}

// sendInterim forwards an app's interim (1xx) response to the client, as
// a proxy must (RFC 9110 §15.2): with its own fields only, before and apart
// from the final response, whose fields are left as they were. The
// response writer passes it through without taking it for the final
// status (no log, no compression decision, no request id); net/http sends
// it on HTTP/1.1 and HTTP/2 at once. Never cached: the cache sees only the
// final response.
func (rq *request) sendInterim(code int, h http.Header) {
	wh := rq.w.Header()
	var saved http.Header
	if len(wh) > 0 {
		saved = wh.Clone()
		clear(wh)
	}
	maps.Copy(wh, h)
	rq.w.WriteHeader(code)
	clear(wh)
	maps.Copy(wh, saved)
}

// checkoutOptions decides what a checkout asks of the pool: no
// concurrency limit under --unlimited-concurrency-path, the process of the
// client's sticky cookie, and, on a retry, another process than prevPID's
// (whose connection just failed) if one has room.
func checkoutOptions(app *App, r *http.Request, attempt, prevPID int) pool.CheckoutOptions {
	co := pool.CheckoutOptions{Unlimited: unlimited(app.UnlimitedPaths, r.URL.Path)}
	if app.Sticky != nil {
		co.Route = app.Sticky.route(r)
	}
	if attempt > 0 {
		co.Avoid = prevPID
	}
	return co
}

// afterFailedRoundTrip decides what a failed exchange becomes: past
// --max-request-time, the timeout (504) whatever broke; on the first
// attempt, a failure the app cannot have acted on is retried on another
// process (a process the kernel shows exiting has already left rotation,
// so the retry cannot be handed it again; a live one whose connection
// failed is avoided if another has room); else err is the answer.
func afterFailedRoundTrip(err error, timedOut bool, attempt int) (final error, retry bool) {
	switch {
	case timedOut:
		return ErrRequestTimeout, false
	case attempt == 0 && proxy.Retryable(err):
		return err, true
	}
	return err, false
}

// afterBrokenResponse decides what an app's response that broke off
// becomes: once bytes reached the client, the response is aborted (the
// client must see it truncated); before, an error page for the timeout
// (--max-request-time fired) or the app's failure.
func afterBrokenResponse(appErr error, wrote, timedOut bool) (page error, abort bool) {
	switch {
	case wrote:
		return nil, true
	case timedOut:
		return ErrRequestTimeout, false
	}
	return &proxy.RoundTripError{Err: appErr}, false
}
