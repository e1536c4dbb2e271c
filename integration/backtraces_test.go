package integration

import (
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ferry-server/ferry/internal/admin"
)

// Apps whose /hold requests wait in a function with a recognisable name
// until the file "release" exists in the app's directory, with a second
// thread (a worker thread for Node) busy in another.
var backtraceApps = []struct {
	name, appType string
	args          []string
	files         map[string]string
	// want are lines the dump must have while /hold waits.
	want []string
}{
	{
		name: "wsgi", appType: "wsgi", // smart spawning: a forked worker
		files: map[string]string{"passenger_wsgi.py": `import os, threading, time

RELEASE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "release")

def spin_in_thread():
    while True:
        time.sleep(0.05)

def hold_here():
    deadline = time.time() + 300
    while not os.path.exists(RELEASE) and time.time() < deadline:
        time.sleep(0.02)

def application(environ, start_response):
    if environ.get("PATH_INFO") == "/hold":
        # Started here: threads started at load are the preloader's.
        threading.Thread(target=spin_in_thread, name="test-spinner", daemon=True).start()
        hold_here()
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok"]
`},
		want: []string{"in hold_here", "in spin_in_thread", "test-spinner", "Thread names:"},
	},
	{
		name: "asgi", appType: "asgi",
		files: map[string]string{"asgi.py": `import asyncio, os, threading, time

RELEASE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "release")

def spin_in_thread():
    while True:
        time.sleep(0.05)

threading.Thread(target=spin_in_thread, name="test-spinner", daemon=True).start()

async def hold_here():
    deadline = time.time() + 300
    while not os.path.exists(RELEASE) and time.time() < deadline:
        await asyncio.sleep(0.02)

async def application(scope, receive, send):
    if scope["type"] != "http":
        return
    if scope["path"] == "/hold":
        await hold_here()
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": b"ok"})
`},
		// The request is an asyncio task: its stack is in the tasks' part.
		want: []string{"in hold_here", "in spin_in_thread", "asyncio tasks:"},
	},
	{
		name: "rack", appType: "rack", // smart spawning: a forked worker
		files: map[string]string{"config.ru": `RELEASE = File.join(__dir__, "release")

def spin_in_thread
  loop { sleep 0.05 }
end
def hold_here
  deadline = Time.now + 300
  sleep 0.02 until File.exist?(RELEASE) || Time.now > deadline
end

run lambda { |env|
  if env["PATH_INFO"] == "/hold"
    # Started here: threads started at load are the preloader's.
    Thread.new { spin_in_thread }.name = "test-spinner"
    hold_here
  end
  [200, { "content-type" => "text/plain" }, ["ok"]]
}
`},
		want: []string{"in `hold_here'", "in `spin_in_thread'", "test-spinner", "(main)"},
	},
	{
		name: "node", appType: "node",
		files: map[string]string{"app.js": `const fs = require('fs');
const http = require('http');
const path = require('path');
const { Worker } = require('worker_threads');

new Worker('function spinInWorker() { let x = 0; for (;;) { x = (x + 1) % 1000003; } }\nspinInWorker();', { eval: true });

const RELEASE = path.join(__dirname, 'release');
function holdHere(res, deadline) {
  if (fs.existsSync(RELEASE) || Date.now() > deadline) return res.end('ok');
  setTimeout(holdHere, 20, res, deadline);
}

http.createServer((req, res) => {
  if (req.url === '/hold') return holdHere(res, Date.now() + 300000);
  res.end('ok');
}).listen(3000);
`},
		// One JavaScript thread: the request shows in the list of those
		// in progress; the worker thread's stack is where it spins.
		want: []string{"GET /hold for ", "at spinInWorker", "Worker thread 2 of 2"},
	},
}

