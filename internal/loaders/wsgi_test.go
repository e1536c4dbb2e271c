//go:build unix

package loaders

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

func fixture(name string) string { return filepath.Join("..", "..", "testdata", "wsgi", name) }

// startLoader starts wsgi.py for the WSGI app in appDir.
func startLoader(tb testing.TB, appDir string, env ...string) *loader {
	tb.Helper()
	return startKind(tb, "wsgi", appDir, env...)
}

func TestHandshakeErrorNoApp(t *testing.T) {
	l := startLoader(t, fixture("noapp"))
	if l.hs.Status != "error" {
		t.Fatalf("handshake %q, want an error", l.rawHS)
	}
	if !strings.HasPrefix(l.hs.Summary, "AttributeError: ") || !strings.Contains(l.hs.Summary, "'application'") {
		t.Errorf("summary %q, want an AttributeError naming 'application'", l.hs.Summary)
	}
	if !strings.Contains(l.hs.Details, "application") {
		t.Errorf("details %q do not mention application", l.hs.Details)
	}
	if code := l.exitCode(); code != 1 {
		t.Errorf("exit code %d, want 1", code)
	}
}

func TestHandshakeErrorSyntax(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "passenger_wsgi.py"), []byte("x = 1\ndef application(:\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	l := startLoader(t, dir)
	if l.hs.Status != "error" || !strings.HasPrefix(l.hs.Summary, "SyntaxError: ") {
		t.Fatalf("handshake %q, want a SyntaxError", l.rawHS)
	}
	if !strings.Contains(l.hs.Details, "line 2") {
		t.Errorf("details do not locate the error:\n%s", l.hs.Details)
	}
	if code := l.exitCode(); code != 1 {
		t.Errorf("exit code %d, want 1", code)
	}
}

