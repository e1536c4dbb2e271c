//go:build unix

package loaders

// wsgi.py with threads (FERRY_THREADS) and as a smart-spawning preloader
// (FERRY_SPAWN_METHOD=smart), see docs/architecture.md.

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// threadApp is an app written for the thread tests: /barrier?n=N answers
// only once N requests are inside the app at the same time, which proves
// concurrency without timing anything.
const threadApp = `
import os, threading
from urllib.parse import parse_qs

_lock = threading.Lock()
_barriers = {}

def application(environ, start_response):
    path = environ["PATH_INFO"]
    if path == "/barrier":
        q = parse_qs(environ["QUERY_STRING"])
        n, key = int(q["n"][0]), q["key"][0]
        with _lock:
            b = _barriers.setdefault(key, threading.Barrier(n, timeout=60))
        b.wait()
        body = str(threading.get_ident()).encode()
    elif path == "/multithread":
        body = repr(environ["wsgi.multithread"]).encode()
    else:
        body = b"ok"
    start_response("200 OK", [("Content-Length", str(len(body)))])
    return [body]
`

func writeWSGIApp(t *testing.T, src string) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "passenger_wsgi.py"), []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// concurrently runs f(0..n-1) in goroutines and waits for all of them.
func runParallel(n int, f func(i int)) {
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			f(i)
		}()
	}
	wg.Wait()
}

// rawGet is a GET on its own connection that reports instead of failing
// the test, for use from goroutines.
func getOnce(sock, target string) (int, string, error) {
	c, err := net.Dial("unix", sock)
	if err != nil {
		return 0, "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(wait))
	if _, err := fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: app.test\r\n\r\n", target); err != nil {
		return 0, "", err
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), &http.Request{Method: "GET"})
	if err != nil {
		return 0, "", err
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp.StatusCode, string(body), err
}

