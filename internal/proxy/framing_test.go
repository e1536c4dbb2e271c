package proxy

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/ferry-server/ferry/internal/testsock"
)

// rawApp is a fake app on a Unix socket that answers each request with
// the raw bytes answer returns for it, byte for byte, so that it can break
// HTTP framing the way a buggy app does; then closes the connection when
// answer says so.
type rawApp struct {
	*upstream
	conns atomic.Int32 // connections accepted
}

func newRawApp(t *testing.T, answer func(r *http.Request) (out []byte, hangUp bool)) *rawApp {
	t.Helper()
	a := &rawApp{}
	sock := testsock.Serve(t, func(c net.Conn) {
		a.conns.Add(1)
		br := bufio.NewReader(c)
		for {
			r, err := http.ReadRequest(br)
			if err != nil {
				return
			}
			out, hangUp := answer(r)
			if _, err := c.Write(out); err != nil || hangUp {
				return
			}
		}
	})
	a.upstream = &upstream{socket: sock}
	return a
}

// get sends one request and returns what the client got, or the error.
func (a *rawApp) get(t *testing.T, tr *Transport, method, path string) (int, string, error) {
	t.Helper()
	x, err := tr.RoundTrip(a, httptest.NewRequest(method, path, nil), nil, "http")
	if err != nil {
		return 0, "", err
	}
	rec := httptest.NewRecorder()
	res := x.WriteTo(rec, ResponseOptions{Memory: 1 << 20, HighWatermark: 1 << 20, Dir: t.TempDir()}, nil)
	if res.AppErr != nil {
		return res.Status, rec.Body.String(), res.AppErr
	}
	return res.Status, rec.Body.String(), nil
}

