//go:build unix

package loaders

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"crypto/sha1"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
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
	"syscall"
	"testing"
	"time"
)

func rackFixture(name string) string { return filepath.Join("..", "..", "testdata", "rack", name) }

// rackStart starts rack.rb for the Rack app in appDir.
func rackStart(tb testing.TB, appDir string, env ...string) *loader {
	tb.Helper()
	return startKind(tb, "rack", appDir, env...)
}

// rackReady starts rack.rb and insists that it is ready.
func rackReady(tb testing.TB, appDir string, env ...string) *loader {
	tb.Helper()
	l := rackStart(tb, appDir, env...)
	if l.hs.Status != "ready" {
		tb.Fatalf("handshake %q, want ready; output:\n%s", l.rawHS, l.out)
	}
	return l
}

// rackNeedSinatra skips unless Debian's ruby-sinatra is installed.
func rackNeedSinatra(t *testing.T) {
	t.Helper()
	if _, err := os.Stat("/usr/bin/ruby"); err != nil {
		t.Skip("skipping: the rack loader tests need /usr/bin/ruby")
	}
	if err := exec.Command("/usr/bin/ruby", "-e", `require "sinatra/base"`).Run(); err != nil {
		t.Skipf("skipping: Sinatra is not installed (apt-get install ruby-sinatra): %v", err)
	}
}

// rackApp writes a config.ru (and other files, name → content) to a temp dir.
func rackApp(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestRackHandshakeErrorGemfileMissing(t *testing.T) {
	l := rackStart(t, rackFixture("gemfile-missing"))
	if l.hs.Status != "error" {
		t.Fatalf("handshake %q, want an error; output:\n%s", l.rawHS, l.out)
	}
	if !strings.HasPrefix(l.hs.Summary, "Bundler::GemNotFound: ") || !strings.Contains(l.hs.Summary, "frobnicate-nonexistent") {
		t.Errorf("summary %q, want a Bundler::GemNotFound naming the gem", l.hs.Summary)
	}
	root, _ := filepath.Abs(rackFixture("gemfile-missing"))
	for _, want := range []string{"run `bundle install` in " + root, "frobnicate-nonexistent"} {
		if !strings.Contains(l.hs.Details, want) {
			t.Errorf("details lack %q:\n%s", want, l.hs.Details)
		}
	}
	if code := l.exitCode(); code != 1 {
		t.Errorf("exit code %d, want 1", code)
	}
	if _, err := os.Stat(filepath.Join(root, "Gemfile.lock")); err == nil {
		t.Errorf("Bundler wrote a Gemfile.lock into the fixture")
	}
}

func TestRackHandshakeErrors(t *testing.T) {
	cases := []struct {
		name, configRu, summary, details string
	}{
		{"syntax", "x = 1\nrun lambda { |env| [200, {}, [x]\n", "SyntaxError: ", "config.ru:"},
		{"load", "require \"frobnicate_nonexistent\"\nrun nil\n", "LoadError: ", "frobnicate_nonexistent"},
		{"no run", "x = 1\n", "RuntimeError: ", "missing run or map statement"},
		{"exit", "exit 3\n", "SystemExit: exit", "config.ru:1"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			l := rackStart(t, rackApp(t, map[string]string{"config.ru": tc.configRu}))
			if l.hs.Status != "error" || !strings.HasPrefix(l.hs.Summary, tc.summary) {
				t.Fatalf("handshake %q, want an error %q…", l.rawHS, tc.summary)
			}
			if !strings.Contains(l.hs.Details, tc.details) {
				t.Errorf("details lack %q:\n%s", tc.details, l.hs.Details)
			}
			if code := l.exitCode(); code != 1 {
				t.Errorf("exit code %d, want 1", code)
			}
		})
	}
	t.Run("no startup file", func(t *testing.T) {
		l := rackStart(t, t.TempDir())
		if l.hs.Status != "error" || !strings.Contains(l.hs.Summary, "config.ru") {
			t.Fatalf("handshake %q, want an error naming config.ru", l.rawHS)
		}
	})
	t.Run("startup file", func(t *testing.T) {
		dir := rackApp(t, map[string]string{"app.ru": `run ->(e) { [200, {}, ["custom startup"]] }`})
		l := rackReady(t, dir, "FERRY_STARTUP_FILE=app.ru")
		if body := l.dial().get("/", 200); body != "custom startup" {
			t.Errorf("GET / = %q", body)
		}
	})
}

// With a Gemfile, Bundler is set up before anything else is loaded.
func TestRackBundler(t *testing.T) {
	if err := exec.Command("/usr/bin/ruby", "-e", `require "bundler"`).Run(); err != nil {
		t.Skipf("skipping: Bundler is not available: %v", err)
	}
	dir := rackApp(t, map[string]string{
		"Gemfile": "source \"https://rubygems.org\"\ngem \"rack\"\n",
		"config.ru": `
bundled = defined?(Bundler) && Bundler.respond_to?(:definition) && ENV["BUNDLE_GEMFILE"].to_s.end_with?("/Gemfile")
run ->(e) { [200, {"content-type" => "text/plain"}, ["bundled=#{bundled.inspect}"]] }
`,
	})
	l := rackStart(t, dir)
	if l.hs.Status != "ready" {
		t.Skipf("Bundler cannot resolve the local rack gem here: %s", l.hs.Summary)
	}
	if body := l.dial().get("/", 200); body != "bundled=true" {
		t.Errorf("GET / = %q, want bundled=true", body)
	}
}

