//go:build unix

package loaders

// Tests of node.cjs, the Node.js loader, under /usr/bin/node with the shared
// harness (harness_test.go). Helpers here carry a "node" prefix: other
// loaders' tests live in the same package.

import (
	"bufio"
	"bytes"
	"context"
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
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

const nodeBin = "/usr/bin/node"

func nodeFixture(name string) string { return filepath.Join("..", "..", "testdata", "node", name) }

// nodeStart starts node.cjs for the app in appDir; env overrides the
// defaults (FERRY_STARTUP_FILE=app.js among them).
func nodeStart(tb testing.TB, appDir string, env ...string) *loader {
	tb.Helper()
	return startKind(tb, "node", appDir, env...)
}

// nodeReady starts node.cjs and insists that it is ready.
func nodeReady(tb testing.TB, appDir string, env ...string) *loader {
	tb.Helper()
	l := nodeStart(tb, appDir, env...)
	if l.hs.Status != "ready" {
		tb.Fatalf("handshake %q, want ready; output:\n%s", l.rawHS, l.out)
	}
	return l
}

// nodeApp writes files (name → content) into a fresh directory.
func nodeApp(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// nodeEchoed is what the echo fixture's /echo answers.
type nodeEchoed struct {
	Method        string              `json:"method"`
	Path          string              `json:"path"`
	QueryString   string              `json:"query_string"`
	ContentType   *string             `json:"content_type"`
	ContentLength *string             `json:"content_length"`
	Headers       map[string]string   `json:"headers"`
	RawHeaders    []string            `json:"raw_headers"`
	Distinct      map[string][]string `json:"headers_distinct"`
	BodyLen       int                 `json:"body_len"`
	BodySHA256    string              `json:"body_sha256"`
	Body          *string             `json:"body"`
	RemoteAddr    *string             `json:"remote_addr"`
	RemotePort    *int                `json:"remote_port"`
	RemoteFamily  *string             `json:"remote_family"`
	URLScheme     string              `json:"url_scheme"`
	Encrypted     bool                `json:"encrypted"`
	HTTPVersion   string              `json:"http_version"`
	PID           int                 `json:"pid"`
}

func (c *client) nodeEcho(method, target string, headers []string, body []byte) nodeEchoed {
	c.tb.Helper()
	resp, data := c.do(method, target, headers, body)
	if resp.StatusCode != 200 {
		c.tb.Fatalf("%s %s: status %d; body %q", method, target, resp.StatusCode, data)
	}
	var e nodeEchoed
	if err := json.Unmarshal([]byte(data), &e); err != nil {
		c.tb.Fatalf("%s %s: %v in %q", method, target, err, data)
	}
	return e
}

func nodeStr(p *string) string {
	if p == nil {
		return "<nil>"
	}
	return *p
}

// ------------------------------------------------------------ handshake ---

func TestNodeHandshakeErrors(t *testing.T) {
	cases := []struct {
		name    string
		files   map[string]string
		env     []string
		summary string // prefix
		details []string
	}{
		{
			name:    "syntax error",
			files:   map[string]string{"app.js": "const ok = 1;\nconst x = ;\n"},
			summary: "SyntaxError: Unexpected token",
			details: []string{"app.js:2"},
		},
		{
			name:    "missing module",
			files:   map[string]string{"app.js": "require('frobnicate-nonexistent');\n"},
			summary: "Error: Cannot find module 'frobnicate-nonexistent'",
			details: []string{"app.js"},
		},
		{
			name: "throw in a timer before listening",
			files: map[string]string{"app.js": "setTimeout(() => { throw new TypeError('late boom'); }, 5);\n" +
				"setInterval(() => {}, 60000);\n"},
			summary: "TypeError: late boom",
			details: []string{"app.js:1"},
		},
		{
			name: "unhandled rejection at startup",
			files: map[string]string{"app.js": "Promise.reject(new RangeError('rejected at startup'));\n" +
				"setInterval(() => {}, 60000);\n"},
			summary: "RangeError: rejected at startup",
			details: []string{"app.js:1"},
		},
		{
			name:    "ES module throws after top-level await",
			files:   map[string]string{"server.mjs": "await new Promise((r) => setTimeout(r, 5));\nthrow new Error('esm boom');\n"},
			env:     []string{"FERRY_STARTUP_FILE=server.mjs"},
			summary: "Error: esm boom",
			details: []string{"server.mjs:2"},
		},
		{
			name:    "ES module import of a missing package",
			files:   map[string]string{"package.json": `{"type":"module"}`, "app.js": "import 'frobnicate-nonexistent';\n"},
			summary: "Error: Cannot find package 'frobnicate-nonexistent'",
		},
		{
			name:    "exits without listening",
			files:   map[string]string{"app.js": "console.log('nothing to serve');\n"},
			summary: "Error: the app exited (code 0) without listening on a server",
			details: []string{"server.listen(port)"},
		},
		{
			name:    "process.exit before listening",
			files:   map[string]string{"app.js": "process.exit(1);\n"},
			summary: "Error: the app exited (code 1) without listening on a server",
			details: []string{"process.exit(1)"},
		},
		{
			name:    "missing startup file",
			files:   map[string]string{"app.js": "\n"},
			env:     []string{"FERRY_STARTUP_FILE=nope.js"},
			summary: "Error: startup file nope.js not found in ",
		},
		{
			name:    "no startup file at all",
			files:   map[string]string{"README": "\n"},
			env:     []string{"FERRY_STARTUP_FILE="},
			summary: "Error: no startup file in ",
			details: []string{"app.js, index.js, server.js"},
		},
		{
			name:    "listen callback throws",
			files:   map[string]string{"app.js": "require('http').createServer().listen(3000, () => {\n  throw new Error('callback boom');\n});\n"},
			summary: "Error: callback boom",
			details: []string{"app.js:2"},
		},
		{
			name:    "listen fails",
			files:   map[string]string{"app.js": "require('http').createServer().listen(3000);\n"},
			env:     []string{"FERRY_SOCKET=/nonexistent-dir/ferry/sock"},
			summary: "Error: listen E", // ENOENT or EACCES
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			l := nodeStart(t, nodeApp(t, tc.files), tc.env...)
			if l.hs.Status != "error" {
				t.Fatalf("handshake %q, want an error; output:\n%s", l.rawHS, l.out)
			}
			if !strings.HasPrefix(l.hs.Summary, tc.summary) || strings.Contains(l.hs.Summary, "\n") {
				t.Errorf("summary %q, want one line starting %q", l.hs.Summary, tc.summary)
			}
			if l.hs.Details == "" {
				t.Errorf("no details")
			}
			for _, want := range tc.details {
				if !strings.Contains(l.hs.Details, want) {
					t.Errorf("details lack %q:\n%s", want, l.hs.Details)
				}
			}
			if code := l.exitCode(); code != 1 {
				t.Errorf("exit code %d, want 1; output:\n%s", code, l.out)
			}
		})
	}
}

func TestNodeStartupFile(t *testing.T) {
	hello := func(s string) string {
		return "require('http').createServer((q, s) => s.end(" + strconv.Quote(s) + ")).listen(3000);\n"
	}
	cases := []struct {
		name  string
		files map[string]string
		env   string
		want  string
	}{
		{"package.json main", map[string]string{
			"package.json": `{"main": "lib/start"}`, "lib/start.js": hello("main"), "app.js": hello("app.js"),
		}, "FERRY_STARTUP_FILE=", "main"},
		{"app.js", map[string]string{"app.js": hello("app.js"), "index.js": hello("index.js")}, "FERRY_STARTUP_FILE=", "app.js"},
		{"index.js", map[string]string{"index.js": hello("index.js"), "server.js": hello("server.js")}, "FERRY_STARTUP_FILE=", "index.js"},
		{"server.js", map[string]string{"server.js": hello("server.js")}, "FERRY_STARTUP_FILE=", "server.js"},
		{"given", map[string]string{"app.js": hello("app.js"), "other.cjs": hello("other.cjs")}, "FERRY_STARTUP_FILE=other.cjs", "other.cjs"},
		{"mjs", map[string]string{"main.mjs": "import http from 'node:http';\nhttp.createServer((q, s) => s.end('mjs')).listen(1);\n"},
			"FERRY_STARTUP_FILE=main.mjs", "mjs"},
		{"cjs under type module", map[string]string{"package.json": `{"type": "module"}`, "app.cjs": hello("cjs")},
			"FERRY_STARTUP_FILE=app.cjs", "cjs"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			l := nodeReady(t, nodeApp(t, tc.files), tc.env)
			if body := l.dial().get("/", 200); body != tc.want {
				t.Errorf("GET / = %q, want %q", body, tc.want)
			}
		})
	}
}

