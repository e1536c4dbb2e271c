package loaders

// Out-of-band work and SIGQUIT backtraces in the WSGI loader, the ASGI
// runner and the Node loader. The fixtures are testdata/{wsgi,asgi,node}/oob.

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ferry-server/ferry/internal/proxy"
)

func oobFixture(kind string) string { return filepath.Join("..", "..", "testdata", kind, "oob") }

// oobPID is the pid of a loader, direct or smart-spawned.
func oobPID(l *loader) int {
	if l.cmd != nil {
		return l.cmd.Process.Pid
	}
	return l.pid
}

// oobDo makes one request on a connection of its own, as the core does for
// out-of-band work (a WSGI loader serving one connection at a time drops an
// idle one when another arrives, so none is kept).
func oobDo(t *testing.T, l *loader, method, target string, headers ...string) (int, string, http.Header) {
	t.Helper()
	c := l.dial()
	defer c.c.Close()
	resp, body := c.do(method, target, append([]string{"Connection: close"}, headers...), nil)
	return resp.StatusCode, body, resp.Header
}

// oobCounts is what /count answers, as numbers (and strings).
type oobCounts map[string]any

func (c oobCounts) n(k string) int {
	v, _ := c[k].(float64)
	return int(v)
}

func oobCount(t *testing.T, l *loader) oobCounts {
	t.Helper()
	code, body, _ := oobDo(t, l, "GET", "/count")
	if code != 200 {
		t.Fatalf("GET /count: status %d, body %q; output:\n%s", code, body, l.out)
	}
	var c oobCounts
	if err := json.Unmarshal([]byte(body), &c); err != nil {
		t.Fatalf("GET /count: %v in %q", err, body)
	}
	return c
}

// outOfBand sends the core's out-of-band request on a fresh connection,
// byte for byte as proxy.OutOfBand does, and returns the status and body.
// The loader must close the connection after the answer.
func outOfBand(t *testing.T, l *loader) (int, string) {
	t.Helper()
	c := l.dial()
	c.framed = false // the core's out-of-band request is HTTP/1.1 on either wire
	defer c.c.Close()
	c.c.SetDeadline(time.Now().Add(wait))
	if _, err := fmt.Fprintf(c.c, "POST /__ferry/oob HTTP/1.1\r\nHost: ferry\r\n%s: 1\r\nContent-Length: 0\r\nConnection: close\r\n\r\n", proxy.HeaderOOBRequest); err != nil {
		t.Fatal(err)
	}
	resp := c.head("POST")
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatalf("out-of-band answer: %v", err)
	}
	if !resp.Close {
		t.Errorf("the out-of-band answer does not announce Connection: close")
	}
	if _, err := c.br.ReadByte(); err != io.EOF {
		t.Errorf("after the out-of-band answer: read %v, want EOF (the connection closes)", err)
	}
	return resp.StatusCode, string(body)
}

// oobWaitOutput waits until the loader's output contains s.
func oobWaitOutput(t *testing.T, l *loader, s string) {
	t.Helper()
	oobWaitOutputN(t, l, s, 1)
}

// oobWaitOutputN waits until the loader's output contains s n times.
func oobWaitOutputN(t *testing.T, l *loader, s string, n int) {
	t.Helper()
	deadline := time.NewTimer(wait)
	defer deadline.Stop()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for strings.Count(l.out.String(), s) < n {
		select {
		case <-l.done:
			if strings.Count(l.out.String(), s) >= n {
				return
			}
			t.Fatalf("the process exited before writing %q (%d times); output:\n%s", s, n, l.out)
		case <-deadline.C:
			t.Fatalf("not %d× %q in the output after %v; output:\n%s", n, s, wait, l.out)
		case <-tick.C:
		}
	}
}

// oobAlive fails the test unless the process runs.
func oobAlive(t *testing.T, l *loader) {
	t.Helper()
	select {
	case <-l.done:
		t.Fatalf("the process exited; output:\n%s", l.out)
	default:
	}
	if !alive(oobPID(l)) {
		t.Fatalf("pid %d is gone; output:\n%s", oobPID(l), l.out)
	}
}

// ------------------------------------------------------------------ WSGI ---

