package turbocache

import (
	"crypto/tls"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

var t0 = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (f *fakeClock) Now() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.t
}

func (f *fakeClock) Advance(d time.Duration) {
	f.mu.Lock()
	f.t = f.t.Add(d)
	f.mu.Unlock()
}

func newCache(o Options) (*Cache, *fakeClock) {
	clk := &fakeClock{t: t0}
	o.Now = clk.Now
	return New(o), clk
}

// hdr builds a header from "Name: value" lines.
func hdr(lines ...string) http.Header {
	h := http.Header{}
	for _, l := range lines {
		k, v, ok := strings.Cut(l, ":")
		if !ok {
			panic("bad header line " + l)
		}
		h.Add(k, strings.TrimSpace(v))
	}
	return h
}

// req builds a server-side request: "GET /path" plus header lines.
func req(line string, lines ...string) *http.Request {
	method, target, _ := strings.Cut(line, " ")
	r := httptest.NewRequest(method, "http://example.com"+target, nil)
	for k, vs := range hdr(lines...) {
		r.Header[k] = vs
	}
	return r
}

func tlsReq(r *http.Request) *http.Request {
	r.TLS = &tls.ConnectionState{}
	return r
}

// response is what the fake app answers.
type response struct {
	status int
	header http.Header
	body   string
}

func ok(body string, lines ...string) response {
	return response{status: 200, header: hdr(lines...), body: body}
}

// result is what one request through the cache produced.
type result struct {
	served   bool // answered by the cache
	answered bool // by Fill.Answer, after the app's response head
	fill     bool // a Fill was returned
	reason   string
	rec      *httptest.ResponseRecorder
}

func (r result) body() string        { return r.rec.Body.String() }
func (r result) status() int         { return r.rec.Code }
func (r result) get(k string) string { return r.rec.Header().Get(k) }

// do sends r through c; on a miss the app (if any) answers and the response
// is offered to the fill.
func do(c *Cache, r *http.Request, app func(*http.Request) response) result {
	rec := httptest.NewRecorder()
	served, f := c.Lookup(rec, r)
	res := result{served: served, fill: f != nil, rec: rec}
	if served {
		return res
	}
	if f != nil {
		defer f.Done()
	}
	if app == nil {
		return res
	}
	a := app(r)
	if f != nil && f.Answer(rec, a.status, a.header) {
		// The cache answered in the app's place (a 304 that refreshed a
		// stale entry, stale-if-error), as the request path lets it.
		res.served, res.answered = true, true
		return res
	}
	for k, vs := range a.header {
		rec.Header()[k] = vs
	}
	rec.WriteHeader(a.status)
	rec.WriteString(a.body)
	if f != nil {
		f.Store(a.status, a.header, []byte(a.body))
		res.reason = f.reason
	}
	return res
}

// fixed is an app that always answers the same.
func fixed(resp response) func(*http.Request) response {
	return func(*http.Request) response { return resp }
}

// counter is an app that numbers its responses: "n1", "n2", …
type counter struct {
	mu    sync.Mutex
	n     int
	lines []string
}

func (a *counter) app(r *http.Request) response {
	a.mu.Lock()
	a.n++
	n := a.n
	a.mu.Unlock()
	return ok("n"+strconv.Itoa(n), a.lines...)
}

func mustHit(t *testing.T, res result, body string) {
	t.Helper()
	if !res.served {
		t.Fatalf("want a hit with %q, got a miss", body)
	}
	if res.body() != body {
		t.Fatalf("hit body = %q, want %q", res.body(), body)
	}
}

func mustMiss(t *testing.T, res result) {
	t.Helper()
	if res.served {
		t.Fatalf("want a miss, got a hit (%d %q)", res.status(), res.body())
	}
}

func newRecorder() *httptest.ResponseRecorder { return httptest.NewRecorder() }
