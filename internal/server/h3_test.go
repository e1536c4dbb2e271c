package server

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ferry-server/ferry/internal/pool"
	"github.com/ferry-server/ferry/internal/proxy"
	"github.com/ferry-server/ferry/internal/testh3"
	"github.com/ferry-server/ferry/internal/testsock"
	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/http3"
)

// syncBuffer is an access log the test reads while the server writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// echoApp is an app that answers "NAME METHOD PATH early=EARLY-DATA
// body=LEN"; a request for /slow is answered only once release is closed
// (received says when it arrived).
func echoApp(t *testing.T, name string, access *AccessLog) (h *Handler, received, release chan struct{}) {
	t.Helper()
	received, release = make(chan struct{}, 16), make(chan struct{})
	path := testsock.Serve(t, func(c net.Conn) {
		br := bufio.NewReader(c)
		for {
			r, err := http.ReadRequest(br)
			if err != nil {
				return
			}
			body, _ := io.ReadAll(r.Body)
			if r.URL.Path == "/slow" {
				received <- struct{}{}
				<-release
			}
			msg := fmt.Sprintf("%s %s %s early=%s body=%d", name, r.Method, r.URL.Path, r.Header.Get("Early-Data"), len(body))
			if _, err := fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n\r\n%s", len(msg), msg); err != nil {
				return
			}
		}
	})
	p := &benchProc{addr: &net.UnixAddr{Name: path, Net: "unix"}, done: make(chan struct{})}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	g := pool.NewGroup(pool.Config{Name: name, Min: 1, Max: 1}, pool.SpawnFunc(func(context.Context) (pool.Proc, error) { return p, nil }), log)
	g.Start()
	t.Cleanup(func() { g.Close(context.Background()) })
	app := &App{Name: name, Group: g, Transport: &proxy.Transport{}}
	h = NewHandler([]*App{app}, Options{AccessLog: access, Response: proxy.ResponseOptions{Memory: 1 << 20, HighWatermark: 128 << 20, Dir: t.TempDir()}}, log)
	return h, received, release
}

func h3Config(t *testing.T, h3 *HTTP3Config) (Config, *x509.CertPool) {
	cert, key, roots := writeCert(t)
	return Config{Addr: "127.0.0.1:0", HeaderTimeout: 5 * time.Second, IdleTimeout: time.Minute,
		TLS: &TLSConfig{CertFile: cert, KeyFile: key, HTTP2: true}, HTTP3: h3}, roots
}

func h3Client(roots *x509.CertPool, sessions tls.ClientSessionCache) *http3.Transport {
	return &http3.Transport{TLSClientConfig: &tls.Config{RootCAs: roots, ClientSessionCache: sessions}}
}

func h3get(t *testing.T, rt http.RoundTripper, method, url string, body io.Reader) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest(method, url, body)
	resp, err := rt.RoundTrip(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatalf("%s %s: read the body: %v", method, url, err)
	}
	return resp, string(b)
}

// TestHTTP3 serves the request path over HTTP/3 on the HTTPS port's UDP
// twin: a GET and a POST with a body reach the app, the access log says
// HTTP/3.0, and HTTP/1.1 and HTTP/2 responses advertise h3 by Alt-Svc.
func TestHTTP3(t *testing.T) {
	var logBuf syncBuffer
	h, _, _ := echoApp(t, "one", NewAccessLog(AccessCombined, &logBuf, nil))
	c, roots := h3Config(t, &HTTP3Config{})
	s, err := Listen(c, h, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	go s.Serve()
	defer s.Shutdown(t.Context())
	_, port, _ := net.SplitHostPort(s.Addr().String())
	if a := s.HTTP3Addrs(); len(a) != 1 || a[0] != s.Addr().String() {
		t.Fatalf("HTTP/3 on %v, want the HTTPS listener's %s", a, s.Addr())
	}

	tr := h3Client(roots, nil)
	defer tr.Close()
	url := "https://" + s.Addr().String()
	resp, body := h3get(t, tr, "GET", url+"/hello", nil)
	if resp.ProtoMajor != 3 || body != "one GET /hello early= body=0" {
		t.Fatalf("GET over HTTP/3: %s %d %q", resp.Proto, resp.StatusCode, body)
	}
	big := strings.Repeat("x", 300<<10)
	resp, body = h3get(t, tr, "POST", url+"/upload", strings.NewReader(big))
	if resp.StatusCode != 200 || body != "one POST /upload early= body="+strconv.Itoa(len(big)) {
		t.Fatalf("POST over HTTP/3: %d %q", resp.StatusCode, body)
	}
	if l := logBuf.String(); !strings.Contains(l, `"GET /hello HTTP/3.0" 200`) || !strings.Contains(l, `"POST /upload HTTP/3.0" 200`) {
		t.Fatalf("access log lacks the HTTP/3 requests:\n%s", l)
	}

	for _, h2 := range []bool{false, true} {
		tcp := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}, Protocols: new(http.Protocols)}
		tcp.Protocols.SetHTTP1(!h2)
		tcp.Protocols.SetHTTP2(h2)
		resp, _ := h3get(t, tcp, "GET", url+"/", nil)
		tcp.CloseIdleConnections()
		if want := `h3=":` + port + `"; ma=86400`; resp.Header.Get("Alt-Svc") != want {
			t.Fatalf("%s: Alt-Svc %q, want %q", resp.Proto, resp.Header.Get("Alt-Svc"), want)
		}
	}
}

