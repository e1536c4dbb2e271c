package lean

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// serveLean serves h with a lean engine on a loopback port until the test
// ends; handoffs get handed (nil: closed).
func serveLean(t testing.TB, h http.Handler, handed func(net.Conn)) (*Engine, string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e := New(h, Options{HeaderTimeout: 10 * time.Second, IdleTimeout: time.Minute, Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if handed == nil {
		handed = func(c net.Conn) { c.Close() }
	}
	var wg sync.WaitGroup
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() { defer wg.Done(); e.Serve(c, handed) }()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		e.Shutdown(t.Context())
		wg.Wait()
	})
	return e, ln.Addr().String()
}

// dial connects to addr, with a deadline for the whole test exchange.
func dial(t testing.TB, addr string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(10 * time.Second))
	t.Cleanup(func() { c.Close() })
	return c
}

// roundTrip writes raw to c and reads one response (and its body) from br.
func roundTrip(t testing.TB, c net.Conn, br *bufio.Reader, raw string) (*http.Response, []byte, error) {
	t.Helper()
	if _, err := io.WriteString(c, raw); err != nil {
		return nil, nil, err
	}
	req := &http.Request{Method: strings.Fields(raw)[0]}
	resp, err := http.ReadResponse(br, req)
	if err != nil {
		return nil, nil, err
	}
	body, err := io.ReadAll(resp.Body)
	return resp, body, err
}

// closedAfter reports whether the server closed c (EOF or reset on the
// next read) rather than answering another request on it.
func closedAfter(t testing.TB, c net.Conn, br *bufio.Reader) bool {
	t.Helper()
	io.WriteString(c, "GET /next HTTP/1.1\r\nHost: x\r\n\r\n")
	_, err := http.ReadResponse(br, nil)
	if err != nil && !isClosed(err) {
		t.Fatalf("neither a response nor the connection closed: %v", err)
	}
	return err != nil
}

// isClosed: err is what reading a connection the peer closed gives.
func isClosed(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET)
}

const get = "GET / HTTP/1.1\r\nHost: x\r\n\r\n"