// TestBacktraces asks a Ruby, two Python and a Node.js app, each with a
// request held in the app, for their backtraces with `ferry status
// --show=backtraces`, and checks that the dump shows where the request
// and the other thread are, and that the process was not stopped: the held
// request then finishes normally on the same process.
func TestBacktraces(t *testing.T) {
	apps := backtraceApps
	// The Ruby and WSGI apps again, spawned directly rather than forked.
	for _, a := range backtraceApps[:3] {
		if a.appType == "rack" || a.appType == "wsgi" {
			a.name += "-direct"
			a.args = []string{"--spawn-method", "direct"}
			apps = append(apps, a)
		}
	}
	for _, app := range apps {
		t.Run(app.name, func(t *testing.T) {
			t.Parallel()
			dir := filepath.Join(shortTempDir(t), app.name)
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			for name, body := range app.files {
				if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			f := startFerry(t, dir, append([]string{"--app-type", app.appType, "--max-pool-size", "1", "--min-instances", "1"}, app.args...)...)
			eventually(t, "a process", func() bool { return len(f.pool().Apps[0].Processes) == 1 })
			pid := f.pids()[0]

			held := make(chan int, 1)
			go func() {
				resp, err := client.Get(f.URL + "/hold")
				if err != nil {
					t.Errorf("GET /hold: %v", err)
					held <- 0
					return
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				held <- resp.StatusCode
			}()
			released := false
			release := func() {
				if !released {
					released = true
					os.WriteFile(filepath.Join(dir, "release"), nil, 0o644)
				}
			}
			defer release()
			eventually(t, "the held request in the process", func() bool {
				p := f.pool().Apps[0].Processes
				return len(p) == 1 && p[0].Sessions == 1
			})

			// Text, for every process (here one). The request reaches
			// hold_here (and starts the other thread) a moment after the
			// pool counts it: ask until the dump shows it.
			var out string
			for deadline := time.Now().Add(time.Minute); ; {
				o, stderr, err := ferryCtx(t, time.Minute, "status", "--show=backtraces", "--instance", f.Instance)
				if err != nil {
					t.Fatalf("ferry status --show=backtraces: %v\n%s%s", err, o, stderr)
				}
				out = o
				missing := slices.ContainsFunc(app.want, func(w string) bool { return !strings.Contains(o, w) })
				if !missing {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("the backtraces lack some of %q:\n%s", app.want, o)
				}
				time.Sleep(100 * time.Millisecond)
			}
			t.Logf("ferry status --show=backtraces:\n%s", out)
			if !strings.Contains(out, "Application: "+app.name+", pid "+strconv.Itoa(pid)) {
				t.Errorf("no section for pid %d", pid)
			}
			if strings.Contains(out, "no backtraces") || strings.Contains(out, "incomplete") {
				t.Errorf("the dump is missing or incomplete")
			}

			// JSON, for the one pid, twice: a process answers every time.
			for range 2 {
				o, stderr, err := ferryCtx(t, time.Minute, "status", "--show=backtraces", "--pid", strconv.Itoa(pid), "--json", "--instance", f.Instance)
				if err != nil {
					t.Fatalf("ferry status --show=backtraces --pid: %v\n%s%s", err, o, stderr)
				}
				var bt struct {
					Processes []struct {
						App, Backtraces, Error string
						PID                    int
					}
				}
				if err := json.Unmarshal([]byte(o), &bt); err != nil {
					t.Fatalf("--json: %v\n%s", err, o)
				}
				if len(bt.Processes) != 1 || bt.Processes[0].PID != pid || bt.Processes[0].App != app.name ||
					bt.Processes[0].Error != "" || !strings.Contains(bt.Processes[0].Backtraces, app.want[0]) {
					t.Fatalf("--json --pid %d: %+v", pid, bt)
				}
			}

			// Not stopped: the request finishes as the app meant, on the same
			// process, which is still the only one.
			release()
			select {
			case code := <-held:
				if code != 200 {
					t.Errorf("the held request ended with %d, want 200", code)
				}
			case <-time.After(2 * time.Minute):
				t.Fatal("the held request did not finish after its release")
			}
			st := f.pool().Apps[0]
			if len(st.Processes) != 1 || st.Processes[0].PID != pid || st.Stats.Died != 0 {
				t.Errorf("after backtraces: processes %+v, died %d; want pid %d alone", st.Processes, st.Stats.Died, pid)
			}
			if code, body := f.get("/"); code != 200 || body != "ok" {
				t.Errorf("GET / after backtraces = %d %q", code, body)
			}
			if strings.Contains(f.logs.String(), "end of backtraces") {
				t.Errorf("the dump went to the log, not only to the caller")
			}
		})
	}
}

// TestBacktracesErrors checks the answers to what cannot be done.
func TestBacktracesErrors(t *testing.T) {
	f := startFerry(t, fixture(t, "wsgi/echo"))
	_, stderr, err := ferryCtx(t, time.Minute, "status", "--show=backtraces", "--pid", "999999999", "--instance", f.Instance)
	if err == nil || !strings.Contains(stderr, "no app process with pid 999999999") {
		t.Errorf("--pid of no process: %v %s", err, stderr)
	}
	_, stderr, err = ferryCtx(t, time.Minute, "status", "--pid", "1", "--instance", f.Instance)
	if err == nil || !strings.Contains(stderr, "--pid goes with --show=backtraces") {
		t.Errorf("--pid without --show=backtraces: %v %s", err, stderr)
	}
	// The read-only token may read the logs, not signal processes.
	tok, err := os.ReadFile(filepath.Join(f.Instance, admin.ReadTokenFile))
	if err != nil {
		t.Fatal(err)
	}
	ro := admin.NewClient(f.Instance).WithToken(strings.TrimSpace(string(tok)))
	if err := ro.Do(t.Context(), "GET", "/backtraces", nil); err == nil || !strings.Contains(err.Error(), "needs the admin token") {
		t.Errorf("GET /backtraces with the read-only token: %v", err)
	}
	var raw []byte
	if err := ro.Do(t.Context(), "GET", "/logs?lines=1", &raw); err != nil || len(raw) == 0 {
		t.Errorf("GET /logs with the read-only token: %v %q", err, raw)
	}
	for _, q := range []string{"timeout=2h", "timeout=x", "pid=-3", "app=nope"} {
		if err := admin.NewClient(f.Instance).Do(t.Context(), "GET", "/backtraces?"+q, nil); err == nil {
			t.Errorf("GET /backtraces?%s: no error", q)
		}
	}
}

// TestBacktracesStuckInC asks a Python process whose only thread is stuck
// in C code holding the GIL (sum over a long range): the
// threads' stacks still come (faulthandler's C handler writes them), the
// rest cannot, and the answer says it is incomplete. Once the C code
// returns, the process answers in full again.
func TestBacktracesStuckInC(t *testing.T) {
	dir := filepath.Join(shortTempDir(t), "stuck")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	app := `def stuck_in_c():
    # One C call, GIL held, that never checks for signals: seconds on
    # any machine.
    sum(range(10**9))

def application(environ, start_response):
    if environ.get("PATH_INFO") == "/stuck":
        stuck_in_c()
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok"]
`
	if err := os.WriteFile(filepath.Join(dir, "passenger_wsgi.py"), []byte(app), 0o644); err != nil {
		t.Fatal(err)
	}
	f := startFerry(t, dir, "--spawn-method", "direct", "--max-pool-size", "1")
	eventually(t, "a process", func() bool { return len(f.pids()) == 1 })
	pid := f.pids()[0]
	done := make(chan int, 1)
	go func() {
		code, _ := f.get("/stuck")
		done <- code
	}()
	eventually(t, "the request in the process", func() bool {
		p := f.pool().Apps[0].Processes
		return len(p) == 1 && p[0].Sessions == 1
	})
	ask := func(timeout string) admin.ProcessBacktraces {
		t.Helper()
		var bt admin.Backtraces
		path := "/backtraces?pid=" + strconv.Itoa(pid) + "&timeout=" + timeout
		if err := admin.NewClient(f.Instance).Do(t.Context(), "GET", path, &bt); err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		if len(bt.Processes) != 1 {
			t.Fatalf("GET %s: %+v", path, bt)
		}
		return bt.Processes[0]
	}
	got := ask("1s")
	if got.Error != "" || !strings.Contains(got.Backtraces, "in stuck_in_c") || !strings.Contains(got.Backtraces, "(incomplete") ||
		strings.Contains(got.Backtraces, "Thread names:") {
		t.Fatalf("stuck in C: %+v", got)
	}
	if code := <-done; code != 200 {
		t.Fatalf("GET /stuck = %d", code)
	}
	got = ask("1m")
	if got.Error != "" || strings.Contains(got.Backtraces, "stuck_in_c") || strings.Contains(got.Backtraces, "(incomplete") ||
		!strings.Contains(got.Backtraces, "Thread names:") {
		t.Fatalf("after the C code returned: %+v", got)
	}
}
