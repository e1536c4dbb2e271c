package proxy

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/ferry-server/ferry/internal/appwire"
	"github.com/ferry-server/ferry/internal/testsock"
)

// One request's round trip over a kept-alive Unix socket connection: write
// the head, read the response head, send the body on to the client. The
// "app" is a goroutine answering a fixed response and allocating nothing per
// request, so that the figures are the proxy's own. Results go to
// bench/results/go-bench-*.md; nothing is asserted about speed.

// benchUpstream keeps one idle connection, as a pool session does. A large
// response's connection is released by the goroutine that read it from the
// app, maybe after WriteTo returned: released says when.
type benchUpstream struct {
	addr     *net.UnixAddr
	mu       sync.Mutex
	idle     io.Closer
	released chan struct{}
}

func (u *benchUpstream) Addr() net.Addr { return u.addr }
func (u *benchUpstream) TakeConn() io.Closer {
	u.mu.Lock()
	defer u.mu.Unlock()
	c := u.idle
	u.idle = nil
	return c
}
func (u *benchUpstream) ReleaseConn(c io.Closer, ok bool) {
	u.mu.Lock()
	if c != nil {
		u.idle = c
	}
	u.mu.Unlock()
	u.released <- struct{}{}
}
func (u *benchUpstream) Failed(bool, error) {}
func (u *benchUpstream) FramingError(error) {}

// benchApp answers every request head it reads with resp on a Unix socket.
func benchApp(b *testing.B, resp []byte) *benchUpstream {
	sock := testsock.Serve(b, testsock.AnswerHeads(resp))
	return &benchUpstream{addr: &net.UnixAddr{Name: sock, Net: "unix"}, released: make(chan struct{}, 1)}
}

// discardWriter is a ResponseWriter that keeps nothing.
type discardWriter struct {
	h      http.Header
	status int
	n      int64
}

func (w *discardWriter) Header() http.Header         { return w.h }
func (w *discardWriter) WriteHeader(code int)        { w.status = code }
func (w *discardWriter) Write(p []byte) (int, error) { w.n += int64(len(p)); return len(p), nil }
func (w *discardWriter) Flush()                      {}

func benchClientRequest(b *testing.B) *http.Request {
	b.Helper()
	r, err := http.ReadRequest(bufio.NewReader(strings.NewReader(
		"GET /hello?x=1 HTTP/1.1\r\nHost: example.com\r\nUser-Agent: bench\r\nAccept: */*\r\nAccept-Encoding: gzip\r\n\r\n")))
	if err != nil {
		b.Fatal(err)
	}
	r.RemoteAddr = "192.0.2.1:5555"
	return r
}

func BenchmarkRoundTripUnix(b *testing.B) {
	for _, size := range []int{11, 4 << 10, 128 << 10} {
		b.Run(fmt.Sprintf("body=%d", size), func(b *testing.B) {
			resp := fmt.Appendf(nil, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n\r\n", size)
			resp = append(resp, bytes.Repeat([]byte("x"), size)...)
			up := benchApp(b, resp)
			t := &Transport{}
			r := benchClientRequest(b)
			w := &discardWriter{h: http.Header{}}
			opts := ResponseOptions{Memory: 1 << 20, HighWatermark: 128 << 20, Dir: b.TempDir()}
			one := func() {
				x, err := t.RoundTrip(up, r, nil, "http")
				if err != nil {
					b.Fatal(err)
				}
				clear(w.h)
				res := x.WriteTo(w, opts, nil)
				if res.AppErr != nil || res.ClientErr != nil || res.Bytes != int64(size) {
					b.Fatalf("result %+v", res)
				}
				<-up.released
			}
			one()
			c := up.TakeConn()
			if c == nil {
				b.Fatal("the connection was not kept alive")
			}
			up.idle = c
			b.SetBytes(int64(size))
			b.ReportAllocs()
			for b.Loop() {
				one()
			}
		})
	}
}

// framedBenchUpstream is benchUpstream on a process that chose ferry-wire/1.
type framedBenchUpstream struct{ *benchUpstream }

func (framedBenchUpstream) Wire() int { return appwire.Version }

// answerFrames answers every ferry-wire/1 request frame (no body) it reads
// with resp.
func answerFrames(resp []byte) func(net.Conn) {
	return func(c net.Conn) {
		br := bufio.NewReaderSize(c, 16<<10)
		var hdr [5]byte
		for {
			if _, err := io.ReadFull(br, hdr[:]); err != nil {
				return
			}
			n := int(hdr[1])<<24 | int(hdr[2])<<16 | int(hdr[3])<<8 | int(hdr[4])
			if _, err := br.Discard(n); err != nil {
				return
			}
			if _, err := c.Write(resp); err != nil {
				return
			}
		}
	}
}

// BenchmarkRoundTripFramed is BenchmarkRoundTripUnix/body=11 on
// ferry-wire/1: the core's side of the framed wire against the HTTP/1.1
// one, with the same request and a response of the same fields.
func BenchmarkRoundTripFramed(b *testing.B) {
	const size = 11
	resp := appwire.AppendHead(nil, "200 OK", "Content-Type", "text/plain", "Content-Length", "11")
	resp = appwire.AppendChunk(resp, bytes.Repeat([]byte("x"), size))
	resp = appwire.AppendChunk(resp, nil)
	sock := testsock.Serve(b, answerFrames(resp))
	up := framedBenchUpstream{&benchUpstream{addr: &net.UnixAddr{Name: sock, Net: "unix"}, released: make(chan struct{}, 1)}}
	t := &Transport{}
	r := benchClientRequest(b)
	w := &discardWriter{h: http.Header{}}
	opts := ResponseOptions{Memory: 1 << 20, HighWatermark: 128 << 20, Dir: b.TempDir()}
	one := func() {
		x, err := t.RoundTrip(up, r, nil, "http")
		if err != nil {
			b.Fatal(err)
		}
		clear(w.h)
		res := x.WriteTo(w, opts, nil)
		if res.AppErr != nil || res.ClientErr != nil || res.Bytes != size {
			b.Fatalf("result %+v", res)
		}
		<-up.released
	}
	one()
	if up.idle == nil {
		b.Fatal("the connection was not kept alive")
	}
	b.SetBytes(size)
	b.ReportAllocs()
	for b.Loop() {
		one()
	}
}