// wsgiOOBVariants start the WSGI oob fixture directly, with threads, and as
// a smart-spawned worker.
var wsgiOOBVariants = []struct {
	name  string
	start func(t *testing.T, dir string, env ...string) *loader
}{
	{"direct", func(t *testing.T, dir string, env ...string) *loader { return startReady(t, dir, env...) }},
	{"threads", func(t *testing.T, dir string, env ...string) *loader {
		l := startReady(t, dir, append([]string{"FERRY_THREADS=2"}, env...)...)
		if l.hs.Concurrency != 2 {
			t.Fatalf("handshake %q, want concurrency 2", l.rawHS)
		}
		return l
	}},
	{"smart", func(t *testing.T, dir string, env ...string) *loader {
		return readyWorker(t, startPreloader(t, dir, env...))
	}},
}

func TestWSGIOutOfBand(t *testing.T) {
	for _, v := range wsgiOOBVariants {
		t.Run(v.name, func(t *testing.T) {
			l := v.start(t, oobFixture("wsgi"))
			before := oobCount(t, l)

			code, body := outOfBand(t, l)
			if code != 200 || !strings.Contains(body, "2 hooks") {
				t.Fatalf("out-of-band: %d %q, want 200 naming 2 hooks; output:\n%s", code, body, l.out)
			}
			after := oobCount(t, l)
			if after.n("requests") != before.n("requests")+1 {
				t.Errorf("requests %d → %d: the out-of-band request reached the app", before.n("requests"), after.n("requests"))
			}
			if after.n("hooks") != before.n("hooks")+1 || after.n("hooks2") != before.n("hooks2")+1 {
				t.Errorf("hooks %v → %v, want each hook run once", before, after)
			}
			if v.name == "threads" && after["hook_thread"] != "ferry-conn" {
				t.Errorf("hook ran in thread %q, want the connection's (ferry-conn)", after["hook_thread"])
			}

			// Whatever the method and path: the header makes it the core's.
			code, body, _ = oobDo(t, l, "GET", "/count", proxy.HeaderOOBRequest+": 1")
			if code != 200 || !strings.HasPrefix(body, "out-of-band work done") {
				t.Fatalf("GET /count with %s: %d %q, want the loader's answer", proxy.HeaderOOBRequest, code, body)
			}

			// The core's own client.
			ctx, cancel := context.WithTimeout(context.Background(), wait)
			defer cancel()
			if err := proxy.OutOfBand(ctx, &net.UnixAddr{Name: l.sock, Net: "unix"}); err != nil {
				t.Fatalf("proxy.OutOfBand: %v; output:\n%s", err, l.out)
			}
			last := oobCount(t, l)
			if last.n("hooks") != after.n("hooks")+2 || last.n("requests") != after.n("requests")+1 {
				t.Errorf("after two more out-of-band requests: %v → %v", after, last)
			}

			// A hook that raises: 500 naming it, its traceback on stderr,
			// the other hook still runs, and the process serves on.
			oobDo(t, l, "GET", "/fail-next")
			code, body = outOfBand(t, l)
			if code != 500 || !strings.Contains(body, "count_oob: RuntimeError: hook failed on purpose") {
				t.Fatalf("out-of-band with a failing hook: %d %q, want 500 naming the error", code, body)
			}
			oobWaitOutput(t, l, "RuntimeError: hook failed on purpose")
			if !strings.Contains(l.out.String(), "Traceback (most recent call last)") {
				t.Errorf("no traceback for the failing hook; output:\n%s", l.out)
			}
			end := oobCount(t, l)
			if end.n("hooks") != last.n("hooks")+1 || end.n("hooks2") != last.n("hooks2")+1 {
				t.Errorf("after a failing hook: %v → %v, want both hooks run", last, end)
			}
			code, body = outOfBand(t, l)
			if code != 200 {
				t.Errorf("out-of-band after a failure: %d %q", code, body)
			}
			oobAlive(t, l)
		})
	}
}

func TestWSGIOwnFerryModule(t *testing.T) {
	l := startReady(t, filepath.Join(oobFixture("wsgi"), "shadow"))
	if code, body, _ := oobDo(t, l, "GET", "/"); code != 200 || body != "the app's own ferry" {
		t.Fatalf("GET /: %d %q: import ferry did not give the app's module", code, body)
	}
	if !strings.Contains(l.out.String(), "has its own 'ferry' module") {
		t.Errorf("nothing on stderr about the app's own ferry module; output:\n%s", l.out)
	}
	if code, body := outOfBand(t, l); code != 200 || !strings.Contains(body, "gc.collect()") {
		t.Errorf("out-of-band: %d %q, want 200 after gc.collect()", code, body)
	}
}

