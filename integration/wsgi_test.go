package integration

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

type echoed struct {
	Method        string            `json:"method"`
	ScriptName    string            `json:"script_name"`
	PathInfo      string            `json:"path_info"`
	QueryString   string            `json:"query_string"`
	ContentType   string            `json:"content_type"`
	ContentLength string            `json:"content_length"`
	Headers       map[string]string `json:"headers"`
	BodyLen       int               `json:"body_len"`
	BodySHA256    string            `json:"body_sha256"`
	Body          *string           `json:"body"`
	RemoteAddr    string            `json:"remote_addr"`
	URLScheme     string            `json:"url_scheme"`
	PID           int               `json:"pid"`
}

func decodeEcho(t *testing.T, body string) echoed {
	t.Helper()
	var e echoed
	if err := json.Unmarshal([]byte(body), &e); err != nil {
		t.Fatalf("decode /echo answer %q: %v", body, err)
	}
	return e
}

func TestRequestFidelity(t *testing.T) {
	f := startFerry(t, fixture(t, "wsgi/echo"))

	t.Run("hello", func(t *testing.T) {
		if code, body := f.get("/"); code != 200 || body != "hello world" {
			t.Fatalf("GET / = %d %q", code, body)
		}
	})

	methods := []string{"GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"}
	for _, m := range methods {
		t.Run("method "+m, func(t *testing.T) {
			var body io.Reader
			if m != "GET" && m != "OPTIONS" {
				body = strings.NewReader("payload of " + m)
			}
			h := http.Header{"X-Custom": {"one"}, "Content-Type": {"text/x-test"}}
			code, out := f.do(m, "/echo/sub%20dir/x?q=1&r=%20two&q=3", body, h)
			if code != 200 {
				t.Fatalf("%s = %d %s", m, code, out)
			}
			e := decodeEcho(t, out)
			if e.Method != m || e.PathInfo != "/echo/sub dir/x" || e.QueryString != "q=1&r=%20two&q=3" {
				t.Errorf("method/path/query = %q %q %q", e.Method, e.PathInfo, e.QueryString)
			}
			if e.Headers["HTTP_X_CUSTOM"] != "one" {
				t.Errorf("X-Custom header = %q", e.Headers["HTTP_X_CUSTOM"])
			}
			if body != nil {
				if e.Body == nil || *e.Body != "payload of "+m || e.ContentLength != strconv.Itoa(len("payload of "+m)) || e.ContentType != "text/x-test" {
					t.Errorf("body = %v, content-length %q, content-type %q", e.Body, e.ContentLength, e.ContentType)
				}
			}
		})
	}

	t.Run("HEAD has no body", func(t *testing.T) {
		resp := f.request("HEAD", "/", nil, nil)
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || len(b) != 0 {
			t.Fatalf("HEAD / = %d with %d body bytes", resp.StatusCode, len(b))
		}
	})

	t.Run("statuses", func(t *testing.T) {
		for _, code := range []int{201, 204, 301, 404, 418, 500, 503} {
			got, body := f.get(fmt.Sprintf("/status/%d", code))
			if got != code {
				t.Errorf("status %d: got %d", code, got)
			}
			if code != 204 && body != fmt.Sprintf("status %d", code) {
				t.Errorf("status %d: body %q", code, body)
			}
		}
	})

	t.Run("multiple Set-Cookie", func(t *testing.T) {
		resp := f.request("GET", "/cookies", nil, nil)
		resp.Body.Close()
		got := resp.Header.Values("Set-Cookie")
		want := []string{"a=1; Path=/", "b=2; Path=/"}
		if !slices.Equal(got, want) {
			t.Fatalf("Set-Cookie = %q, want %q", got, want)
		}
	})

	t.Run("client address and scheme cannot be spoofed", func(t *testing.T) {
		h := http.Header{
			"X-Ferry-Client-Addr": {"6.6.6.6:1"},
			"X-Ferry-Scheme":      {"https"},
			"X_ferry_scheme":      {"https"},
			"X_Custom":            {"underscore"},
		}
		_, out := f.do("GET", "/echo", nil, h)
		e := decodeEcho(t, out)
		if e.RemoteAddr != "127.0.0.1" || e.URLScheme != "http" {
			t.Errorf("remote_addr %q, scheme %q", e.RemoteAddr, e.URLScheme)
		}
		for k := range e.Headers {
			if strings.HasPrefix(k, "HTTP_X_FERRY") || k == "HTTP_X_CUSTOM" {
				t.Errorf("header %s reached the app", k)
			}
		}
	})

	t.Run("hop-by-hop headers dropped", func(t *testing.T) {
		conn, err := net.Dial("tcp", strings.TrimPrefix(f.URL, "http://"))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		fmt.Fprint(conn, "GET /echo HTTP/1.1\r\nHost: x\r\nConnection: keep-alive, X-Secret-Hop\r\nX-Secret-Hop: 1\r\nKeep-Alive: 300\r\nX-Kept: yes\r\n\r\n")
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		e := decodeEcho(t, string(b))
		for _, k := range []string{"HTTP_X_SECRET_HOP", "HTTP_KEEP_ALIVE", "HTTP_CONNECTION"} {
			if _, ok := e.Headers[k]; ok {
				t.Errorf("%s reached the app", k)
			}
		}
		if e.Headers["HTTP_X_KEPT"] != "yes" {
			t.Errorf("X-Kept lost: %v", e.Headers)
		}
	})
}