// TestMisframedResponseNotReused: a response that does not end where its
// framing says (body bytes past Content-Length, a body after HEAD, 204 or
// 304) leaves bytes on the connection; the connection must not be reused,
// or the next request — another client's — reads them as its response.
func TestMisframedResponseNotReused(t *testing.T) {
	const hacked = "HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nhacked"
	for _, tc := range []struct {
		name, method, resp, body string
		status                   int
	}{
		{"body past Content-Length", "GET", "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokEXTRA", "ok", 200},
		{"whole response past Content-Length", "GET", "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok" + hacked, "ok", 200},
		{"body after HEAD", "HEAD", "HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nhacked", "", 200},
		{"response after HEAD", "HEAD", "HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\n" + hacked, "", 200},
		{"body after 204", "GET", "HTTP/1.1 204 No Content\r\n\r\n" + hacked, "", 204},
		{"body after 304", "GET", "HTTP/1.1 304 Not Modified\r\nContent-Length: 6\r\n\r\nhacked", "", 304},
		{"chunked with bytes after the last chunk", "GET", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n" + hacked, "ok", 200},
	} {
		t.Run(tc.name, func(t *testing.T) {
			app := newRawApp(t, func(r *http.Request) ([]byte, bool) {
				if r.URL.Path == "/bad" {
					return []byte(tc.resp), false
				}
				return []byte("HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\ngood"), false
			})
			tr := &Transport{}
			status, body, err := app.get(t, tr, tc.method, "/bad")
			if err != nil || status != tc.status || body != tc.body {
				t.Fatalf("misframed response: %d %q %v; want %d %q", status, body, err, tc.status, tc.body)
			}
			// The next request, on whatever connection, gets its own answer.
			for i := range 2 {
				status, body, err = app.get(t, tr, "GET", "/good")
				if err != nil || status != 200 || body != "good" {
					t.Fatalf("request %d after it: %d %q %v; want 200 \"good\"", i+1, status, body, err)
				}
			}
			if n := app.conns.Load(); n != 2 {
				t.Errorf("%d connections, want 2: the misframed one closed, the next kept", n)
			}
			if app.framing != 1 {
				t.Errorf("%d framing errors reported, want 1", app.framing)
			}
		})
	}
}

// TestLateBytesOnIdleConnection: bytes an app sends on a connection after
// its response ended (a HEAD body written late) are noticed before the
// connection is reused.
func TestLateBytesOnIdleConnection(t *testing.T) {
	late := make(chan net.Conn, 1)
	var once sync.Once
	sock := testsock.Serve(t, func(c net.Conn) {
		br := bufio.NewReader(c)
		for {
			r, err := http.ReadRequest(br)
			if err != nil {
				return
			}
			if r.Method == "HEAD" {
				c.Write([]byte("HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\n"))
				once.Do(func() { late <- c })
				continue
			}
			c.Write([]byte("HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\ngood"))
		}
	})
	app := &rawApp{upstream: &upstream{socket: sock}}
	tr := &Transport{}
	if status, _, err := app.get(t, tr, "HEAD", "/"); err != nil || status != 200 {
		t.Fatalf("HEAD: %d %v", status, err)
	}
	// The HEAD's body, written once the exchange is over: in the socket,
	// not yet read.
	c := <-late
	if _, err := c.Write([]byte("HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nhacked")); err != nil {
		t.Fatal(err)
	}
	status, body, err := app.get(t, tr, "GET", "/")
	if err != nil || status != 200 || body != "good" {
		t.Fatalf("next request: %d %q %v; want 200 \"good\"", status, body, err)
	}
	if app.framing != 1 {
		t.Errorf("%d framing errors reported, want 1", app.framing)
	}
}

// TestTransferCodingNotChunkedLast: a response whose Transfer-Encoding does
// not end in chunked runs to the close of the connection (RFC 9112 §6.3);
// it is forwarded, not refused, and the connection is not reused.
func TestTransferCodingNotChunkedLast(t *testing.T) {
	for _, tc := range []struct {
		te, wire, body string
		conns          int32 // 2: the connection was not reused
	}{
		{"identity", "plain body", "plain body", 2},
		{"foo", "opaque body", "opaque body", 2},
		{"chunked, foo", "5\r\nhello\r\n0\r\n\r\n", "5\r\nhello\r\n0\r\n\r\n", 2},
		{"gzip", gzipped("zipped body"), "zipped body", 2},
		{"foo, gzip", gzipped("opaque inside"), "opaque inside", 2},
		{"chunked, gzip", gzipped("5\r\nhello\r\n0\r\n\r\n"), "hello", 2},
		// Chunked last: framed by the chunks; the connection stays.
		{"gzip, chunked", chunk(gzipped("zipped and chunked")), "zipped and chunked", 1},
		{"Chunked", "5\r\nhello\r\n0\r\n\r\n", "hello", 1},
	} {
		t.Run(tc.te, func(t *testing.T) {
			app := newRawApp(t, func(r *http.Request) ([]byte, bool) {
				if r.URL.Path == "/te" {
					// The close of the connection ends the body (when it
					// is chunked, the chunks end it first).
					return []byte("HTTP/1.1 200 OK\r\nTransfer-Encoding: " + tc.te + "\r\n\r\n" + tc.wire), tc.conns == 2
				}
				return []byte("HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\ngood"), false
			})
			tr := &Transport{}
			status, body, err := app.get(t, tr, "GET", "/te")
			if err != nil || status != 200 || body != tc.body {
				t.Fatalf("%d %q %v; want 200 %q", status, body, err, tc.body)
			}
			for range 2 {
				if status, body, err := app.get(t, tr, "GET", "/"); err != nil || body != "good" {
					t.Fatalf("next request: %d %q %v", status, body, err)
				}
			}
			if n := app.conns.Load(); n != tc.conns {
				t.Errorf("%d connections, want %d", n, tc.conns)
			}
		})
	}
}

func gzipped(s string) string {
	var b bytes.Buffer
	zw := gzip.NewWriter(&b)
	zw.Write([]byte(s))
	zw.Close()
	return b.String()
}

func chunk(s string) string { return fmt.Sprintf("%x\r\n%s\r\n0\r\n\r\n", len(s), s) }

// TestInterimResponses: interim responses reach the InterimFunc in order
// with their fields, 100 Continue excepted; the final response follows,
// and the connection is kept. Past maxInterim, the app is at fault.
func TestInterimResponses(t *testing.T) {
	app := newRawApp(t, func(r *http.Request) ([]byte, bool) {
		if r.URL.Path == "/endless" {
			return []byte(strings.Repeat("HTTP/1.1 102 Processing\r\n\r\n", maxInterim+1)), false
		}
		return []byte("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n" +
			"HTTP/1.1 102 Processing\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"), false
	})
	tr := &Transport{}
	for range 2 {
		var got []string
		x, err := tr.RoundTripInterim(app, httptest.NewRequest("GET", "/", nil), nil, "http", func(code int, h http.Header) {
			got = append(got, fmt.Sprint(code, " ", h.Get("Link")))
		})
		if err != nil {
			t.Fatal(err)
		}
		rec := httptest.NewRecorder()
		x.WriteTo(rec, ResponseOptions{}, nil)
		if strings.Join(got, "|") != "103 </a.css>; rel=preload|102 " || rec.Code != 200 || rec.Body.String() != "ok" {
			t.Fatalf("interim %q, final %d %q", got, rec.Code, rec.Body.String())
		}
	}
	if app.conns.Load() != 1 {
		t.Fatalf("%d connections, want 1", app.conns.Load())
	}
	n := 0
	_, err := tr.RoundTripInterim(app, httptest.NewRequest("GET", "/endless", nil), nil, "http", func(int, http.Header) { n++ })
	if !errors.Is(err, ErrFraming) || Retryable(err) || n != maxInterim || app.framing != 1 {
		t.Fatalf("endless interim responses: %v (retryable %v), %d passed on, %d framing errors", err, Retryable(err), n, app.framing)
	}
}

// TestResponseHeadLimit: a response head past Transport.MaxResponseHead
// (one huge field, or fields without end) fails the exchange without
// reading it all, and the connection is not reused; a head within the
// limit passes.
func TestResponseHeadLimit(t *testing.T) {
	const limit = 16 << 10
	field := func(n int) string { return "X-Big: " + strings.Repeat("a", n) + "\r\n" }
	for _, tc := range []struct {
		name string
		head string
		ok   bool
	}{
		{"within", "HTTP/1.1 200 OK\r\n" + field(limit/2) + "Content-Length: 2\r\n\r\nok", true},
		{"one huge field", "HTTP/1.1 200 OK\r\n" + field(4*limit) + "Content-Length: 2\r\n\r\nok", false},
		{"many fields", "HTTP/1.1 200 OK\r\n" + strings.Repeat(field(100), 2*limit/100) + "Content-Length: 2\r\n\r\nok", false},
		{"1xx heads adding up", strings.Repeat("HTTP/1.1 103 Early Hints\r\n"+field(limit/4)+"\r\n", 8) + "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			app := newRawApp(t, func(r *http.Request) ([]byte, bool) {
				if r.URL.Path == "/bad" {
					return []byte(tc.head), false
				}
				return []byte("HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\ngood"), false
			})
			tr := &Transport{MaxResponseHead: limit}
			status, body, err := app.get(t, tr, "GET", "/bad")
			if tc.ok {
				if err != nil || status != 200 || body != "ok" {
					t.Fatalf("%d %q %v; want 200 ok", status, body, err)
				}
				return
			}
			if !errors.Is(err, ErrResponseHeadTooLarge) {
				t.Fatalf("%d %q %v; want ErrResponseHeadTooLarge", status, body, err)
			}
			if status, body, err = app.get(t, tr, "GET", "/good"); err != nil || status != 200 || body != "good" {
				t.Fatalf("the next request: %d %q %v", status, body, err)
			}
			if n := app.conns.Load(); n != 2 {
				t.Errorf("%d connections, want 2: the one past the limit closed", n)
			}
		})
	}
}