func TestWSGIAskForOutOfBand(t *testing.T) {
	l := startReady(t, oobFixture("wsgi"))
	for path, header := range map[string]string{"/ask": proxy.HeaderOOBWork, "/ask-passenger": "!~Request-OOB-Work"} {
		code, _, h := oobDo(t, l, "GET", path)
		if code != 200 || h.Get(header) != "true" {
			t.Errorf("GET %s: %d, %s %q; want 200 with it true", path, code, header, h.Get(header))
		}
	}
}

func TestWSGISigquitBacktrace(t *testing.T) {
	for _, v := range wsgiOOBVariants {
		t.Run(v.name, func(t *testing.T) {
			l := v.start(t, oobFixture("wsgi"))
			release := filepath.Join(t.TempDir(), "release")
			c := l.dial()
			c.send("GET", "/sleep?release="+release, nil, nil)
			oobWaitOutput(t, l, "oob fixture: asleep")

			if err := syscall.Kill(oobPID(l), syscall.SIGQUIT); err != nil {
				t.Fatal(err)
			}
			// faulthandler: "  File "…/passenger_wsgi.py", line N in stuck_in_sleep"
			oobWaitOutput(t, l, " in stuck_in_sleep")
			if out := l.out.String(); !strings.Contains(out, "(most recent call first)") {
				t.Errorf("no thread stacks in the output:\n%s", out)
			}
			oobAlive(t, l)
			if v.name == "threads" {
				// The other thread serves while one is stuck.
				oobCount(t, l)
			}

			if err := os.WriteFile(release, nil, 0o644); err != nil {
				t.Fatal(err)
			}
			resp := c.head("GET")
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 || string(body) != "awake" {
				t.Fatalf("GET /sleep after SIGQUIT: %d %q", resp.StatusCode, body)
			}
			oobCount(t, l)
			oobAlive(t, l)
		})
	}
}

// ------------------------------------------------------------------ ASGI ---

func TestASGIOutOfBand(t *testing.T) {
	l := startASGI(t, oobFixture("asgi"))
	before := oobCount(t, l)

	code, body := outOfBand(t, l)
	if code != 200 || !strings.Contains(body, "2 hooks") {
		t.Fatalf("out-of-band: %d %q, want 200 naming 2 hooks; output:\n%s", code, body, l.out)
	}
	after := oobCount(t, l)
	if after.n("requests") != before.n("requests")+1 {
		t.Errorf("requests %d → %d: the out-of-band request reached the app", before.n("requests"), after.n("requests"))
	}
	if after.n("hooks") != before.n("hooks")+1 || after.n("async_hooks") != before.n("async_hooks")+1 {
		t.Errorf("hooks %v → %v, want the plain and the async hook run once each", before, after)
	}

	code, body, _ = oobDo(t, l, "GET", "/count", proxy.HeaderOOBRequest+": 1")
	if code != 200 || !strings.HasPrefix(body, "out-of-band work done") {
		t.Fatalf("GET /count with %s: %d %q, want the runner's answer", proxy.HeaderOOBRequest, code, body)
	}
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if err := proxy.OutOfBand(ctx, &net.UnixAddr{Name: l.sock, Net: "unix"}); err != nil {
		t.Fatalf("proxy.OutOfBand: %v; output:\n%s", err, l.out)
	}
	last := oobCount(t, l)
	if last.n("async_hooks") != after.n("async_hooks")+2 || last.n("requests") != after.n("requests")+1 {
		t.Errorf("after two more out-of-band requests: %v → %v", after, last)
	}

	oobDo(t, l, "GET", "/fail-next")
	code, body = outOfBand(t, l)
	if code != 500 || !strings.Contains(body, "count_oob_async: RuntimeError: async hook failed on purpose") {
		t.Fatalf("out-of-band with a failing hook: %d %q, want 500 naming the error", code, body)
	}
	oobWaitOutput(t, l, "RuntimeError: async hook failed on purpose")
	if !strings.Contains(l.out.String(), "Traceback (most recent call last)") {
		t.Errorf("no traceback for the failing hook; output:\n%s", l.out)
	}
	end := oobCount(t, l)
	if end.n("hooks") != last.n("hooks")+1 || end.n("async_hooks") != last.n("async_hooks")+1 {
		t.Errorf("after a failing hook: %v → %v", last, end)
	}
	if code, body := outOfBand(t, l); code != 200 {
		t.Errorf("out-of-band after a failure: %d %q", code, body)
	}
	oobAlive(t, l)
}