func TestLargeBodies(t *testing.T) {
	f := startFerry(t, fixture(t, "wsgi/echo"), "--request-buffer-memory", "64k")

	t.Run("upload 24 MiB spills and arrives intact", func(t *testing.T) {
		data := bytes.Repeat([]byte("0123456789abcdef"), 24<<20/16)
		sum := sha256.Sum256(data)
		code, out := f.do("POST", "/upload", bytes.NewReader(data), nil)
		if code != 200 {
			t.Fatalf("POST /upload = %d %s", code, out)
		}
		var got struct {
			Len    int    `json:"len"`
			SHA256 string `json:"sha256"`
		}
		json.Unmarshal([]byte(out), &got)
		if got.Len != len(data) || got.SHA256 != hex.EncodeToString(sum[:]) {
			t.Fatalf("app got %d bytes %s, want %d %x", got.Len, got.SHA256, len(data), sum)
		}
	})

	t.Run("chunked upload", func(t *testing.T) {
		pr, pw := io.Pipe()
		go func() {
			for i := 0; i < 100; i++ {
				pw.Write(bytes.Repeat([]byte{'z'}, 10000))
			}
			pw.Close()
		}()
		code, out := f.do("POST", "/upload", pr, nil) // no length: chunked
		if code != 200 || !strings.Contains(out, `"len": 1000000`) {
			t.Fatalf("chunked POST = %d %s", code, out)
		}
	})

	t.Run("download 64 MiB", func(t *testing.T) {
		const n = 64 << 20
		code, body := f.get("/big?n=" + strconv.Itoa(n))
		if code != 200 || len(body) != n || strings.Trim(body, "x") != "" {
			t.Fatalf("GET /big = %d, %d bytes", code, len(body))
		}
	})
}

func TestStreamingReachesClientBeforeAppEnds(t *testing.T) {
	// A short shutdown timeout: the app below never finishes its response.
	f := startFerry(t, fixture(t, "wsgi/echo"), "--shutdown-timeout", "2")
	// The app sends one chunk, then waits far longer than this test: if
	// Ferry held the response until the app finished, the first chunk would
	// never arrive.
	resp := f.request("GET", "/stream?n=2&delay=600", nil, nil)
	defer resp.Body.Close()
	line, err := bufio.NewReader(resp.Body).ReadString('\n')
	if err != nil || line != "chunk 0\n" {
		t.Fatalf("first chunk = %q, %v", line, err)
	}
}

