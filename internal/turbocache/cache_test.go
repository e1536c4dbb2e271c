package turbocache

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestHitHeadersAndAge(t *testing.T) {
	c, clk := newCache(Options{})
	app := fixed(ok("hello",
		"Cache-Control: max-age=100", "Content-Type: text/plain", "Age: 5",
		"Connection: close, X-Hop", "X-Hop: 1", "Keep-Alive: timeout=5", "X-App: yes"))
	do(c, req("GET /a"), app)
	clk.Advance(10*time.Second + 500*time.Millisecond)
	res := do(c, req("GET /a"), nil)
	mustHit(t, res, "hello")
	want := map[string]string{
		"Age": "15", "Content-Type": "text/plain", "Content-Length": "5", "X-App": "yes",
		"Cache-Control": "max-age=100", "Date": t0.Format(http.TimeFormat),
		"Connection": "", "X-Hop": "", "Keep-Alive": "",
	}
	for k, v := range want {
		if got := res.get(k); got != v {
			t.Errorf("%s = %q, want %q", k, got, v)
		}
	}
	// Age keeps counting, past the precomputed first minute too.
	clk.Advance(80 * time.Second)
	if res := do(c, req("GET /a"), nil); res.get("Age") != "95" {
		t.Errorf("Age = %q, want 95", res.get("Age"))
	}
}

func TestExpiry(t *testing.T) {
	c, clk := newCache(Options{})
	a := &counter{lines: []string{"Cache-Control: max-age=60"}}
	do(c, req("GET /e"), a.app)
	clk.Advance(59 * time.Second)
	mustHit(t, do(c, req("GET /e"), nil), "n1")
	clk.Advance(time.Second)
	mustMiss(t, do(c, req("GET /e"), nil))
	if s := c.Stats(); s.Entries != 0 || s.Bytes != 0 {
		t.Fatalf("expired entry not removed: %+v", s)
	}
	// Expires relative to the response's Date.
	c, clk = newCache(Options{})
	do(c, req("GET /x"), fixed(ok("x", "Date: "+t0.Format(http.TimeFormat), "Expires: "+t0.Add(30*time.Second).Format(http.TimeFormat))))
	clk.Advance(29 * time.Second)
	mustHit(t, do(c, req("GET /x"), nil), "x")
	clk.Advance(time.Second)
	mustMiss(t, do(c, req("GET /x"), nil))
}

func TestHead(t *testing.T) {
	c, _ := newCache(Options{})
	// A HEAD miss goes to the app and stores nothing.
	res := do(c, req("HEAD /h"), fixed(ok("", "Cache-Control: max-age=60")))
	if res.served || res.fill {
		t.Fatalf("HEAD miss: served=%v fill=%v", res.served, res.fill)
	}
	if c.Stats().Entries != 0 {
		t.Fatal("HEAD response stored")
	}
	do(c, req("GET /h"), fixed(ok("body!", "Cache-Control: max-age=60", "Content-Type: text/html")))
	res = do(c, req("HEAD /h"), nil)
	if !res.served || res.body() != "" || res.get("Content-Length") != "5" || res.get("Content-Type") != "text/html" {
		t.Fatalf("HEAD hit: served=%v body=%q headers=%v", res.served, res.body(), res.rec.Header())
	}
	mustHit(t, do(c, req("GET /h"), nil), "body!")
}