func TestEnviron(t *testing.T) {
	t.Run("root", func(t *testing.T) {
		l := startReady(t, fixture("echo"))
		c := l.dial()
		e := c.echo("PUT", "/echo/a%2Fb/%C3%A9%20%ff?x=%2F&y=caf%C3%A9&z", []string{
			"Host: example.test",
			"Content-Type: text/plain; charset=utf-8",
			"X-Ferry-Client-Addr: 203.0.113.7:51234",
			"X-Ferry-Scheme: http",
			"X-Multi: one",
			"X-Multi: two",
			"Cookie: c1=1",
			"Cookie: c2=2",
			"User-Agent: ferry-test",
		}, []byte("hello body"))
		checks := []struct{ what, got, want string }{
			{"method", e.Method, "PUT"},
			{"SCRIPT_NAME", e.ScriptName, ""},
			// %2F decodes to '/', non-ASCII bytes come through as latin-1.
			{"PATH_INFO", e.PathInfo, "/echo/a/b/\u00c3\u00a9 \u00ff"},
			{"QUERY_STRING", e.QueryString, "x=%2F&y=caf%C3%A9&z"},
			{"REMOTE_ADDR", e.RemoteAddr, "203.0.113.7"},
			{"REMOTE_PORT", e.RemotePort, "51234"},
			{"url_scheme", e.URLScheme, "http"},
			{"SERVER_NAME", e.ServerName, "example.test"},
			{"SERVER_PORT", e.ServerPort, "80"},
			{"SERVER_PROTOCOL", e.ServerProtocol, "HTTP/1.1"},
			{"HTTP_X_MULTI", e.Headers["HTTP_X_MULTI"], "one, two"},
			{"HTTP_COOKIE", e.Headers["HTTP_COOKIE"], "c1=1; c2=2"},
			{"HTTP_USER_AGENT", e.Headers["HTTP_USER_AGENT"], "ferry-test"},
			{"HTTP_HOST", e.Headers["HTTP_HOST"], "example.test"},
		}
		for _, ch := range checks {
			if ch.got != ch.want {
				t.Errorf("%s = %q, want %q", ch.what, ch.got, ch.want)
			}
		}
		if e.ContentType == nil || *e.ContentType != "text/plain; charset=utf-8" {
			t.Errorf("CONTENT_TYPE = %v", e.ContentType)
		}
		if e.ContentLength == nil || *e.ContentLength != "10" {
			t.Errorf("CONTENT_LENGTH = %v", e.ContentLength)
		}
		if e.Body == nil || *e.Body != "hello body" || e.BodyLen != 10 {
			t.Errorf("body = %v (%d bytes)", e.Body, e.BodyLen)
		}
		for k := range e.Headers {
			if strings.HasPrefix(k, "HTTP_X_FERRY") {
				t.Errorf("internal header leaked to the app as %s", k)
			}
			if k == "HTTP_CONTENT_TYPE" || k == "HTTP_CONTENT_LENGTH" {
				t.Errorf("%s should be %s", k, k[5:])
			}
		}
		if e.PID != l.cmd.Process.Pid {
			t.Errorf("pid %d, want %d", e.PID, l.cmd.Process.Pid)
		}

		// No body: no CONTENT_LENGTH, no CONTENT_TYPE.
		e = c.echo("GET", "/echo", []string{"X-Ferry-Client-Addr: [2001:db8::1]:4321", "X-Ferry-Scheme: https", "Host: [2001:db8::2]"}, nil)
		if e.ContentLength != nil || e.ContentType != nil {
			t.Errorf("GET without body: CONTENT_LENGTH %v, CONTENT_TYPE %v", e.ContentLength, e.ContentType)
		}
		if e.RemoteAddr != "2001:db8::1" || e.RemotePort != "4321" {
			t.Errorf("IPv6 client: REMOTE_ADDR %q REMOTE_PORT %q", e.RemoteAddr, e.RemotePort)
		}
		if e.URLScheme != "https" || e.ServerPort != "443" || e.ServerName != "[2001:db8::2]" {
			t.Errorf("https: url_scheme %q SERVER_NAME %q SERVER_PORT %q", e.URLScheme, e.ServerName, e.ServerPort)
		}

		// The full environ, as /env shows it.
		var env map[string]any
		if err := json.Unmarshal([]byte(c.get("/env", 200)), &env); err != nil {
			t.Fatal(err)
		}
		want := map[string]any{
			"wsgi.multithread": false, "wsgi.multiprocess": true, "wsgi.run_once": false,
			"wsgi.input_terminated": true, "wsgi.url_scheme": "http", "REQUEST_METHOD": "GET",
			"PATH_INFO": "/env", "QUERY_STRING": "", "SCRIPT_NAME": "", "SERVER_NAME": "app.test",
		}
		for k, v := range want {
			if env[k] != v {
				t.Errorf("environ[%q] = %#v, want %#v", k, env[k], v)
			}
		}
		if _, ok := env["HTTPS"]; ok {
			t.Errorf("HTTPS set on a plain http request")
		}
	})

	t.Run("base URI", func(t *testing.T) {
		l := startReady(t, fixture("echo"), "FERRY_BASE_URI=/my-app")
		c := l.dial()
		e := c.echo("GET", "/my-app/echo%2Fx?q=1", []string{"X-Ferry-Scheme: https", "Host: example.test:8443"}, nil)
		if e.ScriptName != "/my-app" || e.PathInfo != "/echo/x" || e.QueryString != "q=1" {
			t.Errorf("SCRIPT_NAME %q PATH_INFO %q QUERY_STRING %q", e.ScriptName, e.PathInfo, e.QueryString)
		}
		if e.URLScheme != "https" || e.ServerName != "example.test" || e.ServerPort != "8443" {
			t.Errorf("url_scheme %q SERVER_NAME %q SERVER_PORT %q", e.URLScheme, e.ServerName, e.ServerPort)
		}
		var env map[string]any
		if err := json.Unmarshal([]byte(c.get("/my-app/env", 200)), &env); err != nil {
			t.Fatal(err)
		}
		if env["HTTPS"] != nil || env["SCRIPT_NAME"] != "/my-app" {
			t.Errorf("HTTPS %v SCRIPT_NAME %v", env["HTTPS"], env["SCRIPT_NAME"])
		}
		if body := c.get("/my-app", 200); body != "hello world" {
			t.Errorf("GET /my-app (empty PATH_INFO) = %q", body)
		}
	})
}

func TestRequestBody(t *testing.T) {
	l := startReady(t, fixture("echo"))
	c := l.dial()

	small := []byte("name=ferry&lang=go\x00\xff")
	e := c.echo("POST", "/echo", []string{"Content-Type: application/x-www-form-urlencoded"}, small)
	if e.Body == nil || *e.Body != "name=ferry&lang=go\x00\u00ff" || e.BodySHA256 != sum(small) {
		t.Errorf("small body: got %v sha %s", e.Body, e.BodySHA256)
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
		if body := c.do2("POST", "/", payload(n)); body != "hello world" {
			t.Fatalf("unread %d-byte body: %q", n, body)
		}
		if body := c.get("/pid", 200); body != strconv.Itoa(l.cmd.Process.Pid) {
			t.Fatalf("after an unread %d-byte body: %q", n, body)
		}
	}
}

// do2 is a POST whose answer must be 200; it returns the body.
func (c *client) do2(method, target string, body []byte) string {
	c.tb.Helper()
	resp, data := c.do(method, target, nil, body)
	if resp.StatusCode != 200 {
		c.tb.Fatalf("%s %s: %d %q", method, target, resp.StatusCode, data)
	}
	return data
}