func TestAppErrorsAndOutput(t *testing.T) {
	f := startFerry(t, fixture(t, "wsgi/echo"))

	code, _ := f.get("/error")
	if code != 500 {
		t.Errorf("GET /error = %d, want 500", code)
	}
	f.waitLog(`RuntimeError: boom from app`)
	if code, body := f.get("/"); code != 200 {
		t.Errorf("after an app error GET / = %d %s", code, body)
	}

	_, body := f.get("/pid")
	pid := strings.TrimSpace(body)
	f.get("/print")
	f.waitLog(`msg="app output" app=echo pid=` + pid + ` stream=stdout line="hello stdout from app"`)
	f.waitLog(`msg="app output" app=echo pid=` + pid + ` stream=stderr line="hello stderr from app"`)
	f.waitLog(`msg=request log=access .*method=GET path=/print status=200 bytes=\d+ duration=\S+ pid=` + pid)
}

func TestCrashAndRespawn(t *testing.T) {
	f := startFerry(t, fixture(t, "wsgi/echo"), "--max-pool-size", "1")
	_, before := f.get("/pid")

	code, _ := f.do("POST", "/crash", nil, nil)
	if code != http.StatusBadGateway {
		t.Fatalf("POST /crash = %d, want 502", code)
	}
	code, after := f.get("/pid")
	if code != 200 || after == before {
		t.Fatalf("after the crash GET /pid = %d %q (before: %q)", code, after, before)
	}
	if st := f.pool(); st.Apps[0].Stats.Died != 1 {
		t.Errorf("died = %d, want 1", st.Apps[0].Stats.Died)
	}
}

func TestKilledProcessInFlight(t *testing.T) {
	f := startFerry(t, fixture(t, "wsgi/echo"), "--max-pool-size", "1")
	_, pidText := f.get("/pid")
	pid, _ := strconv.Atoi(pidText)

	done := make(chan int, 1)
	go func() {
		code, _ := f.do("POST", "/sleep?s=600", nil, nil)
		done <- code
	}()
	eventually(t, "the request to be in flight", func() bool {
		p := f.pool().Apps[0].Processes
		return len(p) == 1 && p[0].Sessions == 1
	})
	syscall.Kill(pid, syscall.SIGKILL)
	if code := <-done; code != http.StatusBadGateway {
		t.Fatalf("in-flight request of a killed process = %d, want 502", code)
	}
	code, again := f.get("/pid")
	if code != 200 || again == pidText {
		t.Fatalf("after the kill GET /pid = %d %q", code, again)
	}
}

func TestQueueFull(t *testing.T) {
	f := startFerry(t, fixture(t, "wsgi/echo"), "--max-pool-size", "1", "--max-request-queue-size", "2")
	f.get("/") // the process is up

	var wg sync.WaitGroup
	codes := make(chan int, 3)
	for i := range 3 { // one served, two queued
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Distinct URLs: identical concurrent misses would be coalesced
			// by the response cache.
			code, _ := f.get(fmt.Sprintf("/sleep?s=3&i=%d", i))
			codes <- code
		}()
	}
	eventually(t, "one request in flight and two queued", func() bool {
		a := f.pool().Apps[0]
		return a.Queued == 2 && len(a.Processes) == 1 && a.Processes[0].Sessions == 1
	})
	resp := f.request("GET", "/", nil, nil)
	resp.Body.Close()
	if resp.StatusCode != 503 || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("with a full queue GET / = %d, Retry-After %q", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	wg.Wait()
	close(codes)
	for c := range codes {
		if c != 200 {
			t.Errorf("queued request = %d, want 200", c)
		}
	}
}