func TestNotModified(t *testing.T) {
	lm := t0.Add(-time.Hour)
	lmStr := lm.Format(http.TimeFormat)
	cases := []struct {
		name  string
		etag  string // response ETag ("" none)
		lines []string
		want  int
	}{
		{"INM match", `"abc"`, []string{`If-None-Match: "abc"`}, 304},
		{"INM weak request", `"abc"`, []string{`If-None-Match: W/"abc"`}, 304},
		{"INM weak entry", `W/"abc"`, []string{`If-None-Match: "abc"`}, 304},
		{"INM list", `"abc"`, []string{`If-None-Match: "x", "abc"`}, 304},
		{"INM list with comma inside", `"a,b"`, []string{`If-None-Match: "zz", "a,b"`}, 304},
		{"INM no match", `"abc"`, []string{`If-None-Match: "abd"`}, 200},
		{"INM partial tag", `"abc"`, []string{`If-None-Match: "ab"`}, 200},
		{"INM star", `"abc"`, []string{`If-None-Match: *`}, 304},
		{"INM star no ETag", "", []string{`If-None-Match: *`}, 304},
		{"INM without ETag", "", []string{`If-None-Match: "abc"`}, 200},
		{"IMS equal", `"abc"`, []string{"If-Modified-Since: " + lmStr}, 304},
		{"IMS later", `"abc"`, []string{"If-Modified-Since: " + t0.Format(http.TimeFormat)}, 304},
		{"IMS earlier", `"abc"`, []string{"If-Modified-Since: " + lm.Add(-time.Second).Format(http.TimeFormat)}, 200},
		{"IMS invalid", `"abc"`, []string{"If-Modified-Since: yesterday"}, 200},
		{"INM wins over IMS", `"abc"`, []string{`If-None-Match: "zzz"`, "If-Modified-Since: " + lmStr}, 200},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, clk := newCache(Options{})
			lines := []string{"Cache-Control: max-age=60", "Content-Type: text/plain", "Last-Modified: " + lmStr, "Expires: " + t0.Add(time.Minute).Format(http.TimeFormat), "X-Other: 1"}
			if tc.etag != "" {
				lines = append(lines, "ETag: "+tc.etag)
			}
			do(c, req("GET /c"), fixed(ok("content", lines...)))
			clk.Advance(3 * time.Second)
			for _, method := range []string{"GET", "HEAD"} {
				res := do(c, req(method+" /c", tc.lines...), nil)
				if !res.served || res.status() != tc.want {
					t.Fatalf("%s: served=%v status=%d, want %d", method, res.served, res.status(), tc.want)
				}
				if res.get("Age") != "3" {
					t.Errorf("%s: Age = %q", method, res.get("Age"))
				}
				if tc.want != 304 {
					continue
				}
				h := res.rec.Header()
				if res.body() != "" || h.Get("Content-Type") != "" || h.Get("Content-Length") != "" || h.Get("X-Other") != "" {
					t.Errorf("%s: 304 carries body %q or representation headers %v", method, res.body(), h)
				}
				if h.Get("Cache-Control") == "" || h.Get("Date") == "" || h.Get("Expires") == "" {
					t.Errorf("%s: 304 lacks Cache-Control/Date/Expires: %v", method, h)
				}
				if tc.etag != "" && h.Get("Etag") != tc.etag {
					t.Errorf("%s: 304 ETag = %q", method, h.Get("Etag"))
				}
				if tc.etag == "" && h.Get("Last-Modified") != lmStr {
					t.Errorf("%s: 304 without ETag lacks Last-Modified", method)
				}
			}
		})
	}
	// Only 2xx entries answer conditionals.
	c, _ := newCache(Options{})
	do(c, req("GET /gone"), fixed(response{status: 404, header: hdr("Cache-Control: max-age=60", `ETag: "e"`), body: "nope"}))
	if res := do(c, req("GET /gone", `If-None-Match: "e"`), nil); res.status() != 404 {
		t.Fatalf("conditional on a 404 entry: %d", res.status())
	}
}