func TestReadline(t *testing.T) {
	l := startReady(t, fixture("echo"))
	c := l.dial()
	if got := c.do2("POST", "/readline", []byte("one\ntwo\n\nlast without newline")); got != "4" {
		t.Errorf("4 lines counted as %s", got)
	}
	if got := c.do2("POST", "/readline", []byte{}); got != "0" {
		t.Errorf("empty body counted as %s lines", got)
	}
	// Large enough to be streamed from the socket rather than buffered.
	var b bytes.Buffer
	for i := range 100000 {
		fmt.Fprintf(&b, "line %d\n", i)
	}
	b.WriteString(strings.Repeat("y", 200000)) // a long last line
	if got := c.do2("POST", "/readline", b.Bytes()); got != "100001" {
		t.Errorf("100001 lines counted as %s", got)
	}
}

func TestStreaming(t *testing.T) {
	l := startReady(t, fixture("echo"))
	c := l.dial()
	// The app sleeps a minute after the first chunk: seeing it proves the
	// loader does not wait for the app to finish.
	c.send("GET", "/stream?n=2&delay=60", nil, nil)
	resp := c.head("GET") // not closed: Close would wait for the whole body
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
}

func TestResponses(t *testing.T) {
	l := startReady(t, fixture("echo"))
	c := l.dial()

	resp, body := c.do("GET", "/cookies", nil, nil)
	if got := resp.Header["Set-Cookie"]; len(got) != 2 || got[0] != "a=1; Path=/" || got[1] != "b=2; Path=/" {
		t.Errorf("Set-Cookie %q", got)
	}

	resp, body = c.do("GET", "/write", nil, nil)
	if resp.StatusCode != 200 || body != "write 1\nwrite 2\n" {
		t.Errorf("/write: %d %q", resp.StatusCode, body)
	}

	resp, body = c.do("GET", "/exc_info", nil, nil)
	if resp.StatusCode != 500 || body != "handled" {
		t.Errorf("/exc_info: %d %q, want 500 handled", resp.StatusCode, body)
	}

	resp, body = c.do("GET", "/error", nil, nil)
	if resp.StatusCode != 500 || body == "" || resp.Close {
		t.Errorf("/error: %d %q close=%v, want a kept-alive 500 with a body", resp.StatusCode, body, resp.Close)
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

	// HEAD: headers but no body, and the connection stays in step.
	resp, body = c.do("HEAD", "/", nil, nil)
	if resp.StatusCode != 200 || body != "" || resp.ContentLength != 11 {
		t.Errorf("HEAD /: %d %q ContentLength %d", resp.StatusCode, body, resp.ContentLength)
	}
	resp, body = c.do("HEAD", "/big?n=300000", nil, nil)
	if resp.StatusCode != 200 || body != "" {
		t.Errorf("HEAD /big: %d %d bytes", resp.StatusCode, len(body))
	}
	if body := c.get("/", 200); body != "hello world" {
		t.Errorf("after HEAD: %q", body)
	}

	// close() is called on every iterable that has one.
	for range 3 {
		if body := c.get("/closing", 200); body != "closing body" {
			t.Errorf("/closing: %q", body)
		}
	}
	if got := c.get("/close-count", 200); got != "3" {
		t.Errorf("close() called %s times, want 3", got)
	}

	c.get("/print", 200)
	if code := l.stop(); code != 0 {
		t.Errorf("exit code %d after the lifeline closed", code)
	}
	out := l.out.String()
	for _, want := range []string{"hello stdout from app", "hello stderr from app", "RuntimeError: boom from app", "Traceback"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

// An app written for the occasion, for misbehaviours the echo fixture lacks.
const misbehaving = `
import time

def application(environ, start_response):
    path = environ["PATH_INFO"]
    if path == "/crlf":
        start_response("200 OK", [("X-Evil", "a\r\nSet-Cookie: pwned=1")])
        return [b"no"]
    if path == "/late-error":
        start_response("200 OK", [("Content-Type", "text/plain")])
        def gen():
            yield b"partial"
            raise RuntimeError("late failure")
        return gen()
    if path == "/short":
        start_response("200 OK", [("Content-Length", "100")])
        return iter([b"only ten.."])
    if path == "/long":
        start_response("200 OK", [("Content-Length", "5")])
        return [b"12345", b"6789"]
    if path == "/str-body":
        start_response("200 OK", [])
        return ["text is not bytes"]
    if path == "/bad-status":
        start_response("200", [])
        return [b"no reason phrase"]
    if path == "/no-start":
        return [b"forgot start_response"]
    if path == "/file":
        import io
        start_response("200 OK", [])
        return environ["wsgi.file_wrapper"](io.BytesIO(b"f" * 200000), 8192)
    if path == "/input":
        inp = environ["wsgi.input"]
        parts = [inp.read(3), inp.read1(2), inp.readline(), inp.readline(4)]
        parts += inp.readlines()
        parts.append(inp.read())
        parts.append(inp.read(10))
        return_body = b"|".join(parts)
        start_response("200 OK", [("Content-Length", str(len(return_body)))])
        return [return_body]
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok"]
`

func TestMisbehavingApp(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "passenger_wsgi.py"), []byte(misbehaving), 0o644); err != nil {
		t.Fatal(err)
	}
	l := startReady(t, dir)
	c := l.dial()

	for _, path := range []string{"/crlf", "/str-body", "/no-start", "/bad-status"} {
		resp, body := c.do("GET", path, nil, nil)
		if resp.StatusCode != 500 || resp.Header.Get("Set-Cookie") != "" || resp.Header.Get("X-Evil") != "" {
			t.Errorf("%s: %d %v %q, want a plain 500", path, resp.StatusCode, resp.Header, body)
		}
		c.get("/", 200)
	}

	_, body := c.do("GET", "/long", nil, nil)
	if body != "12345" {
		t.Errorf("/long: %q, want the body cut at its Content-Length", body)
	}
	c.get("/", 200)

	body = c.get("/file", 200)
	if len(body) != 200000 || strings.Trim(body, "f") != "" {
		t.Errorf("/file: %d bytes", len(body))
	}

	// Both the buffered and the streamed wsgi.input.
	for _, n := range []int{0, 100 << 10} {
		in := "abcdefghij\nklm\nnop\nqrs" + strings.Repeat("z", n)
		want := strings.Join([]string{"abc", "de", "fghij\n", "klm\n", "nop\n", "qrs" + strings.Repeat("z", n), "", ""}, "|")
		if got := c.do2("POST", "/input", []byte(in)); got != want {
			t.Errorf("wsgi.input (%d): got %.80q, want %.80q", n, got, want)
		}
	}

	// Failures once the head is out cannot become a 500: the connection is
	// closed instead, so the core sees a truncated response.
	for _, path := range []string{"/late-error", "/short"} {
		c2 := l.dial()
		c2.send("GET", path, nil, nil)
		resp := c2.head("GET")
		_, err := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 || err == nil {
			t.Errorf("%s: %d err %v, want a truncated 200", path, resp.StatusCode, err)
		}
		resp.Body.Close()
	}
	l.dial().get("/", 200)
}

// A second connection while the first one is idle must not wait for the
// first one to close.
func TestSecondConnection(t *testing.T) {
	l := startReady(t, fixture("echo"))
	a := l.dial()
	a.get("/", 200)
	b := l.dial()
	b.get("/", 200)
	b.get("/pid", 200)
	a.c.SetDeadline(time.Now().Add(wait))
	if _, err := a.br.ReadByte(); err != io.EOF {
		t.Errorf("abandoned idle connection: %v, want EOF", err)
	}
}

func TestWrite(t *testing.T) {
	dir := t.TempDir()
	path, err := Write(dir, "wsgi.py")
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o644 || path != filepath.Join(dir, "wsgi.py") {
		t.Errorf("%s mode %v", path, fi.Mode())
	}
	got, _ := os.ReadFile(path)
	if !bytes.Equal(got, wsgiPy) || len(got) == 0 {
		t.Errorf("written loader differs from the embedded one")
	}
	// The Python loaders import the module they share from beside them.
	for _, name := range []string{"wsgi.py", "asgi.py"} {
		if _, err := Write(dir, name); err != nil {
			t.Fatal(err)
		}
		fi, err := os.Stat(filepath.Join(dir, "_ferry_common.py"))
		if err != nil || fi.Mode().Perm() != 0o644 {
			t.Errorf("%s: _ferry_common.py: %v %v", name, fi, err)
		}
		got, _ := os.ReadFile(filepath.Join(dir, "_ferry_common.py"))
		if !bytes.Equal(got, ferryCommonPy) {
			t.Errorf("%s: written _ferry_common.py differs from the embedded one", name)
		}
	}
	if _, err := Write(dir, "cobol.cob"); err == nil || !strings.Contains(err.Error(), "cobol.cob") {
		t.Errorf("unknown loader: err %v", err)
	}
	if _, err := Write(filepath.Join(dir, "missing"), "wsgi.py"); err == nil {
		t.Errorf("missing dir: no error")
	}
}

func BenchmarkWSGIHello(b *testing.B) {
	l := startReady(b, fixture("echo"))
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
