package turbocache

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

type lookupResult struct {
	served bool
	fill   *Fill
	rec    *httptest.ResponseRecorder
}

// startWaiters starts n Lookups for r() once the leader holds its fill and
// returns when all n are waiting for it.
func startWaiters(t *testing.T, c *Cache, n int, r func() *http.Request) <-chan lookupResult {
	t.Helper()
	waiting := make(chan struct{}, n)
	c.onWait = func() { waiting <- struct{}{} }
	out := make(chan lookupResult, n)
	for range n {
		go func() {
			rec := httptest.NewRecorder()
			served, f := c.Lookup(rec, r())
			out <- lookupResult{served, f, rec}
		}()
	}
	for range n {
		<-waiting
	}
	return out
}

func TestCoalescingStored(t *testing.T) {
	const n = 16
	c, _ := newCache(Options{})
	served, leader := c.Lookup(httptest.NewRecorder(), req("GET /hot"))
	if served || leader == nil || leader.fl == nil {
		t.Fatal("first request did not become the leader")
	}
	results := startWaiters(t, c, n, func() *http.Request { return req("GET /hot") })
	leader.Store(200, hdr("Cache-Control: max-age=60"), []byte("fresh"))
	leader.Done()
	for range n {
		r := <-results
		if !r.served || r.fill != nil || r.rec.Body.String() != "fresh" {
			t.Fatalf("waiter: served=%v fill=%v body=%q", r.served, r.fill != nil, r.rec.Body.String())
		}
	}
	if s := c.Stats(); s.Coalesced != n || s.Hits != n || s.Misses != 1 {
		t.Fatalf("stats %+v", s)
	}
}

// TestCoalescingAllAtOnce: N concurrent misses for a key, started together,
// give exactly one Fill; everybody else is served the stored response.
func TestCoalescingAllAtOnce(t *testing.T) {
	const n = 32
	c, _ := newCache(Options{})
	var fills atomic.Int32
	var wg sync.WaitGroup
	start := make(chan struct{})
	bodies := make(chan string, n)
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			res := do(c, req("GET /burst"), func(*http.Request) response {
				fills.Add(1)
				return ok("once", "Cache-Control: max-age=60")
			})
			bodies <- res.body()
		}()
	}
	close(start)
	wg.Wait()
	close(bodies)
	if f := fills.Load(); f != 1 {
		t.Fatalf("%d fills, want 1", f)
	}
	for b := range bodies {
		if b != "once" {
			t.Fatalf("body %q", b)
		}
	}
}

func TestCoalescingUncacheable(t *testing.T) {
	const n = 8
	c, _ := newCache(Options{})
	_, leader := c.Lookup(httptest.NewRecorder(), req("GET /private"))
	results := startWaiters(t, c, n, func() *http.Request { return req("GET /private") })
	leader.Store(200, hdr("Cache-Control: private, max-age=60"), []byte("mine"))
	leader.Done()
	var fills []*Fill
	for range n {
		r := <-results
		if r.served || r.fill == nil || r.fill.fl != nil {
			t.Fatalf("released waiter: served=%v fill=%v", r.served, r.fill)
		}
		fills = append(fills, r.fill)
	}
	for _, f := range fills {
		f.Done()
	}
	// The key is now known uncacheable: concurrent requests are not
	// coalesced (nobody waits; onWait would block the test if they did).
	c.onWait = func() { t.Error("a request waited for an uncacheable key") }
	var held []*Fill
	for range 3 {
		served, f := c.Lookup(httptest.NewRecorder(), req("GET /private"))
		if served || f == nil || f.fl != nil {
			t.Fatalf("served=%v fill=%v", served, f)
		}
		held = append(held, f)
	}
	// Once it becomes cacheable it is stored, and coalescing resumes.
	held[0].Store(200, hdr("Cache-Control: max-age=60"), []byte("public now"))
	for _, f := range held {
		f.Done()
	}
	mustHit(t, do(c, req("GET /private"), nil), "public now")
	if c.passed(held[0].k.primary, t0) {
		t.Fatal("pass mark not cleared by a store")
	}
}