func TestASGIOwnFerryModule(t *testing.T) {
	l := startASGI(t, filepath.Join(oobFixture("asgi"), "shadow"))
	if code, body, _ := oobDo(t, l, "GET", "/"); code != 200 || body != "the app's own ferry" {
		t.Fatalf("GET /: %d %q: import ferry did not give the app's module", code, body)
	}
	if !strings.Contains(l.out.String(), "has its own 'ferry' module") {
		t.Errorf("nothing on stderr about the app's own ferry module; output:\n%s", l.out)
	}
	if code, body := outOfBand(t, l); code != 200 || !strings.Contains(body, "gc.collect()") {
		t.Errorf("out-of-band: %d %q, want 200 after gc.collect()", code, body)
	}
}

func TestASGIAskForOutOfBand(t *testing.T) {
	l := startASGI(t, oobFixture("asgi"))
	for path, header := range map[string]string{"/ask": proxy.HeaderOOBWork, "/ask-passenger": "!~Request-OOB-Work"} {
		code, _, h := oobDo(t, l, "GET", path)
		if code != 200 || h.Get(header) != "true" {
			t.Errorf("GET %s: %d, %s %q; want 200 with it true", path, code, header, h.Get(header))
		}
	}
}

// A request awaiting forever: the tasks' stacks name the coroutine.
func TestASGISigquitAwaiting(t *testing.T) {
	l := startASGI(t, oobFixture("asgi"))
	c := l.dial()
	c.send("GET", "/sleep", nil, nil)
	oobWaitOutput(t, l, "oob fixture: asleep")

	if err := syscall.Kill(oobPID(l), syscall.SIGQUIT); err != nil {
		t.Fatal(err)
	}
	oobWaitOutput(t, l, "[ferry asgi] SIGQUIT: the stacks of")
	// StackSummary: "  File "…/asgi.py", line N, in stuck_in_sleep"
	oobWaitOutput(t, l, ", in stuck_in_sleep")
	if out := l.out.String(); !strings.Contains(out, "(most recent call first)") {
		t.Errorf("no thread stacks (faulthandler) in the output:\n%s", out)
	}
	oobAlive(t, l)

	if code, body, _ := oobDo(t, l, "GET", "/release"); code != 200 {
		t.Fatalf("GET /release: %d %q", code, body)
	}
	resp := c.head("GET")
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(body) != "awake" {
		t.Fatalf("GET /sleep after SIGQUIT: %d %q", resp.StatusCode, body)
	}
	oobAlive(t, l)
}

