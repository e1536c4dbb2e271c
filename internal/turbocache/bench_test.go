package turbocache

import (
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
)

// benchWriter is a ResponseWriter that keeps its header map, as a server
// connection reusing its response would, and discards the body.
type benchWriter struct {
	h      http.Header
	status int
	n      int
}

func (w *benchWriter) Header() http.Header         { return w.h }
func (w *benchWriter) WriteHeader(s int)           { w.status = s }
func (w *benchWriter) Write(p []byte) (int, error) { w.n += len(p); return len(p), nil }

// browserRequest is a GET as a browser sends it.
func browserRequest(path string) *http.Request {
	r := httptest.NewRequest("GET", "http://www.example.com"+path, nil)
	r.RequestURI = path // origin form, as the server sees it
	r.Header = http.Header{
		"Accept":          {"text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"},
		"Accept-Encoding": {"gzip, deflate, br, zstd"},
		"Accept-Language": {"en-GB,en;q=0.9"},
		"User-Agent":      {"Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"},
		"Cookie":          {"_ga=GA1.2.3; theme=dark"},
		"Connection":      {"keep-alive"},
		"Sec-Fetch-Mode":  {"navigate"},
		"Sec-Fetch-Site":  {"none"},
	}
	return r
}

var pageHeader = http.Header{
	"Content-Type":    {"text/html; charset=utf-8"},
	"Cache-Control":   {"public, max-age=60"},
	"Etag":            {`"5f1c-1a2b"`},
	"Last-Modified":   {"Sat, 01 Mar 2025 11:00:00 GMT"},
	"Vary":            {"Accept-Encoding"},
	"X-Frame-Options": {"SAMEORIGIN"},
}

var pageBody = []byte(strings.Repeat("<p>Hello, world</p>\n", 100))

func primed(b *testing.B, paths ...string) *Cache {
	c := New(Options{})
	for _, p := range paths {
		_, f := c.Lookup(&benchWriter{h: http.Header{}}, browserRequest(p))
		if f == nil {
			b.Fatal("no fill")
		}
		f.Store(200, pageHeader, pageBody)
		f.Done()
	}
	return c
}

func BenchmarkLookupHit(b *testing.B) {
	c := primed(b, "/articles/42?page=2")
	r := browserRequest("/articles/42?page=2")
	w := &benchWriter{h: http.Header{}}
	b.ReportAllocs()
	for b.Loop() {
		if served, _ := c.Lookup(w, r); !served {
			b.Fatal("miss")
		}
	}
	if w.n == 0 {
		b.Fatal("no body")
	}
}

// BenchmarkLookupHitParallel: every goroutine hits the same hot entry (the
// worst case: one shard).
func BenchmarkLookupHitParallel(b *testing.B) {
	c := primed(b, "/")
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		r := browserRequest("/")
		w := &benchWriter{h: http.Header{}}
		for pb.Next() {
			if served, _ := c.Lookup(w, r); !served {
				b.Error("miss")
				return
			}
		}
	})
}

// BenchmarkLookupHitParallelSpread: hits spread over 256 entries.
func BenchmarkLookupHitParallelSpread(b *testing.B) {
	paths := make([]string, 256)
	for i := range paths {
		paths[i] = "/p/" + strconv.Itoa(i)
	}
	c := primed(b, paths...)
	var next atomic.Int64
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		rs := make([]*http.Request, len(paths))
		for i, p := range paths {
			rs[i] = browserRequest(p)
		}
		w := &benchWriter{h: http.Header{}}
		i := int(next.Add(97))
		for pb.Next() {
			i++
			if served, _ := c.Lookup(w, rs[i%len(rs)]); !served {
				b.Error("miss")
				return
			}
		}
	})
}

// BenchmarkLookupHit304: a revalidation answered from the entry.
func BenchmarkLookupHit304(b *testing.B) {
	c := primed(b, "/")
	r := browserRequest("/")
	r.Header["If-None-Match"] = []string{`"5f1c-1a2b"`}
	w := &benchWriter{h: http.Header{}}
	b.ReportAllocs()
	for b.Loop() {
		c.Lookup(w, r)
	}
	if w.status != 304 {
		b.Fatal(w.status)
	}
}

// BenchmarkMissUncacheable is what the cache costs a request whose response
// cannot be stored: Lookup, Store (refused), Done.
func BenchmarkMissUncacheable(b *testing.B) {
	for _, tc := range []struct {
		name   string
		header http.Header
	}{
		{"no-caching-headers", http.Header{"Content-Type": {"text/html"}}},
		{"rails-default", http.Header{
			"Content-Type":  {"text/html; charset=utf-8"},
			"Cache-Control": {"max-age=0, private, must-revalidate"},
			"Etag":          {`W/"abc"`},
			"Set-Cookie":    {"_app_session=xyz; path=/; HttpOnly"},
		}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			c := New(Options{})
			r := browserRequest("/dashboard")
			w := &benchWriter{h: http.Header{}}
			b.ReportAllocs()
			for b.Loop() {
				served, f := c.Lookup(w, r)
				if served || f == nil {
					b.Fatal("served or no fill")
				}
				f.Store(200, tc.header, pageBody)
				f.Done()
			}
			if c.Stats().Stores != 0 {
				b.Fatal("stored")
			}
		})
	}
}

// BenchmarkMissUncacheableRequest: a request that cannot use the cache at
// all (POST-free, e.g. Cache-Control: no-store from the client).
func BenchmarkMissUncacheableRequest(b *testing.B) {
	c := New(Options{})
	r := browserRequest("/api")
	r.Header["Cache-Control"] = []string{"no-store"}
	w := &benchWriter{h: http.Header{}}
	b.ReportAllocs()
	for b.Loop() {
		if served, f := c.Lookup(w, r); served || f != nil {
			b.Fatal("served or fill")
		}
	}
}

// BenchmarkStore: a miss whose response is stored, over more URLs than the
// cache holds (so each store also evicts).
func BenchmarkStore(b *testing.B) {
	const n = 1 << 14
	c := New(Options{MaxEntries: n / 2})
	rs := make([]*http.Request, n)
	for i := range rs {
		rs[i] = browserRequest("/item/" + strconv.Itoa(i))
	}
	w := &benchWriter{h: http.Header{}}
	i := 0
	b.ReportAllocs()
	for b.Loop() {
		i++
		served, f := c.Lookup(w, rs[i%n])
		if served || f == nil {
			b.Fatal("served or no fill")
		}
		f.Store(200, pageHeader, pageBody)
		f.Done()
	}
	if c.Stats().Rejected != 0 {
		b.Fatal("rejected")
	}
}