func TestPoolGrowsToMaxAndShrinksWhenIdle(t *testing.T) {
	f := startFerry(t, fixture(t, "wsgi/echo"), "--max-pool-size", "3", "--min-instances", "1", "--pool-idle-time", "1")
	eventually(t, "the minimum process", func() bool { return len(f.pids()) == 1 })

	var (
		mu   sync.Mutex
		seen = map[string]bool{}
		wg   sync.WaitGroup
	)
	for i := range 9 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			code, pid := f.get(fmt.Sprintf("/sleep?s=1&i=%d", i))
			if code != 200 {
				t.Errorf("GET /sleep = %d", code)
			}
			mu.Lock()
			seen[pid] = true
			mu.Unlock()
		}()
	}
	// While the load lasts the pool must never pass its maximum.
	stop := make(chan struct{})
	var most int
	var watch sync.WaitGroup
	watch.Add(1)
	go func() {
		defer watch.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			most = max(most, len(f.pids()))
			time.Sleep(20 * time.Millisecond)
		}
	}()
	wg.Wait()
	close(stop)
	watch.Wait()
	if len(seen) != 3 {
		t.Errorf("requests were served by %d processes, want 3 (max pool size)", len(seen))
	}
	if most > 3 {
		t.Errorf("pool had %d processes, more than its maximum 3", most)
	}
	eventually(t, "idle processes stopped down to the minimum", func() bool { return len(f.pids()) == 1 })
	if st := f.pool().Apps[0].Stats; st.IdleStopped != 2 {
		t.Errorf("idle_stopped = %d, want 2", st.IdleStopped)
	}
}

func TestMinInstancesAtBoot(t *testing.T) {
	f := startFerry(t, fixture(t, "wsgi/echo"), "--min-instances", "3", "--max-pool-size", "4", "--pool-idle-time", "1")
	eventually(t, "three processes without any request", func() bool { return len(f.pids()) == 3 })
	// Idle time must not take the pool below its minimum.
	f.waitLog(`msg="process ready".*`)
	time.Sleep(1500 * time.Millisecond) // longer than --pool-idle-time: give the reaper its chance
	if n := len(f.pids()); n != 3 {
		t.Fatalf("after the idle time the pool has %d processes, want the minimum 3", n)
	}
}

func TestNoOrphansAfterCoreKilled(t *testing.T) {
	f := startFerry(t, fixture(t, "wsgi/echo"), "--min-instances", "2")
	eventually(t, "two processes", func() bool { return len(f.pids()) == 2 })
	pids := f.pids()
	// One of them busy in a request, to show busy ones go too.
	go func() {
		if resp, err := client.Get(f.URL + "/sleep?s=600"); err == nil {
			resp.Body.Close()
		}
	}()
	eventually(t, "a busy process", func() bool {
		for _, p := range f.pool().Apps[0].Processes {
			if p.Sessions > 0 {
				return true
			}
		}
		return false
	})
	f.cmd.Process.Kill()
	<-f.exited
	for _, pid := range pids {
		eventually(t, fmt.Sprintf("app process %d to exit after the core was killed", pid), func() bool { return !alive(pid) })
	}
}

func TestGracefulShutdown(t *testing.T) {
	f := startFerry(t, fixture(t, "wsgi/echo"))
	pids := func() []int { eventually(t, "a process", func() bool { return len(f.pids()) == 1 }); return f.pids() }()

	done := make(chan string, 1)
	go func() {
		code, body := f.get("/sleep?s=1")
		done <- fmt.Sprint(code, " ", body)
	}()
	eventually(t, "the request in flight", func() bool { return f.pool().Apps[0].Processes[0].Sessions == 1 })
	f.cmd.Process.Signal(syscall.SIGTERM)
	if got := <-done; got != fmt.Sprint(200, " ", pids[0]) {
		t.Errorf("in-flight request during shutdown = %q", got)
	}
	<-f.exited
	if f.exitErr != nil {
		t.Errorf("ferry exited with %v, want status 0", f.exitErr)
	}
	if _, err := os.Stat(f.Instance); !os.IsNotExist(err) {
		t.Errorf("instance directory %s still there: %v", f.Instance, err)
	}
	eventually(t, "the app process to exit", func() bool { return !alive(pids[0]) })
}