// Code blocking the event loop: faulthandler names it at once; the tasks'
// stacks follow once the loop is free.
func TestASGISigquitBlocking(t *testing.T) {
	l := startASGI(t, oobFixture("asgi"))
	release := filepath.Join(t.TempDir(), "release")
	c := l.dial()
	c.send("GET", "/block?release="+release, nil, nil)
	oobWaitOutput(t, l, "oob fixture: blocking")

	if err := syscall.Kill(oobPID(l), syscall.SIGQUIT); err != nil {
		t.Fatal(err)
	}
	// faulthandler: "  File "…/asgi.py", line N in blocked_in_loop"
	oobWaitOutput(t, l, " in blocked_in_loop")
	oobAlive(t, l)
	if err := os.WriteFile(release, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	resp := c.head("GET")
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(body) != "unblocked" {
		t.Fatalf("GET /block after SIGQUIT: %d %q", resp.StatusCode, body)
	}
	oobWaitOutput(t, l, "[ferry asgi] SIGQUIT: the stacks of")
	oobCount(t, l)
	oobAlive(t, l)
}

// ------------------------------------------------------------------ Node ---

func TestNodeOutOfBand(t *testing.T) {
	l := nodeReady(t, oobFixture("node"))
	before := oobCount(t, l)

	code, body := outOfBand(t, l)
	if code != 200 || !strings.Contains(body, "2 listeners") {
		t.Fatalf("out-of-band: %d %q, want 200 naming 2 listeners; output:\n%s", code, body, l.out)
	}
	after := oobCount(t, l)
	if after.n("requests") != before.n("requests")+1 {
		t.Errorf("requests %d → %d: the out-of-band request reached the app", before.n("requests"), after.n("requests"))
	}
	if after.n("hooks") != before.n("hooks")+1 || after.n("asyncHooks") != before.n("asyncHooks")+1 {
		t.Errorf("listeners %v → %v, want the plain and the async listener run once each", before, after)
	}

	code, body, _ = oobDo(t, l, "GET", "/count", proxy.HeaderOOBRequest+": 1")
	if code != 200 || !strings.HasPrefix(body, "out-of-band work done") {
		t.Fatalf("GET /count with %s: %d %q, want the loader's answer", proxy.HeaderOOBRequest, code, body)
	}
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if err := proxy.OutOfBand(ctx, &net.UnixAddr{Name: l.sock, Net: "unix"}); err != nil {
		t.Fatalf("proxy.OutOfBand: %v; output:\n%s", err, l.out)
	}
	last := oobCount(t, l)
	if last.n("asyncHooks") != after.n("asyncHooks")+2 || last.n("requests") != after.n("requests")+1 {
		t.Errorf("after two more out-of-band requests: %v → %v", after, last)
	}

	oobDo(t, l, "GET", "/fail-next")
	code, body = outOfBand(t, l)
	if code != 500 || !strings.Contains(body, "countOOBAsync: Error: async listener failed on purpose") {
		t.Fatalf("out-of-band with a failing listener: %d %q, want 500 naming the error", code, body)
	}
	oobWaitOutput(t, l, "error in out-of-band listener countOOBAsync")
	if !strings.Contains(l.out.String(), "    at ") {
		t.Errorf("no stack for the failing listener; output:\n%s", l.out)
	}
	end := oobCount(t, l)
	if end.n("hooks") != last.n("hooks")+1 || end.n("asyncHooks") != last.n("asyncHooks")+1 {
		t.Errorf("after a failing listener: %v → %v", last, end)
	}
	if code, body := outOfBand(t, l); code != 200 {
		t.Errorf("out-of-band after a failure: %d %q", code, body)
	}
	oobAlive(t, l)
}

// Without a listener and without --expose-gc, a Node app's out-of-band
// work is nothing, and still 200 (with global.gc it is TestLoaderContract).
func TestNodeOutOfBandNothing(t *testing.T) {
	l := nodeReady(t, nodeFixture("echo"))
	if code, body := outOfBand(t, l); code != 200 || !strings.Contains(body, "nothing") {
		t.Fatalf("out-of-band: %d %q, want 200 with nothing done", code, body)
	}
}

func TestNodeAskForOutOfBand(t *testing.T) {
	l := nodeReady(t, oobFixture("node"))
	for path, header := range map[string]string{"/ask": proxy.HeaderOOBWork, "/ask-passenger": "!~Request-OOB-Work"} {
		code, _, h := oobDo(t, l, "GET", path)
		if code != 200 || h.Get(header) != "true" {
			t.Errorf("GET %s: %d, %s %q; want 200 with it true", path, code, header, h.Get(header))
		}
	}
}

// A request waiting on a timer-like promise: the event loop is free, the
// SIGQUIT listener writes at once, and the process serves on.
func TestNodeSigquitAwaiting(t *testing.T) {
	l := nodeReady(t, oobFixture("node"))
	c := l.dial()
	c.send("GET", "/sleep", nil, nil)
	oobWaitOutput(t, l, "oob fixture: asleep")

	if err := syscall.Kill(oobPID(l), syscall.SIGQUIT); err != nil {
		t.Fatal(err)
	}
	oobWaitOutput(t, l, "[ferry node] SIGQUIT")
	oobWaitOutput(t, l, "active resources: ")
	oobAlive(t, l)
	if code, body, _ := oobDo(t, l, "GET", "/release"); code != 200 {
		t.Fatalf("GET /release: %d %q", code, body)
	}
	resp := c.head("GET")
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(body) != "awake" {
		t.Fatalf("GET /sleep after SIGQUIT: %d %q", resp.StatusCode, body)
	}
	oobAlive(t, l)
}

// A busy loop: JavaScript cannot be interrupted, but SIGQUIT no longer
// kills the process; the listener writes once the loop is free.
func TestNodeSigquitBusy(t *testing.T) {
	l := nodeReady(t, oobFixture("node"))
	release := filepath.Join(t.TempDir(), "release")
	c := l.dial()
	c.send("GET", "/busy?release="+release, nil, nil)
	oobWaitOutput(t, l, "oob fixture: busy")

	if err := syscall.Kill(oobPID(l), syscall.SIGQUIT); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(release, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	resp := c.head("GET")
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(body) != "not busy any more" {
		t.Fatalf("GET /busy after SIGQUIT: %d %q", resp.StatusCode, body)
	}
	oobWaitOutput(t, l, "[ferry node] SIGQUIT")
	oobCount(t, l)
	oobAlive(t, l)
}