// TestFraming: whatever the handler does with Content-Length, the response
// on the wire is framed by what its head says, and a body that does not
// match closes the connection after it; a body that does keeps it.
func TestFraming(t *testing.T) {
	dir := t.TempDir()
	file, big := filepath.Join(dir, "ten"), filepath.Join(dir, "thousand")
	os.WriteFile(file, []byte("0123456789"), 0o644)
	os.WriteFile(big, bytes.Repeat([]byte("0123456789"), 100), 0o644)
	writeErrs := make(chan error, 4)
	cases := []struct {
		name    string
		handler func(w http.ResponseWriter)
		body    string
		bodyErr bool // the client sees the body cut short
		closed  bool
		err     error // what the handler's last write got
	}{
		{"exact", func(w http.ResponseWriter) {
			w.Header().Set("Content-Length", "5")
			_, err := w.Write([]byte("hello"))
			writeErrs <- err
		}, "hello", false, false, nil},
		{"longer", func(w http.ResponseWriter) {
			w.Header().Set("Content-Length", "5")
			w.Write([]byte("hel"))
			_, err := w.Write([]byte("lo world"))
			writeErrs <- err
		}, "hel", true, true, http.ErrContentLength},
		{"shorter", func(w http.ResponseWriter) {
			w.Header().Set("Content-Length", "10")
			_, err := w.Write([]byte("hello"))
			writeErrs <- err
		}, "hello", true, true, nil},
		{"shorter streamed", func(w http.ResponseWriter) {
			w.Header().Set("Content-Length", "100000")
			_, err := w.Write(bytes.Repeat([]byte("x"), bodyMax+1))
			writeErrs <- err
		}, strings.Repeat("x", bodyMax+1), true, true, nil},
		{"longer streamed", func(w http.ResponseWriter) {
			w.Header().Set("Content-Length", "3")
			w.(http.Flusher).Flush()
			w.Write([]byte("abc"))
			_, err := w.Write([]byte("d"))
			writeErrs <- err
		}, "abc", false, true, http.ErrContentLength},
		{"file longer", func(w http.ResponseWriter) {
			f, _ := os.Open(file)
			defer f.Close()
			w.Header().Set("Content-Type", "text/plain")
			w.Header().Set("Content-Length", "4")
			_, err := w.(io.ReaderFrom).ReadFrom(f)
			writeErrs <- err
		}, "", true, true, http.ErrContentLength}, // its first bytes go through Write, as with net/http
		{"file longer sent", func(w http.ResponseWriter) {
			f, _ := os.Open(big)
			defer f.Close()
			w.Header().Set("Content-Type", "text/plain")
			w.Header().Set("Content-Length", "600")
			_, err := w.(io.ReaderFrom).ReadFrom(f)
			writeErrs <- err
		}, strings.Repeat("0123456789", 60), false, true, http.ErrContentLength},
		{"file shorter", func(w http.ResponseWriter) {
			f, _ := os.Open(file)
			defer f.Close()
			w.Header().Set("Content-Type", "text/plain")
			w.Header().Set("Content-Length", "20")
			_, err := w.(io.ReaderFrom).ReadFrom(f)
			writeErrs <- err
		}, "0123456789", true, true, nil},
		{"file exact", func(w http.ResponseWriter) {
			f, _ := os.Open(file)
			defer f.Close()
			w.Header().Set("Content-Type", "text/plain")
			w.Header().Set("Content-Length", "10")
			_, err := w.(io.ReaderFrom).ReadFrom(&io.LimitedReader{R: f, N: 10})
			writeErrs <- err
		}, "0123456789", false, false, nil},
		{"no length", func(w http.ResponseWriter) {
			_, err := w.Write([]byte("hello"))
			writeErrs <- err
		}, "hello", false, false, nil},
		{"invalid length dropped", func(w http.ResponseWriter) {
			w.Header().Set("Content-Length", "five")
			_, err := w.Write([]byte("hello"))
			writeErrs <- err
		}, "hello", false, false, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, addr := serveLean(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path == "/next" {
					w.Write([]byte("next"))
					return
				}
				tc.handler(w)
			}), nil)
			c := dial(t, addr)
			br := bufio.NewReader(c)
			resp, body, err := roundTrip(t, c, br, get)
			if resp == nil {
				t.Fatalf("no response: %v", err)
			}
			if err != nil && !isClosed(err) {
				t.Fatalf("reading the body: %v", err)
			}
			if string(body) != tc.body || (err != nil) != tc.bodyErr {
				t.Errorf("body %q (%v), want %q (error: %v)", body, err, tc.body, tc.bodyErr)
			}
			if err := <-writeErrs; !errors.Is(err, tc.err) && err != tc.err {
				t.Errorf("the handler's write got %v, want %v", err, tc.err)
			}
			if got := closedAfter(t, c, br); got != tc.closed {
				t.Errorf("connection closed after the response: %v, want %v", got, tc.closed)
			}
		})
	}
}

// TestNoBodyStatuses: 204 and 304 go out without Content-Length (and a 304
// without Content-Type) and refuse a body, as net/http's; the connection
// goes on.
func TestNoBodyStatuses(t *testing.T) {
	errs := make(chan error, 1)
	_, addr := serveLean(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/204", "/304":
			w.Header().Set("Content-Length", "5")
			w.Header().Set("Content-Type", "text/plain")
			w.Header().Set("Etag", `"x"`)
			code := http.StatusNoContent
			if r.URL.Path == "/304" {
				code = http.StatusNotModified
			}
			w.WriteHeader(code)
			_, err := w.Write([]byte("hello"))
			errs <- err
		default:
			w.Write([]byte("next"))
		}
	}), nil)
	for _, path := range []string{"/204", "/304"} {
		c := dial(t, addr)
		io.WriteString(c, "GET "+path+" HTTP/1.1\r\nHost: x\r\n\r\n")
		br := bufio.NewReader(c)
		head, err := br.ReadString('\n')
		for err == nil {
			var line string
			line, err = br.ReadString('\n')
			head += line
			if line == "\r\n" {
				break
			}
		}
		if strings.Contains(head, "Content-Length") || (path == "/304") == strings.Contains(head, "Content-Type") ||
			!strings.Contains(head, `Etag: "x"`) {
			t.Errorf("%s: head %q", path, head)
		}
		if err := <-errs; err != http.ErrBodyNotAllowed {
			t.Errorf("%s: write got %v, want ErrBodyNotAllowed", path, err)
		}
		if closedAfter(t, c, br) {
			t.Errorf("%s: connection closed", path)
		}
	}
}