// TestHTTP3Off: without HTTP3 no UDP socket is opened and nothing is
// advertised.
func TestHTTP3Off(t *testing.T) {
	h, _, _ := echoApp(t, "one", nil)
	c, roots := h3Config(t, nil)
	s, err := Listen(c, h, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	go s.Serve()
	defer s.Shutdown(t.Context())
	tcp := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}}
	defer tcp.CloseIdleConnections()
	resp, _ := h3get(t, tcp, "GET", "https://"+s.Addr().String()+"/", nil)
	if len(s.HTTP3Addrs()) != 0 || resp.Header.Get("Alt-Svc") != "" {
		t.Fatalf("HTTP/3 off, yet %v and Alt-Svc %q", s.HTTP3Addrs(), resp.Header.Get("Alt-Svc"))
	}
}

// TestHTTP3ZeroRTT: a client that resumes a session and sends its GET in
// 0-RTT early data has it refused by default (the request is sent again
// after the handshake), and accepted with Allow0RTT.
func TestHTTP3ZeroRTT(t *testing.T) {
	for _, allow := range []bool{false, true} {
		t.Run("allow="+strconv.FormatBool(allow), func(t *testing.T) {
			h, _, _ := echoApp(t, "one", nil)
			c, _ := h3Config(t, &HTTP3Config{Allow0RTT: allow})
			s, err := Listen(c, h, slog.New(slog.NewTextHandler(io.Discard, nil)))
			if err != nil {
				t.Fatal(err)
			}
			go s.Serve()
			defer s.Shutdown(t.Context())
			// The client runs as a process of its own, built without the
			// race detector: quic-go's client races on the 0-RTT path.
			r, err := testh3.Early(c.TLS.CertFile, "https://"+s.Addr().String()+"/early")
			if err != nil {
				t.Fatal(err)
			}
			for i := range 2 {
				if r.Status[i] != 200 || !strings.HasPrefix(r.Body[i], "one GET /early early=") {
					t.Fatalf("request %d: %d %q", i+1, r.Status[i], r.Body[i])
				}
			}
			if !r.Resumed || r.Used0RTT != allow {
				t.Fatalf("the second connection: resumed %v, 0-RTT used %v; want resumed, 0-RTT used %v", r.Resumed, r.Used0RTT, allow)
			}
			if !allow && r.Body[1] != "one GET /early early= body=0" {
				t.Fatalf("refused 0-RTT, yet the app saw %q", r.Body[1])
			}
			t.Logf("0-RTT allowed=%v: %q", allow, r.Body[1])
		})
	}
}