// A TLS server listens where it asked (the core speaks plain HTTP); the
// first plain one gets the socket, whichever came first.
func TestNodeTLSServerFirst(t *testing.T) {
	app := `const https = require('https');
const http = require('http');
const tlsServer = https.createServer({});
tlsServer.listen(0, '127.0.0.1', () => {
  const port = tlsServer.address().port;
  http.createServer((q, s) => s.end('plain; tls on ' + (port > 0 ? 'a port' : '?'))).listen(3000);
});
`
	l := nodeReady(t, nodeApp(t, map[string]string{"app.js": app}))
	if body := l.dial().get("/", 200); body != "plain; tls on a port" {
		t.Errorf("GET / = %q", body)
	}
}

// ------------------------------------------------------------- requests ---

// The peer of each request on a kept-alive connection is its own
// X-Ferry-Client-Addr (the rest of keep-alive is TestLoaderContract).
func TestNodeKeepAlivePeers(t *testing.T) {
	l := nodeReady(t, nodeFixture("echo"))
	c := l.dial()
	for i := range 100 {
		e := c.nodeEcho("POST", "/echo?i="+strconv.Itoa(i), []string{"X-Ferry-Client-Addr: 192.0.2.1:" + strconv.Itoa(1000+i)}, []byte("ping"))
		if e.QueryString != "i="+strconv.Itoa(i) || e.BodyLen != 4 || e.RemotePort == nil || *e.RemotePort != 1000+i {
			t.Fatalf("request %d: %+v", i, e)
		}
	}
}

