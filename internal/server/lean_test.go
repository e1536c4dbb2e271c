package server

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ferry-server/ferry/internal/pool"
	"github.com/ferry-server/ferry/internal/proxy"
	"github.com/ferry-server/ferry/internal/static"

	"github.com/ferry-server/ferry/internal/testsock"
)

const cacheableResp = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nCache-Control: public, max-age=60\r\nContent-Length: 11\r\n\r\nhello world"

// leanServer serves an app answering cacheableResp, with a public/
// directory holding small.txt and big.bin (1 MiB), its lean path on or
// off.
func leanServer(t *testing.T, lean bool) (*Server, []byte) {
	t.Helper()
	h, app := benchHandler(t, cacheableResp, true, Options{})
	dir := t.TempDir()
	big := make([]byte, 1<<20)
	rand.Read(big)
	os.WriteFile(filepath.Join(dir, "small.txt"), []byte("small file\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "big.bin"), big, 0o644)
	st, err := static.New(dir, static.Options{})
	if err != nil {
		t.Fatal(err)
	}
	app.Static = st
	h.SetApps([]*App{app})
	return listen(t, h, lean), big
}

// listen serves h on a loopback port until the test ends.
func listen(t *testing.T, h *Handler, lean bool) *Server {
	t.Helper()
	s, err := Listen(Config{Addr: "127.0.0.1:0", HeaderTimeout: 5 * time.Second, IdleTimeout: time.Minute, Lean: lean},
		h, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	go s.Serve()
	t.Cleanup(func() { s.Shutdown(context.Background()) })
	return s
}

// exchange writes raw to a new connection and reads n responses.
func exchange(t *testing.T, s *Server, raw string, n int, methods ...string) []*http.Response {
	t.Helper()
	c, err := net.Dial("tcp", s.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, raw); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	var out []*http.Response
	for i := range n {
		req := &http.Request{Method: http.MethodGet}
		if i < len(methods) {
			req.Method = methods[i]
		}
		resp, err := http.ReadResponse(br, req)
		if err != nil {
			t.Fatalf("response %d of %q: %v", i, raw, err)
		}
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatalf("response %d body: %v", i, err)
		}
		resp.Body = io.NopCloser(bytes.NewReader(body))
		out = append(out, resp)
	}
	return out
}

func bodyOf(r *http.Response) string { b, _ := io.ReadAll(r.Body); return string(b) }

// TestLeanPathAnswersAndHandsOver: plain GET and HEAD requests are answered
// on the lean path (app, static file, cache hit), pipelined or not;
// anything else (here a POST) goes to net/http with the bytes already
// read, and later requests on that connection are still answered.
func TestLeanPathAnswersAndHandsOver(t *testing.T) {
	s, big := leanServer(t, true)
	answered := func() uint64 { n, _ := s.LeanStats(); return n }
	handedOver := func() uint64 { _, n := s.LeanStats(); return n }

	// A miss goes to the app, and fills the cache.
	r := exchange(t, s, "GET /c HTTP/1.1\r\nHost: x\r\n\r\n", 1)[0]
	if r.StatusCode != 200 || bodyOf(r) != "hello world" || handedOver() != 0 || answered() != 1 {
		t.Fatalf("miss: %d, handed over %d, answered %d", r.StatusCode, handedOver(), answered())
	}

	// Pipelined: a static file, a HEAD of it, a cache hit, the big file.
	before := answered()
	rs := exchange(t, s, "GET /small.txt HTTP/1.1\r\nHost: x\r\n\r\nHEAD /small.txt HTTP/1.1\r\nHost: x\r\n\r\n"+
		"GET /c HTTP/1.1\r\nHost: x\r\nUser-Agent: t\r\n\r\nGET /big.bin HTTP/1.1\r\nHost: x\r\n\r\n", 4, "GET", "HEAD")
	if got := answered() - before; got != 4 {
		t.Fatalf("answered %d of 4 on the lean path", got)
	}
	if b := bodyOf(rs[0]); b != "small file\n" || rs[0].ContentLength != 11 || rs[0].Header.Get("Date") == "" ||
		rs[0].Header.Get("X-Request-Id") == "" || rs[0].Header.Get("Etag") == "" {
		t.Fatalf("static: %q %v", b, rs[0].Header)
	}
	if b := bodyOf(rs[1]); b != "" || rs[1].ContentLength != 11 {
		t.Fatalf("HEAD: %q, length %d", b, rs[1].ContentLength)
	}
	if b := bodyOf(rs[2]); b != "hello world" || rs[2].Header.Get("Age") == "" {
		t.Fatalf("hit: %q %v", b, rs[2].Header)
	}
	if b := bodyOf(rs[3]); b != string(big) {
		t.Fatalf("big file: %d bytes, not the file", len(b))
	}

	// One connection: a static file (lean), a POST (net/http from here on),
	// then a static file again.
	handed := handedOver()
	rs = exchange(t, s, "GET /small.txt HTTP/1.1\r\nHost: x\r\n\r\nPOST /c HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc"+
		"GET /small.txt HTTP/1.1\r\nHost: x\r\n\r\n", 3)
	if bodyOf(rs[0]) != "small file\n" || bodyOf(rs[1]) != "hello world" || bodyOf(rs[2]) != "small file\n" {
		t.Fatal("mixed connection: wrong bodies")
	}
	if handedOver() != handed+1 {
		t.Fatalf("handed over %d, want 1", handedOver()-handed)
	}

	// Connection: close is honoured.
	c, _ := net.Dial("tcp", s.Addr().String())
	defer c.Close()
	io.WriteString(c, "GET /small.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	all, err := io.ReadAll(c)
	if err != nil || !bytes.HasSuffix(all, []byte("small file\n")) || !bytes.Contains(all, []byte("Connection: close\r\n")) {
		t.Fatalf("Connection: close: %q %v", all, err)
	}
}

// TestLeanPathSameAnswers sends the same raw requests to a front with and
// without the lean path: every status, body and framing must be the same
// (malformed or unusual heads are net/http's to answer either way).
func TestLeanPathSameAnswers(t *testing.T) {
	lean, _ := leanServer(t, true)
	slow, _ := leanServer(t, false)
	reqs := []string{
		"GET /small.txt HTTP/1.1\r\nHost: x\r\n\r\n",
		"GET /small.txt?q=1 HTTP/1.1\r\nHost: x\r\n\r\n",
		"GET /sm%61ll.txt HTTP/1.1\r\nHost: x\r\n\r\n",
		"GET /small.txt HTTP/1.1\r\nHost: x\r\nRange: bytes=0-4\r\n\r\n",
		"GET /small.txt HTTP/1.1\r\nHost: x\r\nIf-None-Match: *\r\n\r\n",
		"GET /missing HTTP/1.1\r\nHost: x\r\n\r\n",
		"GET /../etc/passwd HTTP/1.1\r\nHost: x\r\n\r\n",
		"GET /%2e%2e/etc/passwd HTTP/1.1\r\nHost: x\r\n\r\n",
		"GET /small.txt HTTP/1.1\r\n\r\n",
		"GET /small.txt HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n",
		"GET /small.txt HTTP/1.1\r\nHost: a b\r\n\r\n",
		"GET /small.txt HTTP/1.1\r\nHost: x\r\n Folded: y\r\n\r\n",
		"GET /small.txt HTTP/1.1\r\nHost: x\r\nBad Name: y\r\n\r\n",
		"GET /small.txt HTTP/1.1\nHost: x\n\n",
		"GET /small.txt HTTP/1.0\r\n\r\n",
		"GET /small.txt HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
		"GET /small.txt HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
		"GET http://x/small.txt HTTP/1.1\r\nHost: x\r\n\r\n",
		"GET /small.txt HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: 1.2.3.4\r\n\r\n",
		"HEAD /c HTTP/1.1\r\nHost: x\r\n\r\n",
		"GET /c HTTP/1.1\r\nHost: x\r\nCache-Control: no-cache\r\n\r\n",
		"GET /c HTTP/1.1\r\nHost: x\r\n\r\n",
		"GET /c HTTP/1.1\r\nHost: x\r\n\r\n",
		"OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n",
		"get /small.txt HTTP/1.1\r\nHost: x\r\n\r\n",
		"GET /sm\x7fall.txt HTTP/1.1\r\nHost: x\r\n\r\n",
	}
	for _, raw := range reqs {
		method := strings.Fields(raw)[0]
		a := exchange(t, lean, raw, 1, method)[0]
		b := exchange(t, slow, raw, 1, method)[0]
		ab, bb := bodyOf(a), bodyOf(b)
		if a.StatusCode != b.StatusCode || ab != bb || a.ContentLength != b.ContentLength ||
			a.Header.Get("Content-Type") != b.Header.Get("Content-Type") || a.Close != b.Close {
			t.Errorf("%q:\n lean %d %q len %d %v\n http %d %q len %d %v", raw, a.StatusCode, ab, a.ContentLength, a.Header,
				b.StatusCode, bb, b.ContentLength, b.Header)
		}
	}
}

// TestLeanPathShutdown: Shutdown closes idle lean connections and returns.
func TestLeanPathShutdown(t *testing.T) {
	s, _ := leanServer(t, true)
	c, err := net.Dial("tcp", s.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "GET /small.txt HTTP/1.1\r\nHost: x\r\n\r\n")
	br := bufio.NewReader(c)
	if r, err := http.ReadResponse(br, nil); err != nil || r.StatusCode != 200 {
		t.Fatal(err)
	} else {
		io.Copy(io.Discard, r.Body)
	}
	if err := s.Shutdown(t.Context()); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if n, err := br.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("after Shutdown the idle connection gave %d bytes, %v; want EOF", n, err)
	}
	if _, err := net.Dial("tcp", s.Addr().String()); err == nil {
		t.Fatal("still accepting after Shutdown")
	}
}

// singleProc serves one request at a time: others queue.
type singleProc struct{ *benchProc }

func (singleProc) Concurrency() int { return 1 }

// gatedApp answers each request only once release is closed, and says on
// received when it has one.
func gatedApp(t *testing.T) (h *Handler, received chan struct{}, release chan struct{}) {
	t.Helper()
	received, release = make(chan struct{}, 16), make(chan struct{})
	path := testsock.Serve(t, func(c net.Conn) {
		br := bufio.NewReader(c)
		for {
			if _, err := http.ReadRequest(br); err != nil {
				return
			}
			received <- struct{}{}
			<-release
			if _, err := io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\ngated"); err != nil {
				return
			}
		}
	})
	p := &singleProc{&benchProc{addr: &net.UnixAddr{Name: path, Net: "unix"}, done: make(chan struct{})}}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	g := pool.NewGroup(pool.Config{Name: "gated", Min: 1, Max: 1}, pool.SpawnFunc(func(context.Context) (pool.Proc, error) { return p, nil }), log)
	g.Start()
	t.Cleanup(func() { g.Close(context.Background()) })
	app := &App{Name: "gated", Group: g, Transport: &proxy.Transport{}}
	h = NewHandler([]*App{app}, Options{Response: proxy.ResponseOptions{Memory: 1 << 20, HighWatermark: 128 << 20, Dir: t.TempDir()}}, log)
	return h, received, release
}

// TestLeanPathPipelinedWhileAtApp: a request that arrives while the one
// before it is at the app (the client-close watcher reads its first byte)
// is answered whole, after it.
func TestLeanPathPipelinedWhileAtApp(t *testing.T) {
	h, received, release := gatedApp(t)
	s := listen(t, h, true)
	c, err := net.Dial("tcp", s.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(c, "GET /1 HTTP/1.1\r\nHost: x\r\n\r\n")
	<-received
	io.WriteString(c, "GET /2 HTTP/1.1\r\nHost: x\r\n\r\n")
	time.Sleep(50 * time.Millisecond) // let the watcher take the byte (the test passes either way)
	close(release)
	br := bufio.NewReader(c)
	for i := range 2 {
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("response %d: %v", i+1, err)
		}
		if b := bodyOf(resp); resp.StatusCode != 200 || b != "gated" {
			t.Fatalf("response %d: %d %q", i+1, resp.StatusCode, b)
		}
	}
	if answered, handedOver := s.LeanStats(); answered != 2 || handedOver != 0 {
		t.Fatalf("answered %d, handed over %d; want 2 and 0", answered, handedOver)
	}
}

// TestLeanPathClientLeavesQueue: a client that leaves while its request
// waits for a process is noticed, and its request never reaches the app.
func TestLeanPathClientLeavesQueue(t *testing.T) {
	h, received, release := gatedApp(t)
	s := listen(t, h, true)
	busy, _ := net.Dial("tcp", s.Addr().String())
	defer busy.Close()
	io.WriteString(busy, "GET /busy HTTP/1.1\r\nHost: x\r\n\r\n")
	<-received // the only process is busy
	gone, _ := net.Dial("tcp", s.Addr().String())
	io.WriteString(gone, "GET /gone HTTP/1.1\r\nHost: x\r\n\r\n")
	for len(h.Requests()) < 2 {
		time.Sleep(5 * time.Millisecond)
	}
	gone.Close()
	for deadline := time.Now().Add(10 * time.Second); len(h.Requests()) > 1; {
		if time.Now().After(deadline) {
			t.Fatal("the gone client's request still waits for a process")
		}
		time.Sleep(5 * time.Millisecond)
	}
	close(release)
	busy.SetReadDeadline(time.Now().Add(10 * time.Second))
	if resp, err := http.ReadResponse(bufio.NewReader(busy), nil); err != nil || bodyOf(resp) != "gated" {
		t.Fatalf("busy request: %v", err)
	}
	// A third request is served, and the app saw two requests, not three.
	third, _ := net.Dial("tcp", s.Addr().String())
	defer third.Close()
	io.WriteString(third, "GET /third HTTP/1.1\r\nHost: x\r\n\r\n")
	third.SetReadDeadline(time.Now().Add(10 * time.Second))
	if resp, err := http.ReadResponse(bufio.NewReader(third), nil); err != nil || bodyOf(resp) != "gated" {
		t.Fatalf("third request: %v", err)
	}
	if n := len(received); n != 1 {
		t.Fatalf("the app received %d more requests after the first, want 1 (the third): the gone client's reached it", n)
	}
}

// BenchmarkFront is one client on one kept-alive loopback TCP connection,
// through the whole front (listener, HTTP/1.1, request path), with and
// without the lean path: a cache hit, a 4 KiB static file, and a request
// proxied to an app over a Unix socket. Allocations are the server's (the
// client reads into a fixed buffer).
func BenchmarkFront(b *testing.B) {
	for _, lean := range []bool{true, false} {
		name := "nethttp"
		if lean {
			name = "lean"
		}
		for _, target := range []string{"/c", "/4k.bin", "/app"} {
			b.Run(name+target, func(b *testing.B) {
				h, app := benchHandler(b, cacheableResp, true, Options{})
				if target == "/app" {
					app.Cache = nil
				}
				dir := b.TempDir()
				os.WriteFile(filepath.Join(dir, "4k.bin"), bytes.Repeat([]byte("x"), 4096), 0o644)
				st, _ := static.New(dir, static.Options{})
				app.Static = st
				h.SetApps([]*App{app})
				s, err := Listen(Config{Addr: "127.0.0.1:0", IdleTimeout: time.Minute, HeaderTimeout: time.Minute, Lean: lean},
					h, slog.New(slog.NewTextHandler(io.Discard, nil)))
				if err != nil {
					b.Fatal(err)
				}
				go s.Serve()
				defer s.Shutdown(context.Background())
				c, err := net.Dial("tcp", s.Addr().String())
				if err != nil {
					b.Fatal(err)
				}
				defer c.Close()
				req := []byte("GET " + target + " HTTP/1.1\r\nHost: bench\r\nUser-Agent: bench\r\nAccept: */*\r\n\r\n")
				buf := make([]byte, 64<<10)
				roundTrip := func() int {
					if _, err := c.Write(req); err != nil {
						b.Fatal(err)
					}
					n := 0
					for {
						m, err := c.Read(buf[n:])
						if err != nil {
							b.Fatal(err)
						}
						n += m
						if end := bytes.Index(buf[:n], []byte("\r\n\r\n")); end >= 0 {
							cl := bytes.Index(buf[:end], []byte("Content-Length: "))
							if cl < 0 {
								b.Fatalf("no Content-Length: %q", buf[:n])
							}
							l := 0
							for _, d := range buf[cl+16:] {
								if d < '0' || d > '9' {
									break
								}
								l = l*10 + int(d-'0')
							}
							if n >= end+4+l {
								return n
							}
						}
					}
				}
				roundTrip() // fills the cache
				b.ReportAllocs()
				for b.Loop() {
					roundTrip()
				}
			})
		}
	}
}