// TestInterim: WriteHeader(103) sends an interim response at once with the
// header set so far, and the final response follows; the header is not
// cleared in between (as net/http's is not).
func TestInterim(t *testing.T) {
	sent := make(chan struct{})
	_, addr := serveLean(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Link", "</style.css>; rel=preload")
		w.Header().Set("Content-Length", "99") // never in an interim response
		w.WriteHeader(http.StatusEarlyHints)
		<-sent // the client has it before the handler goes on
		w.Header().Del("Content-Length")
		w.Header().Set("Content-Type", "text/plain")
		w.WriteHeader(http.StatusOK)
		w.WriteHeader(http.StatusEarlyHints) // after the final status: ignored
		w.Write([]byte("done"))
	}), nil)
	c := dial(t, addr)
	io.WriteString(c, get)
	br := bufio.NewReader(c)
	early, err := http.ReadResponse(br, nil)
	if err != nil || early.StatusCode != http.StatusEarlyHints || early.Header.Get("Link") == "" ||
		early.Header.Get("Content-Length") != "" {
		t.Fatalf("interim: %v %v", early, err)
	}
	close(sent)
	final, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(final.Body)
	if final.StatusCode != 200 || string(body) != "done" || final.Header.Get("Link") == "" || final.ContentLength != 4 {
		t.Fatalf("final: %d %q %v", final.StatusCode, body, final.Header)
	}
	if closedAfter(t, c, br) {
		t.Fatal("connection closed")
	}
}

// TestRequestsNotReused: a request the handler keeps (as a timer or a
// goroutine may) is still itself after later requests on the connection.
func TestRequestsNotReused(t *testing.T) {
	var mu sync.Mutex
	var kept []*http.Request
	_, addr := serveLean(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		kept = append(kept, r)
		mu.Unlock()
		w.Write([]byte(r.URL.Path))
	}), nil)
	c := dial(t, addr)
	br := bufio.NewReader(c)
	for _, p := range []string{"/a", "/b?q", "/c%20d"} {
		if _, body, err := roundTrip(t, c, br, "GET "+p+" HTTP/1.1\r\nHost: x\r\nX-Path: "+p+"\r\n\r\n"); err != nil || len(body) == 0 {
			t.Fatalf("%s: %q %v", p, body, err)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	for i, want := range []string{"/a", "/b?q", "/c%20d"} {
		r := kept[i]
		if r.RequestURI != want || r.Header.Get("X-Path") != want || r.URL.RequestURI() != want {
			t.Errorf("request %d reads %q %q %q, want %q", i, r.RequestURI, r.URL.RequestURI(), r.Header.Get("X-Path"), want)
		}
	}
}

// TestHandoff: a request the engine does not take is handed over, with
// every byte read from the connection, after the requests it answered.
func TestHandoff(t *testing.T) {
	got := make(chan []byte, 1)
	e, addr := serveLean(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("lean"))
	}), func(c net.Conn) {
		defer c.Close()
		b := make([]byte, 64)
		n, _ := io.ReadAtLeast(c, b, len("POST / HTTP/1.1\r\n"))
		got <- b[:n]
	})
	c := dial(t, addr)
	br := bufio.NewReader(c)
	if _, body, err := roundTrip(t, c, br, get); err != nil || string(body) != "lean" {
		t.Fatalf("%q %v", body, err)
	}
	io.WriteString(c, "POST / HTTP/1.1\r\n")
	if b := <-got; !strings.HasPrefix(string(b), "POST / HTTP/1.1\r\n") {
		t.Fatalf("handed over %q", b)
	}
	if req, hand := e.Stats(); req != 1 || hand != 1 {
		t.Fatalf("stats %d %d, want 1 1", req, hand)
	}
}

// TestPanic: a handler's panic closes its connection, and the engine goes
// on serving others.
func TestPanic(t *testing.T) {
	_, addr := serveLean(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/panic" {
			panic("boom")
		}
		w.Write([]byte("ok"))
	}), nil)
	c := dial(t, addr)
	if _, _, err := roundTrip(t, c, bufio.NewReader(c), "GET /panic HTTP/1.1\r\nHost: x\r\n\r\n"); err == nil {
		t.Fatal("a response after a panic")
	}
	c2 := dial(t, addr)
	if _, body, err := roundTrip(t, c2, bufio.NewReader(c2), get); err != nil || string(body) != "ok" {
		t.Fatalf("%q %v", body, err)
	}
}