// Pipelining and HTTP/1.0 (the rest of keep-alive is TestLoaderContract).
func TestRackPipeliningAndHTTP10(t *testing.T) {
	l := rackReady(t, rackFixture("echo"))
	c := l.dial()
	pid := c.get("/pid", 200)
	// Pipelined: two requests in one write.
	c.c.SetDeadline(time.Now().Add(wait))
	if _, err := c.c.Write([]byte("GET / HTTP/1.1\r\nHost: a\r\n\r\nGET /pid HTTP/1.1\r\nHost: a\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"hello world", pid} {
		resp := c.head("GET")
		b, _ := io.ReadAll(resp.Body)
		if string(b) != want {
			t.Errorf("pipelined: %q, want %q", b, want)
		}
	}

	// HTTP/1.0 without keep-alive: the connection closes after the answer.
	c = l.dial()
	c.c.Write([]byte("GET /pid HTTP/1.0\r\nHost: a\r\n\r\n"))
	c.c.SetDeadline(time.Now().Add(wait))
	all, err := io.ReadAll(c.c)
	if err != nil || !bytes.HasPrefix(all, []byte("HTTP/1.1 200 ")) || !bytes.HasSuffix(all, []byte(pid)) {
		t.Errorf("HTTP/1.0: %q, %v", all, err)
	}
}

func TestRackEnv(t *testing.T) {
	t.Run("root", func(t *testing.T) {
		l := rackReady(t, rackFixture("echo"))
		c := l.dial()
		for _, method := range []string{"GET", "PUT", "DELETE", "PATCH", "OPTIONS", "PROPFIND"} {
			e := c.echo(method, "/echo", nil, nil)
			if e.Method != method {
				t.Errorf("REQUEST_METHOD %q, want %q", e.Method, method)
			}
		}
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
			// Rack: PATH_INFO is the raw path, not percent-decoded.
			{"PATH_INFO", e.PathInfo, "/echo/a%2Fb/%C3%A9%20%ff"},
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

		// No body: no CONTENT_LENGTH, no CONTENT_TYPE; IPv6 and https.
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

		// Other X-Ferry-* headers never reach the app either.
		e = c.echo("GET", "/echo", []string{"X-Ferry-Other: x", "X-Ferrying: y"}, nil)
		if _, ok := e.Headers["HTTP_X_FERRY_OTHER"]; ok {
			t.Errorf("X-Ferry-Other reached the app")
		}
		if e.Headers["HTTP_X_FERRYING"] != "y" {
			t.Errorf("X-Ferrying: %q", e.Headers["HTTP_X_FERRYING"])
		}

		// The whole env, as /env shows it.
		var env map[string]any
		if err := json.Unmarshal([]byte(c.get("/env?a=1", 200)), &env); err != nil {
			t.Fatal(err)
		}
		want := map[string]any{
			"rack.multithread": false, "rack.multiprocess": true, "rack.run_once": false,
			"rack.hijack?": true, "rack.url_scheme": "http", "REQUEST_METHOD": "GET",
			"PATH_INFO": "/env", "QUERY_STRING": "a=1", "SCRIPT_NAME": "", "SERVER_NAME": "app.test",
			"SERVER_PORT": "80", "SERVER_PROTOCOL": "HTTP/1.1", "REQUEST_URI": "/env?a=1",
			"rack.input.class": "StringIO",
		}
		for k, v := range want {
			if env[k] != v {
				t.Errorf("env[%q] = %#v, want %#v", k, env[k], v)
			}
		}
		if v, ok := env["rack.version"].([]any); !ok || len(v) != 2 {
			t.Errorf("rack.version = %#v", env["rack.version"])
		}
		for _, k := range []string{"HTTPS", "REMOTE_ADDR", "CONTENT_LENGTH", "HTTP_X_FERRY_SCHEME"} {
			if _, ok := env[k]; ok {
				t.Errorf("%s set: %v", k, env[k])
			}
		}
		if err := json.Unmarshal([]byte(c.get("/env", 200)), &env); err != nil || env["QUERY_STRING"] != "" {
			t.Errorf("QUERY_STRING without a query: %#v, %v", env["QUERY_STRING"], err)
		}
		resp, body := c.do("GET", "/env", []string{"X-Ferry-Scheme: https"}, nil)
		if resp.StatusCode != 200 || json.Unmarshal([]byte(body), &env) != nil || env["HTTPS"] != "on" || env["rack.url_scheme"] != "https" {
			t.Errorf("https: HTTPS %v rack.url_scheme %v", env["HTTPS"], env["rack.url_scheme"])
		}
	})

	t.Run("base URI", func(t *testing.T) {
		l := rackReady(t, rackFixture("echo"), "FERRY_BASE_URI=/my-app/")
		c := l.dial()
		e := c.echo("GET", "/my-app/echo/x%2Fy?q=1", []string{"X-Ferry-Scheme: https", "Host: example.test:8443"}, nil)
		if e.ScriptName != "/my-app" || e.PathInfo != "/echo/x%2Fy" || e.QueryString != "q=1" {
			t.Errorf("SCRIPT_NAME %q PATH_INFO %q QUERY_STRING %q", e.ScriptName, e.PathInfo, e.QueryString)
		}
		if e.URLScheme != "https" || e.ServerName != "example.test" || e.ServerPort != "8443" {
			t.Errorf("url_scheme %q SERVER_NAME %q SERVER_PORT %q", e.URLScheme, e.ServerName, e.ServerPort)
		}
		// Not under the base URI at a '/' boundary: all of it is PATH_INFO.
		var env map[string]any
		resp, body := c.do("GET", "/my-appx/env", nil, nil)
		if resp.StatusCode != 404 || body != "not found: /my-appx/env" {
			t.Errorf("outside the base: %d %q, want PATH_INFO /my-appx/env", resp.StatusCode, body)
		}
		if err := json.Unmarshal([]byte(c.get("/my-app/env", 200)), &env); err != nil || env["SCRIPT_NAME"] != "/my-app" || env["PATH_INFO"] != "/env" {
			t.Errorf("/my-app/env: SCRIPT_NAME %v PATH_INFO %v (%v)", env["SCRIPT_NAME"], env["PATH_INFO"], err)
		}
		if body := c.get("/my-app", 200); body != "hello world" {
			t.Errorf("GET /my-app (empty PATH_INFO) = %q", body)
		}
	})
}

func TestRackRequestBody(t *testing.T) {
	l := rackReady(t, rackFixture("echo"))
	c := l.dial()

	small := []byte("name=ferry&lang=ruby\x00\xff")
	e := c.echo("POST", "/echo", []string{"Content-Type: application/x-www-form-urlencoded"}, small)
	if e.Body == nil || *e.Body != "name=ferry&lang=ruby\x00\u00ff" || e.BodySHA256 != sum(small) {
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
			Input   string  `json:"input"`
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
		} else if got.Input != "Tempfile" {
			t.Errorf("rack.input for 8 MiB is a %s, want a Tempfile", got.Input)
		}
		if n != len(big) || sha != sum(big) {
			t.Errorf("POST %s: %d bytes sha %s, want %d sha %s", path, n, sha, len(big), sum(big))
		}
	}

	// Around the in-memory limit.
	for _, n := range []int{1, 64<<10 - 1, 64 << 10, 64<<10 + 1, 300 << 10} {
		p := payload(n)
		if got := rackPost(c, "/rewind", p); got != fmt.Sprintf("%d %d true", n, n) {
			t.Errorf("rewind of %d bytes: %q", n, got)
		}
		e := c.echo("POST", "/echo", nil, p)
		if e.BodyLen != n || e.BodySHA256 != sum(p) {
			t.Errorf("%d bytes: got %d sha %s", n, e.BodyLen, e.BodySHA256)
		}
	}

	var b bytes.Buffer
	for i := range 100000 {
		fmt.Fprintf(&b, "line %d\n", i)
	}
	b.WriteString("last without newline")
	if got := rackPost(c, "/readline", b.Bytes()); got != "100001" {
		t.Errorf("100001 lines counted as %s", got)
	}

	// Bodies the app does not read are discarded, small and large.
	for _, n := range []int{100, 3 << 20} {
		if body := rackPost(c, "/", payload(n)); body != "hello world" {
			t.Fatalf("unread %d-byte body: %q", n, body)
		}
		if body := c.get("/pid", 200); body != strconv.Itoa(l.cmd.Process.Pid) {
			t.Fatalf("after an unread %d-byte body: %q", n, body)
		}
	}

	// Malformed requests: 400/501 and the connection closes.
	for _, req := range []string{
		"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: x\r\n\r\n",
		"POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
		"GET / HTTP/1.1\r\nno colon here\r\n\r\n",
		"GET /\r\n\r\n",
	} {
		c := l.dial()
		c.c.Write([]byte(req))
		c.c.SetDeadline(time.Now().Add(wait))
		all, _ := io.ReadAll(c.c)
		if !bytes.HasPrefix(all, []byte("HTTP/1.1 400 ")) && !bytes.HasPrefix(all, []byte("HTTP/1.1 501 ")) {
			t.Errorf("%q: answer %q, want 400 or 501", req, all)
		}
	}
	l.dial().get("/", 200)
}