func TestVaryAcceptEncoding(t *testing.T) {
	c, _ := newCache(Options{})
	app := func(r *http.Request) response {
		if strings.Contains(r.Header.Get("Accept-Encoding"), "gzip") {
			return ok("GZ", "Cache-Control: max-age=60", "Vary: Accept-Encoding", "Content-Encoding: gzip")
		}
		return ok("PLAIN", "Cache-Control: max-age=60", "Vary: Accept-Encoding")
	}
	do(c, req("GET /v", "Accept-Encoding: gzip, deflate, br"), app)
	mustHit(t, do(c, req("GET /v", "Accept-Encoding: br, gzip, deflate"), nil), "GZ")
	mustHit(t, do(c, req("GET /v", "Accept-Encoding: gzip;q=1.0, deflate;q=0.5, br"), nil), "GZ")
	mustMiss(t, do(c, req("GET /v", "Accept-Encoding: gzip"), nil))
	mustMiss(t, do(c, req("GET /v"), app)) // no Accept-Encoding: its own entry
	mustHit(t, do(c, req("GET /v"), nil), "PLAIN")
	mustHit(t, do(c, req("GET /v", "Accept-Encoding: br, gzip, deflate"), nil), "GZ")
	mustMiss(t, do(c, req("GET /v", "Accept-Encoding: identity"), nil))
	if n := c.Stats().Entries; n != 2 {
		t.Fatalf("entries = %d, want 2", n)
	}

	// Without Vary, every Accept-Encoding shares the entry.
	c, _ = newCache(Options{})
	do(c, req("GET /n", "Accept-Encoding: gzip"), fixed(ok("same", "Cache-Control: max-age=60")))
	mustHit(t, do(c, req("GET /n"), nil), "same")
	mustHit(t, do(c, req("GET /n", "Accept-Encoding: br"), nil), "same")

	// A compressed body without Vary is kept per Accept-Encoding anyway.
	c, _ = newCache(Options{})
	do(c, req("GET /z", "Accept-Encoding: gzip"), fixed(ok("GZ", "Cache-Control: max-age=60", "Content-Encoding: gzip")))
	mustHit(t, do(c, req("GET /z", "Accept-Encoding: gzip"), nil), "GZ")
	mustMiss(t, do(c, req("GET /z"), nil))
}

func TestVaryByCookie(t *testing.T) {
	app := func(r *http.Request) response {
		user := "anonymous"
		if ck, err := r.Cookie("session"); err == nil {
			user = ck.Value
		}
		return ok("page for "+user, "Cache-Control: max-age=60", "Vary: Cookie")
	}
	c, _ := newCache(Options{VaryByCookie: "session"})
	do(c, req("GET /home", "Cookie: theme=dark; session=alice"), app)
	do(c, req("GET /home", "Cookie: session=bob"), app)
	do(c, req("GET /home"), app)
	mustHit(t, do(c, req("GET /home", "Cookie: session=alice"), nil), "page for alice")
	mustHit(t, do(c, req("GET /home", "Cookie: session=bob; theme=light"), nil), "page for bob")
	mustHit(t, do(c, req("GET /home", "Cookie: theme=dark"), nil), "page for anonymous")
	mustHit(t, do(c, req("GET /home"), nil), "page for anonymous")
	mustMiss(t, do(c, req("GET /home", "Cookie: session=carol"), nil))
	// Ambiguous: the app might read either value.
	res := do(c, req("GET /home", "Cookie: session=alice; session=bob"), nil)
	if res.served || res.fill {
		t.Fatalf("duplicate cookie: served=%v fill=%v", res.served, res.fill)
	}
	if n := c.Stats().Entries; n != 3 {
		t.Fatalf("entries = %d, want 3", n)
	}

	// Not configured: cookies are not in the key, and Vary: Cookie is refused.
	c, _ = newCache(Options{})
	do(c, req("GET /home", "Cookie: session=alice"), app)
	if c.Stats().Entries != 0 {
		t.Fatal("Vary: Cookie stored without VaryByCookie")
	}
	do(c, req("GET /shared", "Cookie: session=alice"), fixed(ok("shared", "Cache-Control: max-age=60")))
	mustHit(t, do(c, req("GET /shared", "Cookie: session=bob"), nil), "shared")
}