// TestStorableReleasesEarly: a response head that cannot be stored (an event
// stream, say) releases the waiters at once, before its body ends.
func TestStorableReleasesEarly(t *testing.T) {
	c, _ := newCache(Options{})
	_, leader := c.Lookup(httptest.NewRecorder(), req("GET /events"))
	defer leader.Done()
	results := startWaiters(t, c, 3, func() *http.Request { return req("GET /events") })
	if leader.Storable(200, hdr("Content-Type: text/event-stream", "Cache-Control: no-cache")) {
		t.Fatal("event stream storable")
	}
	for range 3 {
		r := <-results
		if r.served || r.fill == nil {
			t.Fatalf("served=%v fill=%v", r.served, r.fill != nil)
		}
		r.fill.Done()
	}
	leader.Store(200, hdr("Cache-Control: max-age=60"), []byte("late"))
	if c.Stats().Entries != 0 {
		t.Fatal("Store after a negative Storable stored")
	}
	if !c.passed(leader.k.primary, t0) {
		t.Fatal("key not marked uncacheable")
	}
}

func TestStorable(t *testing.T) {
	cases := []struct {
		status int
		lines  []string
		want   bool
	}{
		{200, []string{"Cache-Control: max-age=60"}, true},
		{200, []string{"Cache-Control: max-age=60", "Content-Length: 10"}, true},
		{200, []string{"Cache-Control: max-age=60", "Content-Length: 999999999"}, false},
		{200, []string{"Cache-Control: max-age=60", "Vary: Origin"}, true},
		{200, []string{"Cache-Control: max-age=60", "Vary: *"}, false},
		{200, []string{"Cache-Control: max-age=60", "Set-Cookie: a=1"}, false},
		{200, []string{"Content-Type: text/html"}, false},
		{302, []string{"Cache-Control: max-age=60"}, true},
		{206, []string{"Cache-Control: max-age=60"}, false},
	}
	for _, tc := range cases {
		c, _ := newCache(Options{})
		_, f := c.Lookup(httptest.NewRecorder(), req("GET /s"))
		if got := f.Storable(tc.status, hdr(tc.lines...)); got != tc.want {
			t.Errorf("%d %q: Storable = %v", tc.status, tc.lines, got)
		}
		f.Done()
	}
}

// TestCoalescingLeaderFails: a leader that ends without storing (app error,
// client gone) releases the waiters, which go to the app.
func TestCoalescingLeaderFails(t *testing.T) {
	c, _ := newCache(Options{})
	_, leader := c.Lookup(httptest.NewRecorder(), req("GET /fail"))
	results := startWaiters(t, c, 4, func() *http.Request { return req("GET /fail") })
	leader.Done()
	for range 4 {
		r := <-results
		if r.served || r.fill == nil {
			t.Fatalf("served=%v fill=%v", r.served, r.fill != nil)
		}
		r.fill.Done()
	}
	// No pass mark: the next miss leads again.
	_, f := c.Lookup(httptest.NewRecorder(), req("GET /fail"))
	if f == nil || f.fl == nil {
		t.Fatal("next request does not lead")
	}
	f.Done()
}

func TestCoalescingContext(t *testing.T) {
	c, _ := newCache(Options{})
	_, leader := c.Lookup(httptest.NewRecorder(), req("GET /slow"))
	defer leader.Done()
	ctx, cancel := context.WithCancel(context.Background())
	results := startWaiters(t, c, 1, func() *http.Request { return req("GET /slow").WithContext(ctx) })
	cancel()
	r := <-results
	if r.served || r.fill != nil {
		t.Fatalf("cancelled waiter: served=%v fill=%v", r.served, r.fill != nil)
	}
}

