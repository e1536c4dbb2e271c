package proxy

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"

	"github.com/ferry-server/ferry/internal/testsock"
)

func TestBufferBodyInMemory(t *testing.T) {
	b, err := BufferBody(strings.NewReader("hello"), 5, 1024, 0, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	var out bytes.Buffer
	b.WriteTo(&out)
	if out.String() != "hello" || b.Size() != 5 || b.Spilled() {
		t.Fatalf("got %q size %d spilled %v", out.String(), b.Size(), b.Spilled())
	}
}

func TestBufferBodySpillsAndRewinds(t *testing.T) {
	dir := t.TempDir()
	data := bytes.Repeat([]byte("abcdefgh"), 100000)
	// Unknown length (-1), as with a chunked upload.
	b, err := BufferBody(bytes.NewReader(data), -1, 4096, 0, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if !b.Spilled() || b.Size() != int64(len(data)) {
		t.Fatalf("spilled %v size %d", b.Spilled(), b.Size())
	}
	for range 2 { // a retry sends it again, whole
		var out bytes.Buffer
		if _, err := b.WriteTo(&out); err != nil || !bytes.Equal(out.Bytes(), data) {
			t.Fatalf("WriteTo: %v, %d bytes", err, out.Len())
		}
	}
	// The spill file is unlinked at once: nothing is left behind.
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Fatalf("spill dir has %d entries", len(ents))
	}
}

func TestBufferBodyExactlyMemory(t *testing.T) {
	b, err := BufferBody(strings.NewReader("12345678"), -1, 8, 0, t.TempDir())
	if err != nil || b.Spilled() || b.Size() != 8 {
		t.Fatalf("err %v spilled %v size %d", err, b.Spilled(), b.Size())
	}
}

func TestBufferBodyTooLarge(t *testing.T) {
	dir := t.TempDir()
	if _, err := BufferBody(strings.NewReader("x"), 100, 10, 50, dir); !errors.Is(err, ErrBodyTooLarge) {
		t.Fatalf("declared too large: %v", err)
	}
	if _, err := BufferBody(strings.NewReader(strings.Repeat("x", 60)), -1, 10, 50, dir); !errors.Is(err, ErrBodyTooLarge) {
		t.Fatalf("streamed too large: %v", err)
	}
	if _, err := BufferBody(strings.NewReader(strings.Repeat("x", 9)), -1, 10, 9, dir); err != nil {
		t.Fatalf("at the limit: %v", err)
	}
}

// drain reads a spool to its end.
func drain(s *spool) ([]byte, error) {
	var out []byte
	buf := make([]byte, 7000)
	for {
		data, pooled, _, err := s.next(buf)
		out = append(out, data...)
		if pooled != nil {
			chunkPool.Put(pooled)
		}
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return out, err
		}
	}
}

func TestSpoolKeepsOrderAcrossSpill(t *testing.T) {
	data := make([]byte, 1<<20)
	for i := range data {
		data[i] = byte(i * 7)
	}
	s := newSpool(ResponseOptions{Memory: 100 << 10, HighWatermark: 64 << 20, Dir: t.TempDir()})
	// One byte-sized piece after another keeps the reader and writer racing.
	go s.fill(io.MultiReader(bytes.NewReader(data[:3]), bytes.NewReader(data[3:500000]), bytes.NewReader(data[500000:])))
	got, err := drain(s)
	s.release()
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("err %v, got %d bytes, equal %v", err, len(got), bytes.Equal(got, data))
	}
}

// gatedReader hands out n bytes per permit.
type gatedReader struct {
	permits chan int
	left    int
}

func (g *gatedReader) Read(p []byte) (int, error) {
	n, ok := <-g.permits
	if !ok {
		return 0, io.EOF
	}
	n = min(n, len(p))
	for i := range n {
		p[i] = 'x'
	}
	return n, nil
}