// TestHTTP3Drain: Shutdown lets a request in flight on HTTP/3 finish,
// then stops serving.
func TestHTTP3Drain(t *testing.T) {
	h, received, release := echoApp(t, "one", nil)
	c, roots := h3Config(t, &HTTP3Config{})
	s, err := Listen(c, h, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	go s.Serve()
	url := "https://" + s.Addr().String()
	tr := h3Client(roots, nil)
	defer tr.Close()
	type result struct {
		body string
		err  error
	}
	done := make(chan result, 1)
	go func() {
		resp, err := tr.RoundTrip(must(http.NewRequest("GET", url+"/slow", nil)))
		if err != nil {
			done <- result{err: err}
			return
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		done <- result{string(b), err}
	}()
	<-received
	shut := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		shut <- s.Shutdown(ctx)
	}()
	close(release)
	r := <-done
	if r.err != nil || r.body != "one GET /slow early= body=0" {
		t.Fatalf("the request in flight during shutdown: %q %v", r.body, r.err)
	}
	if err := <-shut; err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	late := h3Client(roots, nil)
	late.QUICConfig = &quic.Config{HandshakeIdleTimeout: time.Second}
	defer late.Close()
	if resp, err := late.RoundTrip(must(http.NewRequest("GET", url+"/", nil))); err == nil {
		resp.Body.Close()
		t.Fatalf("served after shutdown: %d", resp.StatusCode)
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// handedOver is what internal/inherit gives out for a UDP socket that
// came with a relay.
type handedOver struct {
	net.PacketConn
	relay *os.File
}

func (h *handedOver) HandedOver() (net.PacketConn, *os.File) { return h.PacketConn, h.relay }

// TestHTTP3Handover: the UDP socket travels with the TCP one in Files (a
// binary upgrade), each followed by its relay. Until the first server
// drains, it serves everything; while it drains, it finishes its own
// request in flight and relays new connections to the second server;
// once it is done, the second one reads the socket itself.
func TestHTTP3Handover(t *testing.T) {
	h1, received, release := echoApp(t, "one", nil)
	c, roots := h3Config(t, &HTTP3Config{IdleTimeout: 5 * time.Minute})
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	s1, err := Listen(c, h1, log)
	if err != nil {
		t.Fatal(err)
	}
	go s1.Serve()
	url := "https://" + s1.Addr().String()
	get := func(want string) {
		t.Helper()
		tr := h3Client(roots, nil)
		defer tr.Close()
		if _, body := h3get(t, tr, "GET", url+"/", nil); !strings.HasPrefix(body, want+" ") {
			t.Fatalf("want %q to answer: %q", want, body)
		}
	}
	get("one")

	files, err := s1.Files()
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != 3 {
		t.Fatalf("Files gave %d files, want TCP, UDP and its relay", len(files))
	}
	tcp, err := net.FileListener(files[0])
	if err != nil {
		t.Fatal(err)
	}
	udp, err := net.FilePacketConn(files[1])
	if err != nil {
		t.Fatal(err)
	}
	files[0].Close()
	files[1].Close()
	h2, _, _ := echoApp(t, "two", nil)
	c.Listen = func(string, string) (net.Listener, error) { return tcp, nil }
	c.ListenPacket = func(string, string) (net.PacketConn, error) {
		return &handedOver{PacketConn: udp, relay: files[2]}, nil
	}
	s2, err := Listen(c, h2, log)
	if err != nil {
		t.Fatal(err)
	}
	go s2.Serve()
	defer s2.Shutdown(t.Context())
	// The second server reads only its relay yet: the first one serves.
	get("one")

	// A request in flight on the first server when it starts draining.
	slow := make(chan string, 1)
	go func() {
		tr := h3Client(roots, nil)
		defer tr.Close()
		req, _ := http.NewRequest("GET", url+"/slow", nil)
		resp, err := tr.RoundTrip(req)
		if err != nil {
			slow <- err.Error()
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		slow <- string(b)
	}()
	<-received
	shut := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		shut <- s1.Shutdown(ctx)
	}()
	// Once the first server relays (its shutdown has begun), new
	// connections reach the second one. A connection made before that
	// moment is the first server's, rightly.
	for !s1.h3.steer.relay.Load() {
		time.Sleep(time.Millisecond)
	}
	for range 3 {
		get("two")
	}
	close(release)
	if got := <-slow; !strings.HasPrefix(got, "one GET /slow") {
		t.Fatalf("the request in flight at the handover: %q", got)
	}
	if err := <-shut; err != nil {
		t.Fatalf("the first server's shutdown: %v", err)
	}
	// The first server is gone: the second reads the socket itself.
	get("two")
}

// TestHTTP3MaxConnections: past MaxConnections open HTTP/3 connections a
// new one is closed at once (H3_EXCESSIVE_LOAD); once one closes, a new
// one is served.
func TestHTTP3MaxConnections(t *testing.T) {
	h, _, _ := echoApp(t, "one", nil)
	c, roots := h3Config(t, &HTTP3Config{})
	c.MaxConnections = 1
	s, err := Listen(c, h, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	go s.Serve()
	defer s.Shutdown(t.Context())
	url := "https://" + s.Addr().String() + "/"
	first := h3Client(roots, nil)
	if _, body := h3get(t, first, "GET", url, nil); body != "one GET / early= body=0" {
		t.Fatalf("first connection: %q", body)
	}
	second := h3Client(roots, nil)
	defer second.Close()
	if resp, err := second.RoundTrip(must(http.NewRequest("GET", url, nil))); err == nil {
		resp.Body.Close()
		t.Fatalf("a second connection past MaxConnections 1 was served: %d", resp.StatusCode)
	}
	first.Close()
	deadline := time.Now().Add(30 * time.Second)
	for {
		third := h3Client(roots, nil)
		resp, err := third.RoundTrip(must(http.NewRequest("GET", url, nil)))
		third.Close()
		if err == nil {
			resp.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no connection served after the first closed: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestHTTP3PortTaken: a UDP port taken by another socket is a clear error
// naming HTTP/3 and the way out, and the TCP listener opened is closed.
func TestHTTP3PortTaken(t *testing.T) {
	h, _, _ := echoApp(t, "one", nil)
	c, _ := h3Config(t, &HTTP3Config{})
	// A UDP port whose TCP twin is free: a few tries, as another test's
	// TCP socket may hold the twin.
	for try := 0; ; try++ {
		taken, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		c.Addr = taken.LocalAddr().String()
		_, err = Listen(c, h, slog.New(slog.NewTextHandler(io.Discard, nil)))
		taken.Close()
		var h3err *HTTP3ListenError
		if !errors.As(err, &h3err) && try < 20 && err != nil && strings.Contains(err.Error(), "listen tcp") {
			continue // the TCP port was the one taken
		}
		if !errors.As(err, &h3err) || !strings.Contains(err.Error(), "--http3=false") {
			t.Fatalf("error %v, want an HTTP3ListenError naming --http3=false", err)
		}
		break
	}
	ln, err := net.Listen("tcp", c.Addr)
	if err != nil {
		t.Fatalf("the TCP port was left open: %v", err)
	}
	ln.Close()
}
