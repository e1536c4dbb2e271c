//go:build unix

package loaders

// asgi.py, the ASGI 3 runner: the loader contract (docs/architecture.md)
// with "concurrency": 0, lifespan, streaming both ways, and WebSocket.

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"crypto/sha1"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

func asgiFixture(name string) string { return filepath.Join("..", "..", "testdata", "asgi", name) }

// startASGI starts asgi.py for the app in appDir and insists on a ready
// handshake.
func startASGI(tb testing.TB, appDir string, env ...string) *loader {
	tb.Helper()
	l := startKind(tb, "asgi", appDir, env...)
	if l.hs.Status != "ready" {
		tb.Fatalf("handshake %q, want ready; output:\n%s", l.rawHS, l.out)
	}
	return l
}

// writeASGIApp writes src as the asgi.py of a new app directory.
func writeASGIApp(t *testing.T, src string) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "asgi.py"), []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// asgiEcho is what the echo fixture's /echo answers.
type asgiEcho struct {
	Type        string            `json:"type"`
	ASGI        map[string]string `json:"asgi"`
	HTTPVersion string            `json:"http_version"`
	Method      string            `json:"method"`
	Scheme      string            `json:"scheme"`
	Path        string            `json:"path"`
	RawPath     string            `json:"raw_path"`
	QueryString string            `json:"query_string"`
	RootPath    string            `json:"root_path"`
	Headers     [][2]string       `json:"headers"`
	Client      []any             `json:"client"`
	Server      []any             `json:"server"`
	State       []string          `json:"state"`
	BodyLen     int               `json:"body_len"`
	BodySHA256  string            `json:"body_sha256"`
	PID         int               `json:"pid"`
}

func (c *client) asgiEcho(method, target string, headers []string, body []byte) asgiEcho {
	c.tb.Helper()
	resp, data := c.do(method, target, headers, body)
	if resp.StatusCode != 200 {
		c.tb.Fatalf("%s %s: status %d; body %q", method, target, resp.StatusCode, data)
	}
	var e asgiEcho
	if err := json.Unmarshal([]byte(data), &e); err != nil {
		c.tb.Fatalf("%s %s: %v in %q", method, target, err, data)
	}
	return e
}

func TestASGIHandshakeErrors(t *testing.T) {
	cases := []struct {
		name, src, summary, details string
	}{
		{"no app", "x = 1\n", "AttributeError: startup file asgi.py defines neither 'application' nor 'app'", "AttributeError"},
		{"not callable", "app = 42\n", "TypeError: the ASGI app in asgi.py is not callable (it is int)", "TypeError"},
		{"WSGI app", "def application(environ, start_response):\n    pass\n", "TypeError: the app in asgi.py takes 2 arguments (environ, start_response): it looks like a WSGI app, not an ASGI one", "WSGI"},
		{"startup raises", `
async def app(scope, receive, send):
    assert scope["type"] == "lifespan"
    await receive()
    raise ValueError("no database")
`, "lifespan startup failed: ValueError: no database", "raise ValueError(\"no database\")"},
		{"startup failed", `
async def app(scope, receive, send):
    await receive()
    await send({"type": "lifespan.startup.failed", "message": "cannot reach the cache"})
`, "lifespan startup failed: cannot reach the cache", "cannot reach the cache"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			l := startKind(t, "asgi", writeASGIApp(t, tc.src))
			if l.hs.Status != "error" || l.hs.Summary != tc.summary {
				t.Fatalf("handshake %q, want the error %q", l.rawHS, tc.summary)
			}
			if !strings.Contains(l.hs.Details, tc.details) {
				t.Errorf("details lack %q:\n%s", tc.details, l.hs.Details)
			}
			if code := l.exitCode(); code != 1 {
				t.Errorf("exit code %d, want 1", code)
			}
		})
	}
}