func TestStaticFiles(t *testing.T) {
	f := startFerry(t, fixture(t, "wsgi/echo"))

	resp := f.request("GET", "/hello.txt", nil, nil)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	etag := resp.Header.Get("Etag")
	if resp.StatusCode != 200 || string(body) != "static hello\n" || etag == "" ||
		!strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain") || resp.Header.Get("Last-Modified") == "" {
		t.Fatalf("GET /hello.txt = %d %q etag %q type %q", resp.StatusCode, body, etag, resp.Header.Get("Content-Type"))
	}
	if code, _ := f.do("GET", "/hello.txt", nil, http.Header{"If-None-Match": {etag}}); code != 304 {
		t.Errorf("If-None-Match = %d, want 304", code)
	}
	if code, b := f.do("GET", "/hello.txt", nil, http.Header{"Range": {"bytes=0-5"}}); code != 206 || b != "static" {
		t.Errorf("Range = %d %q", code, b)
	}
	if code, b := f.get("/css/site.css"); code != 200 || b == "" {
		t.Errorf("GET /css/site.css = %d", code)
	}
	// A directory's index.html answers DIR/, and DIR redirects there (as
	// nginx and Rails' static server do); a directory without one and a
	// missing file fall through to the app: nothing is ever listed.
	if code, b := f.get("/sub/"); code != 200 || !strings.Contains(b, "<p>sub index</p>") {
		t.Errorf("GET /sub/ = %d %q, want public/sub/index.html", code, b)
	}
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	if resp, err := noFollow.Get(f.URL + "/sub?x=1"); err != nil || resp.StatusCode != 301 || resp.Header.Get("Location") != "./sub/?x=1" {
		t.Errorf("GET /sub?x=1 = %v %v, want 301 to ./sub/?x=1", resp, err)
	} else {
		resp.Body.Close()
	}
	for _, path := range []string{"/css/", "/css", "/missing.txt"} {
		if code, b := f.get(path); code != 404 || b != "not found: "+path {
			t.Errorf("GET %s = %d %q, want the app's 404", path, code, b)
		}
	}
	// Only GET and HEAD are static.
	if code, b := f.do("POST", "/hello.txt", strings.NewReader("x"), nil); code != 404 || b != "not found: /hello.txt" {
		t.Errorf("POST /hello.txt = %d %q, want the app's 404", code, b)
	}

	// Traversal, raw on the wire so no client cleans the path first.
	for _, target := range []string{
		"/../secret.txt", "/%2e%2e/secret.txt", "/%2E%2E/secret.txt", "/%252e%252e/secret.txt",
		"/css/../../secret.txt", "/css/..%2f..%2fsecret.txt", "/..%5csecret.txt", "/.%2e/secret.txt",
		"/hello.txt%00/../../secret.txt", "//secret.txt", "/./../secret.txt",
	} {
		raw := rawGet(t, f, target)
		if strings.Contains(raw, "TOP SECRET") {
			t.Errorf("GET %s leaked a file outside public/", target)
		}
	}
}

// rawGet sends a request line exactly as given and returns the raw answer.
func rawGet(t *testing.T, f *ferry, target string) string {
	t.Helper()
	conn, err := net.Dial("tcp", strings.TrimPrefix(f.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", target)
	conn.SetReadDeadline(time.Now().Add(60 * time.Second))
	b, _ := io.ReadAll(conn)
	return string(b)
}

func TestStartupFailure(t *testing.T) {
	t.Run("development shows the error and output", func(t *testing.T) {
		f := startFerry(t, fixture(t, "wsgi/broken"), "--min-instances", "0")
		code, body := f.get("/")
		if code != 500 || !strings.Contains(body, "failed to start") ||
			!strings.Contains(body, "broken fixture: no module named frobnicate") || !strings.Contains(body, "about to fail") {
			t.Fatalf("GET / = %d %s", code, body)
		}
		// While backing off, requests get the failure at once, with a hint
		// when to come back, and no new spawn.
		resp := f.request("GET", "/", nil, nil)
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 503 || resp.Header.Get("Retry-After") == "" || !strings.Contains(string(b), "frobnicate") {
			t.Fatalf("during back-off GET / = %d Retry-After %q", resp.StatusCode, resp.Header.Get("Retry-After"))
		}
		for range 50 {
			f.get("/")
		}
		if st := f.pool().Apps[0].Stats; st.SpawnFailed > 2 {
			t.Errorf("%d spawn attempts for 52 requests: the back-off is not holding", st.SpawnFailed)
		}
	})

	t.Run("production hides details", func(t *testing.T) {
		f := startFerry(t, fixture(t, "wsgi/broken"), "--min-instances", "0", "-e", "production")
		code, body := f.get("/")
		if code != 500 || !strings.Contains(body, "failed to start") || strings.Contains(body, "frobnicate") || strings.Contains(body, "about to fail") {
			t.Fatalf("GET / = %d %s", code, body)
		}
		f.waitLog(`spawn failed.*frobnicate`)
	})

	t.Run("no application callable", func(t *testing.T) {
		f := startFerry(t, fixture(t, "wsgi/noapp"), "--min-instances", "0")
		if code, body := f.get("/"); code != 500 || !strings.Contains(body, "application") {
			t.Fatalf("GET / = %d %s", code, body)
		}
	})

	t.Run("recovers once the app is fixed", func(t *testing.T) {
		dir := copyFixture(t, "wsgi/broken")
		f := startFerry(t, dir, "--min-instances", "0")
		if code, _ := f.get("/"); code != 500 {
			t.Fatalf("broken app answered %d", code)
		}
		good, err := os.ReadFile(filepath.Join(fixture(t, "wsgi/echo"), "passenger_wsgi.py"))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "passenger_wsgi.py"), good, 0o644); err != nil {
			t.Fatal(err)
		}
		eventually(t, "the fixed app to serve after the back-off", func() bool {
			code, body := f.get("/")
			return code == 200 && body == "hello world"
		})
	})
}