// rackPost is a POST whose answer must be 200; it returns the body.
func rackPost(c *client, target string, body []byte) string {
	c.tb.Helper()
	resp, data := c.do("POST", target, nil, body)
	if resp.StatusCode != 200 {
		c.tb.Fatalf("POST %s: %d %q", target, resp.StatusCode, data)
	}
	return data
}

// rackFirstChunk reads the head of a streamed answer and then its first
// len(want) body bytes, failing if they do not come while the app still runs.
func rackFirstChunk(t *testing.T, c *client, want string) *http.Response {
	t.Helper()
	resp := c.head("GET") // not closed: Close would wait for the whole body
	if len(resp.TransferEncoding) != 1 || resp.TransferEncoding[0] != "chunked" {
		t.Errorf("Transfer-Encoding %v, want chunked", resp.TransferEncoding)
	}
	first := make(chan string, 1)
	go func() {
		b := make([]byte, len(want))
		n, err := io.ReadFull(resp.Body, b)
		if err != nil {
			first <- "error: " + err.Error()
			return
		}
		first <- string(b[:n])
	}()
	select {
	case got := <-first:
		if got != want {
			t.Errorf("first chunk %q, want %q", got, want)
		}
	case <-time.After(wait):
		t.Fatal("the first chunk did not arrive while the app was still running")
	}
	return resp
}