func TestThreadsConcurrency(t *testing.T) {
	l := startReady(t, fixture("echo"), "FERRY_THREADS=4")
	if l.hs.Concurrency != 4 {
		t.Fatalf("handshake %q, want concurrency 4", l.rawHS)
	}
	start := time.Now()
	errs := make([]error, 4)
	runParallel(4, func(i int) {
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
	// One at a time, four one-second sleeps cannot take less than four seconds.
	if d := time.Since(start); d >= 4*time.Second {
		t.Errorf("four concurrent /sleep?s=1 took %v: not served concurrently", d)
	}
	var env map[string]any
	if err := json.Unmarshal([]byte(l.dial().get("/env", 200)), &env); err != nil {
		t.Fatal(err)
	}
	if env["wsgi.multithread"] != true {
		t.Errorf("wsgi.multithread = %v with threads", env["wsgi.multithread"])
	}
}

func TestThreadsBarrier(t *testing.T) {
	l := startReady(t, writeWSGIApp(t, threadApp), "FERRY_THREADS=3")
	if l.hs.Concurrency != 3 {
		t.Fatalf("handshake %q, want concurrency 3", l.rawHS)
	}
	for round := range 3 {
		names := make([]string, 3)
		runParallel(3, func(i int) {
			code, body, err := getOnce(l.sock, "/barrier?n=3&key="+strconv.Itoa(round))
			if err != nil || code != 200 {
				names[i] = fmt.Sprintf("error: %d %v %q", code, err, body)
				return
			}
			names[i] = body
		})
		seen := map[string]bool{}
		for _, n := range names {
			if strings.HasPrefix(n, "error") || seen[n] {
				t.Fatalf("round %d: three requests in three threads at once: %q", round, names)
			}
			seen[n] = true
		}
	}
	if got := l.dial().get("/multithread", 200); got != "True" {
		t.Errorf("wsgi.multithread = %s", got)
	}
}

// With every thread holding an idle kept-alive connection, a new connection
// is still served: one idle connection gives its slot up.
func TestThreadsIdleConnections(t *testing.T) {
	l := startReady(t, fixture("echo"), "FERRY_THREADS=2")
	a, b := l.dial(), l.dial()
	a.get("/", 200)
	b.get("/", 200)
	c := l.dial()
	for range 10 {
		c.get("/pid", 200)
	}
	// One of a and b was closed, the other one still works.
	closed := 0
	for _, old := range []*client{a, b} {
		old.c.SetDeadline(time.Now().Add(wait))
		if _, err := old.c.Write([]byte("GET / HTTP/1.1\r\nHost: app.test\r\n\r\n")); err != nil {
			closed++
			continue
		}
		resp, err := http.ReadResponse(old.br, &http.Request{Method: "GET"})
		if err != nil {
			closed++
			continue
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	if closed != 1 {
		t.Errorf("%d idle connections closed for the new one, want 1", closed)
	}
}

func TestThreadsSIGTERM(t *testing.T) {
	l := startReady(t, fixture("echo"), "FERRY_THREADS=3")
	idle := l.dial()
	idle.get("/", 200)
	busy := l.dial()
	busy.send("GET", "/stream?n=3&delay=0.2", nil, nil)
	resp := busy.head("GET")
	first := make([]byte, len("chunk 0\n"))
	if _, err := io.ReadFull(resp.Body, first); err != nil {
		t.Fatal(err)
	}
	if err := l.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	rest, err := io.ReadAll(resp.Body)
	if err != nil || string(first)+string(rest) != "chunk 0\nchunk 1\nchunk 2\n" {
		t.Errorf("in-flight request after SIGTERM: %q %q, %v", first, rest, err)
	}
	if code := l.exitCode(); code != 0 {
		t.Errorf("exit code %d, want 0; output:\n%s", code, l.out)
	}
	idle.c.SetDeadline(time.Now().Add(wait))
	if _, err := idle.br.ReadByte(); err != io.EOF {
		t.Errorf("idle connection after SIGTERM: %v, want EOF", err)
	}
	if _, err := os.Stat(l.sock); err == nil {
		t.Errorf("socket left behind")
	}
}

func TestThreadsBadCount(t *testing.T) {
	l := startLoader(t, fixture("echo"), "FERRY_THREADS=lots")
	if l.hs.Status != "error" || !strings.Contains(l.hs.Summary, "FERRY_THREADS") {
		t.Fatalf("handshake %q, want an error naming FERRY_THREADS", l.rawHS)
	}
}

// ------------------------------------------------------------- smart ---

// startPreloader starts wsgi.py as a preloader and checks its handshake.
func startPreloader(t *testing.T, appDir string, env ...string) *loader {
	t.Helper()
	l := startLoader(t, appDir, append([]string{"FERRY_SPAWN_METHOD=smart"}, env...)...)
	var hs map[string]any
	if err := json.Unmarshal([]byte(l.rawHS), &hs); err != nil {
		t.Fatal(err)
	}
	if hs["status"] != "ready" || hs["preloader"] != true {
		t.Fatalf("preloader handshake %q, want ready with preloader true; output:\n%s", l.rawHS, l.out)
	}
	return l
}

// readyWorker spawns a worker that must be ready.
func readyWorker(t *testing.T, pre *loader) *loader {
	t.Helper()
	w := pre.spawnWorker()
	if w.hs.Status != "ready" {
		t.Fatalf("worker handshake %q; preloader output:\n%s\nworker output:\n%s", w.rawHS, pre.out, w.out)
	}
	return w
}

// eventually waits until cond holds; for output that a goroutine copies
// from a pipe, which gives no other signal.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not after %v", what, wait)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestSmartHandshakeError(t *testing.T) {
	l := startLoader(t, fixture("broken"), "FERRY_SPAWN_METHOD=smart")
	if l.hs.Status != "error" || l.hs.Summary != "ImportError: broken fixture: no module named frobnicate" {
		t.Fatalf("handshake %q, want the import error", l.rawHS)
	}
	if code := l.exitCode(); code != 1 {
		t.Errorf("exit code %d, want 1", code)
	}
}

func TestSmartWorkers(t *testing.T) {
	pre := startPreloader(t, fixture("echo"))
	if _, err := os.Stat(pre.sock); err != nil {
		t.Fatalf("control socket: %v", err)
	}
	w1 := readyWorker(t, pre)
	w2 := readyWorker(t, pre)
	prePID := pre.cmd.Process.Pid
	if w1.pid == w2.pid || w1.pid == prePID || w2.pid == prePID {
		t.Fatalf("pids: preloader %d, workers %d and %d", prePID, w1.pid, w2.pid)
	}
	for _, w := range []*loader{w1, w2} {
		if w.hs.Socket != w.sock || w.hs.Concurrency != 1 {
			t.Errorf("worker handshake %q, want ready on %s with concurrency 1", w.rawHS, w.sock)
		}
		c := w.dial()
		if got := c.get("/pid", 200); got != strconv.Itoa(w.pid) {
			t.Errorf("worker %d: /pid = %s", w.pid, got)
		}
		if got := c.get("/", 200); got != "hello world" {
			t.Errorf("worker %d: / = %q", w.pid, got)
		}
		e := c.echo("POST", "/echo?x=1", []string{"X-Ferry-Client-Addr: 192.0.2.1:1234"}, []byte("body"))
		if e.PID != w.pid || e.QueryString != "x=1" || e.RemoteAddr != "192.0.2.1" || e.BodyLen != 4 {
			t.Errorf("worker %d: /echo %+v", w.pid, e)
		}
		// Its own session and process group, so the core can signal the group.
		pgid, err := syscall.Getpgid(w.pid)
		if err != nil || pgid != w.pid {
			t.Errorf("worker %d: process group %d (%v), want its own", w.pid, pgid, err)
		}
		if sid, err := getsid(w.pid); err != nil || sid != w.pid {
			t.Errorf("worker %d: session %d (%v), want its own", w.pid, sid, err)
		}
	}

	// Output goes to the worker's own pipes, not the preloader's.
	w1.dial().get("/print", 200)
	waitUntil(t, "worker output", func() bool {
		out := w1.out.String()
		return strings.Contains(out, "hello stdout from app") && strings.Contains(out, "hello stderr from app")
	})
	if out := w2.out.String(); strings.Contains(out, "hello") {
		t.Errorf("the other worker's pipe has %q", out)
	}
	// An app error's traceback, too.
	resp, _ := w2.dial().do("GET", "/error", nil, nil)
	if resp.StatusCode != 500 {
		t.Errorf("/error: %d", resp.StatusCode)
	}
	waitUntil(t, "worker traceback", func() bool { return strings.Contains(w2.out.String(), "RuntimeError: boom from app") })
	if out := pre.out.String(); strings.Contains(out, "hello stdout") || strings.Contains(out, "boom") {
		t.Errorf("worker output reached the preloader's pipe:\n%s", out)
	}
	// Python 3.12+ warns about fork() in a process with threads (the
	// lifeline watcher): the preloader knows, and keeps quiet.
	if out := pre.out.String(); strings.Contains(out, "Warning") {
		t.Errorf("preloader output:\n%s", out)
	}

	// SIGTERM to a worker: it exits and the preloader reaps it.
	if err := syscall.Kill(w2.pid, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	w2.gone()
	waitUntil(t, "worker reaped", func() bool {
		_, err := os.Stat(fmt.Sprintf("/proc/%d", w2.pid))
		return err != nil
	})
	if _, err := os.Stat(w2.sock); err == nil {
		t.Errorf("worker socket left behind")
	}

	// The preloader is still responsive.
	w3 := readyWorker(t, pre)
	if got := w3.dial().get("/pid", 200); got != strconv.Itoa(w3.pid) {
		t.Errorf("third worker: /pid %s", got)
	}
}

func getsid(pid int) (int, error) {
	sid, _, errno := syscall.RawSyscall(syscall.SYS_GETSID, uintptr(pid), 0, 0)
	if errno != 0 {
		return 0, errno
	}
	return int(sid), nil
}

func TestSmartLifeline(t *testing.T) {
	pre := startPreloader(t, fixture("echo"))
	w1 := readyWorker(t, pre)
	w2 := readyWorker(t, pre)
	c := w1.dial()
	c.get("/", 200)
	c.send("GET", "/sleep?s=600", nil, nil) // busy: must exit all the same
	pre.lifeline.Close()
	if code := pre.exitCode(); code != 0 {
		t.Errorf("preloader exit code %d, want 0", code)
	}
	w1.gone()
	w2.gone()
}

func TestSmartPreloaderDeath(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGKILL, syscall.SIGTERM} {
		t.Run(sig.String(), func(t *testing.T) {
			pre := startPreloader(t, fixture("echo"))
			w := readyWorker(t, pre)
			c := w.dial()
			c.get("/", 200)
			if err := pre.cmd.Process.Signal(sig); err != nil {
				t.Fatal(err)
			}
			code := pre.exitCode()
			if sig == syscall.SIGTERM && code != 0 {
				t.Errorf("preloader exit code %d after SIGTERM, want 0", code)
			}
			if sig == syscall.SIGTERM {
				if _, err := os.Stat(pre.sock); err == nil {
					t.Errorf("control socket left behind")
				}
			}
			// The worker does not notice.
			for range 3 {
				if got := c.get("/pid", 200); got != strconv.Itoa(w.pid) {
					t.Fatalf("/pid %s, want %d", got, w.pid)
				}
			}
			if got := w.dial().get("/", 200); got != "hello world" {
				t.Errorf("new connection: %q", got)
			}
		})
	}
}

func TestSmartThreads(t *testing.T) {
	pre := startPreloader(t, fixture("echo"), "FERRY_THREADS=4")
	w := readyWorker(t, pre)
	if w.hs.Concurrency != 4 {
		t.Fatalf("worker handshake %q, want concurrency 4", w.rawHS)
	}
	start := time.Now()
	errs := make([]error, 4)
	runParallel(4, func(i int) {
		code, body, err := getOnce(w.sock, "/sleep?s=1")
		if err == nil && (code != 200 || body != strconv.Itoa(w.pid)) {
			err = fmt.Errorf("%d %q", code, body)
		}
		errs[i] = err
	})
	for i, err := range errs {
		if err != nil {
			t.Errorf("request %d: %v", i, err)
		}
	}
	if d := time.Since(start); d >= 4*time.Second {
		t.Errorf("four concurrent /sleep?s=1 took %v", d)
	}
}

// smartApp shows what the fork should have done.
const smartApp = `
import gc, os, random, sys

print("preloading in", os.getpid(), flush=True)
random.seed(42)  # every worker must reseed all the same

def application(environ, start_response):
    path = environ["PATH_INFO"]
    if path == "/random":
        body = repr(random.random())
    elif path == "/frozen":
        body = str(gc.get_freeze_count())
    elif path == "/print":
        sys.stdout.write("no newline, no flush")
        body = "printed"
    else:
        body = "ok"
    body = body.encode()
    start_response("200 OK", [("Content-Length", str(len(body)))])
    return [body]
`

func TestSmartFork(t *testing.T) {
	pre := startPreloader(t, writeWSGIApp(t, smartApp))
	w1 := readyWorker(t, pre)
	w2 := readyWorker(t, pre)
	if !strings.Contains(pre.out.String(), "preloading in "+strconv.Itoa(pre.cmd.Process.Pid)) {
		t.Errorf("the app was not loaded by the preloader:\n%s", pre.out)
	}
	if strings.Contains(w1.out.String(), "preloading") {
		t.Errorf("the worker loaded the app again:\n%s", w1.out)
	}
	r1, r2 := w1.dial().get("/random", 200), w2.dial().get("/random", 200)
	if r1 == r2 {
		t.Errorf("two workers drew the same random number %s: not reseeded", r1)
	}
	if n, _ := strconv.Atoi(w1.dial().get("/frozen", 200)); n == 0 {
		t.Errorf("gc.get_freeze_count() = 0 in the worker: gc.freeze() was not called")
	}
	// sys.stdout in the worker is unbuffered.
	w1.dial().get("/print", 200)
	waitUntil(t, "unbuffered output", func() bool { return strings.Contains(w1.out.String(), "no newline, no flush") })
}

// smartSpawnRaw sends one raw command line with fresh stdout, stderr and
// status pipes attached, as the core would, and returns the status line.
func smartSpawnRaw(t *testing.T, pre *loader, line string, nfds int) string {
	t.Helper()
	outR, outW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer outR.Close()
	statusR, statusW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer statusR.Close()
	conn, err := net.DialUnix("unix", nil, &net.UnixAddr{Name: pre.sock, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	fds := []int{int(outW.Fd()), int(outW.Fd()), int(statusW.Fd())}[:nfds]
	if _, _, err := conn.WriteMsgUnix([]byte(line), syscall.UnixRights(fds...), nil); err != nil {
		t.Fatal(err)
	}
	conn.Close()
	outW.Close()
	statusW.Close()
	if nfds < 3 {
		return ""
	}
	statusR.SetDeadline(time.Now().Add(wait))
	b, err := bufio.NewReader(statusR).ReadString('\n')
	if err != nil {
		t.Fatalf("status line: %q, %v", b, err)
	}
	return b
}

func TestSmartSpawnErrors(t *testing.T) {
	pre := startPreloader(t, fixture("echo"))
	// A socket the worker cannot bind: an error line from the worker.
	bad := filepath.Join(filepath.Dir(pre.sock), "no-such-dir", "sock")
	line := smartSpawnRaw(t, pre, fmt.Sprintf(`{"command":"spawn","socket":%q}`+"\n", bad), 3)
	var hs handshake
	if err := json.Unmarshal([]byte(line), &hs); err != nil || hs.Status != "error" || !strings.Contains(hs.Summary, "FileNotFoundError") {
		t.Errorf("worker with an unusable socket: %q", line)
	}
	// Commands the preloader does not understand get an error line.
	for _, cmd := range []string{`{"command":"fly"}`, `not json`, `{"command":"spawn"}`} {
		line := smartSpawnRaw(t, pre, cmd+"\n", 3)
		if err := json.Unmarshal([]byte(line), &hs); err != nil || hs.Status != "error" || !strings.HasPrefix(hs.Summary, "preloader: ") {
			t.Errorf("command %s: %q", cmd, line)
		}
	}
	// Too few fds: nothing to answer on, but the preloader goes on.
	smartSpawnRaw(t, pre, `{"command":"spawn","socket":"/nowhere"}`+"\n", 2)
	w := readyWorker(t, pre)
	w.dial().get("/", 200)
}

// The preloader reads the spawn command without json for the one-level
// object of strings the core sends, and with json for anything else: any
// valid JSON object does.
func TestSmartSpawnCommandForms(t *testing.T) {
	pre := startPreloader(t, fixture("echo"))
	dir := filepath.Dir(pre.sock)
	for i, form := range []string{
		`{ "socket" : "%s" , "command" : "spawn" }`,
		`{"command":"sp\u0061wn","socket":"%s","extra":[1, {"a": null}]}`,
	} {
		sock := filepath.Join(dir, fmt.Sprintf("w%dé", i))
		esc := strings.ReplaceAll(sock, "é", `\u00e9`)
		line := smartSpawnRaw(t, pre, fmt.Sprintf(form, esc)+"\n", 3)
		var hs handshake
		if err := json.Unmarshal([]byte(line), &hs); err != nil || hs.Status != "ready" || hs.Socket != sock {
			t.Fatalf("command %s: %q", form, line)
		}
		w := &loader{tb: t, sock: sock}
		w.dial().get("/", 200)
	}
}

// ------------------------------------------------------------- Flask ---

func flaskAvailable(t *testing.T) {
	t.Helper()
	if err := runQuiet("/usr/bin/python3", "-c", "import flask"); err != nil {
		t.Skipf("skipping: python3-flask is not installed (apt-get install python3-flask): %v", err)
	}
}

func runQuiet(name string, args ...string) error {
	p, err := os.StartProcess(name, append([]string{name}, args...), &os.ProcAttr{Files: []*os.File{nil, nil, nil}})
	if err != nil {
		return err
	}
	st, err := p.Wait()
	if err != nil {
		return err
	}
	if !st.Success() {
		return fmt.Errorf("%s %v: %s", name, args, st)
	}
	return nil
}

// checkFlask exercises the Flask fixture through one connection; pid is
// the process that must answer.
func checkFlask(t *testing.T, sock string, out *syncBuffer, pid int) {
	t.Helper()
	l := &loader{tb: t, sock: sock}
	c := l.dial()
	if got := c.get("/", 200); got != "hello from flask" {
		t.Errorf("GET / = %q", got)
	}
	if got := c.get("/pid", 200); got != strconv.Itoa(pid) {
		t.Errorf("/pid = %s, want %d", got, pid)
	}
	resp, body := c.do("POST", "/form", []string{"Content-Type: application/x-www-form-urlencoded"}, []byte("name=ferry+boat&x=1"))
	if resp.StatusCode != 200 || body != "hello ferry boat" {
		t.Errorf("POST /form: %d %q", resp.StatusCode, body)
	}

	var mp bytes.Buffer
	mw := multipart.NewWriter(&mp)
	fw, _ := mw.CreateFormFile("file", "big.bin")
	fw.Write(payload(3 << 20))
	mw.Close()
	resp, body = c.do("POST", "/upload", []string{"Content-Type: " + mw.FormDataContentType()}, mp.Bytes())
	var up struct {
		Filename string `json:"filename"`
		Size     int    `json:"size"`
	}
	if resp.StatusCode != 200 || json.Unmarshal([]byte(body), &up) != nil || up.Size != 3<<20 || up.Filename != "big.bin" {
		t.Errorf("POST /upload: %d %q", resp.StatusCode, body)
	}

	resp, body = c.do("GET", "/error", nil, nil)
	if resp.StatusCode != 500 || !strings.Contains(body, "Internal Server Error") {
		t.Errorf("/error: %d %q", resp.StatusCode, body)
	}
	if got := c.get("/", 200); got != "hello from flask" {
		t.Errorf("after /error: %q", got)
	}
	waitUntil(t, "Flask's traceback", func() bool { return strings.Contains(out.String(), "RuntimeError: boom from flask") })

	// Last: the app then sleeps a minute, blocking a single-threaded process.
	c.send("GET", "/stream?n=3&delay=60", nil, nil)
	resp = c.head("GET")
	if len(resp.TransferEncoding) != 1 || resp.TransferEncoding[0] != "chunked" {
		t.Errorf("/stream: Transfer-Encoding %v", resp.TransferEncoding)
	}
	first := make([]byte, len("chunk 0 of /stream\n"))
	if _, err := io.ReadFull(resp.Body, first); err != nil || string(first) != "chunk 0 of /stream\n" {
		t.Errorf("/stream first chunk %q, %v", first, err)
	}
}

func TestFlaskThreads(t *testing.T) {
	flaskAvailable(t)
	l := startReady(t, fixture("flask"), "FERRY_THREADS=4")
	if l.hs.Concurrency != 4 {
		t.Fatalf("handshake %q", l.rawHS)
	}
	start := time.Now()
	errs := make([]error, 4)
	runParallel(4, func(i int) {
		code, _, err := getOnce(l.sock, "/sleep?s=1")
		if err == nil && code != 200 {
			err = fmt.Errorf("status %d", code)
		}
		errs[i] = err
	})
	for i, err := range errs {
		if err != nil {
			t.Errorf("request %d: %v", i, err)
		}
	}
	if d := time.Since(start); d >= 4*time.Second {
		t.Errorf("four concurrent /sleep?s=1 took %v", d)
	}
	checkFlask(t, l.sock, l.out, l.cmd.Process.Pid)
}

func TestFlaskSmart(t *testing.T) {
	flaskAvailable(t)
	pre := startPreloader(t, fixture("flask"))
	w1 := readyWorker(t, pre)
	w2 := readyWorker(t, pre)
	checkFlask(t, w1.sock, w1.out, w1.pid)
	checkFlask(t, w2.sock, w2.out, w2.pid)
}