// TestCoalescingVariants: waiters whose Accept-Encoding does not match the
// stored variant go to the app; HEAD waiters are served.
func TestCoalescingVariants(t *testing.T) {
	c, _ := newCache(Options{})
	_, leader := c.Lookup(httptest.NewRecorder(), req("GET /v", "Accept-Encoding: gzip"))
	waiting := make(chan struct{}, 2)
	c.onWait = func() { waiting <- struct{}{} }
	brc := make(chan lookupResult, 1)
	headc := make(chan lookupResult, 1)
	go func() {
		rec := httptest.NewRecorder()
		s, f := c.Lookup(rec, req("GET /v", "Accept-Encoding: br"))
		brc <- lookupResult{s, f, rec}
	}()
	go func() {
		rec := httptest.NewRecorder()
		s, f := c.Lookup(rec, req("HEAD /v", "Accept-Encoding: gzip"))
		headc <- lookupResult{s, f, rec}
	}()
	<-waiting
	<-waiting
	leader.Store(200, hdr("Cache-Control: max-age=60", "Vary: Accept-Encoding", "Content-Encoding: gzip"), []byte("GZ"))
	leader.Done()
	if r := <-brc; r.served || r.fill == nil {
		t.Fatalf("br waiter: served=%v fill=%v", r.served, r.fill != nil)
	} else {
		r.fill.Done()
	}
	if r := <-headc; !r.served || r.rec.Header().Get("Content-Length") != "2" || r.rec.Body.Len() != 0 {
		t.Fatalf("HEAD waiter: served=%v headers=%v", r.served, r.rec.Header())
	}
}

// TestConcurrency hammers a small cache with GET, HEAD, POST, conditional
// and bypass requests, purges and stats; run with -race. Every response
// must be the one for its own URL and variant.
func TestConcurrency(t *testing.T) {
	c := New(Options{MaxEntries: 20, MaxBytes: 40 << 10, VaryByCookie: "s"})
	var version atomic.Int64
	app := func(r *http.Request) response {
		ae := r.Header.Get("Accept-Encoding")
		s, _ := r.Cookie("s")
		sv := ""
		if s != nil {
			sv = s.Value
		}
		body := r.URL.RequestURI() + "|" + ae + "|" + sv + "|" + strconv.FormatInt(version.Load(), 10)
		lines := []string{"Cache-Control: max-age=60", "Vary: Accept-Encoding, Cookie", `ETag: "e1"`}
		if strings.HasSuffix(r.URL.Path, "7") {
			lines = []string{"Cache-Control: no-store"}
		}
		return ok(body, lines...)
	}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rnd := rand.New(rand.NewPCG(uint64(g), 1))
			for range 2000 {
				path := fmt.Sprintf("/p%d", rnd.IntN(30))
				var lines []string
				ae := []string{"", "gzip", "br"}[rnd.IntN(3)]
				if ae != "" {
					lines = append(lines, "Accept-Encoding: "+ae)
				}
				sv := []string{"", "u1", "u2"}[rnd.IntN(3)]
				if sv != "" {
					lines = append(lines, "Cookie: s="+sv)
				}
				method := "GET"
				switch k := rnd.IntN(100); {
				case k < 5:
					method = "POST"
				case k < 10:
					method = "HEAD"
				case k < 15:
					lines = append(lines, "Cache-Control: no-cache")
				case k < 20:
					lines = append(lines, `If-None-Match: "e1"`)
				case k == 20:
					c.Purge()
				case k == 21:
					c.Stats()
				case k == 22:
					version.Add(1)
				}
				r := req(method+" "+path, lines...)
				res := do(c, r, app)
				if method == "POST" {
					c.Invalidate(r, 200, nil)
					continue
				}
				if res.status() == 304 || method == "HEAD" {
					continue
				}
				want := path + "|" + ae + "|" + sv + "|"
				if !strings.HasPrefix(res.body(), want) {
					t.Errorf("%s %s (ae %q, s %q): got %q", method, path, ae, sv, res.body())
					return
				}
			}
		}()
	}
	wg.Wait()
	s := c.Stats()
	if s.Entries > 20 || s.Bytes > 40<<10 || s.Entries < 0 {
		t.Fatalf("bounds broken: %+v", s)
	}
	t.Logf("%+v", s)
	// The bookkeeping matches the shards.
	var n, b int64
	for i := range c.shards {
		for _, e := range c.shards[i].m {
			for ; e != nil; e = e.chain {
				n++
				b += e.size
			}
		}
	}
	var listed int64
	for e := c.head; e != nil; e = e.next {
		listed++
	}
	if n != s.Entries || b != s.Bytes || listed != n {
		t.Fatalf("counted %d entries (%d listed), %d bytes; stats say %d, %d", n, listed, b, s.Entries, s.Bytes)
	}
}