func TestKey(t *testing.T) {
	c, _ := newCache(Options{})
	a := &counter{lines: []string{"Cache-Control: max-age=60"}}
	do(c, req("GET /k?a=1"), a.app)
	mustHit(t, do(c, req("GET /k?a=1"), nil), "n1")
	mustMiss(t, do(c, req("GET /k?a=2"), nil))
	mustMiss(t, do(c, req("GET /k"), nil))
	mustMiss(t, do(c, req("GET /K?a=1"), nil))

	r := req("GET /k?a=1")
	r.Host = "EXAMPLE.com"
	mustHit(t, do(c, r, nil), "n1")
	r = req("GET /k?a=1")
	r.Host = "other.example"
	mustMiss(t, do(c, r, nil))

	// https is another entry: an http→https redirect must not loop.
	mustMiss(t, do(c, tlsReq(req("GET /k?a=1")), a.app))
	mustHit(t, do(c, tlsReq(req("GET /k?a=1")), nil), "n2")
	mustHit(t, do(c, req("GET /k?a=1"), nil), "n1")

	// Forwarding headers a client could spoof are in the key.
	mustMiss(t, do(c, req("GET /k?a=1", "X-Forwarded-Host: evil.example"), a.app))
	mustHit(t, do(c, req("GET /k?a=1", "X-Forwarded-Host: evil.example"), nil), "n3")
	mustHit(t, do(c, req("GET /k?a=1"), nil), "n1")
	mustMiss(t, do(c, req("GET /k?a=1", "X-Forwarded-Proto: http"), nil))

	// Absolute-form request-target: same key as origin form.
	r = req("GET /k?a=1")
	r.RequestURI = "http://example.com/k?a=1"
	mustHit(t, do(c, r, nil), "n1")
}

func TestInvalidation(t *testing.T) {
	for _, method := range []string{"POST", "PUT", "PATCH", "DELETE", "PURGE"} {
		t.Run(method, func(t *testing.T) {
			c, _ := newCache(Options{VaryByCookie: "s"})
			a := &counter{lines: []string{"Cache-Control: max-age=60", "Vary: Accept-Encoding"}}
			variants := []*http.Request{
				req("GET /item?id=1"),
				req("GET /item?id=1", "Accept-Encoding: gzip"),
				req("GET /item?id=1", "Cookie: s=u1"),
				tlsReq(req("GET /item?id=1")),
			}
			for _, r := range variants {
				do(c, r, a.app)
			}
			do(c, req("GET /item?id=2"), a.app)
			do(c, req("GET /item"), a.app)
			if n := c.Stats().Entries; n != 6 {
				t.Fatalf("setup: %d entries", n)
			}
			r := req(method + " /item?id=1")
			r.Host = "Example.COM"
			res := do(c, r, nil)
			if res.served || res.fill {
				t.Fatal("unsafe request served or given a fill")
			}
			if s := c.Stats(); s.Entries != 2 || s.Invalidations != 4 {
				t.Fatalf("after %s: %+v, want 2 entries and 4 invalidations", method, s)
			}
			mustMiss(t, do(c, req("GET /item?id=1"), nil))
			mustHit(t, do(c, req("GET /item?id=2"), nil), "n5")
			mustHit(t, do(c, req("GET /item"), nil), "n6")
		})
	}
	t.Run("OPTIONS does not invalidate", func(t *testing.T) {
		c, _ := newCache(Options{})
		do(c, req("GET /o"), fixed(ok("o", "Cache-Control: max-age=60")))
		do(c, req("OPTIONS /o"), nil)
		mustHit(t, do(c, req("GET /o"), nil), "o")
	})
}

// TestInvalidateAfterResponse: Invalidate drops what a GET overlapping the
// write stored, and the same-host Location/Content-Location targets.
func TestInvalidateAfterResponse(t *testing.T) {
	c, _ := newCache(Options{})
	app := fixed(ok("x", "Cache-Control: max-age=60"))
	for _, p := range []string{"/list", "/list/7", "/other", "/rel/target"} {
		do(c, req("GET "+p), app)
	}
	post := req("POST /list")
	do(c, post, nil) // Lookup invalidates /list
	do(c, req("GET /list"), app)
	if c.Stats().Entries != 4 {
		t.Fatal("setup")
	}
	c.Invalidate(post, 201, hdr("Location: http://EXAMPLE.com/list/7", "Content-Location: https://elsewhere.example/other"))
	mustMiss(t, do(c, req("GET /list"), nil))
	mustMiss(t, do(c, req("GET /list/7"), nil))
	mustHit(t, do(c, req("GET /other"), nil), "x")

	put := req("PUT /rel/source")
	c.Invalidate(put, 303, hdr("Location: target"))
	mustMiss(t, do(c, req("GET /rel/target"), nil))

	// Errors invalidate the request URL only.
	do(c, req("GET /other2"), app)
	c.Invalidate(req("POST /x"), 500, hdr("Location: /other2"))
	mustHit(t, do(c, req("GET /other2"), nil), "x")
	// Safe methods never invalidate.
	c.Invalidate(req("GET /other2"), 200, nil)
	mustHit(t, do(c, req("GET /other2"), nil), "x")
}