func TestRackStreaming(t *testing.T) {
	l := rackReady(t, rackFixture("echo"))
	c := l.dial()
	c.send("GET", "/stream?n=3", nil, nil)
	resp := c.head("GET")
	body, err := io.ReadAll(resp.Body)
	if err != nil || string(body) != "chunk 0\nchunk 1\nchunk 2\n" {
		t.Errorf("/stream: %q, %v", body, err)
	}

	// The app sleeps a minute after the first chunk: seeing it proves the
	// loader does not wait for the app to finish.
	c.send("GET", "/stream?n=2&delay=60", nil, nil)
	rackFirstChunk(t, c, "chunk 0\n")
}

func TestRackResponses(t *testing.T) {
	l := rackReady(t, rackFixture("echo"))
	c := l.dial()

	for _, path := range []string{"/cookies", "/cookies-array"} {
		resp, _ := c.do("GET", path, nil, nil)
		if got := resp.Header["Set-Cookie"]; len(got) != 2 || got[0] != "a=1; Path=/" || got[1] != "b=2; Path=/" {
			t.Errorf("%s: Set-Cookie %q", path, got)
		}
	}

	resp, body := c.do("GET", "/error", nil, nil)
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
	// An each body that yields nothing: Content-Length 0, not chunked.
	resp, body = c.do("GET", "/big?n=0", nil, nil)
	if body != "" || resp.ContentLength != 0 {
		t.Errorf("/big?n=0: %q ContentLength %d", body, resp.ContentLength)
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
		if wantReason := http.StatusText(code); !strings.HasSuffix(resp.Status, wantReason) {
			t.Errorf("/status/%d: status line %q, want reason %q", code, resp.Status, wantReason)
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

	// close() is called on every body that has one.
	for range 3 {
		if body := c.get("/closing", 200); body != "closing body" {
			t.Errorf("/closing: %q", body)
		}
	}
	if got := c.get("/close-count", 200); got != "3" {
		t.Errorf("close() called %s times, want 3", got)
	}

	// to_path: the file, with its length.
	resp, body = c.do("GET", "/file", nil, nil)
	if body != "static hello rack\n" || resp.ContentLength != int64(len(body)) {
		t.Errorf("/file: %q ContentLength %d", body, resp.ContentLength)
	}

	// A Rack 3 streaming body: call(stream), chunked.
	resp, body = c.do("GET", "/stream-call?n=3", nil, nil)
	if body != "call 0\ncall 1\ncall 2\n" || len(resp.TransferEncoding) == 0 {
		t.Errorf("/stream-call: %q TE %v", body, resp.TransferEncoding)
	}
	c.get("/", 200)

	// The response header rack.hijack: the app writes the body itself.
	c2 := l.dial()
	c2.send("GET", "/partial-hijack", nil, nil)
	resp = c2.head("GET")
	data, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || string(data) != "partial hijack\n" || resp.Header.Get("Rack.hijack") != "" {
		t.Errorf("/partial-hijack: %d %q %v", resp.StatusCode, data, resp.Header)
	}

	l.dial().get("/print", 200) // c was dropped when c2 came: one connection at a time
	if code := l.stop(); code != 0 {
		t.Errorf("exit code %d after the lifeline closed", code)
	}
	out := l.out.String()
	for _, want := range []string{"hello stdout from app", "hello stderr from app", "boom from app (RuntimeError)", "config.ru:"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

// An app written for the occasion, for misbehaviours the echo fixture lacks.
const rackMisbehaving = `
run lambda { |env|
  case env["PATH_INFO"]
  when "/crlf" then [200, {"x-evil" => "a\r\nset-cookie: pwned=1"}, ["no"]]
  when "/crlf-name" then [200, {"x-evil\r\nset-cookie" => "pwned=1"}, ["no"]]
  when "/crlf-array" then [200, {"x-evil" => ["ok", "a\r\nset-cookie: pwned=1"]}, ["no"]]
  when "/nul" then [200, {"x-evil" => "a\0b"}, ["no"]]
  when "/late-error"
    [200, {"content-type" => "text/plain"}, Enumerator.new { |y| y << "partial"; raise "late failure" }]
  when "/short" then [200, {"content-length" => "100"}, Enumerator.new { |y| y << "only ten.." }]
  when "/short-array" then [200, {"content-length" => "100"}, ["only ten.."]]
  when "/long" then [200, {"content-length" => "5"}, ["12345", "6789"]]
  when "/symbol-body" then [200, {}, [:not_a_string]]
  when "/bad-status" then [42, {}, ["no"]]
  when "/no-body" then [200, {}, nil]
  when "/utf8" then [200, {"x-name" => "caf\u00e9", "x-bin" => "\xff".b}, ["caf\u00e9", "\xff".b]]
  when "/mixed-case" then [200, {"Content-Type" => "text/x-mixed", "X-Powered-By" => "rack2"}, ["mixed"]]
  when "/proxy" then [200, {}, Rack::BodyProxy.new(["proxied"]) { $stderr.puts "proxy closed" }]
  when "/app-close" then [200, {"connection" => "close"}, ["bye"]]
  when "/upgrade"
    echo = proc do |s|
      while (d = s.read(4))
        s.write(d.upcase)
      end
      s.close
    end
    [101, {"upgrade" => "x-shout", "connection" => "Upgrade"}, echo]
  else [200, {"content-type" => "text/plain"}, ["ok"]]
  end
}
`

func TestRackMisbehavingApp(t *testing.T) {
	l := rackReady(t, rackApp(t, map[string]string{"config.ru": rackMisbehaving}))
	c := l.dial()

	for _, path := range []string{"/crlf", "/crlf-name", "/crlf-array", "/nul", "/symbol-body", "/bad-status", "/no-body"} {
		resp, body := c.do("GET", path, nil, nil)
		if resp.StatusCode != 500 || resp.Header.Get("Set-Cookie") != "" || resp.Header.Get("X-Evil") != "" {
			t.Errorf("%s: %d %v %q, want a plain 500", path, resp.StatusCode, resp.Header, body)
		}
		c.get("/", 200)
	}

	if body := c.get("/long", 200); body != "12345" {
		t.Errorf("/long: %q, want the body cut at its Content-Length", body)
	}
	resp, body := c.do("GET", "/utf8", nil, nil)
	if body != "caf\u00e9\xff" || resp.Header.Get("X-Name") != "caf\u00e9" || resp.Header.Get("X-Bin") != "\xff" {
		t.Errorf("/utf8: %q %v", body, resp.Header)
	}
	resp, body = c.do("GET", "/mixed-case", nil, nil)
	if body != "mixed" || resp.Header.Get("Content-Type") != "text/x-mixed" || resp.ContentLength != 5 {
		t.Errorf("/mixed-case: %q %v", body, resp.Header)
	}
	if body := c.get("/proxy", 200); body != "proxied" {
		t.Errorf("/proxy: %q", body)
	}
	resp, _ = c.do("GET", "/app-close", nil, nil)
	if !resp.Close {
		t.Errorf("the app's Connection: close was not honoured")
	}

	// Failures once the head is out cannot become a 500: the connection is
	// closed instead, so the core sees a truncated response.
	for _, path := range []string{"/late-error", "/short", "/short-array"} {
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

	// 101 with a Rack 3 streaming body: the connection is the app's stream.
	c3 := l.dial()
	c3.send("GET", "/upgrade", []string{"Connection: Upgrade", "Upgrade: x-shout"}, nil)
	resp = c3.head("GET")
	if resp.StatusCode != 101 || resp.Header.Get("Upgrade") != "x-shout" || resp.Header.Get("Connection") != "Upgrade" {
		t.Fatalf("/upgrade: %d %v", resp.StatusCode, resp.Header)
	}
	c3.c.Write([]byte("abcdefgh"))
	got := make([]byte, 8)
	if _, err := io.ReadFull(c3.br, got); err != nil || string(got) != "ABCDEFGH" {
		t.Errorf("upgraded stream: %q %v", got, err)
	}
	c3.c.(*net.UnixConn).CloseWrite()
	if rest, err := io.ReadAll(c3.br); err != nil || len(rest) != 0 {
		t.Errorf("after the client's EOF: %q %v", rest, err)
	}
	l.dial().get("/", 200)
	if !strings.Contains(l.out.String(), "proxy closed") {
		t.Errorf("BodyProxy not closed; output:\n%s", l.out)
	}
}

// Rack::Lint checks the env the loader builds and the body protocol.
const rackLinted = `
use Rack::Lint
run lambda { |env|
  data = env["rack.input"].read
  env["rack.input"].rewind
  env["rack.errors"].puts("lint ok") if env["PATH_INFO"] == "/log"
  case env["PATH_INFO"]
  when "/stream"
    [200, {"content-type" => "text/plain"}, Enumerator.new { |y| y << "a"; y << "b" }]
  when "/hijack"
    io = env["rack.hijack"].call
    io.write("HTTP/1.1 200 OK\r\nContent-Length: 8\r\nConnection: close\r\n\r\nhijacked")
    io.close
    [200, {}, []]
  else
    [200, {"content-type" => "text/plain", "content-length" => data.bytesize.to_s}, [data]]
  end
}
`

func TestRackLint(t *testing.T) {
	l := rackReady(t, rackApp(t, map[string]string{"config.ru": rackLinted}))
	c := l.dial()
	if body := c.get("/", 200); body != "" {
		t.Errorf("GET / = %q", body)
	}
	for _, n := range []int{5, 200 << 10} {
		p := payload(n)
		resp, body := c.do("POST", "/echo?x=1", []string{"Content-Type: application/octet-stream", "X-Ferry-Client-Addr: 10.0.0.1:5"}, p)
		if resp.StatusCode != 200 || body != string(p) {
			t.Errorf("POST %d bytes: %d, %d bytes back", n, resp.StatusCode, len(body))
		}
	}
	if resp, body := c.do("HEAD", "/", nil, nil); resp.StatusCode != 200 || body != "" {
		t.Errorf("HEAD: %d %q", resp.StatusCode, body)
	}
	if body := c.get("/stream", 200); body != "ab" {
		t.Errorf("/stream = %q", body)
	}
	c.get("/log", 200)
	c2 := l.dial()
	if body := c2.get("/hijack", 200); body != "hijacked" {
		t.Errorf("/hijack = %q", body)
	}
	// The output comes through a pipe: it may lag behind the response.
	oobWaitOutput(t, l, "lint ok")
	if out := l.out.String(); strings.Contains(out, "Lint") || !strings.Contains(out, "lint ok") {
		t.Errorf("output:\n%s", out)
	}
}

// rackWSFrame is one client frame: FIN set, masked with a random key.
func rackWSFrame(opcode byte, payload []byte) []byte {
	var b bytes.Buffer
	b.WriteByte(0x80 | opcode)
	switch n := len(payload); {
	case n < 126:
		b.WriteByte(0x80 | byte(n))
	case n < 1<<16:
		b.WriteByte(0x80 | 126)
		binary.Write(&b, binary.BigEndian, uint16(n))
	default:
		b.WriteByte(0x80 | 127)
		binary.Write(&b, binary.BigEndian, uint64(n))
	}
	var key [4]byte
	rand.Read(key[:])
	b.Write(key[:])
	for i, c := range payload {
		b.WriteByte(c ^ key[i%4])
	}
	return b.Bytes()
}

// rackWSRead reads one server frame, which must not be masked.
func rackWSRead(t *testing.T, r *bufio.Reader) (byte, []byte) {
	t.Helper()
	var h [2]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		t.Fatalf("read frame: %v", err)
	}
	if h[1]&0x80 != 0 {
		t.Fatalf("server frame is masked")
	}
	n := uint64(h[1] & 0x7f)
	switch n {
	case 126:
		var x uint16
		binary.Read(r, binary.BigEndian, &x)
		n = uint64(x)
	case 127:
		binary.Read(r, binary.BigEndian, &n)
	}
	p := make([]byte, n)
	if _, err := io.ReadFull(r, p); err != nil {
		t.Fatalf("read payload: %v", err)
	}
	return h[0], p
}

func TestRackWebSocket(t *testing.T) {
	l := rackReady(t, rackFixture("echo"))
	c := l.dial()
	c.get("/", 200) // the connection has served a request before the upgrade

	var k [16]byte
	rand.Read(k[:])
	key := base64.StdEncoding.EncodeToString(k[:])
	c.send("GET", "/ws", []string{"Connection: Upgrade", "Upgrade: websocket", "Sec-WebSocket-Version: 13", "Sec-WebSocket-Key: " + key}, nil)
	resp := c.head("GET")
	h := sha1.Sum([]byte(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
	if resp.StatusCode != 101 || resp.Header.Get("Sec-WebSocket-Accept") != base64.StdEncoding.EncodeToString(h[:]) ||
		!strings.EqualFold(resp.Header.Get("Upgrade"), "websocket") {
		t.Fatalf("upgrade: %d %v", resp.StatusCode, resp.Header)
	}
	msgs := []struct {
		op   byte
		data []byte
	}{
		{0x1, []byte("hello websocket")},
		{0x2, payload(300)},
		{0x1, []byte(strings.Repeat("long text ", 10000))},
		{0x9, []byte("ping!")},
		{0x1, []byte("")},
	}
	for _, m := range msgs {
		c.c.SetDeadline(time.Now().Add(wait))
		if _, err := c.c.Write(rackWSFrame(m.op, m.data)); err != nil {
			t.Fatal(err)
		}
		op, data := rackWSRead(t, c.br)
		wantOp := 0x80 | m.op
		if m.op == 0x9 {
			wantOp = 0x8a // pong
		}
		if op != wantOp || !bytes.Equal(data, m.data) {
			t.Errorf("frame op %#x (%d bytes): got op %#x, %d bytes", m.op, len(m.data), op, len(data))
		}
	}
	// Close: the server answers with a close frame and hangs up.
	c.c.Write(rackWSFrame(0x8, []byte{0x03, 0xe8}))
	op, data := rackWSRead(t, c.br)
	if op != 0x88 || !bytes.Equal(data, []byte{0x03, 0xe8}) {
		t.Errorf("close: op %#x %v", op, data)
	}
	if b, err := c.br.ReadByte(); err != io.EOF {
		t.Errorf("after close: %q %v, want EOF", b, err)
	}
	// The loader serves new connections after the hijack.
	if body := l.dial().get("/", 200); body != "hello world" {
		t.Errorf("after the websocket: %q", body)
	}
	// Without the upgrade headers: a plain 400.
	l.dial().get("/ws", 400)
}

func TestRackSinatra(t *testing.T) {
	rackNeedSinatra(t)
	l := rackReady(t, rackFixture("sinatra"))
	c := l.dial()
	if body := c.get("/", 200); body != "hello from sinatra" {
		t.Errorf("GET / = %q", body)
	}
	resp, body := c.do("POST", "/form", []string{"Content-Type: application/x-www-form-urlencoded"}, []byte("name=F%C3%A9rry+Boat&x=1"))
	if resp.StatusCode != 200 || body != "hello Férry Boat" {
		t.Errorf("POST /form: %d %q", resp.StatusCode, body)
	}
	// A large form goes through a Tempfile.
	big := "name=" + strings.Repeat("y", 200<<10)
	resp, body = c.do("POST", "/form", []string{"Content-Type: application/x-www-form-urlencoded"}, []byte(big))
	if resp.StatusCode != 200 || body != "hello "+strings.Repeat("y", 200<<10) {
		t.Errorf("POST /form (200 KiB): %d, %d bytes", resp.StatusCode, len(body))
	}
	if body := c.get("/pid", 200); body != strconv.Itoa(l.cmd.Process.Pid) {
		t.Errorf("/pid = %q", body)
	}
	resp, body = c.do("GET", "/error", nil, nil)
	if resp.StatusCode != 500 || body != "sinatra error: boom from sinatra" {
		t.Errorf("/error: %d %q", resp.StatusCode, body)
	}
	c.get("/nope", 404)

	c.send("GET", "/stream?n=3", nil, nil)
	resp = c.head("GET")
	data, err := io.ReadAll(resp.Body)
	if err != nil || string(data) != "sinatra chunk 0\nsinatra chunk 1\nsinatra chunk 2\n" {
		t.Errorf("/stream: %q, %v", data, err)
	}
	if body := c.get("/", 200); body != "hello from sinatra" {
		t.Errorf("after /stream: %q", body)
	}
	c.send("GET", "/stream?n=2&delay=60", nil, nil)
	rackFirstChunk(t, c, "sinatra chunk 0\n")
}

func TestRackThreads(t *testing.T) {
	l := rackReady(t, rackFixture("echo"), "FERRY_THREADS=4")
	if l.hs.Concurrency != 4 {
		t.Errorf("concurrency %d, want 4", l.hs.Concurrency)
	}
	var env map[string]any
	c0 := l.dial()
	if err := json.Unmarshal([]byte(c0.get("/env", 200)), &env); err != nil || env["rack.multithread"] != true {
		t.Errorf("rack.multithread = %v (%v)", env["rack.multithread"], err)
	}
	c0.c.Close() // a fifth connection would make the loader drop an idle one
	// Four requests that each sleep long enough that, one at a time, they
	// could not finish before the deadline together.
	conns := make([]*client, 4)
	for i := range conns {
		conns[i] = l.dial()
		conns[i].get("/", 200)
	}
	start := time.Now()
	for _, c := range conns {
		c.send("GET", "/sleep?s=1", nil, nil)
	}
	var wg sync.WaitGroup
	errs := make(chan string, len(conns))
	for _, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.c.SetDeadline(time.Now().Add(wait))
			resp, err := http.ReadResponse(c.br, &http.Request{Method: "GET"})
			if err != nil {
				errs <- err.Error()
				return
			}
			b, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != 200 || string(b) != strconv.Itoa(l.cmd.Process.Pid) {
				errs <- fmt.Sprintf("%d %q", resp.StatusCode, b)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
	if d := time.Since(start); d > 3500*time.Millisecond {
		t.Errorf("four 1s requests on four threads took %v", d)
	}
	for _, c := range conns {
		c.get("/pid", 200) // all still kept alive
	}
}

// A second connection while the first one is idle must not wait for the
// first one to close.
func TestRackSecondConnection(t *testing.T) {
	l := rackReady(t, rackFixture("echo"))
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

// rackSession is the session id of pid, from /proc.
func rackSession(pid int) (int, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	s := string(b)
	// After "pid (comm) ": state ppid pgrp session …
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 4 {
		return 0, fmt.Errorf("short /proc/%d/stat: %q", pid, s)
	}
	return strconv.Atoi(f[3])
}

func TestRackSmartSpawn(t *testing.T) {
	p := rackStart(t, rackFixture("echo"), "FERRY_SPAWN_METHOD=smart")
	var hs struct {
		Status    string `json:"status"`
		Preloader bool   `json:"preloader"`
	}
	if err := json.Unmarshal([]byte(p.rawHS), &hs); err != nil || hs.Status != "ready" || !hs.Preloader {
		t.Fatalf("preloader handshake %q, want ready with preloader true; output:\n%s", p.rawHS, p.out)
	}
	w1 := p.spawnWorker()
	w2 := p.spawnWorker()
	for _, w := range []*loader{w1, w2} {
		if w.hs.Status != "ready" || w.hs.Socket != w.sock || w.hs.Concurrency != 1 {
			t.Fatalf("worker handshake %q; preloader output:\n%s\nworker output:\n%s", w.rawHS, p.out, w.out)
		}
		if w.pid == p.cmd.Process.Pid {
			t.Errorf("worker pid %d is the preloader's", w.pid)
		}
		if pgid, err := syscall.Getpgid(w.pid); err != nil || pgid != w.pid {
			t.Errorf("worker %d: process group %d (%v), want its own", w.pid, pgid, err)
		}
		if sid, err := rackSession(w.pid); err != nil || sid != w.pid {
			t.Errorf("worker %d: session %d (%v), want its own", w.pid, sid, err)
		}
		c := w.dial()
		if body := c.get("/pid", 200); body != strconv.Itoa(w.pid) {
			t.Errorf("worker /pid = %q, want %d", body, w.pid)
		}
		c.get("/print", 200)
		e := c.echo("POST", "/echo", nil, []byte("to a worker"))
		if e.PID != w.pid || e.BodyLen != 11 {
			t.Errorf("worker echo: %+v", e)
		}
	}
	if w1.pid == w2.pid {
		t.Errorf("both workers have pid %d", w1.pid)
	}
	// The worker's output goes to its own pipes, not the preloader's.
	if !strings.Contains(w1.out.String(), "hello stdout from app") || !strings.Contains(w1.out.String(), "hello stderr from app") {
		t.Errorf("worker output lacks the app's prints:\n%s", w1.out)
	}
	if strings.Contains(p.out.String(), "hello stdout from app") {
		t.Errorf("the worker printed to the preloader's output:\n%s", p.out)
	}

	// SIGTERM to a worker stops it alone; the preloader reaps it and can
	// spawn another.
	syscall.Kill(w1.pid, syscall.SIGTERM)
	w1.gone()
	for deadline := time.Now().Add(wait); ; time.Sleep(20 * time.Millisecond) {
		if _, err := os.Stat(fmt.Sprintf("/proc/%d", w1.pid)); errors.Is(err, os.ErrNotExist) {
			break // reaped
		}
		if time.Now().After(deadline) {
			t.Fatalf("worker %d exited but was not reaped by the preloader", w1.pid)
		}
	}
	w3 := p.spawnWorker()
	if w3.hs.Status != "ready" {
		t.Fatalf("third worker: %q", w3.rawHS)
	}
	w3.dial().get("/", 200)
	w2.dial().get("/", 200)

	// The lifeline: the preloader and every worker exit when it closes.
	p.lifeline.Close()
	p.exitCode()
	w2.gone()
	w3.gone()
}

func TestRackSmartSpawnThreads(t *testing.T) {
	p := rackStart(t, rackFixture("echo"), "FERRY_SPAWN_METHOD=smart", "FERRY_THREADS=3")
	w := p.spawnWorker()
	if w.hs.Status != "ready" || w.hs.Concurrency != 3 {
		t.Fatalf("worker handshake %q", w.rawHS)
	}
	w.dial().get("/", 200)
	// SIGTERM to the preloader stops only the preloader.
	p.cmd.Process.Signal(syscall.SIGTERM)
	if code := p.exitCode(); code != 0 {
		t.Errorf("preloader exit code %d, want 0", code)
	}
	if body := w.dial().get("/pid", 200); body != strconv.Itoa(w.pid) {
		t.Errorf("worker after the preloader stopped: %q", body)
	}
}

func TestRackSmartSpawnBroken(t *testing.T) {
	p := rackStart(t, rackFixture("broken"), "FERRY_SPAWN_METHOD=smart")
	if p.hs.Status != "error" || !strings.Contains(p.hs.Summary, "broken fixture") {
		t.Fatalf("preloader handshake %q, want the load error", p.rawHS)
	}
	if code := p.exitCode(); code != 1 {
		t.Errorf("exit code %d, want 1", code)
	}
}

func TestRackCrash(t *testing.T) {
	l := rackReady(t, rackFixture("echo"))
	c := l.dial()
	c.send("GET", "/crash", nil, nil)
	c.c.SetDeadline(time.Now().Add(wait))
	if b, err := c.br.ReadByte(); err != io.EOF {
		t.Errorf("/crash: read %q %v, want EOF", b, err)
	}
	if code := l.exitCode(); code != 1 {
		t.Errorf("exit code %d, want 1", code)
	}
}

func TestRackExample(t *testing.T) {
	l := rackReady(t, filepath.Join("..", "..", "examples", "hello-rack"))
	resp, body := l.dial().do("GET", "/", nil, nil)
	if resp.StatusCode != 200 || body != "Hello from Ferry!\n" {
		t.Errorf("GET / = %d %q", resp.StatusCode, body)
	}
}

func BenchmarkRackHello(b *testing.B) {
	l := rackReady(b, rackFixture("echo"))
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

// Rack 1 and 2 parse rackup options from a "#\" first comment line, with
// optparse (Rack::Server::Options); the loader lets them when the line is
// there, and otherwise spares every start loading rack/server and optparse.
// Rack::Utils, which Rack itself counts on (Rack::Lint's URI.parse), is
// loaded either way, in a preloader before it forks.
func TestRackOptionsLine(t *testing.T) {
	const app = `run lambda { |env|
  body = [Rack.release, defined?(OptionParser) ? "optparse" : "-",
          $LOADED_FEATURES.any? { |f| f.end_with?("/rack/utils.rb") } ? "utils" : "-",
          defined?(URI.parse) ? "uri" : "-"].join(" ")
  [200, {"content-type" => "text/plain"}, [body]]
}
`
	for _, tc := range []struct {
		name, ru string
		smart    bool
		optparse bool // on Rack 1 and 2
	}{
		{"plain", app, false, false},
		{"options line", "#\\ -E deployment\n" + app, false, true},
		{"smart", app, true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := rackApp(t, map[string]string{"config.ru": tc.ru})
			var c *client
			if tc.smart {
				p := rackStart(t, dir, "FERRY_SPAWN_METHOD=smart")
				c = p.spawnWorker().dial()
			} else {
				c = rackReady(t, dir).dial()
			}
			f := strings.Fields(c.get("/", 200))
			if len(f) != 4 {
				t.Fatalf("GET / = %q", f)
			}
			old := strings.HasPrefix(f[0], "1.") || strings.HasPrefix(f[0], "2.")
			if want := map[bool]string{true: "optparse", false: "-"}[tc.optparse && old]; f[1] != want {
				t.Errorf("Rack %s: OptionParser %q, want %q", f[0], f[1], want)
			}
			if f[2] != "utils" || f[3] != "uri" {
				t.Errorf("Rack::Utils %q, URI %q: want both loaded", f[2], f[3])
			}
		})
	}
}
