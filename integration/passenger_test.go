package integration

import (
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// stickyCookie is the sticky cookie a response set, or "".
func stickyCookie(resp *http.Response, name string) *http.Cookie {
	for _, c := range resp.Cookies() {
		if c.Name == name {
			return c
		}
	}
	return nil
}

// TestStickySessions: a client carrying the cookie stays on its process;
// when the process dies it goes elsewhere and gets a new cookie, and the
// cookie never reveals the pid.
func TestStickySessions(t *testing.T) {
	f := startFerry(t, "../testdata/wsgi/echo", "--sticky-sessions", "--max-pool-size", "3", "--min-instances", "3",
		"--sticky-sessions-cookie-attributes", "SameSite=Strict;")
	eventually(t, "3 processes", func() bool { return len(f.pids()) == 3 })

	get := func(cookie string) (pid string, c *http.Cookie, setCookie string) {
		t.Helper()
		h := http.Header{}
		if cookie != "" {
			h.Set("Cookie", "_passenger_route="+cookie)
		}
		resp := f.request("GET", "/pid", nil, h)
		defer resp.Body.Close()
		var b strings.Builder
		buf := make([]byte, 64)
		for {
			n, err := resp.Body.Read(buf)
			b.Write(buf[:n])
			if err != nil {
				break
			}
		}
		return b.String(), stickyCookie(resp, "_passenger_route"), resp.Header.Get("Set-Cookie")
	}
	pid, c, raw := get("")
	if c == nil || c.Value == "" {
		t.Fatalf("no sticky cookie in %q", raw)
	}
	if strings.Contains(c.Value, pid) {
		t.Fatalf("cookie %q reveals pid %s", c.Value, pid)
	}
	if !strings.Contains(raw, "SameSite=Strict") {
		t.Fatalf("cookie attributes missing: %q", raw)
	}
	route := c.Value
	for range 20 {
		p, c2, _ := get(route)
		if p != pid {
			t.Fatalf("sticky request went to %s, want %s", p, pid)
		}
		if c2 == nil || c2.Value != route {
			t.Fatalf("cookie changed to %v, want %q", c2, route)
		}
	}
	n, _ := strconv.Atoi(pid)
	syscall.Kill(n, syscall.SIGKILL)
	eventually(t, "the killed process gone from the pool", func() bool {
		for _, p := range f.pids() {
			if p == n {
				return false
			}
		}
		return true
	})
	p, c3, _ := get(route)
	if p == pid {
		t.Fatalf("request went to the dead process %s", pid)
	}
	if c3 == nil || c3.Value == route || c3.Value == "" {
		t.Fatalf("no new cookie after fallback: %v", c3)
	}
}

// hookFiles sets a hook for every event that appends "APP PID ERROR" to
// DIR/EVENT, half in Passenger's --ctl form and half in Ferry's --hook form.
func hookArgs(dir string) []string {
	var args []string
	for i, ev := range []string{"attached_process", "detached_process", "spawn_failed", "queue_full_error",
		"max_request_time_reached", "rolling_restart_finished", "app_restarted"} {
		cmd := `echo "$FERRY_APP|$PASSENGER_PID|$FERRY_ERROR|$FERRY_EVENT" >> ` + filepath.Join(dir, ev)
		if i%2 == 0 {
			args = append(args, "--ctl", "hook_"+ev+"="+cmd)
		} else {
			args = append(args, "--hook", ev+"="+cmd)
		}
	}
	return args
}

// hookLines waits until DIR/EVENT has a line and returns its lines.
func hookLines(t *testing.T, dir, event string) []string {
	t.Helper()
	var lines []string
	eventually(t, "hook "+event, func() bool {
		b, _ := os.ReadFile(filepath.Join(dir, event))
		lines = strings.Split(strings.TrimSpace(string(b)), "\n")
		return len(b) > 0
	})
	return lines
}

// TestHooks: each event runs its hook with its details in the environment.
func TestHooks(t *testing.T) {
	dir := t.TempDir()
	args := append(hookArgs(dir), "--max-pool-size", "1", "--min-instances", "1", "--max-request-queue-size", "1",
		"--max-request-time", "2", "--ctl", "frobnicate=3")
	f := startFerry(t, "../testdata/wsgi/echo", args...)
	f.waitLog(`--ctl frobnicate: ignored`)

	attached := hookLines(t, dir, "attached_process")[0]
	eventually(t, "a process", func() bool { return len(f.pids()) == 1 })
	pid := strconv.Itoa(f.pids()[0])
	if l := attached; l != "echo|"+pid+"||attached_process" {
		t.Errorf("attached_process hook got %q, want pid %s", l, pid)
	}

	// Queue full: one request in the process, one queued, the third refused.
	var wg sync.WaitGroup
	var refused atomic.Int32
	for range 5 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if code, _ := f.get("/sleep?s=0.5"); code == http.StatusServiceUnavailable {
				refused.Add(1)
			}
		}()
	}
	wg.Wait()
	if refused.Load() == 0 {
		t.Fatalf("5 requests to 1 process with a queue of 1: none refused")
	}
	if l := hookLines(t, dir, "queue_full_error")[0]; !strings.HasPrefix(l, "echo|") {
		t.Errorf("queue_full_error hook got %q", l)
	}

	// Max request time: the process is killed, and so detached.
	pid = strconv.Itoa(f.pids()[0])
	if code, _ := f.get("/sleep?s=30"); code != http.StatusGatewayTimeout {
		t.Errorf("over-long request: %d, want 504", code)
	}
	if l := hookLines(t, dir, "max_request_time_reached")[0]; !strings.HasPrefix(l, "echo|"+pid+"|") {
		t.Errorf("max_request_time_reached hook got %q, want pid %s", l, pid)
	}
	found := false
	for _, l := range hookLines(t, dir, "detached_process") {
		found = found || l == "echo|"+pid+"||detached_process"
	}
	if !found {
		t.Errorf("no detached_process hook for %s", pid)
	}

	if out, err := f.run("restart"); err != nil {
		t.Fatalf("ferry restart: %v\n%s", err, out)
	}
	if l := hookLines(t, dir, "app_restarted")[0]; !strings.HasPrefix(l, "echo|") {
		t.Errorf("app_restarted hook got %q", l)
	}
	if out, err := f.run("restart", "--rolling"); err != nil {
		t.Fatalf("ferry restart --rolling: %v\n%s", err, out)
	}
	if l := hookLines(t, dir, "rolling_restart_finished")[0]; !strings.HasPrefix(l, "echo|") {
		t.Errorf("rolling_restart_finished hook got %q", l)
	}
}

