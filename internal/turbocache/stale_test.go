package turbocache

import (
	"net/http"
	"strconv"
	"sync"
	"testing"
	"time"
)

// The rules about stale entries, as pure functions.

func TestParseHTTPDate(t *testing.T) {
	want := time.Date(1994, 11, 6, 8, 49, 37, 0, time.UTC)
	for _, tc := range []struct {
		in string
		ok bool
	}{
		{"Sun, 06 Nov 1994 08:49:37 GMT", true},
		{"Sunday, 06-Nov-94 08:49:37 GMT", true},
		{"Sun Nov  6 08:49:37 1994", true},
		{"Thu, 06 Nov 1994 08:49:37 GMT", true}, // the wrong day: the date decides
		{"Thursday, 06-Nov-94 08:49:37 GMT", true},
		{"Thu Nov  6 08:49:37 1994", true},
		{"Xyz, 06 Nov 1994 08:49:37 GMT", false},
		{"Sunday, 06 Nov 1994 08:49:37 GMT", false},
		{"Sun, 06-Nov-94 08:49:37 GMT", false},
		{"SUN, 06 Nov 1994 08:49:37 GMT", false},
		{"Sun Nov 6 08:49:37 1994", false},
		{"Sun, 06 Nov 1994 8:49:37 GMT", false},   // one-digit hour
		{"Sun, 06 Nov 1994  08:49:37 GMT", false}, // two spaces
		{"Sun, 6 Nov 1994 08:49:37 GMT", false},   // one-digit day
		{"sun, 06 Nov 1994 08:49:37 GMT", false},  // lower-case day name
		{"Sun, 06 nov 1994 08:49:37 GMT", false},  // lower-case month
		{"Sun, 06 Nov 1994 08:49:37 UTC", false},
		{"Sun, 06 Nov 1994 08:49:37 GMT ", false},
		{"0", false},
		{"", false},
	} {
		got, ok := parseHTTPDate(tc.in)
		if ok != tc.ok || (ok && !got.Equal(want)) {
			t.Errorf("parseHTTPDate(%q) = %v, %v; want ok=%v", tc.in, got, ok, tc.ok)
		}
	}
}