func TestCommandLine(t *testing.T) {
	out, err := exec_(ferryBin, "start", "--help")
	if err != nil {
		t.Fatalf("ferry start --help: %v\n%s", err, out)
	}
	for _, flag := range []string{"--port", "--address", "--environment", "--max-pool-size", "--min-instances",
		"--max-request-queue-size", "--pool-idle-time", "--startup-file", "--app-type", "--python",
		"--log-file", "--pid-file", "--log-level"} {
		if !strings.Contains(out, flag+" ") {
			t.Errorf("--help does not list %s", flag)
		}
	}
	if !strings.Contains(out, "(default 3000)") || !strings.Contains(out, "(default 6)") {
		t.Errorf("--help does not show defaults:\n%s", out)
	}
	if out, err := exec_(ferryBin, "version"); err != nil || !strings.HasPrefix(out, "ferry ") {
		t.Errorf("ferry version = %q, %v", out, err)
	}

	bad := []struct {
		name string
		args []string
		want string
	}{
		{"zero pool", []string{"start", fixture(t, "wsgi/echo"), "--max-pool-size", "0"}, "--max-pool-size: must be at least 1"},
		{"min above max", []string{"start", fixture(t, "wsgi/echo"), "--min-instances", "9", "--max-pool-size", "2"}, "--min-instances"},
		{"bad number", []string{"start", fixture(t, "wsgi/echo"), "--port", "http"}, "port"},
		{"no app", []string{"start", t.TempDir()}, "passenger_wsgi.py"},
		{"missing dir", []string{"start", "/nonexistent/app"}, "APP_DIR /nonexistent/app: no such directory"},
		{"missing startup file", []string{"start", fixture(t, "wsgi/echo"), "--startup-file", "nope.py"}, "--startup-file"},
		{"unknown type", []string{"start", fixture(t, "wsgi/echo"), "--app-type", "cobol"}, "--app-type"},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			out, err := exec_(ferryBin, tc.args...)
			if err == nil || !strings.Contains(out, tc.want) {
				t.Errorf("ferry %v = %v, output %q; want an error mentioning %q", tc.args, err, out, tc.want)
			}
		})
	}
}

func TestPidFile(t *testing.T) {
	pidFile := filepath.Join(t.TempDir(), "ferry.pid")
	f := startFerry(t, fixture(t, "wsgi/echo"), "--pid-file", pidFile)
	b, err := os.ReadFile(pidFile)
	if err != nil || strings.TrimSpace(string(b)) != strconv.Itoa(f.cmd.Process.Pid) {
		t.Fatalf("pid file = %q, %v; want %d", b, err, f.cmd.Process.Pid)
	}
	f.stop()
	if _, err := os.Stat(pidFile); !os.IsNotExist(err) {
		t.Errorf("pid file left after exit: %v", err)
	}
}