// TestInvalidationDuringFill: a response fetched before a write finished is
// not stored.
func TestInvalidationDuringFill(t *testing.T) {
	c, _ := newCache(Options{})
	_, f := c.Lookup(newRecorder(), req("GET /d"))
	if f == nil {
		t.Fatal("no fill")
	}
	c.Lookup(newRecorder(), req("DELETE /d"))
	f.Store(200, hdr("Cache-Control: max-age=60"), []byte("stale"))
	f.Done()
	if f.reason != rejInvalidated || c.Stats().Entries != 0 {
		t.Fatalf("stored across an invalidation: %q", f.reason)
	}
	// And a purge.
	_, f = c.Lookup(newRecorder(), req("GET /d"))
	c.Purge()
	f.Store(200, hdr("Cache-Control: max-age=60"), []byte("stale"))
	f.Done()
	if c.Stats().Entries != 0 {
		t.Fatal("stored across a purge")
	}
}

func TestEvictionByEntries(t *testing.T) {
	c, _ := newCache(Options{MaxEntries: 3})
	app := func(r *http.Request) response { return ok(r.URL.Path, "Cache-Control: max-age=60") }
	for _, p := range []string{"/a", "/b", "/c"} {
		do(c, req("GET "+p), app)
	}
	mustHit(t, do(c, req("GET /a"), nil), "/a") // /a is recently used
	do(c, req("GET /d"), app)
	s := c.Stats()
	if s.Entries != 3 || s.Evictions != 1 {
		t.Fatalf("stats %+v, want 3 entries, 1 eviction", s)
	}
	mustMiss(t, do(c, req("GET /b"), nil)) // least recently used went
	for _, p := range []string{"/a", "/c", "/d"} {
		mustHit(t, do(c, req("GET "+p), nil), p)
	}
	// Replacing an entry does not count as more entries.
	do(c, req("GET /d", "Cache-Control: no-cache"), app)
	if s := c.Stats(); s.Entries != 3 || s.Evictions != 1 {
		t.Fatalf("after a refresh: %+v", s)
	}
}

func TestEvictionByBytes(t *testing.T) {
	body := strings.Repeat("b", 1000)
	c, _ := newCache(Options{MaxBytes: 5000})
	app := fixed(ok(body, "Cache-Control: max-age=60"))
	for i := range 20 {
		do(c, req(fmt.Sprintf("GET /%d", i)), app)
		if s := c.Stats(); s.Bytes > 5000 {
			t.Fatalf("bytes %d over the bound", s.Bytes)
		}
	}
	s := c.Stats()
	if s.Entries < 2 || s.Entries > 4 || s.Evictions != 20-s.Entries {
		t.Fatalf("stats %+v", s)
	}
	mustHit(t, do(c, req("GET /19"), nil), body)
	mustMiss(t, do(c, req("GET /0"), nil))

	// An entry over MaxEntrySize is never stored and evicts nothing.
	c, _ = newCache(Options{MaxEntrySize: 2000})
	do(c, req("GET /small"), app)
	do(c, req("GET /big"), fixed(ok(strings.Repeat("x", 3000), "Cache-Control: max-age=60")))
	if s := c.Stats(); s.Entries != 1 || s.Rejected != 1 {
		t.Fatalf("stats %+v", s)
	}
}