func TestExpiresLifetime(t *testing.T) {
	date := t0.Format(http.TimeFormat)
	hour := t0.Add(time.Hour).Format(http.TimeFormat)
	for _, tc := range []struct {
		name          string
		expires, date []string
		want          time.Duration
	}{
		{"relative to Date", []string{hour}, []string{date}, time.Hour},
		{"no Date: now", []string{hour}, nil, time.Hour},
		{"invalid Date: now", []string{hour}, []string{"yesterday"}, time.Hour},
		{"invalid Expires: expired", []string{"Thu, 18 Aug 2050 2:01:18 GMT"}, []string{date}, 0},
		{"two Expires: expired", []string{hour, hour}, []string{date}, 0},
		{"none", nil, []string{date}, 0},
	} {
		if got := expiresLifetime(tc.expires, tc.date, t0); got != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestInitialAge(t *testing.T) {
	for _, tc := range []struct {
		in   []string
		want time.Duration
		ok   bool
	}{
		{nil, 0, true},
		{[]string{"0"}, 0, true},
		{[]string{"60"}, time.Minute, true},
		{[]string{" 60 "}, time.Minute, true},
		{[]string{"99999999999"}, maxDelta * time.Second, true},
		{[]string{"7200, 0"}, 0, false},
		{[]string{"0, 7200"}, 0, false},
		{[]string{"0", "0"}, 0, false},
		{[]string{"abc"}, 0, false},
		{[]string{"-1"}, 0, false},
		{[]string{"1.5"}, 0, false},
		{[]string{"60;a=1"}, 0, false},
		{[]string{`"60"`}, 0, false},
		{[]string{""}, 0, false},
	} {
		got, ok := initialAge(tc.in)
		if got != tc.want || ok != tc.ok {
			t.Errorf("initialAge(%q) = %v, %v; want %v, %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
}

func TestParseFreshness(t *testing.T) {
	for _, tc := range []struct {
		cc   string
		want freshness
		ok   bool
	}{
		{"max-age=60", freshness{maxAge: 60, hasMaxAge: true}, true},
		{"s-maxage=60", freshness{sMaxAge: 60, hasSMax: true, stale: staleRules{mustRevalidate: true}}, true},
		{"max-age=60, must-revalidate", freshness{maxAge: 60, hasMaxAge: true, stale: staleRules{mustRevalidate: true}}, true},
		{"max-age=60, Proxy-Revalidate", freshness{maxAge: 60, hasMaxAge: true, stale: staleRules{mustRevalidate: true}}, true},
		{"max-age=60, stale-while-revalidate=30, stale-if-error=600",
			freshness{maxAge: 60, hasMaxAge: true, stale: staleRules{whileRevalidate: 30 * time.Second, ifError: 600 * time.Second}}, true},
		{"max-age=60, stale-while-revalidate=30, must-revalidate",
			freshness{maxAge: 60, hasMaxAge: true, stale: staleRules{mustRevalidate: true}}, true},
		{"max-age=60, stale-if-error=x", freshness{maxAge: 60, hasMaxAge: true}, true},
		{"max-age=60;device, s-maxage=5", freshness{sMaxAge: 5, hasSMax: true, stale: staleRules{mustRevalidate: true}}, true},
		{"max-age=60;ferry", freshness{maxAge: 60, hasMaxAge: true}, true},
		{"max-age=60;other, max-age=5;ferry", freshness{maxAge: 5, hasMaxAge: true}, true},
		{"max-age=abc", freshness{}, false},
		{"max-age=1, max-age=2", freshness{}, false},
	} {
		got, ok := parseFreshness([]string{tc.cc})
		if ok != tc.ok || (ok && got != tc.want) {
			t.Errorf("parseFreshness(%q) = %+v, %v; want %+v, %v", tc.cc, got, ok, tc.want, tc.ok)
		}
	}
}

func TestTargetedValues(t *testing.T) {
	for _, tc := range []struct {
		h    []string
		want string // "" none
	}{
		{[]string{"Cache-Control: max-age=60"}, ""},
		{[]string{"CDN-Cache-Control: no-store"}, "no-store"},
		{[]string{"Surrogate-Control: max-age=5"}, "max-age=5"},
		{[]string{"Surrogate-Control: max-age=5;other-device"}, ""},
		{[]string{"Surrogate-Control: max-age=5;other, no-store"}, "max-age=5;other, no-store"},
		{[]string{"CDN-Cache-Control: max-age=1", "Surrogate-Control: no-store"}, "max-age=1"},
		{[]string{"Surrogate-Control: max-age=5;ferry"}, "max-age=5;ferry"},
		{[]string{"Surrogate-Control: no-store;a;ferry"}, "no-store;a;ferry"},
	} {
		h, _ := cloneHeader(hdr(tc.h...))
		vs, ok := targetedValues(h)
		got := ""
		if ok {
			got = vs[0]
		}
		if got != tc.want {
			t.Errorf("%q: targeted %q, want %q", tc.h, got, tc.want)
		}
	}
}

func TestVaryFields(t *testing.T) {
	for _, tc := range []struct {
		vary       []string
		varyCookie bool
		fields     string
		ae, ok     bool
	}{
		{nil, false, "", false, true},
		{[]string{"Accept-Encoding"}, false, "", true, true},
		{[]string{"accept-language, Accept-Encoding"}, false, "Accept-Language", true, true},
		{[]string{"X-B, x-a", "X-A"}, false, "X-A X-B", false, true},
		{[]string{"User-Agent, "}, false, "User-Agent", false, true},
		{[]string{"*"}, false, "", false, false},
		{[]string{"X-A, *"}, false, "", false, false},
		{[]string{"a b"}, false, "", false, false},
		{[]string{"X-A, (x)"}, false, "", false, false},
		{[]string{"Cookie"}, false, "", false, false},
		{[]string{"Cookie"}, true, "", false, true},
		{[]string{"X-Forwarded-For"}, false, "", false, false},
		{[]string{"accept, x-real-ip"}, false, "", false, false},
		{[]string{"X-Request-Id"}, false, "", false, false},
		{[]string{"X-Ferry-Scheme"}, false, "", false, false},
		{[]string{"X_Thing"}, false, "", false, false},
	} {
		fields, ae, ok := varyFields(tc.vary, tc.varyCookie)
		got := ""
		for i, f := range fields {
			if i > 0 {
				got += " "
			}
			got += f
		}
		if got != tc.fields || ae != tc.ae || ok != tc.ok {
			t.Errorf("varyFields(%q, %v) = %q, %v, %v; want %q, %v, %v", tc.vary, tc.varyCookie, got, ae, ok, tc.fields, tc.ae, tc.ok)
		}
	}
}

func TestListEqual(t *testing.T) {
	for _, tc := range []struct {
		a, b []string
		want bool
	}{
		{nil, nil, true},
		{[]string{"en"}, []string{"en"}, true},
		{[]string{"en, fr"}, []string{"en,fr"}, true},
		{[]string{"en", "fr"}, []string{"en, fr"}, true},
		{[]string{" en ,, fr "}, []string{"en,fr"}, true},
		{[]string{"en"}, []string{"fr"}, false},
		{[]string{"en, fr"}, []string{"fr, en"}, false},
		{[]string{"en"}, []string{"en, fr"}, false},
		{[]string{"EN"}, []string{"en"}, false},
	} {
		if got := listEqual(tc.a, tc.b, false); got != tc.want {
			t.Errorf("listEqual(%q, %q) = %v", tc.a, tc.b, got)
		}
	}
	// Without case (Accept-Language): case goes, order stays.
	if !listEqual([]string{"eN, De"}, []string{"en,de"}, true) || listEqual([]string{"en, de"}, []string{"de, en"}, true) {
		t.Error("caseless comparison")
	}
}

func TestEntryStaleRules(t *testing.T) {
	mk := func(rules staleRules, etag string) *entry {
		return &entry{stored: t0, lifetime: time.Minute, stale: rules, etagRaw: etag}
	}
	at := func(d time.Duration) time.Time { return t0.Add(d) }
	grace := 10 * time.Second
	for _, tc := range []struct {
		name             string
		e                *entry
		age              time.Duration
		keep, swr, onErr bool
		unreachableOnErr bool
	}{
		{"plain, just stale", mk(staleRules{}, ""), 61 * time.Second, true, false, false, true},
		{"plain, past grace", mk(staleRules{}, ""), 71 * time.Second, false, false, false, false},
		{"validator kept", mk(staleRules{}, `"x"`), time.Hour, true, false, false, false},
		{"swr within", mk(staleRules{whileRevalidate: 30 * time.Second}, ""), 89 * time.Second, true, true, false, false},
		{"swr past", mk(staleRules{whileRevalidate: 30 * time.Second}, ""), 91 * time.Second, false, false, false, false},
		{"sie within", mk(staleRules{ifError: 30 * time.Second}, ""), 89 * time.Second, true, false, true, true},
		{"sie past", mk(staleRules{ifError: 30 * time.Second}, ""), 91 * time.Second, false, false, false, false},
		{"must-revalidate", mk(staleRules{mustRevalidate: true}, ""), 61 * time.Second, false, false, false, false},
		{"must-revalidate with a validator", mk(staleRules{mustRevalidate: true}, `"x"`), 61 * time.Second, true, false, false, false},
	} {
		now := at(tc.age)
		if got := tc.e.keep(now, grace); got != tc.keep {
			t.Errorf("%s: keep = %v", tc.name, got)
		}
		if got := tc.e.whileRevalidating(now); got != tc.swr {
			t.Errorf("%s: whileRevalidating = %v", tc.name, got)
		}
		if got := tc.e.onError(now, false, grace); got != tc.onErr {
			t.Errorf("%s: onError(5xx) = %v", tc.name, got)
		}
		if got := tc.e.onError(now, true, grace); got != tc.unreachableOnErr {
			t.Errorf("%s: onError(unreachable) = %v", tc.name, got)
		}
	}
}

// The same rules through the cache.

// conditional is an app that answers 304 to a matching If-None-Match or
// If-Modified-Since, and counts what it was asked.
type conditional struct {
	mu                 sync.Mutex
	full, notModified  int
	etag, lastModified string
	lines              []string // response header lines (besides validators)
	lines304           []string // header lines of its 304s
}

func (a *conditional) app(r *http.Request) response {
	a.mu.Lock()
	defer a.mu.Unlock()
	if (a.etag != "" && r.Header.Get("If-None-Match") == a.etag) ||
		(a.lastModified != "" && r.Header.Get("If-Modified-Since") == a.lastModified) {
		a.notModified++
		return response{status: 304, header: hdr(a.lines304...)}
	}
	a.full++
	lines := append([]string{}, a.lines...)
	if a.etag != "" {
		lines = append(lines, "ETag: "+a.etag)
	}
	if a.lastModified != "" {
		lines = append(lines, "Last-Modified: "+a.lastModified)
	}
	return ok("body"+strconv.Itoa(a.full), lines...)
}

func TestRevalidateETag(t *testing.T) {
	c, clk := newCache(Options{})
	a := &conditional{etag: `"v1"`, lines: []string{"Cache-Control: max-age=60", "X-A: 1"},
		lines304: []string{"Cache-Control: max-age=120", "X-A: 2", "Content-Length: 99", `ETag: "other"`}}
	do(c, req("GET /r"), a.app)
	clk.Advance(61 * time.Second)
	res := do(c, req("GET /r"), a.app)
	if !res.answered || res.status() != 200 || res.body() != "body1" {
		t.Fatalf("revalidated: answered %v, %d %q; want the stored body refreshed", res.answered, res.status(), res.body())
	}
	if a.full != 1 || a.notModified != 1 {
		t.Fatalf("app: %d full, %d 304s; want 1 and 1", a.full, a.notModified)
	}
	if res.get("X-A") != "2" || res.get("Cache-Control") != "max-age=120" || res.get("Age") != "0" {
		t.Fatalf("refreshed header: X-A %q, Cache-Control %q, Age %q", res.get("X-A"), res.get("Cache-Control"), res.get("Age"))
	}
	if res.get("Content-Length") != "5" || res.get("Etag") != `"v1"` {
		t.Fatalf("a 304 replaced Content-Length (%q) or ETag (%q)", res.get("Content-Length"), res.get("Etag"))
	}
	clk.Advance(100 * time.Second) // fresh for 120 s from the 304
	mustHit(t, do(c, req("GET /r"), nil), "body1")
	if s := c.Stats(); s.Revalidated != 1 {
		t.Fatalf("Revalidated = %d", s.Revalidated)
	}
}

func TestRevalidateLastModified(t *testing.T) {
	c, clk := newCache(Options{})
	lm := t0.Add(-time.Hour).Format(http.TimeFormat)
	a := &conditional{lastModified: lm, lines: []string{"Cache-Control: max-age=60"}, lines304: []string{"Cache-Control: max-age=60"}}
	do(c, req("GET /r"), a.app)
	clk.Advance(61 * time.Second)
	var sent string
	res := do(c, req("GET /r"), func(r *http.Request) response {
		sent = r.Header.Get("If-Modified-Since")
		return a.app(r)
	})
	if sent != lm || !res.answered || res.body() != "body1" {
		t.Fatalf("If-Modified-Since %q, answered %v %q", sent, res.answered, res.body())
	}
}

func TestRevalidateNewBody(t *testing.T) {
	c, clk := newCache(Options{})
	a := &conditional{etag: `"v1"`, lines: []string{"Cache-Control: max-age=60"}}
	do(c, req("GET /r"), a.app)
	clk.Advance(61 * time.Second)
	a.etag = `"v2"` // changed: the app answers in full
	res := do(c, req("GET /r"), a.app)
	if res.served || res.body() != "body2" {
		t.Fatalf("changed resource: served %v %q", res.served, res.body())
	}
	mustHit(t, do(c, req("GET /r"), nil), "body2")
}

// A client's own precondition is its own: the cache does not replace it, and
// the app's 304 goes to the client.
func TestRevalidateClientPrecondition(t *testing.T) {
	c, clk := newCache(Options{})
	a := &conditional{etag: `"v1"`, lines: []string{"Cache-Control: max-age=60"}}
	do(c, req("GET /r"), a.app)
	clk.Advance(61 * time.Second)
	var sent string
	res := do(c, req("GET /r", `If-None-Match: "mine"`), func(r *http.Request) response {
		sent = r.Header.Get("If-None-Match")
		return a.app(r)
	})
	if sent != `"mine"` || res.answered {
		t.Fatalf("If-None-Match sent %q, answered %v", sent, res.answered)
	}
}

// Requests for a stale entry while it is being revalidated wait for that
// one conditional request and are served what it refreshed.
func TestRevalidateCoalesced(t *testing.T) {
	c, clk := newCache(Options{})
	a := &conditional{etag: `"v1"`, lines: []string{"Cache-Control: max-age=60"}, lines304: []string{"Cache-Control: max-age=60"}}
	do(c, req("GET /r"), a.app)
	clk.Advance(61 * time.Second)

	r := req("GET /r")
	served, leader := c.Lookup(newRecorder(), r)
	if served || leader == nil || r.Header.Get("If-None-Match") != `"v1"` {
		t.Fatalf("leader: served %v, fill %v, If-None-Match %q", served, leader != nil, r.Header.Get("If-None-Match"))
	}
	waiting := make(chan struct{}, 4)
	c.onWait = func() { waiting <- struct{}{} }
	results := make(chan result, 4)
	for range 4 {
		go func() { results <- do(c, req("GET /r"), a.app) }()
	}
	for range 4 {
		<-waiting
	}
	resp := a.app(r)
	if resp.status != 304 || !leader.Answer(newRecorder(), resp.status, resp.header) {
		t.Fatalf("leader's revalidation: %d not answered", resp.status)
	}
	leader.Done()
	for range 4 {
		mustHit(t, <-results, "body1")
	}
	if a.full != 1 || a.notModified != 1 {
		t.Fatalf("app: %d full, %d 304s; want 1 and 1", a.full, a.notModified)
	}
}

func TestStaleWhileRevalidate(t *testing.T) {
	c, clk := newCache(Options{})
	a := &conditional{etag: `"v1"`, lines: []string{"Cache-Control: max-age=60, stale-while-revalidate=30"},
		lines304: []string{"Cache-Control: max-age=60, stale-while-revalidate=30", "X-A: new"}}
	do(c, req("GET /r"), a.app)
	clk.Advance(70 * time.Second)

	rec := newRecorder()
	served, bg := c.Lookup(rec, req("GET /r"))
	if !served || bg == nil || !bg.Background() || rec.Body.String() != "body1" || rec.Header().Get("Age") != "70" {
		t.Fatalf("stale-while-revalidate: served %v, background fill %v, %q Age %q", served, bg != nil, rec.Body.String(), rec.Header().Get("Age"))
	}
	// Others are served stale too, without another revalidation.
	served, other := c.Lookup(newRecorder(), req("GET /r"))
	if !served || other != nil {
		t.Fatalf("second request: served %v, fill %v", served, other != nil)
	}
	r2 := bg.Request(req("GET /r"))
	if r2.Header.Get("If-None-Match") != `"v1"` {
		t.Fatalf("background request If-None-Match %q", r2.Header.Get("If-None-Match"))
	}
	resp := a.app(r2)
	discard := newRecorder()
	if !bg.Answer(discard, resp.status, resp.header) || discard.Body.Len() != 0 {
		t.Fatalf("background 304 not taken, or written to someone: %q", discard.Body.String())
	}
	bg.Done()
	res := do(c, req("GET /r"), nil)
	mustHit(t, res, "body1")
	if res.get("X-A") != "new" || res.get("Age") != "0" {
		t.Fatalf("after the background revalidation: X-A %q Age %q", res.get("X-A"), res.get("Age"))
	}

	// Past the window, the revalidation is the request's own.
	clk.Advance(91 * time.Second)
	res = do(c, req("GET /r"), a.app)
	if !res.answered || a.notModified != 2 {
		t.Fatalf("past stale-while-revalidate: answered %v, 304s %d", res.answered, a.notModified)
	}
}

func TestStaleIfError(t *testing.T) {
	c, clk := newCache(Options{})
	do(c, req("GET /r"), fixed(ok("good", "Cache-Control: max-age=60, stale-if-error=30")))
	failing := fixed(response{status: 503, header: hdr("Retry-After: 1"), body: "down"})
	clk.Advance(70 * time.Second)
	res := do(c, req("GET /r"), failing)
	if !res.answered || res.status() != 200 || res.body() != "good" {
		t.Fatalf("stale-if-error on 503: answered %v %d %q", res.answered, res.status(), res.body())
	}
	res = do(c, req("GET /r"), fixed(response{status: 404, body: "gone"}))
	if res.served || res.body() != "gone" {
		t.Fatalf("a 404 is an answer, not an error: %v %q", res.served, res.body())
	}
	do(c, req("GET /r"), fixed(ok("good", "Cache-Control: max-age=60, stale-if-error=30")))
	clk.Advance(91 * time.Second)
	res = do(c, req("GET /r"), failing)
	if res.served || res.status() != 503 {
		t.Fatalf("past stale-if-error: served %v %d", res.served, res.status())
	}
	if s := c.Stats(); s.Stale != 1 {
		t.Fatalf("Stale = %d", s.Stale)
	}
}

// ServeStale: the app could not be reached at all.
func TestStaleIfUnreachable(t *testing.T) {
	for _, tc := range []struct {
		name  string
		cc    string
		grace time.Duration
		after time.Duration
		want  bool
	}{
		{"grace", "max-age=60", 10 * time.Second, 65 * time.Second, true},
		{"past grace", "max-age=60", 10 * time.Second, 75 * time.Second, false},
		{"no grace", "max-age=60", 0, 65 * time.Second, false},
		{"stale-if-error without grace", "max-age=60, stale-if-error=30", 0, 85 * time.Second, true},
		{"must-revalidate", "max-age=60, must-revalidate", 10 * time.Second, 65 * time.Second, false},
		{"proxy-revalidate", "max-age=60, proxy-revalidate", 10 * time.Second, 65 * time.Second, false},
		{"s-maxage", "s-maxage=60", 10 * time.Second, 65 * time.Second, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, clk := newCache(Options{StaleIfUnreachable: tc.grace})
			do(c, req("GET /r"), fixed(ok("good", "Cache-Control: "+tc.cc)))
			clk.Advance(tc.after)
			rec := newRecorder()
			served, f := c.Lookup(rec, req("GET /r"))
			if served || f == nil {
				t.Fatalf("stale entry: served %v, fill %v", served, f != nil)
			}
			defer f.Done()
			if got := f.ServeStale(rec, true); got != tc.want || (got && rec.Body.String() != "good") {
				t.Fatalf("ServeStale = %v (%q), want %v", got, rec.Body.String(), tc.want)
			}
		})
	}
}

func TestMustRevalidateNotServedStale(t *testing.T) {
	c, clk := newCache(Options{StaleIfUnreachable: time.Minute})
	a := &conditional{etag: `"v1"`, lines: []string{"Cache-Control: max-age=60, must-revalidate, stale-while-revalidate=60, stale-if-error=60"}}
	do(c, req("GET /r"), a.app)
	clk.Advance(70 * time.Second)
	res := do(c, req("GET /r"), fixed(response{status: 503, body: "down"}))
	if res.served || res.status() != 503 {
		t.Fatalf("must-revalidate served stale: %v %d %q", res.served, res.status(), res.body())
	}
}

func TestVaryVariants(t *testing.T) {
	c, _ := newCache(Options{MaxVariants: 2})
	app := &counter{lines: []string{"Cache-Control: max-age=60", "Vary: Accept-Language, X-Mode"}}
	en := do(c, req("GET /r", "Accept-Language: en"), app.app)
	fr := do(c, req("GET /r", "Accept-Language: fr"), app.app)
	mustMiss(t, en)
	mustMiss(t, fr)
	mustHit(t, do(c, req("GET /r", "Accept-Language: en"), nil), "n1")
	mustHit(t, do(c, req("GET /r", "Accept-Language: fr"), nil), "n2")
	mustMiss(t, do(c, req("GET /r"), nil))                                     // absent is its own value
	mustMiss(t, do(c, req("GET /r", "Accept-Language: en", "X-Mode: a"), nil)) // so is a second header
	// A third variant drops the oldest (en).
	mustMiss(t, do(c, req("GET /r", "Accept-Language: de"), app.app))
	mustMiss(t, do(c, req("GET /r", "Accept-Language: en"), nil))
	mustHit(t, do(c, req("GET /r", "Accept-Language: fr"), nil), "n2")
	mustHit(t, do(c, req("GET /r", "Accept-Language: de"), nil), "n3")
	// The same variant replaces itself.
	do(c, req("GET /r", "Accept-Language: de"), fixed(ok("de2", "Cache-Control: max-age=60", "Vary: Accept-Language, X-Mode")))
	if s := c.Stats(); s.Entries != 2 {
		t.Fatalf("entries = %d, want 2", s.Entries)
	}
}

// An unsafe request to one URL must not keep a fill of another URL from
// storing, even when both share a generation slot.
func TestInvalidateOtherURLKeepsFill(t *testing.T) {
	c, _ := newCache(Options{})
	slot := genIndex(c.baseHash("example.com", "/a"))
	other := ""
	for i := 0; other == ""; i++ {
		if u := "/b" + strconv.Itoa(i); genIndex(c.baseHash("example.com", u)) == slot {
			other = u
		}
	}
	r := req("GET /a")
	_, f := c.Lookup(newRecorder(), r)
	if f == nil {
		t.Fatal("no fill")
	}
	post := req("POST " + other)
	c.Lookup(newRecorder(), post)
	c.Invalidate(post, 200, http.Header{})
	f.Store(200, hdr("Cache-Control: max-age=60"), []byte("a"))
	f.Done()
	if f.reason != okStored {
		t.Fatalf("a POST to %s (same slot) kept /a from storing: %q", other, f.reason)
	}
	// But a POST to the URL itself does.
	_, f = c.Lookup(newRecorder(), req("GET /c"))
	post = req("POST /c")
	c.Lookup(newRecorder(), post)
	f.Store(200, hdr("Cache-Control: max-age=60"), []byte("c"))
	f.Done()
	if f.reason != rejInvalidated {
		t.Fatalf("a POST to the same URL: %q, want %q", f.reason, rejInvalidated)
	}
}

func TestMergeOn304(t *testing.T) {
	stored := []field{
		{"Content-Type", []string{"text/plain"}}, {"Content-Length", []string{"5"}},
		{"Etag", []string{`"a"`}}, {"Cache-Control", []string{"max-age=1"}},
		{"X-Old", []string{"kept"}}, {"Date", []string{"old"}}, {"Content-Encoding", []string{"gzip"}},
	}
	got := mergeOn304(stored, hdr(
		"Content-Type: text/html", "Content-Length: 99", `ETag: "b"`, "Cache-Control: max-age=60",
		"X-New: added", "Content-Encoding: br", "Content-MD5: x", "Connection: X-Hop", "X-Hop: 1",
		"Keep-Alive: timeout=5", "Vary: X-Other"))
	want := map[string]string{
		"Content-Type": "text/html", "Content-Length": "5", "Etag": `"a"`, "Cache-Control": "max-age=60",
		"X-Old": "kept", "X-New": "added", "Content-Encoding": "gzip", "Date": "", "X-Hop": "", "Keep-Alive": "",
		"Content-Md5": "", "Vary": "",
	}
	for k, v := range want {
		if g := got.Get(k); g != v {
			t.Errorf("%s = %q, want %q", k, g, v)
		}
	}
	if got := mergeOn304(stored, hdr("Date: new")).Get("Date"); got != "new" {
		t.Errorf("Date = %q, want the 304's", got)
	}
}

func TestStatusRules(t *testing.T) {
	for code := 100; code < 600; code++ {
		want := code >= 200 && code != 206 && code != 304
		if got := storableStatus(code); got != want {
			t.Errorf("storableStatus(%d) = %v", code, got)
		}
	}
	for _, code := range []int{200, 301, 308, 404, 410, 503} {
		if !understoodStatus(code) {
			t.Errorf("understoodStatus(%d) = false", code)
		}
	}
	for _, code := range []int{201, 206, 299, 304, 401, 499, 599} {
		if understoodStatus(code) {
			t.Errorf("understoodStatus(%d) = true", code)
		}
	}
}

// Requests whose response may be stored announce Ferry as a surrogate, so
// that the app may aim Surrogate-Control directives at it.
func TestSurrogateCapability(t *testing.T) {
	c, _ := newCache(Options{})
	var sent []string
	app := func(r *http.Request) response {
		sent = r.Header["Surrogate-Capability"]
		return ok("x", "Cache-Control: no-store", "Surrogate-Control: max-age=60;"+SurrogateDevice)
	}
	res := do(c, req("GET /r"), app)
	if len(sent) != 1 || sent[0] != `ferry="Surrogate/1.0"` || res.reason != okStored {
		t.Fatalf("Surrogate-Capability %q, stored %q", sent, res.reason)
	}
	mustHit(t, do(c, req("GET /r"), nil), "x")
	do(c, req("GET /s", `Surrogate-Capability: cdn="Surrogate/1.0"`), app)
	if len(sent) != 2 || sent[0] != `cdn="Surrogate/1.0"` {
		t.Fatalf("behind another surrogate: %q", sent)
	}
}
