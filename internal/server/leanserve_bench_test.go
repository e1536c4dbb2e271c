package server

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/ferry-server/ferry/internal/lean"
	"github.com/ferry-server/ferry/internal/static"
)

// memConn is a connection in memory: it reads the same request n times,
// then EOF, and discards what is written. It lets a benchmark measure the
// lean engine's own work per request, without the network and the
// scheduling of two goroutines on a loopback socket, whose cost and noise
// dominate BenchmarkFront.
type memConn struct {
	req     []byte
	n       int // requests still to read
	off     int // read of the current one
	written int
}

func (c *memConn) Read(p []byte) (int, error) {
	if c.n == 0 {
		return 0, io.EOF
	}
	k := copy(p, c.req[c.off:])
	if c.off += k; c.off == len(c.req) {
		c.off, c.n = 0, c.n-1
	}
	return k, nil
}

func (c *memConn) Write(p []byte) (int, error)      { c.written += len(p); return len(p), nil }
func (c *memConn) Close() error                     { return nil }
func (c *memConn) LocalAddr() net.Addr              { return memAddr }
func (c *memConn) RemoteAddr() net.Addr             { return memAddr }
func (c *memConn) SetDeadline(time.Time) error      { return nil }
func (c *memConn) SetReadDeadline(time.Time) error  { return nil }
func (c *memConn) SetWriteDeadline(time.Time) error { return nil }

var memAddr = &net.TCPAddr{IP: net.IPv4(192, 0, 2, 1), Port: 5555}

// BenchmarkLeanServe is the lean engine with the whole request path, b.N
// requests on one connection in memory (memConn): a cache hit and a 4 KiB
// static file.
func BenchmarkLeanServe(b *testing.B) { benchLeanServe(b, false) }

// BenchmarkLeanServeLogged is BenchmarkLeanServe with the access log on, as
// a core runs by default (text lines into its log file).
func BenchmarkLeanServeLogged(b *testing.B) { benchLeanServe(b, true) }

func benchLeanServe(b *testing.B, logged bool) {
	for _, target := range []string{"/c", "/4k.bin"} {
		b.Run(target[1:], func(b *testing.B) {
			var opts Options
			if logged {
				l, done := benchAccessLog(b, AccessText)
				defer done()
				opts.AccessLog = l
			}
			h, app := benchHandler(b, cacheableResp, true, opts)
			dir := b.TempDir()
			os.WriteFile(filepath.Join(dir, "4k.bin"), bytes.Repeat([]byte("x"), 4096), 0o644)
			st, _ := static.New(dir, static.Options{})
			app.Static = st
			h.SetApps([]*App{app})
			e := lean.New(h, lean.Options{})
			req := []byte("GET " + target + " HTTP/1.1\r\nHost: bench\r\nUser-Agent: bench\r\nAccept: */*\r\n\r\n")
			handoff := func(net.Conn) { b.Fatal("handed over") }
			// The cache is filled first, outside the engine: a miss would
			// watch memConn for the client leaving and read its EOF.
			fill, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(req)))
			if err != nil {
				b.Fatal(err)
			}
			h.ServeHTTP(&benchWriter{h: http.Header{}}, fill)
			c := &memConn{req: req, n: b.N}
			b.ReportAllocs()
			b.ResetTimer()
			e.Serve(c, handoff)
			b.StopTimer()
			if n, _ := e.Stats(); n != uint64(b.N) || c.written < b.N*len(cacheableResp) {
				b.Fatalf("answered %d of %d, wrote %d bytes", n, b.N, c.written)
			}
		})
	}
}
