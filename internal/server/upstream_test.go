package server

import (
	"bufio"
	"context"
	"crypto/tls"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/textproto"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ferry-server/ferry/internal/pool"
	"github.com/ferry-server/ferry/internal/proxy"
	"github.com/ferry-server/ferry/internal/testsock"
)

// rawProc is a fake app process: a Unix socket served by answer, which
// writes raw bytes (so it can misbehave as buggy apps do) and returns
// false to hang up. Stopping it closes its socket and its connections,
// as the kernel does for a process that exits.
type rawProc struct {
	pid  int
	ln   net.Listener
	path string
	done chan struct{}

	mu      sync.Mutex
	conns   map[net.Conn]bool
	stopped bool
	once    sync.Once
}

func newRawProc(t *testing.T, pid int, answer func(c net.Conn, r *http.Request) bool) *rawProc {
	p := &rawProc{pid: pid, done: make(chan struct{}), conns: map[net.Conn]bool{}}
	p.ln, p.path = testsock.Listen(t)
	go func() {
		for {
			c, err := p.ln.Accept()
			if err != nil {
				return
			}
			p.mu.Lock()
			p.conns[c] = true
			p.mu.Unlock()
			go func() {
				defer c.Close()
				br := bufio.NewReader(c)
				for {
					r, err := http.ReadRequest(br)
					if err != nil {
						return
					}
					io.Copy(io.Discard, r.Body)
					if !answer(c, r) {
						return
					}
				}
			}()
		}
	}()
	return p
}

func (p *rawProc) PID() int              { return p.pid }
func (p *rawProc) Addr() net.Addr        { return &net.UnixAddr{Name: p.path, Net: "unix"} }
func (p *rawProc) Concurrency() int      { return 0 }
func (p *rawProc) Done() <-chan struct{} { return p.done }
func (p *rawProc) Reap()                 {}
func (p *rawProc) Kill()                 { p.exit() }
func (p *rawProc) Abort()                { p.exit() }
func (p *rawProc) Stop(context.Context)  { p.exit() }

// Exiting tells the pool what the kernel would: this process is on its way
// out (its pid is not a real process's).
func (p *rawProc) Exiting() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stopped
}

func (p *rawProc) exit() {
	p.once.Do(func() {
		p.mu.Lock()
		p.stopped = true
		p.ln.Close()
		for c := range p.conns {
			c.Close()
		}
		p.mu.Unlock()
		close(p.done)
	})
}

// rawAppHandler is a request path for one app whose processes answer with
// answer; spawned counts the processes started.
func rawAppHandler(t *testing.T, answer func(c net.Conn, r *http.Request) bool) (h *Handler, spawned *atomic.Int32) {
	t.Helper()
	spawned = new(atomic.Int32)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	g := pool.NewGroup(pool.Config{Name: "raw", Min: 1, Max: 1}, pool.SpawnFunc(func(context.Context) (pool.Proc, error) {
		return newRawProc(t, 1000+int(spawned.Add(1)), answer), nil
	}), log)
	g.Start()
	t.Cleanup(func() { g.Close(context.Background()) })
	app := &App{Name: "raw", Group: g, Transport: &proxy.Transport{}}
	h = NewHandler([]*App{app}, Options{Response: proxy.ResponseOptions{Memory: 1 << 20, HighWatermark: 128 << 20, Dir: t.TempDir()}}, log)
	return h, spawned
}

// TestDroppedConnectionKeepsProcess: an app that closes one connection
// without answering is not dead. The request gets a 502 (a GET after one
// retry, a POST at once); a concurrent request on the same process
// finishes; the process keeps serving.
func TestDroppedConnectionKeepsProcess(t *testing.T) {
	var drops atomic.Int32
	slow := make(chan struct{})
	h, spawned := rawAppHandler(t, func(c net.Conn, r *http.Request) bool {
		switch r.URL.Path {
		case "/drop":
			drops.Add(1)
			return false
		case "/slow":
			<-slow
		}
		_, err := io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
		return err == nil
	})
	s := listen(t, h, false)
	url := "http://" + s.Addr().String()
	client := &http.Client{Transport: &http.Transport{}, Timeout: time.Minute}

	slowDone := make(chan string, 1)
	go func() {
		resp, err := client.Get(url + "/slow")
		if err != nil {
			slowDone <- err.Error()
			return
		}
		slowDone <- resp.Status + " " + bodyOf(resp)
	}()
	for _, tc := range []struct {
		method string
		drops  int32 // times the app saw it: a GET is retried once
	}{{"GET", 2}, {"POST", 1}} {
		drops.Store(0)
		req, _ := http.NewRequest(tc.method, url+"/drop", strings.NewReader("data"))
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadGateway || drops.Load() != tc.drops {
			t.Fatalf("%s /drop: %d, the app saw it %d times; want 502 and %d", tc.method, resp.StatusCode, drops.Load(), tc.drops)
		}
	}
	close(slow)
	if got := <-slowDone; got != "200 OK ok" {
		t.Fatalf("the concurrent request got %q", got)
	}
	resp, err := client.Get(url + "/")
	if err != nil {
		t.Fatal(err)
	}
	if b := bodyOf(resp); resp.StatusCode != 200 || b != "ok" {
		t.Fatalf("after the drops: %d %q", resp.StatusCode, b)
	}
	if n := spawned.Load(); n != 1 {
		t.Fatalf("%d processes spawned, want 1: a dropped connection took the process out", n)
	}
}