// TestEvictionPrefersExpired: an expired entry goes first even when it was
// used recently.
func TestEvictionPrefersExpired(t *testing.T) {
	c, clk := newCache(Options{MaxEntries: 2})
	do(c, req("GET /short"), fixed(ok("s", "Cache-Control: max-age=5")))
	do(c, req("GET /long"), fixed(ok("l", "Cache-Control: max-age=500")))
	mustHit(t, do(c, req("GET /short"), nil), "s")
	clk.Advance(10 * time.Second)
	do(c, req("GET /new"), fixed(ok("n", "Cache-Control: max-age=500")))
	mustHit(t, do(c, req("GET /long"), nil), "l")
	mustHit(t, do(c, req("GET /new"), nil), "n")
}

func TestPurgeAndStats(t *testing.T) {
	c, _ := newCache(Options{})
	app := fixed(ok("p", "Cache-Control: max-age=60"))
	do(c, req("GET /1"), app)
	do(c, req("GET /2"), app)
	do(c, req("GET /1"), nil)
	do(c, req("GET /3"), fixed(ok("no")))
	s := c.Stats()
	if s.Hits != 1 || s.Misses != 3 || s.Stores != 2 || s.Rejected != 1 || s.Entries != 2 || s.Bytes <= 0 {
		t.Fatalf("stats %+v", s)
	}
	c.Purge()
	if s := c.Stats(); s.Entries != 0 || s.Bytes != 0 {
		t.Fatalf("after purge %+v", s)
	}
	mustMiss(t, do(c, req("GET /1"), app))
	mustHit(t, do(c, req("GET /1"), nil), "p")
	if s := c.Stats(); s.Entries != 1 {
		t.Fatalf("after refill %+v", s)
	}
}

// TestSharedSlicesNotMutatedByAppend: stored header slices have no spare
// capacity, so a handler appending to one gets a copy.
func TestSharedSlicesNotMutatedByAppend(t *testing.T) {
	c, _ := newCache(Options{})
	do(c, req("GET /s"), fixed(ok("s", "Cache-Control: max-age=60", "Vary: Accept-Encoding")))
	res := do(c, req("GET /s"), nil)
	w := newRecorder()
	c.Lookup(w, req("GET /s"))
	w.Header().Add("Vary", "Origin")
	w.Header().Add("Cache-Control", "x")
	mustHit(t, do(c, req("GET /s"), nil), "s")
	if got := do(c, req("GET /s"), nil).rec.Header()["Vary"]; len(got) != 1 || res.get("Vary") != "Accept-Encoding" {
		t.Fatalf("stored Vary changed: %q", got)
	}
}

// TestKeyedHeadersParsed: each keyed header lands in its own slot.
func TestKeyedHeadersParsed(t *testing.T) {
	c, _ := newCache(Options{})
	for i, name := range keyedHeaders {
		var q request
		if !c.parse(req("GET /", name+": v"), &q) {
			t.Fatalf("%s: request refused", name)
		}
		for j, vs := range q.extra {
			if (j == i) != (vs != nil) {
				t.Fatalf("%s: slot %d = %q", name, j, vs)
			}
		}
		if !q.hasExtra {
			t.Fatalf("%s: hasExtra not set", name)
		}
	}
}

// TestEvictionAllReferenced: when every entry was used since the hand last
// passed, the one being stored still stays and the oldest goes.
func TestEvictionAllReferenced(t *testing.T) {
	c, _ := newCache(Options{MaxEntries: 2})
	app := func(r *http.Request) response { return ok(r.URL.Path, "Cache-Control: max-age=60") }
	do(c, req("GET /a"), app)
	do(c, req("GET /b"), app)
	mustHit(t, do(c, req("GET /a"), nil), "/a")
	mustHit(t, do(c, req("GET /b"), nil), "/b")
	r := req("GET /c")
	r.Host = "Example.COM" // stored under the lower-case host
	do(c, r, app)
	mustMiss(t, do(c, req("GET /a"), nil))
	mustHit(t, do(c, req("GET /b"), nil), "/b")
	mustHit(t, do(c, req("GET /c"), nil), "/c")
	if s := c.Stats(); s.Entries != 2 || s.Evictions != 1 {
		t.Fatalf("stats %+v", s)
	}
}