// TestHookSpawnFailed: a failed spawn runs its hook with the error.
func TestHookSpawnFailed(t *testing.T) {
	dir := t.TempDir()
	f := startFerry(t, "../testdata/wsgi/broken", hookArgs(dir)...)
	f.get("/")
	l := hookLines(t, dir, "spawn_failed")[0]
	if !strings.HasPrefix(l, "broken|") || !strings.Contains(l, "frobnicate") {
		t.Errorf("spawn_failed hook got %q, want the app and its error", l)
	}
}

// TestUnlimitedConcurrencyPath: with one single-threaded Rack process and
// /ws as an unlimited path, a WebSocket stays open while normal requests
// are still served; a restart closes it (abort on by default).
func TestUnlimitedConcurrencyPath(t *testing.T) {
	needInterp(t, "/usr/bin/ruby")
	f := startFerry(t, needFixture(t, "rack/echo"), "--max-pool-size", "1",
		"--unlimited-concurrency-path", "/wsbg", "--max-request-queue-time", "10")
	ws := dialWebSocket(t, f, "/wsbg")
	defer ws.Close()
	ws.send(t, 1, []byte("hello"))
	if op, got := ws.recv(t); op != 1 || string(got) != "hello" {
		t.Fatalf("echo: opcode %d %q", op, got)
	}
	for range 3 {
		if code, body := f.get("/"); code != 200 {
			t.Fatalf("GET / beside the WebSocket = %d %q", code, body)
		}
	}
	ws.send(t, 1, []byte("still here"))
	if op, got := ws.recv(t); op != 1 || string(got) != "still here" {
		t.Fatalf("echo after requests: opcode %d %q", op, got)
	}

	if out, err := f.run("restart"); err != nil {
		t.Fatalf("ferry restart: %v\n%s", err, out)
	}
	ws.SetReadDeadline(time.Now().Add(30 * time.Second))
	if _, err := io.ReadAll(ws.br); err != nil {
		t.Fatalf("the WebSocket was not closed by the restart: %v", err)
	}
}

// TestStartupOptions: --custom-error-page replaces Ferry's error page and
// --load-shell-envvars still starts the app (through bash -lc).
func TestStartupOptions(t *testing.T) {
	page := filepath.Join(t.TempDir(), "error.html")
	os.WriteFile(page, []byte("<h1>our own page</h1>"), 0o644)
	f := startFerry(t, "../testdata/wsgi/broken", "--custom-error-page", page)
	if code, body := f.get("/"); code != 500 || body != "<h1>our own page</h1>" {
		t.Errorf("GET / on a broken app = %d %q, want 500 and the custom page", code, body)
	}
	g := startFerry(t, "../testdata/wsgi/echo", "--load-shell-envvars")
	if code, body := g.get("/"); code != 200 || body != "hello world" {
		t.Errorf("GET / with --load-shell-envvars = %d %q", code, body)
	}
}
