package server

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ferry-server/ferry/internal/compress"
	"github.com/ferry-server/ferry/internal/pool"
	"github.com/ferry-server/ferry/internal/proxy"
	"github.com/ferry-server/ferry/internal/turbocache"

	"github.com/ferry-server/ferry/internal/testsock"
)

// benchProc is a pool.Proc whose "process" is a goroutine answering on a
// Unix socket with a fixed response, allocating nothing per request, so
// that benchmarks measure the request path and not a backend.
type benchProc struct {
	addr *net.UnixAddr
	done chan struct{}
	once sync.Once
}

func (p *benchProc) PID() int                 { return 1 }
func (p *benchProc) Addr() net.Addr           { return p.addr }
func (p *benchProc) Concurrency() int         { return 0 }
func (p *benchProc) Done() <-chan struct{}    { return p.done }
func (p *benchProc) Stop(ctx context.Context) { p.Kill() }
func (p *benchProc) Kill()                    { p.once.Do(func() { close(p.done) }) }
func (p *benchProc) Abort()                   { p.Kill() }
func (p *benchProc) Reap()                    {}

// fakeApp serves resp to every request it reads (heads only: benchmark
// requests have no body) on a socket in dir.
func fakeApp(tb testing.TB, resp string) *benchProc {
	path := testsock.Serve(tb, testsock.AnswerHeads([]byte(resp)))
	return &benchProc{addr: &net.UnixAddr{Name: path, Net: "unix"}, done: make(chan struct{})}
}

// benchWriter is a ResponseWriter that keeps nothing, reused across
// iterations.
type benchWriter struct {
	h      http.Header
	status int
	n      int
}

func (w *benchWriter) Header() http.Header         { return w.h }
func (w *benchWriter) WriteHeader(code int)        { w.status = code }
func (w *benchWriter) Write(p []byte) (int, error) { w.n += len(p); return len(p), nil }
func (w *benchWriter) Flush()                      {}

func benchHandler(b testing.TB, resp string, cache bool, opts Options) (*Handler, *App) {
	b.Helper()
	p := fakeApp(b, resp)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	g := pool.NewGroup(pool.Config{Name: "bench", Min: 1, Max: 1}, pool.SpawnFunc(func(context.Context) (pool.Proc, error) { return p, nil }), log)
	g.Start()
	b.Cleanup(func() { g.Close(context.Background()) })
	app := &App{Name: "bench", Group: g, Transport: &proxy.Transport{}}
	if cache {
		app.Cache = turbocache.New(turbocache.Options{})
	}
	if opts.Response.Memory == 0 {
		opts.Response = proxy.ResponseOptions{Memory: 1 << 20, HighWatermark: 128 << 20, Dir: b.TempDir()}
	}
	h := NewHandler([]*App{app}, opts, log)
	return h, app
}

func benchRequest(target string, hdr ...string) *http.Request {
	r, _ := http.ReadRequest(bufio.NewReader(bytes.NewReader([]byte("GET " + target + " HTTP/1.1\r\nHost: example.com\r\nUser-Agent: bench\r\nAccept: */*\r\n" + joinLines(hdr) + "\r\n"))))
	r.RemoteAddr = "192.0.2.1:5555"
	return r
}

func joinLines(h []string) string {
	var s string
	for _, l := range h {
		s += l + "\r\n"
	}
	return s
}

// serve runs one request through h, with a fresh copy of the request's
// header (the handler edits it).
func serve(h http.Handler, w *benchWriter, r *http.Request, hdr http.Header) {
	clear(w.h)
	clear(r.Header)
	for k, v := range hdr {
		r.Header[k] = v
	}
	h.ServeHTTP(w, r)
}

const helloResp = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 11\r\n\r\nhello world"

func BenchmarkProxyHello(b *testing.B) {
	h, _ := benchHandler(b, helloResp, false, Options{})
	r := benchRequest("/")
	hdr := r.Header.Clone()
	w := &benchWriter{h: http.Header{}}
	serve(h, w, r, hdr)
	if w.status != 200 || w.n != 11 {
		b.Fatalf("status %d, %d bytes", w.status, w.n)
	}
	b.ReportAllocs()
	for b.Loop() {
		serve(h, w, r, hdr)
	}
}

func BenchmarkCacheHit(b *testing.B) {
	h, _ := benchHandler(b, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nCache-Control: max-age=600\r\nContent-Length: 11\r\n\r\nhello world", true, Options{})
	r := benchRequest("/cached")
	hdr := r.Header.Clone()
	w := &benchWriter{h: http.Header{}}
	serve(h, w, r, hdr) // fills
	b.ReportAllocs()
	for b.Loop() {
		serve(h, w, r, hdr)
	}
	if w.status != 200 || w.h.Get("Age") == "" {
		b.Fatalf("status %d, no Age: not a hit", w.status)
	}
}

func BenchmarkProxyHelloParallel(b *testing.B) {
	h, _ := benchHandler(b, helloResp, false, Options{})
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		r := benchRequest("/")
		hdr := r.Header.Clone()
		w := &benchWriter{h: http.Header{}}
		for pb.Next() {
			serve(h, w, r, hdr)
		}
	})
}

// BenchmarkProxyHelloFront is BenchmarkProxyHello with what a production
// front turns on: gzip (the client takes it; hello world is too small),
// client timeouts, trusted proxies with an X-Forwarded-For, and a combined
// access log.
func BenchmarkProxyHelloFront(b *testing.B) {
	opts := Options{
		WriteTimeout: time.Minute, BodyTimeout: time.Minute, MaxURILength: 8192,
		Compression: compress.New(compress.Config{Types: []string{"text/html", "text/plain"}, MinSize: 512}),
		Trusted:     &Trusted{Nets: []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")}},
		AccessLog:   NewAccessLog(AccessCombined, io.Discard, nil),
	}
	h, _ := benchHandler(b, helloResp, false, opts)
	r := benchRequest("/", "Accept-Encoding: gzip, deflate, br", "X-Forwarded-For: 203.0.113.7")
	hdr := r.Header.Clone()
	w := &benchWriter{h: http.Header{}}
	b.ReportAllocs()
	for b.Loop() {
		r.RemoteAddr = "192.0.2.1:5555"
		serve(h, w, r, hdr)
	}
	if w.status != 200 {
		b.Fatalf("status %d", w.status)
	}
}

// BenchmarkCacheHitGzip: a 10 KiB HTML page from the cache, compressed for
// a client that takes gzip.
func BenchmarkCacheHitGzip(b *testing.B) {
	page := strings.Repeat("<p>Hello, cached world.</p>\n", 10<<10/28)
	resp := "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nCache-Control: max-age=600\r\nContent-Length: " +
		strconv.Itoa(len(page)) + "\r\n\r\n" + page
	opts := Options{Compression: compress.New(compress.Config{Types: []string{"text/html"}, MinSize: 512})}
	h, _ := benchHandler(b, resp, true, opts)
	r := benchRequest("/page", "Accept-Encoding: gzip")
	hdr := r.Header.Clone()
	w := &benchWriter{h: http.Header{}}
	serve(h, w, r, hdr)
	b.ReportAllocs()
	for b.Loop() {
		serve(h, w, r, hdr)
	}
	if w.h.Get("Content-Encoding") != "gzip" || w.h.Get("Age") == "" {
		b.Fatalf("not a compressed hit: %v", w.h)
	}
}