// An app without lifespan support (it raises on the lifespan scope) is
// served all the same; so is a passenger_wsgi.py-named startup file, and an
// app exported as "application" rather than "app".
func TestASGINoLifespan(t *testing.T) {
	dir := t.TempDir()
	src := `
async def application(scope, receive, send):
    if scope["type"] != "http":
        raise RuntimeError("only http")
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"no lifespan"})
`
	if err := os.WriteFile(filepath.Join(dir, "passenger_wsgi.py"), []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	l := startASGI(t, dir, "FERRY_STARTUP_FILE=passenger_wsgi.py")
	resp, body := l.dial().do("GET", "/", nil, nil)
	if resp.StatusCode != 200 || body != "no lifespan" || resp.ContentLength != int64(len(body)) {
		t.Errorf("GET /: %d %q (Content-Length %d)", resp.StatusCode, body, resp.ContentLength)
	}
	if err := l.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := l.exitCode(); code != 0 {
		t.Errorf("exit code %d; output:\n%s", code, l.out)
	}
	if out := l.out.String(); strings.Contains(out, "Traceback") {
		t.Errorf("an app without lifespan is not an error:\n%s", out)
	}
}

func TestASGIScope(t *testing.T) {
	t.Run("root", func(t *testing.T) {
		l := startASGI(t, asgiFixture("echo"))
		c := l.dial()
		e := c.asgiEcho("PUT", "/echo/a%2Fb/caf%C3%A9%20x?x=%2F&y=caf%C3%A9&z", []string{
			"Host: example.test",
			"Content-Type: text/plain; charset=utf-8",
			"X-Ferry-Client-Addr: 203.0.113.7:51234",
			"X-Ferry-Scheme: https",
			"X-Multi: one",
			"X-Multi: two",
			"User-Agent: ferry-test",
		}, []byte("hello body"))
		checks := []struct{ what, got, want string }{
			{"type", e.Type, "http"},
			{"asgi.version", e.ASGI["version"], "3.0"},
			{"asgi.spec_version", e.ASGI["spec_version"], "2.3"},
			{"http_version", e.HTTPVersion, "1.1"},
			{"method", e.Method, "PUT"},
			{"scheme", e.Scheme, "https"},
			{"path", e.Path, "/echo/a/b/café x"},
			{"raw_path", e.RawPath, "/echo/a%2Fb/caf%C3%A9%20x"},
			{"query_string", e.QueryString, "x=%2F&y=caf%C3%A9&z"},
			{"root_path", e.RootPath, ""},
			{"client", fmt.Sprint(e.Client), "[203.0.113.7 51234]"},
			{"server", fmt.Sprint(e.Server), "[example.test 443]"},
			{"state", fmt.Sprint(e.State), "[started_by]"},
			{"body", fmt.Sprint(e.BodyLen, " ", e.BodySHA256), fmt.Sprint(10, " ", sum([]byte("hello body")))},
		}
		for _, ch := range checks {
			if ch.got != ch.want {
				t.Errorf("%s = %q, want %q", ch.what, ch.got, ch.want)
			}
		}
		want := [][2]string{
			{"host", "example.test"},
			{"content-type", "text/plain; charset=utf-8"},
			{"x-multi", "one"},
			{"x-multi", "two"},
			{"user-agent", "ferry-test"},
			{"content-length", "10"},
		}
		if fmt.Sprint(e.Headers) != fmt.Sprint(want) {
			t.Errorf("headers\n %q\nwant\n %q", e.Headers, want)
		}

		// No client address, plain http, IPv6 Host with a port.
		e = c.asgiEcho("GET", "/echo", []string{"Host: [2001:db8::2]:8080", "X-Ferry-Client-Addr: [2001:db8::1]:4321"}, nil)
		if e.Scheme != "http" || fmt.Sprint(e.Server) != "[[2001:db8::2] 8080]" || fmt.Sprint(e.Client) != "[2001:db8::1 4321]" {
			t.Errorf("scheme %q server %v client %v", e.Scheme, e.Server, e.Client)
		}
		e = c.asgiEcho("GET", "/echo", nil, nil)
		if e.Client != nil || e.BodyLen != 0 {
			t.Errorf("without X-Ferry-Client-Addr: client %v", e.Client)
		}

		// HTTP/1.0: closed after the response unless keep-alive is asked for.
		c2 := l.dial()
		c2.c.SetDeadline(time.Now().Add(wait))
		fmt.Fprintf(c2.c, "GET /echo HTTP/1.0\r\nHost: a\r\n\r\n")
		resp := c2.head("GET")
		var e10 asgiEcho
		if err := json.NewDecoder(resp.Body).Decode(&e10); err != nil || e10.HTTPVersion != "1.0" {
			t.Errorf("HTTP/1.0: %+v %v", e10, err)
		}
		if _, err := c2.br.ReadByte(); err != io.EOF {
			t.Errorf("HTTP/1.0 connection kept open: %v", err)
		}
	})

	t.Run("base URI", func(t *testing.T) {
		l := startASGI(t, asgiFixture("echo"), "FERRY_BASE_URI=/my-app/")
		c := l.dial()
		// The path is the whole path; root_path is the prefix (ASGI spec).
		e := c.asgiEcho("GET", "/my-app/echo%2Fx?q=1", nil, nil)
		if e.Path != "/my-app/echo/x" || e.RawPath != "/my-app/echo%2Fx" || e.RootPath != "/my-app" || e.QueryString != "q=1" {
			t.Errorf("path %q raw_path %q root_path %q query %q", e.Path, e.RawPath, e.RootPath, e.QueryString)
		}
		if body := c.get("/my-app", 200); body != "hello world" {
			t.Errorf("GET /my-app = %q", body)
		}
		// Not under the prefix: root_path is empty.
		e = c.asgiEcho("GET", "/echo", nil, nil)
		if e.Path != "/echo" || e.RootPath != "" {
			t.Errorf("outside the base: path %q root_path %q", e.Path, e.RootPath)
		}
		// (the fixture strips root_path from path to route: had root_path
		// been /my-app, it would have looked for "lication/echo")
		if resp, body := c.do("GET", "/my-application/echo", nil, nil); resp.StatusCode != 404 || body != "not found: /my-application/echo" {
			t.Errorf("prefix without a / boundary: %d %q", resp.StatusCode, body)
		}
	})
}

func TestASGIRequestBody(t *testing.T) {
	l := startASGI(t, asgiFixture("echo"))
	c := l.dial()
	small := []byte("name=ferry&lang=go\x00\xff")
	if e := c.asgiEcho("POST", "/echo", nil, small); e.BodyLen != len(small) || e.BodySHA256 != sum(small) {
		t.Errorf("small body: %d %s", e.BodyLen, e.BodySHA256)
	}

	big := payload(8 << 20)
	var got struct {
		Len     int    `json:"len"`
		SHA     string `json:"sha256"`
		Pieces  int    `json:"pieces"`
		Largest int    `json:"largest"`
	}
	if err := json.Unmarshal([]byte(c.do2("POST", "/upload", big)), &got); err != nil {
		t.Fatal(err)
	}
	if got.Len != len(big) || got.SHA != sum(big) {
		t.Errorf("8 MiB upload: %d bytes sha %s", got.Len, got.SHA)
	}
	// Streamed to the app in pieces, never buffered whole.
	if got.Pieces < 8 || got.Largest > 256<<10 {
		t.Errorf("8 MiB body in %d pieces, the largest %d bytes: not streamed", got.Pieces, got.Largest)
	}
	if e := c.asgiEcho("POST", "/echo", nil, big); e.BodyLen != len(big) || e.BodySHA256 != sum(big) {
		t.Errorf("8 MiB /echo: %d %s", e.BodyLen, e.BodySHA256)
	}

	// Bodies the app does not read are discarded, small and large.
	for _, n := range []int{100, 3 << 20} {
		if body := c.do2("POST", "/", payload(n)); body != "hello world" {
			t.Fatalf("unread %d-byte body: %q", n, body)
		}
		if body := c.get("/pid", 200); body != strconv.Itoa(l.cmd.Process.Pid) {
			t.Fatalf("after an unread %d-byte body: %q", n, body)
		}
	}
}

func TestASGIStreaming(t *testing.T) {
	l := startASGI(t, asgiFixture("echo"))
	c := l.dial()
	// The app sleeps a minute after the first chunk: seeing it proves the
	// runner does not wait for the app to finish.
	c.send("GET", "/stream?n=2&delay=60", nil, nil)
	resp := c.head("GET")
	if len(resp.TransferEncoding) != 1 || resp.TransferEncoding[0] != "chunked" {
		t.Errorf("Transfer-Encoding %v, want chunked", resp.TransferEncoding)
	}
	first := make([]byte, len("chunk 0\n"))
	if _, err := io.ReadFull(resp.Body, first); err != nil || string(first) != "chunk 0\n" {
		t.Fatalf("first chunk %q, %v", first, err)
	}
	// The same process serves others meanwhile.
	if body := l.dial().get("/", 200); body != "hello world" {
		t.Errorf("GET / during a stream: %q", body)
	}
	c2 := l.dial()
	if body := c2.get("/stream?n=5", 200); body != "chunk 0\nchunk 1\nchunk 2\nchunk 3\nchunk 4\n" {
		t.Errorf("/stream?n=5: %q", body)
	}
}

func TestASGIConcurrency(t *testing.T) {
	l := startASGI(t, asgiFixture("echo"))
	const n = 100
	start := time.Now()
	errs := make([]error, n)
	runParallel(n, func(i int) {
		code, body, err := getOnce(l.sock, "/sleep?s=1")
		if err == nil && (code != 200 || body != strconv.Itoa(l.cmd.Process.Pid)) {
			err = fmt.Errorf("%d %q", code, body)
		}
		errs[i] = err
	})
	for i, err := range errs {
		if err != nil {
			t.Errorf("request %d: %v", i, err)
		}
	}
	// One at a time they would take a hundred seconds.
	if d := time.Since(start); d > 20*time.Second {
		t.Errorf("%d concurrent /sleep?s=1 took %v", n, d)
	}
}

func TestASGIResponses(t *testing.T) {
	l := startASGI(t, asgiFixture("echo"))
	c := l.dial()

	resp, body := c.do("GET", "/cookies", nil, nil)
	if got := resp.Header["Set-Cookie"]; len(got) != 2 || got[0] != "a=1; Path=/" || got[1] != "b=2; Path=/" {
		t.Errorf("Set-Cookie %q", got)
	}
	for _, code := range []int{200, 201, 204, 304, 404, 418, 503} {
		resp, body = c.do("GET", "/status/"+strconv.Itoa(code), nil, nil)
		want := fmt.Sprintf("status %d", code)
		if code == 204 || code == 304 {
			want = ""
		}
		if resp.StatusCode != code || body != want {
			t.Errorf("/status/%d: %d %q, want %q", code, resp.StatusCode, body, want)
		}
	}
	resp, body = c.do("HEAD", "/", nil, nil)
	if resp.StatusCode != 200 || body != "" || resp.ContentLength != 11 {
		t.Errorf("HEAD /: %d %q Content-Length %d", resp.StatusCode, body, resp.ContentLength)
	}
	resp, body = c.do("HEAD", "/stream", nil, nil)
	if resp.StatusCode != 200 || body != "" {
		t.Errorf("HEAD /stream: %d %q", resp.StatusCode, body)
	}

	resp, body = c.do("GET", "/error", nil, nil)
	if resp.StatusCode != 500 || body == "" || resp.Close {
		t.Errorf("/error: %d %q close=%v, want a kept-alive 500", resp.StatusCode, body, resp.Close)
	}
	for i := range 300 {
		if body := c.get("/", 200); body != "hello world" {
			t.Fatalf("request %d: %q", i, body)
		}
	}
	resp, _ = c.do("GET", "/", []string{"Connection: close"}, nil)
	if !resp.Close {
		t.Errorf("answer to Connection: close does not announce the close")
	}
	c.c.SetDeadline(time.Now().Add(wait))
	if n, err := c.br.ReadByte(); err != io.EOF {
		t.Errorf("after Connection: close: read %q, %v; want EOF", n, err)
	}

	// A failure after the head: the connection closes mid-body.
	c = l.dial()
	c.send("GET", "/late-error", nil, nil)
	resp = c.head("GET")
	data, err := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || err == nil || string(data) != "partial" {
		t.Errorf("/late-error: %d %q %v, want a truncated 200", resp.StatusCode, data, err)
	}

	// A request the runner cannot parse.
	c = l.dial()
	c.c.SetDeadline(time.Now().Add(wait))
	fmt.Fprintf(c.c, "GET / HTTP/1.1\r\nno colon here\r\n\r\n")
	if resp := c.head("GET"); resp.StatusCode != 400 || !resp.Close {
		t.Errorf("malformed head: %d close=%v", resp.StatusCode, resp.Close)
	}

	c = l.dial()
	c.get("/print", 200)
	if code := l.stop(); code != 0 {
		t.Errorf("exit code %d after the lifeline closed", code)
	}
	out := l.out.String()
	for _, want := range []string{"hello stdout from asgi app", "hello stderr from asgi app", "RuntimeError: boom from asgi app", "RuntimeError: late failure", "Traceback"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	quietAsyncio(t, l.out.String())
}

// When the core closes the connection, a receive() after the body returns
// http.disconnect.
func TestASGIDisconnect(t *testing.T) {
	l := startASGI(t, asgiFixture("echo"))
	c := l.dial()
	c.send("POST", "/disconnect", nil, []byte("some body"))
	resp := c.head("POST")
	line, err := bufio.NewReader(resp.Body).ReadString('\n')
	if err != nil || line != "waiting\n" {
		t.Fatalf("/disconnect: %q %v", line, err)
	}
	c.c.Close()
	waitUntil(t, "http.disconnect", func() bool { return strings.Contains(l.out.String(), "got http.disconnect") })

	// A stream of a thousand seconds whose reader goes away: send() raises
	// and the app stops, else SIGTERM would wait for it.
	c = l.dial()
	c.send("GET", "/stream?n=1000000&delay=0.001", nil, nil)
	resp = c.head("GET")
	if _, err := io.ReadFull(resp.Body, make([]byte, 100)); err != nil {
		t.Fatal(err)
	}
	c.c.Close()
	if body := l.dial().get("/", 200); body != "hello world" {
		t.Errorf("GET / = %q", body)
	}
	if err := l.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := l.exitCode(); code != 0 {
		t.Errorf("exit code %d; output:\n%s", code, l.out)
	}
	if out := l.out.String(); strings.Contains(out, "Traceback") {
		t.Errorf("a client going away is no app error:\n%s", out)
	}
	quietAsyncio(t, l.out.String())
}

func TestASGILifespan(t *testing.T) {
	l := startASGI(t, asgiFixture("echo"))
	pid := l.cmd.Process.Pid
	var st struct {
		Lifespan int `json:"lifespan"`
		Requests int `json:"requests"`
	}
	idle := l.dial()
	if err := json.Unmarshal([]byte(idle.get("/state", 200)), &st); err != nil || st.Lifespan != pid {
		t.Fatalf("/state: %+v %v: lifespan state not in the request scope", st, err)
	}
	// Startup ran before ready: its line is already there.
	if out := l.out.String(); !strings.Contains(out, fmt.Sprintf("lifespan startup in %d", pid)) {
		t.Errorf("no startup line:\n%s", out)
	}

	busy := l.dial()
	busy.send("GET", "/stream?n=3&delay=0.3", nil, nil)
	resp := busy.head("GET")
	first := make([]byte, len("chunk 0\n"))
	if _, err := io.ReadFull(resp.Body, first); err != nil {
		t.Fatal(err)
	}
	if err := l.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	// The request in flight completes, the idle connection is closed.
	rest, err := io.ReadAll(resp.Body)
	if err != nil || string(first)+string(rest) != "chunk 0\nchunk 1\nchunk 2\n" {
		t.Errorf("in-flight request after SIGTERM: %q %q, %v", first, rest, err)
	}
	idle.c.SetDeadline(time.Now().Add(wait))
	if _, err := idle.br.ReadByte(); err != io.EOF {
		t.Errorf("idle connection after SIGTERM: %v, want EOF", err)
	}
	if code := l.exitCode(); code != 0 {
		t.Errorf("exit code %d, want 0; output:\n%s", code, l.out)
	}
	out := l.out.String()
	i, j := strings.Index(out, "lifespan startup"), strings.Index(out, fmt.Sprintf("lifespan shutdown in %d", pid))
	if i < 0 || j < i {
		t.Errorf("want startup then shutdown in the output:\n%s", out)
	}
	if _, err := os.Stat(l.sock); err == nil {
		t.Errorf("socket left behind")
	}
	quietAsyncio(t, l.out.String())
}

// quietAsyncio fails on asyncio's complaints in a runner's output: each is
// a task or callback the runner lost track of.
func quietAsyncio(t *testing.T, out string) {
	t.Helper()
	for _, bad := range []string{"never retrieved", "Exception in callback", "Unhandled exception", "socket.send() raised", "was destroyed but it is pending", "Error on reading"} {
		if strings.Contains(out, bad) {
			t.Errorf("asyncio complains (%q):\n%s", bad, out)
		}
	}
}

// --------------------------------------------------------- WebSocket ---

// wsClient is a hand-written WebSocket client (RFC 6455) on a raw
// connection to the runner's socket.
type wsClient struct {
	tb testing.TB
	c  net.Conn
	br *bufio.Reader
}

// wsOpen sends the upgrade request and reads the answer; resp.StatusCode is
// 101 when the app accepted.
func wsOpen(tb testing.TB, sock, target string, headers ...string) (*wsClient, *http.Response) {
	tb.Helper()
	return wsOpenEarly(tb, sock, target, nil, headers...)
}

// wsOpenEarly is wsOpen with early bytes (frames) sent in the same write as
// the upgrade request, before the answer.
func wsOpenEarly(tb testing.TB, sock, target string, early []byte, headers ...string) (*wsClient, *http.Response) {
	tb.Helper()
	c, err := net.Dial("unix", sock)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(wait))
	keyRaw := make([]byte, 16)
	rand.Read(keyRaw)
	key := base64.StdEncoding.EncodeToString(keyRaw)
	req := "GET " + target + " HTTP/1.1\r\nHost: app.test\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n" +
		"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: " + key + "\r\n"
	for _, h := range headers {
		req += h + "\r\n"
	}
	if _, err := c.Write(append([]byte(req+"\r\n"), early...)); err != nil {
		tb.Fatal(err)
	}
	w := &wsClient{tb: tb, c: c, br: bufio.NewReader(c)}
	resp, err := http.ReadResponse(w.br, &http.Request{Method: "GET"})
	if err != nil {
		tb.Fatalf("upgrade %s: %v", target, err)
	}
	if resp.StatusCode == 101 {
		h := sha1.Sum([]byte(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
		if got, want := resp.Header.Get("Sec-WebSocket-Accept"), base64.StdEncoding.EncodeToString(h[:]); got != want {
			tb.Errorf("Sec-WebSocket-Accept %q, want %q", got, want)
		}
		if !strings.EqualFold(resp.Header.Get("Upgrade"), "websocket") || !strings.EqualFold(resp.Header.Get("Connection"), "upgrade") {
			tb.Errorf("101 headers %v", resp.Header)
		}
	}
	return w, resp
}

// write sends one masked frame.
func (w *wsClient) write(fin bool, opcode byte, payload []byte) {
	w.tb.Helper()
	w.c.SetDeadline(time.Now().Add(wait))
	if _, err := w.c.Write(wsFrame(fin, opcode, payload)); err != nil {
		w.tb.Fatalf("write frame: %v", err)
	}
}

// wsFrame encodes one frame as a client sends it: masked.
func wsFrame(fin bool, opcode byte, payload []byte) []byte {
	var b bytes.Buffer
	b0 := opcode
	if fin {
		b0 |= 0x80
	}
	b.WriteByte(b0)
	switch n := len(payload); {
	case n < 126:
		b.WriteByte(0x80 | byte(n))
	case n < 65536:
		b.WriteByte(0x80 | 126)
		binary.Write(&b, binary.BigEndian, uint16(n))
	default:
		b.WriteByte(0x80 | 127)
		binary.Write(&b, binary.BigEndian, uint64(n))
	}
	mask := make([]byte, 4)
	rand.Read(mask)
	b.Write(mask)
	for i, c := range payload {
		b.WriteByte(c ^ mask[i%4])
	}
	return b.Bytes()
}

// read reads one frame, which the server must not mask.
func (w *wsClient) read() (fin bool, opcode byte, payload []byte) {
	w.tb.Helper()
	w.c.SetDeadline(time.Now().Add(wait))
	var h [2]byte
	if _, err := io.ReadFull(w.br, h[:]); err != nil {
		w.tb.Fatalf("read frame: %v", err)
	}
	if h[1]&0x80 != 0 {
		w.tb.Fatalf("server frame is masked")
	}
	n := uint64(h[1] & 0x7F)
	switch n {
	case 126:
		var x uint16
		binary.Read(w.br, binary.BigEndian, &x)
		n = uint64(x)
	case 127:
		binary.Read(w.br, binary.BigEndian, &n)
	}
	payload = make([]byte, n)
	if _, err := io.ReadFull(w.br, payload); err != nil {
		w.tb.Fatalf("read payload: %v", err)
	}
	return h[0]&0x80 != 0, h[0] & 0x0F, payload
}

// expect reads one frame and checks it.
func (w *wsClient) expect(opcode byte, payload []byte) {
	w.tb.Helper()
	fin, op, got := w.read()
	if !fin || op != opcode || !bytes.Equal(got, payload) {
		w.tb.Fatalf("frame fin=%v opcode %d payload %.60q, want opcode %d payload %.60q", fin, op, got, opcode, payload)
	}
}

func closePayload(code uint16, reason string) []byte {
	return append(binary.BigEndian.AppendUint16(nil, code), reason...)
}

func (w *wsClient) expectEOF() {
	w.tb.Helper()
	w.c.SetDeadline(time.Now().Add(wait))
	if b, err := w.br.ReadByte(); err != io.EOF {
		w.tb.Errorf("after the close handshake: %q, %v; want EOF", b, err)
	}
}

func TestASGIWebSocket(t *testing.T) {
	l := startASGI(t, asgiFixture("echo"))
	w, resp := wsOpen(t, l.sock, "/ws?q=1", "Sec-WebSocket-Protocol: other, chat", "X-Ferry-Scheme: https")
	if resp.StatusCode != 101 {
		t.Fatalf("upgrade: %d; output:\n%s", resp.StatusCode, l.out)
	}
	if got := resp.Header.Get("Sec-WebSocket-Protocol"); got != "chat" {
		t.Errorf("subprotocol %q, want chat", got)
	}
	if got := resp.Header.Get("X-Ws"); got != "yes" {
		t.Errorf("accept headers: X-Ws %q", got)
	}

	w.write(true, 1, []byte("hello"))
	w.expect(1, []byte("hello"))
	w.write(true, 1, []byte("path"))
	w.expect(1, []byte("wss /ws q=1 "))
	for _, n := range []int{0, 125, 126, 200, 65535, 65536, 70000, 1 << 20} {
		p := payload(n)
		w.write(true, 2, p)
		w.expect(2, p)
	}
	w.write(true, 1, []byte("héllo ✓"))
	w.expect(1, []byte("héllo ✓"))
	// Ping: pong with the same payload.
	w.write(true, 9, []byte("are you there"))
	w.expect(10, []byte("are you there"))
	// A fragmented message with a ping in the middle.
	w.write(false, 1, []byte("frag"))
	w.write(false, 0, []byte("men"))
	w.write(true, 9, []byte("p"))
	w.write(true, 0, []byte("ted"))
	w.expect(10, []byte("p"))
	w.expect(1, []byte("fragmented"))
	w.write(false, 2, []byte{1, 2})
	w.write(true, 0, []byte{3})
	w.expect(2, []byte{1, 2, 3})

	// The client closes: the server echoes the close and hangs up.
	w.write(true, 8, closePayload(1000, "done"))
	w.expect(8, closePayload(1000, ""))
	w.expectEOF()
	waitUntil(t, "websocket.disconnect", func() bool { return strings.Contains(l.out.String(), "ws disconnect 1000") })

	// The app closes (websocket.close with a code and reason).
	w, resp = wsOpen(t, l.sock, "/ws")
	if resp.StatusCode != 101 || resp.Header.Get("Sec-WebSocket-Protocol") != "" {
		t.Fatalf("second upgrade: %d %v", resp.StatusCode, resp.Header)
	}
	w.write(true, 1, []byte("close"))
	w.expect(8, closePayload(4000, "bye"))
	w.write(true, 8, closePayload(4000, ""))
	w.expectEOF()

	// Protocol errors: an unmasked frame, bad UTF-8 in a text message.
	w, _ = wsOpen(t, l.sock, "/ws")
	w.c.Write([]byte{0x81, 0x02, 'h', 'i'})
	_, op, p := w.read()
	if op != 8 || binary.BigEndian.Uint16(p) != 1002 {
		t.Errorf("unmasked frame: opcode %d payload %q, want close 1002", op, p)
	}
	w, _ = wsOpen(t, l.sock, "/ws")
	w.write(true, 1, []byte{0xff, 0xfe})
	_, op, p = w.read()
	if op != 8 || binary.BigEndian.Uint16(p) != 1007 {
		t.Errorf("bad UTF-8: opcode %d payload %q, want close 1007", op, p)
	}

	// The app returns without reading while more messages wait than the
	// runner queues for it: the runner closes with 1000 and finishes the
	// handshake without waiting out its close timeout.
	var flood []byte
	for range 200 {
		flood = append(flood, wsFrame(true, 1, []byte("m"))...)
	}
	start := time.Now()
	w, resp = wsOpenEarly(t, l.sock, "/ws-quit", flood)
	if resp.StatusCode != 101 {
		t.Fatalf("/ws-quit: %d", resp.StatusCode)
	}
	w.expect(8, closePayload(1000, ""))
	w.write(true, 8, closePayload(1000, ""))
	w.expectEOF()
	if d := time.Since(start); d >= 5*time.Second {
		t.Errorf("close handshake after the app returned took %v: the close timeout, not the peer's close", d)
	}

	// websocket.close before websocket.accept: 403.
	for _, target := range []string{"/ws-reject", "/no-such-ws"} {
		_, resp = wsOpen(t, l.sock, target)
		if resp.StatusCode != 403 {
			t.Errorf("%s: %d, want 403", target, resp.StatusCode)
		}
	}
	// Not a valid handshake: 400 / 426.
	c := l.dial()
	resp, _ = c.do("GET", "/ws", []string{"Connection: Upgrade", "Upgrade: websocket", "Sec-WebSocket-Version: 13"}, nil)
	if resp.StatusCode != 400 {
		t.Errorf("no Sec-WebSocket-Key: %d", resp.StatusCode)
	}
	c = l.dial()
	resp, _ = c.do("GET", "/ws", []string{"Connection: Upgrade", "Upgrade: websocket", "Sec-WebSocket-Version: 8", "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ=="}, nil)
	if resp.StatusCode != 426 || resp.Header.Get("Sec-WebSocket-Version") != "13" {
		t.Errorf("version 8: %d %v", resp.StatusCode, resp.Header)
	}
	// The server is fine after all that.
	if body := l.dial().get("/", 200); body != "hello world" {
		t.Errorf("GET /: %q", body)
	}
	if err := l.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := l.exitCode(); code != 0 {
		t.Errorf("exit code %d; output:\n%s", code, l.out)
	}
	quietAsyncio(t, l.out.String())
}

// SIGTERM closes open WebSockets with 1012 (service restart).
func TestASGIWebSocketSIGTERM(t *testing.T) {
	l := startASGI(t, asgiFixture("echo"))
	w, resp := wsOpen(t, l.sock, "/ws")
	if resp.StatusCode != 101 {
		t.Fatal(resp.Status)
	}
	w.write(true, 1, []byte("hi"))
	w.expect(1, []byte("hi"))
	if err := l.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	_, op, p := w.read()
	if op != 8 || len(p) < 2 || binary.BigEndian.Uint16(p) != 1012 {
		t.Fatalf("after SIGTERM: opcode %d payload %q, want close 1012", op, p)
	}
	w.write(true, 8, closePayload(1012, ""))
	w.expectEOF()
	if code := l.exitCode(); code != 0 {
		t.Errorf("exit code %d; output:\n%s", code, l.out)
	}
	if out := l.out.String(); !strings.Contains(out, "ws disconnect 1012") || !strings.Contains(out, "lifespan shutdown") {
		t.Errorf("output:\n%s", out)
	}
	quietAsyncio(t, l.out.String())
}

// --------------------------------------------------------- Starlette ---

func TestASGIStarlette(t *testing.T) {
	if err := runQuiet("/usr/bin/python3", "-c", "import starlette"); err != nil {
		t.Skipf("skipping: python3-starlette cannot be imported (apt-get install python3-starlette): %v", err)
	}
	l := startASGI(t, asgiFixture("starlette"))
	if l.hs.Concurrency != 0 {
		t.Errorf("handshake %q", l.rawHS)
	}
	c := l.dial()
	if body := c.get("/", 200); body != "hello from starlette" {
		t.Errorf("GET / = %q (lifespan state)", body)
	}
	if body := c.get("/pid", 200); body != strconv.Itoa(l.cmd.Process.Pid) {
		t.Errorf("/pid = %q", body)
	}
	resp, body := c.do("POST", "/items", []string{"Content-Type: application/json"}, []byte(`{"items":[1,2,3],"name":"ferry"}`))
	var got struct {
		Received map[string]any `json:"received"`
		Count    int            `json:"count"`
	}
	if resp.StatusCode != 201 || json.Unmarshal([]byte(body), &got) != nil || got.Count != 3 || got.Received["name"] != "ferry" {
		t.Errorf("POST /items: %d %q", resp.StatusCode, body)
	}
	resp, body = c.do("GET", "/stream?n=4", nil, nil)
	if resp.StatusCode != 200 || body != "part 0\npart 1\npart 2\npart 3\n" || len(resp.TransferEncoding) == 0 {
		t.Errorf("GET /stream: %d %q %v", resp.StatusCode, body, resp.TransferEncoding)
	}
	if body := c.get("/", 200); body != "hello from starlette" {
		t.Errorf("after the stream: %q", body)
	}
	resp, _ = c.do("GET", "/nowhere", nil, nil)
	if resp.StatusCode != 404 {
		t.Errorf("GET /nowhere: %d", resp.StatusCode)
	}

	w, resp := wsOpen(t, l.sock, "/ws")
	if resp.StatusCode != 101 {
		t.Fatalf("upgrade: %d; output:\n%s", resp.StatusCode, l.out)
	}
	w.write(true, 1, []byte("hi"))
	w.expect(1, []byte("echo: hi"))
	w.write(true, 2, []byte{0, 1, 2})
	w.expect(2, []byte{0, 1, 2})
	w.write(true, 8, closePayload(1000, ""))
	w.expect(8, closePayload(1000, ""))
	w.expectEOF()

	if err := l.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := l.exitCode(); code != 0 {
		t.Errorf("exit code %d; output:\n%s", code, l.out)
	}
	out := l.out.String()
	if i, j := strings.Index(out, "starlette startup"), strings.Index(out, "starlette shutdown"); i < 0 || j < i {
		t.Errorf("lifespan output:\n%s", out)
	}
	if strings.Contains(out, "Traceback") {
		t.Errorf("tracebacks in the output:\n%s", out)
	}
	quietAsyncio(t, l.out.String())
}

func BenchmarkASGIHello(b *testing.B) {
	l := startASGI(b, asgiFixture("echo"))
	c := l.dial()
	req := []byte("GET / HTTP/1.1\r\nHost: app.test\r\nUser-Agent: bench\r\nAccept: */*\r\nX-Ferry-Client-Addr: 127.0.0.1:40000\r\nX-Ferry-Scheme: http\r\n\r\n")
	get := &http.Request{Method: "GET"}
	c.c.SetDeadline(time.Time{})
	for b.Loop() {
		if _, err := c.c.Write(req); err != nil {
			b.Fatal(err)
		}
		resp, err := http.ReadResponse(c.br, get)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := io.Copy(io.Discard, resp.Body); err != nil {
			b.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			b.Fatalf("status %d", resp.StatusCode)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "req/s")
}