func TestSpoolBackPressure(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newSpool(ResponseOptions{Memory: 1 << 10, HighWatermark: 4 << 10, Dir: t.TempDir()})
		src := &gatedReader{permits: make(chan int)}
		filled := make(chan error, 1)
		go func() { filled <- s.fill(src) }()
		// Nobody reads: the pump may hold up to the high watermark, plus the
		// one read it is blocked storing, then must stop taking from the app.
		for range 5 {
			src.permits <- 1024
		}
		synctest.Wait()
		select {
		case src.permits <- 1024:
			t.Fatal("the pump read past the high watermark with no reader")
		default:
		}
		// Reading one chunk makes room again.
		buf := make([]byte, 4096)
		if data, _, _, err := s.next(buf); err != nil || len(data) == 0 {
			t.Fatalf("next: %d bytes, %v", len(data), err)
		}
		src.permits <- 1024
		close(src.permits)
		if got, err := drain(s); err != nil || len(got) != 5*1024 {
			t.Fatalf("drained %d more bytes, %v; want 5 KiB", len(got), err)
		}
		if err := <-filled; err != nil {
			t.Fatal(err)
		}
	})
}

func TestSpoolAbandonDrainsApp(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newSpool(ResponseOptions{Memory: 1 << 10, HighWatermark: 2 << 10, Dir: t.TempDir()})
		src := &gatedReader{permits: make(chan int)}
		filled := make(chan error, 1)
		go func() { filled <- s.fill(src) }()
		src.permits <- 1024
		src.permits <- 1024
		s.abandon() // the client went away
		// The pump keeps reading the app to its end, discarding.
		for range 100 {
			src.permits <- 1024
		}
		close(src.permits)
		if err := <-filled; err != nil {
			t.Fatal(err)
		}
	})
}

// upstream is a test Upstream on a Unix socket served by an http.Handler.
type upstream struct {
	socket    string
	mu        sync.Mutex
	idle      io.Closer
	released  int
	failed    int // sessions ended by Failed
	connFails int // of which connecting failed
	framing   int // FramingError calls
	keptConns int
	lastOK    bool
}

func (u *upstream) Addr() net.Addr { return &net.UnixAddr{Name: u.socket, Net: "unix"} }
func (u *upstream) TakeConn() io.Closer {
	u.mu.Lock()
	defer u.mu.Unlock()
	c := u.idle
	u.idle = nil
	return c
}
func (u *upstream) ReleaseConn(c io.Closer, ok bool) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.released++
	u.lastOK = ok
	if c != nil {
		u.idle = c
		u.keptConns++
	}
}
func (u *upstream) Failed(connect bool, err error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.failed++
	if connect {
		u.connFails++
	}
}
func (u *upstream) FramingError(error) { u.mu.Lock(); u.framing++; u.mu.Unlock() }

func serveUnix(t *testing.T, h http.Handler) (*upstream, *httptest.Server) {
	t.Helper()
	ln, sock := testsock.Listen(t)
	srv := httptest.NewUnstartedServer(h)
	srv.Listener = ln
	srv.Start()
	t.Cleanup(srv.Close)
	return &upstream{socket: sock}, srv
}