// TestInterimResponsesForwarded: an app's 103 Early Hints (and other 1xx
// but 100 and 101) reach the client before the final response, over
// HTTP/1.1 and HTTP/2, with their own fields; the final response carries
// its own fields only, and the request id.
func TestInterimResponsesForwarded(t *testing.T) {
	h, _ := rawAppHandler(t, func(c net.Conn, r *http.Request) bool {
		_, err := io.WriteString(c, "HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n"+
			"HTTP/1.1 100 Continue\r\n\r\n"+
			"HTTP/1.1 200 OK\r\nLink: </final>\r\nContent-Length: 2\r\n\r\nok")
		return err == nil
	})
	cert, key, roots := writeCert(t)
	for _, mode := range []string{"h1", "h2", "lean"} {
		t.Run(mode, func(t *testing.T) {
			c := Config{Addr: "127.0.0.1:0", HeaderTimeout: 5 * time.Second, IdleTimeout: time.Minute, Lean: mode == "lean"}
			if mode == "h2" {
				c.TLS = &TLSConfig{CertFile: cert, KeyFile: key, HTTP2: true}
			}
			s, err := Listen(c, h, slog.New(slog.NewTextHandler(io.Discard, nil)))
			if err != nil {
				t.Fatal(err)
			}
			go s.Serve()
			defer s.Shutdown(t.Context())
			tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}, Protocols: new(http.Protocols)}
			tr.Protocols.SetHTTP1(mode != "h2")
			tr.Protocols.SetHTTP2(mode == "h2")
			defer tr.CloseIdleConnections()
			for _, method := range []string{"POST", "GET"} {
				var (
					mu      sync.Mutex
					interim []int
					hints   textproto.MIMEHeader
				)
				trace := &httptrace.ClientTrace{Got1xxResponse: func(code int, h textproto.MIMEHeader) error {
					mu.Lock()
					defer mu.Unlock()
					interim = append(interim, code)
					if code == 103 {
						hints = h
					}
					return nil
				}}
				req, _ := http.NewRequest(method, s.URLs()[0]+"/", strings.NewReader("body"))
				req = req.WithContext(httptrace.WithClientTrace(req.Context(), trace))
				resp, err := tr.RoundTrip(req)
				if err != nil {
					t.Fatal(err)
				}
				b := bodyOf(resp)
				mu.Lock()
				// Every writer sends it: net/http's (HTTP/1.1, HTTP/2) and
				// the lean engine's (a GET on a plain listener).
				if len(interim) != 1 || interim[0] != 103 ||
					hints.Get("Link") != "</style.css>; rel=preload" || hints.Get("X-Request-Id") != "" {
					t.Errorf("%s: interim responses %v, hints %v; want one 103 with its Link and no request id", method, interim, hints)
				}
				mu.Unlock()
				if resp.StatusCode != 200 || b != "ok" || strings.Join(resp.Header["Link"], ",") != "</final>" || resp.Header.Get("X-Request-Id") == "" {
					t.Errorf("%s: final %d %q %v", method, resp.StatusCode, b, resp.Header)
				}
			}
		})
	}
}

// TestNoInterimToHTTP10: an HTTP/1.0 client never gets a 1xx (RFC 9110
// §15.2), only the final response.
func TestNoInterimToHTTP10(t *testing.T) {
	h, _ := rawAppHandler(t, func(c net.Conn, r *http.Request) bool {
		_, err := io.WriteString(c, "HTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
		return err == nil
	})
	s := listen(t, h, false)
	c, err := net.Dial("tcp", s.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(c, "POST / HTTP/1.0\r\nHost: x\r\nContent-Length: 1\r\n\r\nx")
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "HTTP/1.0 200") {
		t.Fatalf("first line to an HTTP/1.0 client: %q, %v", line, err)
	}
}
