package server

import (
	"bufio"
	"context"
	"crypto/tls"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// watchedListener tells when it accepted a connection and when it was
// closed (Shutdown stopping accepting).
type watchedListener struct {
	net.Listener
	accepted chan struct{}
	closed   chan struct{}
}

func (l *watchedListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.accepted <- struct{}{}
	}
	return c, err
}

func (l *watchedListener) Close() error {
	select {
	case l.closed <- struct{}{}:
	default:
	}
	return l.Listener.Close()
}

// shutdownFront serves helloResp on one loopback listener whose accepts
// and close are watched.
func shutdownFront(t *testing.T, c Config) (*Server, *watchedListener) {
	t.Helper()
	h, _ := benchHandler(t, helloResp, false, Options{})
	wl := &watchedListener{accepted: make(chan struct{}, 16), closed: make(chan struct{}, 1)}
	c.Addr = "127.0.0.1:0"
	c.Listen = func(network, addr string) (net.Listener, error) {
		ln, err := net.Listen(network, addr)
		wl.Listener = ln
		return wl, err
	}
	s, err := Listen(c, h, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	go s.Serve()
	t.Cleanup(func() { s.Shutdown(context.Background()) })
	return s, wl
}

// TestShutdownAnswersFirstRequest: a connection accepted just before
// Shutdown (in a binary upgrade, by the old Ferry as it hands over) whose
// first request arrives after Shutdown began still gets that request
// answered, with Connection: close, on every path: the lean engine (GET),
// net/http after a handover (POST), net/http alone, and TLS. net/http's
// own Shutdown drops such a request unanswered, and the lean engine's
// closed such a connection: the client saw a reset on a request it cannot
// know it may retry.
func TestShutdownAnswersFirstRequest(t *testing.T) {
	cert, key, roots := writeCert(t)
	for _, mode := range []string{"lean GET", "lean POST", "net/http GET", "https GET"} {
		t.Run(mode, func(t *testing.T) {
			c := Config{HeaderTimeout: 5 * time.Second, IdleTimeout: time.Minute, Lean: strings.HasPrefix(mode, "lean"),
				FirstRequestGrace: 10 * time.Second}
			if strings.HasPrefix(mode, "https") {
				c.TLS = &TLSConfig{CertFile: cert, KeyFile: key}
			}
			s, wl := shutdownFront(t, c)
			var conn net.Conn
			var err error
			if c.TLS != nil {
				conn, err = tls.Dial("tcp", s.Addr().String(), &tls.Config{RootCAs: roots, NextProtos: []string{"http/1.1"}})
			} else {
				conn, err = net.Dial("tcp", s.Addr().String())
			}
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			<-wl.accepted

			shut := make(chan error, 1)
			go func() {
				ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
				defer cancel()
				shut <- s.Shutdown(ctx)
			}()
			<-wl.closed // Shutdown began: no more accepting
			// Give a Shutdown that would close the connection or doom its
			// request the time to do so (not an assertion on time: the
			// connection must be answered however long this is).
			time.Sleep(100 * time.Millisecond)

			req := "GET / HTTP/1.1\r\nHost: x\r\n\r\n"
			if strings.HasSuffix(mode, "POST") {
				req = "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nbody"
			}
			conn.SetDeadline(time.Now().Add(15 * time.Second))
			if _, err := io.WriteString(conn, req); err != nil {
				t.Fatalf("writing the first request: %v", err)
			}
			resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
			if err != nil {
				t.Fatalf("the first request on a connection accepted before Shutdown was not answered: %v", err)
			}
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != 200 || string(body) != "hello world" || !resp.Close {
				t.Fatalf("got %d %q (close %v), want 200 \"hello world\" with Connection: close", resp.StatusCode, body, resp.Close)
			}
			if err := <-shut; err != nil {
				t.Fatalf("Shutdown: %v", err)
			}
		})
	}
}

// TestShutdownClosesSilentConnections: a connection accepted before
// Shutdown that sends nothing is closed once the grace has passed, and
// Shutdown returns then, long before its context ends.
func TestShutdownClosesSilentConnections(t *testing.T) {
	for _, lean := range []bool{true, false} {
		s, wl := shutdownFront(t, Config{HeaderTimeout: time.Minute, IdleTimeout: time.Minute, Lean: lean,
			FirstRequestGrace: 50 * time.Millisecond})
		conn, err := net.Dial("tcp", s.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		<-wl.accepted
		// The context outlives the test's deadline: Shutdown must not need it.
		ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
		defer cancel()
		if err := s.Shutdown(ctx); err != nil {
			t.Fatalf("lean %v: Shutdown: %v", lean, err)
		}
		conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		if n, err := conn.Read(make([]byte, 1)); err == nil {
			t.Fatalf("lean %v: a silent connection read %d bytes after Shutdown; want it closed", lean, n)
		}
	}
}