func TestRoundTripWireAndKeepAlive(t *testing.T) {
	var got []*http.Request
	var bodies []string
	var mu sync.Mutex
	up, _ := serveUnix(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		got = append(got, r)
		bodies = append(bodies, string(b))
		mu.Unlock()
		w.Header().Add("Set-Cookie", "a=1")
		w.Header().Add("Set-Cookie", "b=2")
		w.Header().Set("Connection", "X-Hop")
		w.Header().Set("X-Hop", "1")
		io.WriteString(w, "ok "+r.Method)
	}))
	tr := &Transport{}
	for i, method := range []string{"POST", "GET"} {
		r := httptest.NewRequest(method, "/a%20b/c?x=1&y=%2F", nil)
		r.RemoteAddr = "192.0.2.1:5555"
		r.Header.Set("X-Custom", "v")
		r.Header.Set("Connection", "close, X-Drop")
		r.Header.Set("X-Drop", "1")
		var body *Body
		if method == "POST" {
			body, _ = BufferBody(strings.NewReader("payload"), 7, 1024, 0, t.TempDir())
		}
		x, err := tr.RoundTrip(up, r, body, "https")
		if err != nil {
			t.Fatal(err)
		}
		rec := httptest.NewRecorder()
		res := x.WriteTo(rec, ResponseOptions{Memory: 1 << 20, HighWatermark: 1 << 20, Dir: t.TempDir()}, nil)
		if res.Status != 200 || rec.Body.String() != "ok "+method {
			t.Fatalf("%s: %d %q", method, res.Status, rec.Body.String())
		}
		if cookies := rec.Header().Values("Set-Cookie"); len(cookies) != 2 {
			t.Errorf("Set-Cookie = %q", cookies)
		}
		if rec.Header().Get("X-Hop") != "" {
			t.Error("a response header named in Connection was passed on")
		}
		if up.keptConns != i+1 {
			t.Fatalf("connection not kept after request %d", i)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	r := got[0]
	if r.RequestURI != "/a%20b/c?x=1&y=%2F" || r.Header.Get("X-Custom") != "v" || r.Header.Get("X-Drop") != "" ||
		r.Header.Get(HeaderClientAddr) != "192.0.2.1:5555" || r.Header.Get(HeaderScheme) != "https" ||
		bodies[0] != "payload" || r.ContentLength != 7 || len(r.TransferEncoding) != 0 {
		t.Fatalf("app saw %s %v body %q", r.RequestURI, r.Header, bodies[0])
	}
	if got[1].RemoteAddr != got[0].RemoteAddr {
		t.Errorf("second request used a new connection")
	}
}

// hangUpServer answers /ok and, for /drop, reads the whole request and
// closes the connection without a word; drops counts those.
func hangUpServer(t *testing.T, drops *atomic.Int32) *upstream {
	t.Helper()
	sock := testsock.Serve(t, func(c net.Conn) {
		br := bufio.NewReader(c)
		for {
			r, err := http.ReadRequest(br)
			if err != nil {
				return
			}
			io.Copy(io.Discard, r.Body)
			if r.URL.Path == "/drop" {
				drops.Add(1)
				return
			}
			io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
		}
	})
	return &upstream{socket: sock}
}

func TestRetryRules(t *testing.T) {
	for _, tc := range []struct {
		name   string
		warm   bool // a kept-alive connection is reused
		method string
		retry  bool
		// sent: times the app got the request (a GET or PUT on a reused
		// connection is sent again on a new one first).
		sent int
	}{
		{"GET on a reused connection", true, "GET", true, 2},
		{"PUT on a reused connection", true, "PUT", true, 2},
		{"POST on a reused connection", true, "POST", false, 1},
		{"GET on a fresh connection", false, "GET", true, 1},
		{"POST on a fresh connection", false, "POST", false, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var drops atomic.Int32
			up := hangUpServer(t, &drops)
			tr := &Transport{}
			if tc.warm {
				x, err := tr.RoundTrip(up, httptest.NewRequest("GET", "/ok", nil), nil, "http")
				if err != nil {
					t.Fatal(err)
				}
				x.WriteTo(httptest.NewRecorder(), ResponseOptions{}, nil)
				if up.idle == nil {
					t.Fatal("connection not kept")
				}
			}
			released := up.released
			body, _ := BufferBody(strings.NewReader("data"), 4, 64, 0, t.TempDir())
			_, err := tr.RoundTrip(up, httptest.NewRequest(tc.method, "/drop", nil), body, "http")
			if err == nil {
				t.Fatal("no error from a hang-up")
			}
			if Retryable(err) != tc.retry {
				t.Errorf("retryable %v, want %v (%v)", Retryable(err), tc.retry, err)
			}
			if up.released > released && up.lastOK {
				t.Error("a failed exchange was released as ok")
			}
			// A hang-up without a word is the pool's to judge (one does
			// not make a process dead), not a framing error.
			if ends := up.released - released + up.failed; ends != 1 || up.failed != 1 || up.connFails != 0 || up.framing != 0 {
				t.Errorf("the session ended %d times (%d failed, %d connects), %d framing errors; want once, through Failed",
					ends, up.failed, up.connFails, up.framing)
			}
			if got := int(drops.Load()); got != tc.sent {
				t.Errorf("the app got the request %d times, want %d", got, tc.sent)
			}
		})
	}
}

