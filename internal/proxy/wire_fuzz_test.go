package proxy

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"syscall"
	"testing"
)

// socketPair is a connected pair of Unix stream sockets: a real socket
// for the core's side and the app's, without a listener.
func socketPair(t *testing.T) (core, app net.Conn) {
	t.Helper()
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	conns := make([]net.Conn, 2)
	for i, fd := range fds {
		f := os.NewFile(uintptr(fd), "pair")
		c, err := net.FileConn(f)
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		conns[i] = c
	}
	return conns[0], conns[1]
}

// oneConn is an Upstream for one exchange on a given connection; it
// records whether the connection was kept and framing errors.
type oneConn struct {
	kept     io.Closer
	framing  int
	released chan struct{}
}

func (u *oneConn) Addr() net.Addr      { return &net.UnixAddr{Name: "/nonexistent", Net: "unix"} }
func (u *oneConn) TakeConn() io.Closer { return nil }
func (u *oneConn) ReleaseConn(c io.Closer, ok bool) {
	u.kept = c
	close(u.released)
}
func (u *oneConn) Failed(bool, error) { close(u.released) }
func (u *oneConn) FramingError(error) { u.framing++ }

// reference reads what the app sent with net/http's own reader: the final
// response (after 1xx ones) and its body, and whether the bytes were
// exactly one persistent message (nothing after it, no close semantics).
// known is false for transfer codings net/http refuses but RFC 9112 frames
// (chunked last after others), where it has no opinion.
func reference(data []byte, method string) (resp *http.Response, body []byte, clean, known bool) {
	// A byte after the app's, so that net/http's reader, which looks two
	// bytes ahead at the end of a chunked body, does not stop at the end of
	// the input where a connection would go on.
	const sentinel = "\x00"
	br := bufio.NewReader(io.MultiReader(bytes.NewReader(data), strings.NewReader(sentinel)))
	req := &http.Request{Method: method}
	for {
		var err error
		resp, err = http.ReadResponse(br, req)
		if err != nil {
			return nil, nil, false, !strings.Contains(err.Error(), "transfer encoding")
		}
		if resp.StatusCode >= 200 || resp.StatusCode == 101 {
			break
		}
	}
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return resp, nil, false, true
	}
	rest, _ := io.ReadAll(br)
	return resp, body, string(rest) == sentinel && !resp.Close, true
}

// FuzzAppResponse: whatever bytes an app sends, reading them never panics,
// and the connection is kept for another request only when they were
// exactly one well-framed, persistent response — the one the client got.
func FuzzAppResponse(f *testing.F) {
	for _, s := range []string{
		"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
		"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokEXTRA",
		"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nhacked",
		"HTTP/1.1 204 No Content\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nhacked",
		"HTTP/1.1 304 Not Modified\r\nContent-Length: 6\r\n\r\nhacked",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\nX-Trailer: 1\r\n\r\n",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\nleftover",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 2\r\n\r\n2\r\nok\r\n0\r\n\r\n",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nnot gzip",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: foo, chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nok\r\n0\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nok",
		"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\nok",
		"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort",
		"HTTP/1.1 200 OK\r\n\r\nuntil close",
		"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok",
		"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\nok",
		"HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 2\r\n\r\nok",
		"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
		"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
		"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\nraw",
		"HTTP/1.1 099 Low\r\n\r\n",
		"HTTP/1.1 999 High\r\nContent-Length: 0\r\n\r\n",
		"HTTP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n",
		"HTTP/1.1 200 OK\r\n Folded: x\r\n\r\n",
		"HTTP/1.1 200 OK\r\nX: a\r\n  b\r\nContent-Length: 0\r\n\r\n",
		"\r\n\r\n",
		"",
		"HTTP/1.1 200",
	} {
		f.Add([]byte(s), false)
		f.Add([]byte(s), true)
	}
	f.Fuzz(func(t *testing.T, data []byte, head bool) {
		if len(data) > 64<<10 {
			return // larger than the socket buffer takes at once
		}
		method := "GET"
		if head {
			method = "HEAD"
		}
		core, app := socketPair(t)
		defer core.Close()
		defer app.Close()
		// All the app's bytes are in the socket, then its close.
		if _, err := app.Write(data); err != nil {
			t.Fatal(err)
		}
		app.(*net.UnixConn).CloseWrite()

		c := newConn(core)
		up := &oneConn{released: make(chan struct{})}
		m, _, err := (&Transport{}).send(c, up, httptest.NewRequest(method, "/", nil), nil, "http", func(code int, h http.Header) {
			if code < 102 || code > 199 {
				t.Fatalf("interim %d passed on", code)
			}
		})
		if err != nil {
			return // a 502; the caller closes the connection
		}
		x := &Exchange{Resp: m.resp, up: up, c: c, msg: m}
		if m.resp.StatusCode == 101 {
			x.Discard()
			return
		}
		rec := httptest.NewRecorder()
		res := x.WriteTo(rec, ResponseOptions{Memory: 1 << 20, HighWatermark: 1 << 20, Dir: t.TempDir()}, nil)
		<-up.released
		if up.kept == nil {
			return
		}
		// Kept: the response ended exactly where the app's bytes did.
		if c.read != int64(len(data)) || c.br.Buffered() != 0 {
			t.Fatalf("connection kept with %d of %d bytes read, %d buffered:\n%q", c.read, len(data), c.br.Buffered(), data)
		}
		ref, body, clean, known := reference(data, method)
		if !known {
			return
		}
		if !clean {
			t.Fatalf("connection kept after a response net/http reads as not one clean persistent message:\n%q", data)
		}
		if res.AppErr != nil || ref.StatusCode != rec.Code || !bytes.Equal(body, rec.Body.Bytes()) {
			t.Fatalf("kept, but the client got %d %q (%v); net/http reads %d %q", rec.Code, rec.Body.Bytes(), res.AppErr, ref.StatusCode, body)
		}
	})
}
