package turbocache

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// FuzzCacheability throws random caching headers at the rules: nothing
// panics, and a stored response never has private, no-store, no-cache,
// Set-Cookie, a forbidden Vary, an uncacheable status, or came from a
// request with Authorization without public/s-maxage, or with no-store.
func FuzzCacheability(f *testing.F) {
	date := t0.Format(http.TimeFormat)
	later := t0.Add(time.Hour).Format(http.TimeFormat)
	type seed struct {
		status                                     int
		cc, expires, vary, setCookie, pragma, age  string
		extraName, extraValue                      string
		reqCC, reqPragma, reqAE, reqCookie, reqINM string
		auth, varyCookie                           bool
	}
	seeds := []seed{
		{status: 200, cc: "max-age=60"},
		{status: 200, cc: "public, max-age=60", auth: true},
		{status: 200, cc: "s-maxage=60, private"},
		{status: 200, cc: `max-age=60, no-cache="set-cookie"`},
		{status: 200, cc: "max-age=60", setCookie: "a=b"},
		{status: 200, cc: "max-age=60", extraName: "set-cookie", extraValue: "a=b"},
		{status: 200, cc: "max-age=60", extraName: "cache-control", extraValue: "PRIVATE"},
		{status: 200, cc: "max-age=60", extraName: "pragma", extraValue: "no-cache"},
		{status: 200, expires: later, vary: "Accept-Encoding", reqAE: "gzip, br"},
		{status: 200, expires: "0"},
		{status: 301, cc: "max-age=60", vary: "cookie", varyCookie: true, reqCookie: "s=1"},
		{status: 404, cc: "max-age=60", vary: "Cookie"},
		{status: 500, cc: "max-age=60"},
		{status: 204, cc: "max-age=\"60\", must-revalidate", age: "30"},
		{status: 200, cc: "max-age=60", reqCC: "no-store"},
		{status: 200, cc: "max-age=60", reqCC: "max-age=0", reqPragma: "no-cache"},
		{status: 200, cc: "max-age=60", reqINM: `W/"x", *`},
		{status: 200, cc: ",,max-age=99999999999999999999,", pragma: "x"},
		{status: 200, cc: "max-age=60", extraName: "Connection", extraValue: "Set-Cookie"},
		{status: 200, cc: "max-age=60", vary: "Accept-Encoding, *"},
		{status: 200, cc: "max-age=60", extraName: "Content-Encoding", extraValue: "br", reqAE: "br;q=0.5, zzz"},
		{status: 200, cc: "no-store", extraName: "CDN-Cache-Control", extraValue: "max-age=60"},
		{status: 200, cc: "private", extraName: "CDN-Cache-Control", extraValue: "max-age=60"},
		{status: 200, cc: "max-age=60", extraName: "Surrogate-Control", extraValue: "no-store"},
		{status: 200, cc: "max-age=60", extraName: "Surrogate-Control", extraValue: "max-age=5;dev, no-cache"},
		{status: 200, cc: "max-age=60, stale-while-revalidate=2147483648, stale-if-error=9"},
		{status: 302, cc: "max-age=60, must-understand"},
		{status: 599, cc: "max-age=60, must-understand"},
		{status: 200, cc: "max-age=60", vary: "Accept-Language, X-A", age: "7200, 0"},
		{status: 200, expires: "Thu, 18 Aug 2050 2:01:18 GMT"},
		// Found by fuzzing.
		{status: 200, cc: "s-mAXAge=1"},
		{status: 200, cc: "mAX-Age=1", reqCC: "no-store0", reqINM: "0"},
		{status: 200, cc: "mAX-Age=1", extraName: "ConneCtion", extraValue: "Set-Cookie", expires: "0", setCookie: "0"},
		{status: 200, cc: "0", expires: "SAt, 01 MAY 7000 0:00:00 GMT", vary: " ", pragma: "0", age: "0"},
	}
	for _, s := range seeds {
		f.Add(s.status, s.cc, s.expires, s.vary, s.setCookie, s.pragma, s.age, s.extraName, s.extraValue,
			s.reqCC, s.reqPragma, s.reqAE, s.reqCookie, s.reqINM, s.auth, s.varyCookie)
	}
	f.Fuzz(func(t *testing.T, status int, cc, expires, vary, setCookie, pragma, age, extraName, extraValue,
		reqCC, reqPragma, reqAE, reqCookie, reqINM string, auth, varyCookie bool) {
		clk := &fakeClock{t: t0}
		o := Options{Now: clk.Now}
		if varyCookie {
			o.VaryByCookie = "s"
		}
		c := New(o)

		r := httptest.NewRequest("GET", "http://example.com/f", nil)
		set := func(h http.Header, k, v string) {
			if v != "" {
				h[k] = append(h[k], v)
			}
		}
		set(r.Header, "Cache-Control", reqCC)
		set(r.Header, "Pragma", reqPragma)
		set(r.Header, "Accept-Encoding", reqAE)
		set(r.Header, "Cookie", reqCookie)
		set(r.Header, "If-None-Match", reqINM)
		if auth {
			r.Header.Set("Authorization", "Bearer t")
		}

		h := http.Header{}
		set(h, "Cache-Control", cc)
		set(h, "Expires", expires)
		set(h, "Vary", vary)
		set(h, "Set-Cookie", setCookie)
		set(h, "Pragma", pragma)
		set(h, "Age", age)
		h.Set("Date", date)
		if extraName != "" {
			h[extraName] = append(h[extraName], extraValue)
		}

		served, fill := c.Lookup(httptest.NewRecorder(), r)
		if served {
			return // only-if-cached
		}
		if fill == nil {
			return
		}
		fill.Store(status, h, []byte("body"))
		fill.Done()
		if c.Stats().Stores == 0 {
			return
		}

		// Storable agrees.
		c2 := New(o)
		_, f2 := c2.Lookup(httptest.NewRecorder(), r)
		if f2 == nil || !f2.Storable(status, h) {
			t.Fatal("stored, but Storable says no")
		}
		f2.Done()

		// Stored: check every rule against the raw input.
		fail := func(why string) {
			t.Fatalf("stored despite %s: status %d, header %q, request %q", why, status, h, r.Header)
		}
		if !storableStatus(status) {
			fail("status")
		}
		var allCC, allPragma, allVary, allTargeted []string
		for k, vs := range h {
			switch {
			case strings.EqualFold(k, "CDN-Cache-Control"), strings.EqualFold(k, "Surrogate-Control"):
				allTargeted = append(allTargeted, vs...)
			case strings.EqualFold(k, "Cache-Control"):
				allCC = append(allCC, vs...)
			case strings.EqualFold(k, "Pragma"):
				allPragma = append(allPragma, vs...)
			case strings.EqualFold(k, "Vary"):
				allVary = append(allVary, vs...)
			case strings.EqualFold(k, "Set-Cookie"), strings.EqualFold(k, "Set-Cookie2"):
				fail("Set-Cookie")
			}
		}
		ccl := strings.ToLower(strings.Join(allCC, ","))
		// A targeted field (CDN-Cache-Control) overrides Cache-Control's
		// no-store and no-cache, never its private.
		tl := strings.ToLower(strings.Join(allTargeted, ","))
		decisive := ccl
		if len(allTargeted) > 0 {
			decisive = tl
			if strings.Contains(ccl, "private") {
				fail("private")
			}
		}
		for _, word := range []string{"private", "no-store", "no-cache"} {
			if strings.Contains(decisive, word) {
				fail(word)
			}
		}
		if len(allTargeted) == 0 && strings.Contains(strings.ToLower(strings.Join(allPragma, ",")), "no-cache") {
			fail("Pragma: no-cache")
		}
		if auth && !strings.Contains(ccl, "public") && !strings.Contains(ccl, "s-maxage") {
			fail("Authorization")
		}
		if strings.Contains(strings.ToLower(reqCC), "no-store") {
			fail("request no-store")
		}
		for _, v := range allVary {
			for _, tok := range strings.Split(v, ",") {
				tok = strings.ToLower(strings.TrimSpace(tok))
				if tok == "*" || (tok == "cookie" && !varyCookie) {
					fail("Vary " + tok)
				}
			}
		}
		if !strings.Contains(ccl+tl, "max-age") && !strings.Contains(ccl+tl, "s-maxage") && len(h["Expires"]) == 0 {
			fail("no explicit freshness")
		}

		// The stored entry is served to the same request (unless that
		// request bypasses the cache), and is gone once expired.
		rec := httptest.NewRecorder()
		served, fill = c.Lookup(rec, r)
		if fill != nil {
			fill.Done()
		}
		if served && rec.Code != status && rec.Code != http.StatusNotModified {
			t.Fatalf("hit status %d, stored %d", rec.Code, status)
		}
		clk.Advance(3 * maxDelta * time.Second) // past any lifetime and any stale-while-revalidate
		rec = httptest.NewRecorder()
		served, fill = c.Lookup(rec, r)
		if fill != nil {
			fill.Done()
		}
		if served && rec.Code != http.StatusGatewayTimeout {
			t.Fatal("expired entry served")
		}
	})
}