func TestNodeEcho(t *testing.T) {
	l := nodeReady(t, nodeFixture("echo"))
	c := l.dial()
	e := c.nodeEcho("PUT", "/echo/a%2Fb/%C3%A9%20%ff?x=%2F&y=caf%C3%A9&z", []string{
		"Host: example.test",
		"Content-Type: text/plain; charset=utf-8",
		"X-Forwarded-For: 6.6.6.6",
		"X-Ferry-Client-Addr: 203.0.113.7:51234",
		"X-Ferry-Scheme: https",
		"X-Ferry-Other: internal too",
		"X-Multi: one",
		"X-Multi: two",
		"Cookie: c1=1",
		"Cookie: c2=2",
		"x-forwarded-for: 7.7.7.7",
		"X-Forwarded-Proto: http",
		"User-Agent: ferry-test",
	}, []byte("hello body"))
	checks := []struct{ what, got, want string }{
		{"method", e.Method, "PUT"},
		{"path", e.Path, "/echo/a%2Fb/%C3%A9%20%ff"},
		{"query", e.QueryString, "x=%2F&y=caf%C3%A9&z"},
		{"remoteAddress", nodeStr(e.RemoteAddr), "203.0.113.7"},
		{"remoteFamily", nodeStr(e.RemoteFamily), "IPv4"},
		{"url_scheme", e.URLScheme, "https"},
		{"x-forwarded-for", e.Headers["x-forwarded-for"], "203.0.113.7"},
		{"x-forwarded-proto", e.Headers["x-forwarded-proto"], "https"},
		{"x-multi", e.Headers["x-multi"], "one, two"},
		{"cookie", e.Headers["cookie"], "c1=1; c2=2"},
		{"user-agent", e.Headers["user-agent"], "ferry-test"},
		{"host", e.Headers["host"], "example.test"},
		{"content-type", nodeStr(e.ContentType), "text/plain; charset=utf-8"},
		{"content-length", nodeStr(e.ContentLength), "10"},
		{"body", nodeStr(e.Body), "hello body"},
		{"http version", e.HTTPVersion, "1.1"},
	}
	for _, ch := range checks {
		if ch.got != ch.want {
			t.Errorf("%s = %q, want %q", ch.what, ch.got, ch.want)
		}
	}
	if e.RemotePort == nil || *e.RemotePort != 51234 {
		t.Errorf("remotePort = %v, want 51234", e.RemotePort)
	}
	if !e.Encrypted {
		t.Errorf("socket.encrypted false for an https client")
	}
	if e.PID != l.cmd.Process.Pid {
		t.Errorf("pid %d, want %d", e.PID, l.cmd.Process.Pid)
	}
	for k := range e.Headers {
		if strings.HasPrefix(k, "x-ferry") {
			t.Errorf("internal header leaked to req.headers: %s", k)
		}
	}
	if len(e.RawHeaders)%2 != 0 {
		t.Fatalf("rawHeaders of odd length: %q", e.RawHeaders)
	}
	count := map[string]int{}
	for i := 0; i < len(e.RawHeaders); i += 2 {
		name := strings.ToLower(e.RawHeaders[i])
		count[name]++
		if strings.HasPrefix(name, "x-ferry") {
			t.Errorf("internal header leaked to req.rawHeaders: %s", e.RawHeaders[i])
		}
		if name == "x-forwarded-for" && e.RawHeaders[i+1] != "203.0.113.7" {
			t.Errorf("rawHeaders X-Forwarded-For %q", e.RawHeaders[i+1])
		}
	}
	if count["x-forwarded-for"] != 1 || count["x-forwarded-proto"] != 1 || count["x-multi"] != 2 || count["cookie"] != 2 {
		t.Errorf("rawHeaders counts %v: want one X-Forwarded-For and -Proto, the client's repeated headers kept", count)
	}
	if got := fmt.Sprint(e.Distinct["x-forwarded-for"], e.Distinct["x-multi"], e.Distinct["x-ferry-scheme"]); got != "[203.0.113.7] [one two] []" {
		t.Errorf("headersDistinct x-forwarded-for, x-multi, x-ferry-scheme: %s", got)
	}

	// The next request on the same connection comes from another client.
	e = c.nodeEcho("GET", "/echo", []string{"X-Ferry-Client-Addr: [2001:db8::1]:4321", "X-Ferry-Scheme: http", "Host: [2001:db8::2]"}, nil)
	if nodeStr(e.RemoteAddr) != "2001:db8::1" || e.RemotePort == nil || *e.RemotePort != 4321 || nodeStr(e.RemoteFamily) != "IPv6" {
		t.Errorf("IPv6 client: %s port %v family %s", nodeStr(e.RemoteAddr), e.RemotePort, nodeStr(e.RemoteFamily))
	}
	if e.Encrypted || e.URLScheme != "http" || e.Headers["x-forwarded-for"] != "2001:db8::1" {
		t.Errorf("http client: encrypted %v url_scheme %q xff %q", e.Encrypted, e.URLScheme, e.Headers["x-forwarded-for"])
	}
	if e.ContentLength != nil || e.ContentType != nil || e.BodyLen != 0 {
		t.Errorf("GET without body: content-length %v content-type %v body %d", e.ContentLength, e.ContentType, e.BodyLen)
	}
	if e.Path != "/echo" || e.QueryString != "" {
		t.Errorf("path %q query %q", e.Path, e.QueryString)
	}

	// HTTP/1.0, whose headers Node builds only when the app asks.
	c = l.dial()
	c.c.SetDeadline(time.Now().Add(wait))
	if _, err := io.WriteString(c.c, "GET /echo?v=10 HTTP/1.0\r\nX-Forwarded-For: 6.6.6.6\r\nX-Ferry-Client-Addr: 192.0.2.10:1010\r\nX-Ferry-Scheme: https\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	resp := c.head("GET")
	data, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	e = nodeEchoed{}
	if err != nil || json.Unmarshal(data, &e) != nil {
		t.Fatalf("HTTP/1.0: %q %v", data, err)
	}
	if e.HTTPVersion != "1.0" || nodeStr(e.RemoteAddr) != "192.0.2.10" || e.Headers["x-forwarded-for"] != "192.0.2.10" ||
		e.Headers["x-ferry-client-addr"] != "" || fmt.Sprint(e.RawHeaders) != "[X-Forwarded-For 192.0.2.10 X-Forwarded-Proto https]" ||
		fmt.Sprint(e.Distinct) != "map[x-forwarded-for:[192.0.2.10] x-forwarded-proto:[https]]" {
		t.Errorf("HTTP/1.0: version %s remote %s headers %v raw %q distinct %v", e.HTTPVersion, nodeStr(e.RemoteAddr), e.Headers, e.RawHeaders, e.Distinct)
	}
}

func TestNodeBodies(t *testing.T) {
	l := nodeReady(t, nodeFixture("echo"))
	c := l.dial()

	small := []byte("name=ferry&lang=go\x00\xff")
	e := c.nodeEcho("POST", "/echo", []string{"Content-Type: application/x-www-form-urlencoded"}, small)
	if e.Body == nil || *e.Body != "name=ferry&lang=go\x00\u00ff" || e.BodySHA256 != sum(small) {
		t.Errorf("small body: got %q sha %s", nodeStr(e.Body), e.BodySHA256)
	}

	big := payload(8 << 20)
	for _, path := range []string{"/upload", "/echo"} {
		resp, data := c.do("POST", path, nil, big)
		if resp.StatusCode != 200 {
			t.Fatalf("POST %s: %d %q", path, resp.StatusCode, data)
		}
		var got struct {
			Len     int     `json:"len"`
			SHA     string  `json:"sha256"`
			BodyLen int     `json:"body_len"`
			BodySHA string  `json:"body_sha256"`
			Body    *string `json:"body"`
		}
		if err := json.Unmarshal([]byte(data), &got); err != nil {
			t.Fatal(err)
		}
		n, sha := got.Len, got.SHA
		if path == "/echo" {
			n, sha = got.BodyLen, got.BodySHA
			if got.Body != nil {
				t.Errorf("/echo returned an 8 MiB body inline")
			}
		}
		if n != len(big) || sha != sum(big) {
			t.Errorf("POST %s: %d bytes sha %s, want %d sha %s", path, n, sha, len(big), sum(big))
		}
	}

	// Bodies the app does not read are discarded, small and large.
	for _, n := range []int{100, 3 << 20} {
		resp, body := c.do("POST", "/", nil, payload(n))
		if resp.StatusCode != 200 || body != "hello world" {
			t.Fatalf("unread %d-byte body: %d %q", n, resp.StatusCode, body)
		}
		if body := c.get("/pid", 200); body != strconv.Itoa(l.cmd.Process.Pid) {
			t.Fatalf("after an unread %d-byte body: %q", n, body)
		}
	}
}

func TestNodeStreaming(t *testing.T) {
	l := nodeReady(t, nodeFixture("echo"))
	c := l.dial()
	// The app waits a minute after the first chunk: seeing it proves that
	// nothing waits for the whole body.
	c.send("GET", "/stream?n=2&delay=60", nil, nil)
	resp := c.head("GET")
	if len(resp.TransferEncoding) != 1 || resp.TransferEncoding[0] != "chunked" {
		t.Errorf("Transfer-Encoding %v, want chunked", resp.TransferEncoding)
	}
	first := make(chan string, 1)
	go func() {
		b := make([]byte, len("chunk 0\n"))
		n, err := io.ReadFull(resp.Body, b)
		if err != nil {
			first <- "error: " + err.Error()
			return
		}
		first <- string(b[:n])
	}()
	select {
	case got := <-first:
		if got != "chunk 0\n" {
			t.Errorf("first chunk %q", got)
		}
	case <-time.After(wait):
		t.Fatal("the first chunk did not arrive while the app was still running")
	}
	// The whole of a short stream, on a second connection.
	if body := l.dial().get("/stream?n=3&delay=0.01", 200); body != "chunk 0\nchunk 1\nchunk 2\n" {
		t.Errorf("/stream: %q", body)
	}
}

func TestNodeResponses(t *testing.T) {
	l := nodeReady(t, nodeFixture("echo"))
	c := l.dial()

	resp, body := c.do("GET", "/cookies", nil, nil)
	if got := resp.Header["Set-Cookie"]; len(got) != 2 || got[0] != "a=1; Path=/" || got[1] != "b=2; Path=/" || body != "cookies set" {
		t.Errorf("Set-Cookie %q, body %q", got, body)
	}

	resp, body = c.do("GET", "/error", nil, nil)
	if resp.StatusCode != 500 || !strings.Contains(body, "boom from app") || resp.Close {
		t.Errorf("/error: %d %q close=%v, want a kept-alive 500", resp.StatusCode, body, resp.Close)
	}
	if body := c.get("/", 200); body != "hello world" {
		t.Errorf("after /error: %q", body)
	}

	n := 1<<20 + 12345
	resp, body = c.do("GET", "/big?n="+strconv.Itoa(n), nil, nil)
	if len(body) != n || strings.Trim(body, "x") != "" || resp.ContentLength != -1 {
		t.Errorf("/big: %d bytes (ContentLength %d), want %d x's, chunked", len(body), resp.ContentLength, n)
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

	if body := c.get("/no/such/page", 404); body != "not found: /no/such/page" {
		t.Errorf("404 body %q", body)
	}

	resp, body = c.do("HEAD", "/", nil, nil)
	if resp.StatusCode != 200 || body != "" || resp.ContentLength != 11 {
		t.Errorf("HEAD /: %d %q ContentLength %d", resp.StatusCode, body, resp.ContentLength)
	}
	if body := c.get("/", 200); body != "hello world" {
		t.Errorf("after HEAD: %q", body)
	}

	c.get("/print", 200)
	if code := l.stop(); code != 0 {
		t.Errorf("exit code %d after the lifeline closed", code)
	}
	out := l.out.String()
	for _, want := range []string{"hello stdout from app", "hello stderr from app", "Error: boom from app"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

// Many slow requests at once, each on its own connection, as the core sends
// them to a process that reported concurrency 0.
func TestNodeConcurrency(t *testing.T) {
	l := nodeReady(t, nodeFixture("echo"))
	const n = 40
	conns := make([]*client, n)
	for i := range conns {
		conns[i] = l.dial()
	}
	start := time.Now()
	for _, c := range conns {
		c.send("GET", "/sleep?s=1", nil, nil)
	}
	pid := strconv.Itoa(l.cmd.Process.Pid)
	for i, c := range conns {
		resp := c.head("GET")
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != 200 || string(body) != pid {
			t.Fatalf("request %d: %d %q %v", i, resp.StatusCode, body, err)
		}
	}
	// One at a time would take n seconds.
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("%d one-second requests took %v: not served concurrently", n, d)
	}
}

// ------------------------------------------------------------ WebSocket ---

// nodeWSFrame is one masked client frame.
func nodeWSFrame(fin bool, opcode byte, payload []byte) []byte {
	var b bytes.Buffer
	first := opcode
	if fin {
		first |= 0x80
	}
	b.WriteByte(first)
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
	var mask [4]byte
	rand.Read(mask[:])
	b.Write(mask[:])
	for i, x := range payload {
		b.WriteByte(x ^ mask[i&3])
	}
	return b.Bytes()
}

// nodeWSRead reads one server frame, which must not be masked.
func (c *client) nodeWSRead() (fin bool, opcode byte, payload []byte) {
	c.tb.Helper()
	c.c.SetDeadline(time.Now().Add(wait))
	var h [2]byte
	if _, err := io.ReadFull(c.br, h[:]); err != nil {
		c.tb.Fatalf("read frame: %v", err)
	}
	if h[1]&0x80 != 0 {
		c.tb.Fatalf("server frame is masked")
	}
	n := uint64(h[1] & 0x7f)
	switch n {
	case 126:
		var x uint16
		binary.Read(c.br, binary.BigEndian, &x)
		n = uint64(x)
	case 127:
		binary.Read(c.br, binary.BigEndian, &n)
	}
	payload = make([]byte, n)
	if _, err := io.ReadFull(c.br, payload); err != nil {
		c.tb.Fatalf("read frame payload: %v", err)
	}
	return h[0]&0x80 != 0, h[0] & 0x0f, payload
}

func TestNodeWebSocket(t *testing.T) {
	l := nodeReady(t, nodeFixture("echo"))
	c := l.dial()
	key := "dGhlIHNhbXBsZSBub25jZQ=="
	c.send("GET", "/ws", []string{
		"Upgrade: websocket",
		"Connection: Upgrade",
		"Sec-WebSocket-Key: " + key,
		"Sec-WebSocket-Version: 13",
		"X-Ferry-Client-Addr: 198.51.100.9:5555",
		"X-Ferry-Scheme: https",
	}, nil)
	resp := c.head("GET")
	h := sha1.Sum([]byte(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
	if resp.StatusCode != 101 || resp.Header.Get("Sec-WebSocket-Accept") != base64.StdEncoding.EncodeToString(h[:]) ||
		!strings.EqualFold(resp.Header.Get("Upgrade"), "websocket") {
		t.Fatalf("upgrade answer %d %v", resp.StatusCode, resp.Header)
	}
	if got := resp.Header.Get("X-Remote-Addr"); got != "198.51.100.9" {
		t.Errorf("the upgrade handler saw remoteAddress %q, want the client's", got)
	}

	write := func(frames ...[]byte) {
		t.Helper()
		c.c.SetDeadline(time.Now().Add(wait))
		if _, err := c.c.Write(bytes.Join(frames, nil)); err != nil {
			t.Fatal(err)
		}
	}
	expect := func(wantOp byte, want []byte) {
		t.Helper()
		fin, op, got := c.nodeWSRead()
		if !fin || op != wantOp || !bytes.Equal(got, want) {
			t.Fatalf("frame fin=%v op=%d %d bytes %.40q, want op %d %d bytes %.40q", fin, op, len(got), got, wantOp, len(want), want)
		}
	}

	write(nodeWSFrame(true, 1, []byte("hello")))
	expect(1, []byte("hello"))
	medium := payload(300)
	large := payload(70000)
	write(nodeWSFrame(true, 2, medium), nodeWSFrame(true, 2, large)) // two frames in one write
	expect(2, medium)
	expect(2, large)
	write(nodeWSFrame(false, 1, []byte("frag")), nodeWSFrame(true, 9, []byte("ping!")), nodeWSFrame(true, 0, []byte("mented")))
	expect(10, []byte("ping!")) // a control frame between fragments
	expect(1, []byte("fragmented"))
	// One frame a byte at a time.
	for _, b := range nodeWSFrame(true, 1, []byte("slowly")) {
		write([]byte{b})
	}
	expect(1, []byte("slowly"))

	write(nodeWSFrame(true, 8, []byte{0x03, 0xe8})) // close, 1000
	expect(8, []byte{0x03, 0xe8})
	c.c.SetDeadline(time.Now().Add(wait))
	if _, err := c.br.ReadByte(); err != io.EOF {
		t.Errorf("after the close handshake: %v, want EOF", err)
	}

	// An upgrade the app refuses, and plain requests still work.
	c2 := l.dial()
	c2.send("GET", "/not-ws", []string{"Upgrade: websocket", "Connection: Upgrade", "Sec-WebSocket-Key: " + key, "Sec-WebSocket-Version: 13"}, nil)
	if resp := c2.head("GET"); resp.StatusCode != 400 {
		t.Errorf("refused upgrade: %d", resp.StatusCode)
	}
	l.dial().get("/", 200)
}

// ---------------------------------------------------------------- ESM ---

func TestNodeESM(t *testing.T) {
	for _, startup := range []string{"server.js", ""} { // as the core resolves it, and unresolved
		t.Run("FERRY_STARTUP_FILE="+startup, func(t *testing.T) {
			l := nodeReady(t, nodeFixture("esm"), "FERRY_STARTUP_FILE="+startup)
			c := l.dial()
			if body := c.get("/", 200); body != "hello from esm" {
				t.Errorf("GET / = %q", body)
			}
			if body := c.get("/pid", 200); body != strconv.Itoa(l.cmd.Process.Pid) {
				t.Errorf("GET /pid = %q", body)
			}
		})
	}
}

// -------------------------------------------------------------- Express ---

var nodeExpressInstall struct {
	once sync.Once
	err  error
	out  []byte
}

// nodeExpressDir returns the Express fixture with its dependencies
// installed (npm install, once, when node_modules is missing), or skips.
func nodeExpressDir(t *testing.T) string {
	t.Helper()
	dir := nodeFixture("express")
	if _, err := os.Stat(nodeBin); err != nil {
		t.Skipf("skipping: the node loader tests need %s: %v", nodeBin, err)
	}
	nodeExpressInstall.once.Do(func() {
		if _, err := os.Stat(filepath.Join(dir, "node_modules", "express", "package.json")); err == nil {
			return
		}
		npm, err := exec.LookPath("npm")
		if err != nil {
			nodeExpressInstall.err = err
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, npm, "install", "--no-audit", "--no-fund")
		cmd.Dir = dir
		nodeExpressInstall.out, nodeExpressInstall.err = cmd.CombinedOutput()
	})
	if err := nodeExpressInstall.err; err != nil {
		t.Skipf("skipping: cannot install the Express fixture's dependencies (npm install in %s): %v\n%s", dir, err, nodeExpressInstall.out)
	}
	return dir
}

func TestNodeExpress(t *testing.T) {
	dir := nodeExpressDir(t)
	l := nodeReady(t, dir)
	c := l.dial()

	if body := c.get("/", 200); body != "hello from express" {
		t.Errorf("GET / = %q", body)
	}
	if body := c.get("/pid", 200); body != strconv.Itoa(l.cmd.Process.Pid) {
		t.Errorf("GET /pid = %q", body)
	}

	resp, body := c.do("POST", "/json", []string{"Content-Type: application/json"}, []byte(`{"name":"ferry","n":[1,2,3],"nested":{"ok":true}}`))
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		t.Fatalf("POST /json: %d %v %q", resp.StatusCode, resp.Header, body)
	}
	var got struct {
		Received map[string]any `json:"received"`
	}
	if err := json.Unmarshal([]byte(body), &got); err != nil || got.Received["name"] != "ferry" || fmt.Sprint(got.Received["n"]) != "[1 2 3]" {
		t.Errorf("POST /json: %q (%v)", body, err)
	}

	c.send("GET", "/stream", nil, nil)
	resp = c.head("GET")
	if len(resp.TransferEncoding) != 1 || resp.TransferEncoding[0] != "chunked" {
		t.Errorf("/stream Transfer-Encoding %v", resp.TransferEncoding)
	}
	data, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || string(data) != "chunk 0\nchunk 1\nchunk 2\n" {
		t.Errorf("/stream: %q %v", data, err)
	}

	resp, body = c.do("GET", "/error", nil, nil)
	if resp.StatusCode != 500 {
		t.Errorf("/error: %d %q, want 500", resp.StatusCode, body)
	}
	if body := c.get("/", 200); body != "hello from express" {
		t.Errorf("after /error: %q", body)
	}

	// What Express makes of the client, without 'trust proxy'.
	resp, body = c.do("GET", "/whoami", []string{"X-Ferry-Client-Addr: 203.0.113.50:40000", "X-Ferry-Scheme: https", "X-Forwarded-For: 6.6.6.6", "Host: shop.example"}, nil)
	var who struct {
		IP       string `json:"ip"`
		Protocol string `json:"protocol"`
		Secure   bool   `json:"secure"`
		Hostname string `json:"hostname"`
	}
	if err := json.Unmarshal([]byte(body), &who); err != nil || resp.StatusCode != 200 {
		t.Fatalf("/whoami: %d %q %v", resp.StatusCode, body, err)
	}
	if who.IP != "203.0.113.50" || who.Protocol != "https" || !who.Secure || who.Hostname != "shop.example" {
		t.Errorf("/whoami %+v, want the client's address and scheme", who)
	}
}

// -------------------------------------------------------------- servers ---

// Only the first server becomes Ferry's; the app sees its listen() succeed
// as usual, and later servers listen where they asked.
func TestNodeFirstServerOnly(t *testing.T) {
	dir := nodeApp(t, map[string]string{"app.js": `
const http = require('http');
const state = { callback: false, listening: false };
const second = http.createServer((req, res) => res.end('second'));
const first = http.createServer((req, res) => {
  const send = () => {
    res.setHeader('Content-Type', 'application/json');
    res.end(JSON.stringify({ ...state, address: first.address(), second: second.address().port,
      keepAliveTimeout: first.keepAliveTimeout }));
  };
  if (second.listening) send(); else second.once('listening', send);
});
first.on('listening', () => { state.listening = true; });
first.listen({ port: 8080, host: 'localhost', backlog: 100 }, () => {
  state.callback = true;
  second.listen(0, '127.0.0.1');
});
first.keepAliveTimeout = 65000;
`})
	l := nodeReady(t, dir)
	var st struct {
		Callback         bool   `json:"callback"`
		Listening        bool   `json:"listening"`
		Address          string `json:"address"`
		Second           int    `json:"second"`
		KeepAliveTimeout int    `json:"keepAliveTimeout"`
	}
	body := l.dial().get("/", 200)
	if err := json.Unmarshal([]byte(body), &st); err != nil {
		t.Fatalf("%q: %v", body, err)
	}
	if !st.Callback || !st.Listening || st.Address != l.sock || st.Second == 0 || st.KeepAliveTimeout != 0 {
		t.Errorf("state %+v: want callback and 'listening', address %s, a second port, keepAliveTimeout 0", st, l.sock)
	}
	resp, err := http.Get("http://127.0.0.1:" + strconv.Itoa(st.Second) + "/")
	if err != nil {
		t.Fatal(err)
	}
	data, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(data) != "second" {
		t.Errorf("second server: %q", data)
	}
}

// -------------------------------------------------------- process life ---

// The lifeline before the app listens (after, it is TestLoaderContract).
func TestNodeLifelineBeforeListening(t *testing.T) {
	// No handshake to wait for: start the process by hand.
	l := nodeStartNoHandshake(t, nodeFixture("nolisten"))
	l.lifeline.Close()
	if code := l.exitCode(); code != 0 {
		t.Errorf("exit code %d, want 0; output:\n%s", code, l.out)
	}
}

// nodeStartNoHandshake starts node.cjs like startKind, for an app that will
// not report; the returned loader has no handshake.
func nodeStartNoHandshake(t *testing.T, appDir string) *loader {
	t.Helper()
	if _, err := os.Stat(nodeBin); err != nil {
		t.Skipf("skipping: the node loader tests need %s: %v", nodeBin, err)
	}
	root, err := filepath.Abs(appDir)
	if err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp("", "fl")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	script, err := Write(dir, "node.cjs")
	if err != nil {
		t.Fatal(err)
	}
	statusR, statusW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	lifeR, lifeW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	l := &loader{tb: t, sock: filepath.Join(dir, "sock"), lifeline: lifeW, out: &syncBuffer{}, done: make(chan struct{})}
	cmd := exec.Command(nodeBin, script)
	cmd.Dir = root
	cmd.Env = []string{"PATH=/usr/bin:/bin", "HOME=" + dir, "FERRY_APP_ROOT=" + root, "FERRY_STARTUP_FILE=app.js",
		"FERRY_SOCKET=" + l.sock, "FERRY_STATUS_FD=3", "FERRY_LIFELINE_FD=4", "NODE_ENV=test"}
	cmd.ExtraFiles = []*os.File{statusW, lifeR}
	cmd.Stdout, cmd.Stderr = l.out, l.out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	statusW.Close()
	lifeR.Close()
	t.Cleanup(func() { statusR.Close() })
	l.cmd = cmd
	go func() {
		cmd.Wait()
		close(l.done)
	}()
	t.Cleanup(func() {
		lifeW.Close()
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-l.done
	})
	return l
}

func TestNodeCrash(t *testing.T) {
	t.Run("exit mid-request", func(t *testing.T) {
		l := nodeReady(t, nodeFixture("echo"))
		c := l.dial()
		c.send("GET", "/crash", nil, nil)
		c.c.SetDeadline(time.Now().Add(wait))
		if _, err := http.ReadResponse(c.br, &http.Request{Method: "GET"}); err == nil {
			t.Errorf("a response from a process that exited")
		}
		if code := l.exitCode(); code != 1 {
			t.Errorf("exit code %d, want 1", code)
		}
	})
	t.Run("uncaught exception", func(t *testing.T) {
		l := nodeReady(t, nodeFixture("echo"))
		l.dial().get("/uncaught", 200)
		if code := l.exitCode(); code != 1 {
			t.Errorf("exit code %d, want 1", code)
		}
		out := l.out.String()
		for _, want := range []string{"Error: uncaught from app", "app.js:"} {
			if !strings.Contains(out, want) {
				t.Errorf("output lacks %q:\n%s", want, out)
			}
		}
	})
}

// ------------------------------------------------------------ benchmark ---

const nodeBenchRequest = "GET / HTTP/1.1\r\nHost: app.test\r\nUser-Agent: bench\r\nAccept: */*\r\n" +
	"X-Ferry-Client-Addr: 127.0.0.1:40000\r\nX-Ferry-Scheme: http\r\n\r\n"

// nodePlainServer is examples/hello-node's handler on a Unix socket, without
// the loader: the baseline.
const nodePlainServer = `
const http = require('http');
const body = 'Hello from Ferry!\n';
http.createServer((req, res) => {
  res.writeHead(200, { 'Content-Type': 'text/plain; charset=utf-8', 'Content-Length': Buffer.byteLength(body) });
  res.end(body);
}).listen(process.argv[1], () => console.log('ready'));
`

func nodeStartPlain(b *testing.B) string {
	b.Helper()
	if _, err := os.Stat(nodeBin); err != nil {
		b.Skipf("skipping: %s: %v", nodeBin, err)
	}
	dir, err := os.MkdirTemp("", "fl")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { os.RemoveAll(dir) })
	sock := filepath.Join(dir, "sock")
	cmd := exec.Command(nodeBin, "-e", nodePlainServer, sock)
	out, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	if line, err := bufio.NewReader(out).ReadString('\n'); err != nil || line != "ready\n" {
		b.Fatalf("plain node server: %q %v", line, err)
	}
	return sock
}

// nodeBench sends b.N requests over conns persistent connections at once.
func nodeBench(b *testing.B, sock string, conns int) {
	b.Helper()
	cs := make([]net.Conn, conns)
	for i := range cs {
		c, err := net.Dial("unix", sock)
		if err != nil {
			b.Fatal(err)
		}
		defer c.Close()
		cs[i] = c
	}
	req := []byte(nodeBenchRequest)
	var next atomic.Int64
	var wg sync.WaitGroup
	b.ResetTimer()
	for _, c := range cs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			br := bufio.NewReader(c)
			get := &http.Request{Method: "GET"}
			for next.Add(1) <= int64(b.N) {
				if _, err := c.Write(req); err != nil {
					b.Error(err)
					return
				}
				resp, err := http.ReadResponse(br, get)
				if err != nil {
					b.Error(err)
					return
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					b.Errorf("status %d", resp.StatusCode)
					return
				}
			}
		}()
	}
	wg.Wait()
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "req/s")
}

// BenchmarkNodeHello measures examples/hello-node through the loader, and
// the same handler in a plain Node http server as the baseline, over one
// and over eight persistent connections.
func BenchmarkNodeHello(b *testing.B) {
	for _, conns := range []int{1, 8} {
		b.Run(fmt.Sprintf("loader/conns=%d", conns), func(b *testing.B) {
			l := nodeReady(b, filepath.Join("..", "..", "examples", "hello-node"))
			nodeBench(b, l.sock, conns)
		})
		b.Run(fmt.Sprintf("plain/conns=%d", conns), func(b *testing.B) {
			nodeBench(b, nodeStartPlain(b), conns)
		})
	}
}