// TestStaleKeptAliveConnection: an app that closes idle connections (say
// on a keep-alive timeout) gets the request again on a new connection, and
// stays in rotation.
func TestStaleKeptAliveConnection(t *testing.T) {
	up, srv := serveUnix(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		io.WriteString(w, "ok "+r.Method)
	}))
	tr := &Transport{}
	for _, method := range []string{"GET", "GET", "POST"} {
		var body *Body
		if method == "POST" {
			body, _ = BufferBody(strings.NewReader("payload"), 7, 1024, 0, t.TempDir())
		}
		x, err := tr.RoundTrip(up, httptest.NewRequest(method, "/", nil), body, "http")
		if err != nil {
			t.Fatalf("%s: %v", method, err)
		}
		rec := httptest.NewRecorder()
		if res := x.WriteTo(rec, ResponseOptions{}, nil); res.Status != 200 || rec.Body.String() != "ok "+method {
			t.Fatalf("%s: %d %q", method, res.Status, rec.Body.String())
		}
		if up.idle == nil {
			t.Fatal("connection not kept")
		}
		// The app drops its idle connections; the core has not noticed.
		srv.CloseClientConnections()
	}
	if up.failed != 0 {
		t.Fatalf("an app that closed an idle connection was reported failed %d times", up.failed)
	}
}

func TestRoundTripUnreachable(t *testing.T) {
	up := &upstream{socket: filepath.Join(t.TempDir(), "nothing-here")}
	_, err := (&Transport{}).RoundTrip(up, httptest.NewRequest("POST", "/", nil), nil, "http")
	if !Retryable(err) || up.connFails != 1 || up.failed != 1 {
		t.Fatalf("dial failure: retryable %v, connect failures %d of %d (%v)", Retryable(err), up.connFails, up.failed, err)
	}
}

func TestWriteToStreamsLargeBodies(t *testing.T) {
	const n = 5 << 20
	up, _ := serveUnix(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		chunk := bytes.Repeat([]byte("y"), 64<<10)
		for range n / len(chunk) {
			w.Write(chunk)
		}
	}))
	x, err := (&Transport{}).RoundTrip(up, httptest.NewRequest("GET", "/", nil), nil, "http")
	if err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	res := x.WriteTo(rec, ResponseOptions{Memory: 256 << 10, HighWatermark: 1 << 20, Dir: t.TempDir()}, nil)
	if res.Bytes != n || rec.Body.Len() != n || res.AppErr != nil || !rec.Flushed {
		t.Fatalf("wrote %d (%d), app err %v, flushed %v", res.Bytes, rec.Body.Len(), res.AppErr, rec.Flushed)
	}
}

func FuzzSanitizeAndWriteHead(f *testing.F) {
	f.Add("X-Ferry-Client-Addr", "1.2.3.4:5", "x_ferry_scheme", "https")
	f.Add("x-ferry-scheme", "https", "X_Forwarded_For", "9.9.9.9")
	f.Add("Connection", "X-A", "X-A", "1")
	f.Add("Transfer-Encoding", "chunked", "Content-Length", "5")
	f.Fuzz(func(t *testing.T, k1, v1, k2, v2 string) {
		h := http.Header{}
		for _, kv := range [][2]string{{k1, v1}, {k2, v2}} {
			if !validToken(kv[0]) || !validValue(kv[1]) {
				return // net/http's server rejects these before any handler runs
			}
			h.Add(kv[0], kv[1])
		}
		SanitizeRequest(h)
		for k := range h {
			if strings.Contains(k, "_") || strings.HasPrefix(strings.ToLower(k), "x-ferry-") {
				t.Fatalf("header %q survived sanitising", k)
			}
		}
		r := httptest.NewRequest("GET", "/p?q", nil)
		r.Header = h
		r.RemoteAddr = "10.0.0.1:1234"
		var buf bytes.Buffer
		w := bufio.NewWriter(&buf)
		writeHead(w, r, 0, "http", false, "")
		w.Flush()
		// What the app receives parses, with exactly Ferry's internal values.
		got, err := http.ReadRequest(bufio.NewReader(&buf))
		if err != nil {
			t.Fatalf("the app would get an unparsable request: %v\n%s", err, buf.String())
		}
		if v := got.Header.Values(HeaderClientAddr); len(v) != 1 || v[0] != "10.0.0.1:1234" {
			t.Fatalf("client addr header = %q", v)
		}
		if v := got.Header.Values(HeaderScheme); len(v) != 1 || v[0] != "http" {
			t.Fatalf("scheme header = %q", v)
		}
		if len(got.TransferEncoding) != 0 || got.ContentLength > 0 {
			t.Fatalf("framing leaked through: TE %v CL %d", got.TransferEncoding, got.ContentLength)
		}
	})
}

func validToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte("()<>@,;:\\\"/[]?={}", c) >= 0 {
			return false
		}
	}
	return true
}

func validValue(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < ' ' && c != '\t') || c == 0x7f {
			return false
		}
	}
	return true
}

func TestCapture(t *testing.T) {
	up, _ := serveUnix(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := map[string]int{"/small": 100, "/large": 300 << 10, "/huge": 2 << 20}[r.URL.Path]
		if r.URL.Query().Get("chunked") == "" {
			w.Header().Set("Content-Length", fmt.Sprint(n))
		}
		w.Write(bytes.Repeat([]byte("c"), n))
	}))
	for _, tc := range []struct {
		path   string
		stored int // -1: not captured
	}{
		{"/small", 100},
		{"/small?chunked=1", 100},
		{"/large", 300 << 10},
		{"/huge", -1}, // past the 1 MiB limit
	} {
		t.Run(tc.path, func(t *testing.T) {
			x, err := (&Transport{}).RoundTrip(up, httptest.NewRequest("GET", tc.path, nil), nil, "http")
			if err != nil {
				t.Fatal(err)
			}
			got := -1
			capture := &Capture{Limit: 1 << 20, Done: func(b []byte) { got = len(b) }}
			rec := httptest.NewRecorder()
			x.WriteTo(rec, ResponseOptions{Memory: 64 << 10, HighWatermark: 8 << 20, Dir: t.TempDir()}, capture)
			if got != tc.stored {
				t.Fatalf("captured %d bytes, want %d", got, tc.stored)
			}
			if rec.Body.Len() == 0 {
				t.Fatal("the client got nothing")
			}
		})
	}
}

// TestHeadsLongerThanTheBuffer: request and response heads many times the
// connection's buffers (connBufSize) go through whole, and the connection
// is kept.
func TestHeadsLongerThanTheBuffer(t *testing.T) {
	long := strings.Repeat("v", 5*connBufSize)
	var seen string
	up, _ := serveUnix(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen = r.Header.Get("X-Long")
		w.Header().Set("X-Long-Too", long)
		io.WriteString(w, "ok")
	}))
	tr := &Transport{}
	for i := range 2 {
		r := httptest.NewRequest("GET", "/", nil)
		r.Header.Set("X-Long", long)
		x, err := tr.RoundTrip(up, r, nil, "http")
		if err != nil {
			t.Fatal(err)
		}
		rec := httptest.NewRecorder()
		x.WriteTo(rec, ResponseOptions{Memory: 1 << 20, HighWatermark: 1 << 20, Dir: t.TempDir()}, nil)
		if seen != long || rec.Header().Get("X-Long-Too") != long || rec.Body.String() != "ok" {
			t.Fatalf("request %d: the app saw %d bytes of X-Long, the client got %d of X-Long-Too and %q",
				i, len(seen), len(rec.Header().Get("X-Long-Too")), rec.Body.String())
		}
		if up.keptConns != i+1 {
			t.Fatalf("connection not kept after request %d", i)
		}
	}
}
