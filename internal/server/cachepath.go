package server

import (
	"context"
	"log/slog"
	"net/http"
	"time"

	"github.com/ferry-server/ferry/internal/proxy"
	"github.com/ferry-server/ferry/internal/turbocache"
)

// The turbocache's part of the request path beyond hits: answering from a
// stale entry in the app's place (a 304 that refreshed it, stale-if-error)
// and the background revalidation of stale-while-revalidate. The policy is
// turbocache's; this is the plumbing to the forward path.

// cacheAnswered lets the cache answer for the app, given the app's response
// head to a fill's request: a 304 to the cache's own revalidation refreshes
// the entry and serves it; a 5xx serves the stale entry when the app allows
// it. The app's response is then read and dropped.
func (h *Handler) cacheAnswered(rq *request, fill *turbocache.Fill, x *proxy.Exchange) bool {
	rq.w.immutable = true // the entry's body, which never changes
	ok := fill.Answer(&rq.w, x.Resp.StatusCode, x.Resp.Header)
	rq.w.immutable = false
	if !ok {
		return false
	}
	x.WriteTo(&discardResponse{}, h.opts.Response, nil) // keeps the connection when it can
	if !fill.Background() {
		rq.app.Metrics.CacheHit()
	}
	return true
}

// staleOnError serves the stale entry of the request's fill in place of
// the error page for err, when err would be a 5xx (the app failed, could not
// be reached, is restarting, or took too long) and the app allows it
// (stale-if-error).
func (h *Handler) staleOnError(rq *request, err error) bool {
	if rq.fill == nil || classify(err).Status < 500 {
		return false
	}
	rq.w.immutable = true
	ok := rq.fill.ServeStale(&rq.w, true)
	rq.w.immutable = false
	if ok && !rq.fill.Background() {
		rq.reason = "stale-if-error: " + err.Error()
		rq.app.Metrics.CacheHit()
	}
	return ok
}

// revalidate sends the one background revalidation of a stale entry that
// was served under stale-while-revalidate: r (a copy, with the entry's
// validators) goes to the app as a miss would, and the response goes to
// the cache only.
func (h *Handler) revalidate(app *App, r *http.Request, fill *turbocache.Fill, scheme string) {
	defer fill.Done()
	rq := requests.Get().(*request)
	defer func() {
		*rq = request{}
		requests.Put(rq)
	}()
	rq.start = time.Now()
	rq.w = respWriter{w: &discardResponse{}}
	rq.w.sink.rw = &rq.w
	rq.app, rq.scheme, rq.fill = app, scheme, fill
	ctx, cancel := context.WithTimeout(r.Context(), revalidateTimeout)
	defer cancel()
	r = r.WithContext(ctx)
	for attempt := 0; h.forward(rq, r, nil, fill, attempt); attempt++ {
	}
	rq.w.finish(true)
	h.log.LogAttrs(ctx, slog.LevelDebug, "background revalidation",
		slog.String("app", app.Name), slog.String("path", r.URL.Path), slog.Int("status", rq.w.status))
}

// revalidateTimeout bounds a background revalidation, which no client
// waits for.
const revalidateTimeout = time.Minute

// discardResponse is a ResponseWriter that keeps nothing: where the app's
// response goes when the cache answered instead.
type discardResponse struct{ h http.Header }

func (d *discardResponse) Header() http.Header {
	if d.h == nil {
		d.h = make(http.Header)
	}
	return d.h
}
func (d *discardResponse) WriteHeader(int)             {}
func (d *discardResponse) Write(p []byte) (int, error) { return len(p), nil }
