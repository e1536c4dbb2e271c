//go:build unix

package loaders

// Out-of-band work, Passenger's events and SIGQUIT backtraces in the Rack
// loader. The fixtures are testdata/rack/oob (Ferry.on_out_of_band_work,
// default.ru without hooks, shadow/ with the app's own Ferry class) and
// testdata/rack/oob-passenger (PhusionPassenger.on_event).

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ferry-server/ferry/internal/proxy"
)

// rackOOBVariant starts a Rack fixture directly, with threads, or as a
// smart-spawned worker.
type rackOOBVariant struct {
	name  string
	start func(t *testing.T, dir string, env ...string) *loader
}

var rackOOBVariants = []rackOOBVariant{
	{"direct", func(t *testing.T, dir string, env ...string) *loader { return rackReady(t, dir, env...) }},
	{"threads", func(t *testing.T, dir string, env ...string) *loader {
		l := rackReady(t, dir, append([]string{"FERRY_THREADS=2"}, env...)...)
		if l.hs.Concurrency != 2 {
			t.Fatalf("handshake %q, want concurrency 2", l.rawHS)
		}
		return l
	}},
	{"smart", func(t *testing.T, dir string, env ...string) *loader {
		p := rackStart(t, dir, append([]string{"FERRY_SPAWN_METHOD=smart"}, env...)...)
		if p.hs.Status != "ready" {
			t.Fatalf("preloader handshake %q; output:\n%s", p.rawHS, p.out)
		}
		w := p.spawnWorker()
		if w.hs.Status != "ready" {
			t.Fatalf("worker handshake %q; preloader output:\n%s\nworker output:\n%s", w.rawHS, p.out, w.out)
		}
		return w
	}},
}

// rackOOBDo makes one request on a connection of its own.
func rackOOBDo(t *testing.T, l *loader, method, target string, headers ...string) (*http.Response, string) {
	t.Helper()
	c := l.dial()
	defer c.c.Close()
	return c.do(method, target, append([]string{"Connection: close"}, headers...), nil)
}

func TestRackOutOfBand(t *testing.T) {
	for _, v := range rackOOBVariants {
		t.Run(v.name, func(t *testing.T) {
			l := v.start(t, rackFixture("oob"))

			// An idle kept-alive connection, as the core keeps them: the
			// out-of-band request must get through all the same.
			idle := l.dial()
			idle.get("/count", 200)

			before := oobCount(t, l)
			code, body := outOfBand(t, l)
			if code != 200 || body != "out-of-band work done: 2 hooks\n" {
				t.Fatalf("out-of-band: %d %q, want 200 after 2 hooks; output:\n%s", code, body, l.out)
			}
			after := oobCount(t, l)
			if after.n("requests") != before.n("requests")+1 {
				t.Errorf("requests %d → %d: the out-of-band request reached the app", before.n("requests"), after.n("requests"))
			}
			if after.n("hooks") != before.n("hooks")+1 || after.n("hooks2") != before.n("hooks2")+1 {
				t.Errorf("hooks %v → %v, want each hook run once", before, after)
			}
			if after.n("pid") != oobPID(l) {
				t.Errorf("pid %d, want %d", after.n("pid"), oobPID(l))
			}
			if th, _ := after["hook_thread"].(string); v.name == "threads" && !strings.HasPrefix(th, "ferry-worker-") {
				t.Errorf("hook ran in thread %q, want a connection's (ferry-worker-N)", th)
			}

			// Whatever the method and path: the header makes it the core's.
			resp, body := rackOOBDo(t, l, "GET", "/count", proxy.HeaderOOBRequest+": 1")
			if resp.StatusCode != 200 || body != "out-of-band work done: 2 hooks\n" || !resp.Close {
				t.Fatalf("GET /count with %s: %d %q (close %v), want the loader's answer", proxy.HeaderOOBRequest, resp.StatusCode, body, resp.Close)
			}

			// The core's own client.
			ctx, cancel := context.WithTimeout(context.Background(), wait)
			defer cancel()
			if err := proxy.OutOfBand(ctx, &net.UnixAddr{Name: l.sock, Net: "unix"}); err != nil {
				t.Fatalf("proxy.OutOfBand: %v; output:\n%s", err, l.out)
			}
			last := oobCount(t, l)
			if last.n("hooks") != after.n("hooks")+2 || last.n("hooks2") != after.n("hooks2")+2 || last.n("requests") != after.n("requests")+1 {
				t.Errorf("after two more out-of-band requests: %v → %v", after, last)
			}

			// A hook that raises: 500 naming it, the exception with its
			// backtrace on stderr, the other hook still runs, and the
			// process serves on.
			rackOOBDo(t, l, "GET", "/fail-next")
			code, body = outOfBand(t, l)
			if want := regexp.MustCompile(`^out-of-band work failed: config\.ru:\d+: RuntimeError: hook failed on purpose\n$`); code != 500 || !want.MatchString(body) {
				t.Fatalf("out-of-band with a failing hook: %d %q, want 500 naming the hook and the error", code, body)
			}
			oobWaitOutput(t, l, "hook failed on purpose (RuntimeError)")
			out := l.out.String()
			if !strings.Contains(out, "[ferry rack] error in out-of-band hook config.ru:") ||
				!regexp.MustCompile(`config\.ru:\d+:in .*block`).MatchString(out) {
				t.Errorf("no error with a backtrace for the failing hook; output:\n%s", out)
			}
			end := oobCount(t, l)
			if end.n("hooks") != last.n("hooks")+1 || end.n("hooks2") != last.n("hooks2")+1 {
				t.Errorf("after a failing hook: %v → %v, want both hooks run", last, end)
			}
			if code, body := outOfBand(t, l); code != 200 {
				t.Errorf("out-of-band after a failure: %d %q", code, body)
			}
			if v.name == "threads" {
				// The idle connection was not given up (a free thread had it).
				if body := idle.get("/count", 200); !strings.Contains(body, `"requests"`) {
					t.Errorf("idle connection: %q", body)
				}
			}
			oobAlive(t, l)
		})
	}
}

// A config.ru sees both Ferry's and Passenger's out-of-band APIs (the
// default work itself is TestLoaderContract).
func TestRackOutOfBandAPIs(t *testing.T) {
	for _, v := range rackOOBVariants {
		t.Run(v.name, func(t *testing.T) {
			l := v.start(t, rackFixture("oob"), "FERRY_STARTUP_FILE=default.ru")
			before := oobCount(t, l)
			if before["ferry_api"] != true || before["passenger_api"] != true {
				t.Errorf("config.ru saw Ferry.on_out_of_band_work %v, PhusionPassenger.on_event %v; want both", before["ferry_api"], before["passenger_api"])
			}
		})
	}
}

func TestRackOutOfBandPassenger(t *testing.T) {
	for _, v := range rackOOBVariants {
		t.Run(v.name, func(t *testing.T) {
			l := v.start(t, rackFixture("oob-passenger"))
			before := oobCount(t, l)
			forked := v.name == "smart"
			if s, _ := before["starting"].([]any); len(s) != 1 || s[0] != forked || before.n("starting_pid") != oobPID(l) {
				t.Errorf(":starting_worker_process ran with %v in pid %d, want once with %v in pid %d",
					before["starting"], before.n("starting_pid"), forked, oobPID(l))
			}
			if v.name == "threads" {
				// Each thread runs it as it starts, which may be after the
				// first requests (served by the other thread).
				deadline := time.Now().Add(wait)
				for before.n("handler_threads") < 2 && time.Now().Before(deadline) {
					before = oobCount(t, l)
				}
				if before.n("handler_threads") != 2 {
					t.Errorf(":starting_request_handler_thread ran %d times, want 2", before.n("handler_threads"))
				}
			} else if before.n("handler_threads") != 1 {
				t.Errorf(":starting_request_handler_thread ran %d times, want 1", before.n("handler_threads"))
			}
			if before["unknown_event_raises"] != true {
				t.Errorf("PhusionPassenger.on_event(:no_such_event) did not raise ArgumentError")
			}
			if cl, ok := before["concurrency_level"].(float64); !ok || cl != 0 {
				t.Errorf("PhusionPassenger.advertised_concurrency_level = %v, want the 0 the app set", before["concurrency_level"])
			}

			code, body := outOfBand(t, l)
			if code != 200 || body != "out-of-band work done: 1 hook\n" {
				t.Fatalf("out-of-band: %d %q, want 200 after 1 hook; output:\n%s", code, body, l.out)
			}
			after := oobCount(t, l)
			if after.n("oob") != before.n("oob")+1 || after.n("requests") != before.n("requests")+1 {
				t.Errorf("%v → %v: want the :oob_work hook run once and the app not to see the request", before, after)
			}

			rackOOBDo(t, l, "GET", "/fail-next")
			code, body = outOfBand(t, l)
			if want := regexp.MustCompile(`^out-of-band work failed: config\.ru:\d+: ArgumentError: passenger hook failed on purpose\n$`); code != 500 || !want.MatchString(body) {
				t.Fatalf("out-of-band with a failing hook: %d %q, want 500 naming the error", code, body)
			}
			oobWaitOutput(t, l, "passenger hook failed on purpose (ArgumentError)")
			if code, _ := outOfBand(t, l); code != 200 {
				t.Errorf("out-of-band after a failure: %d", code)
			}
			oobAlive(t, l)

			// SIGTERM: the current request finishes, :stopping_worker_process
			// runs, the process exits.
			pid := oobPID(l)
			if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
				t.Fatal(err)
			}
			oobWaitOutput(t, l, fmt.Sprintf("oob-passenger fixture: stopping %d\n", pid))
			if l.cmd != nil {
				if code := l.exitCode(); code != 0 {
					t.Errorf("exit code %d after SIGTERM; output:\n%s", code, l.out)
				}
			} else {
				l.gone()
			}
		})
	}
}

// The app's response headers that ask for out-of-band work are the core's
// business: the loader passes them on like any other.
func TestRackAskForOutOfBand(t *testing.T) {
	l := rackReady(t, rackFixture("oob"))
	c := l.dial()
	for path, header := range map[string]string{"/ask": proxy.HeaderOOBWork, "/ask-passenger": "!~Request-OOB-Work"} {
		resp, body := c.do("GET", path, nil, nil)
		if resp.StatusCode != 200 || body != "asked" || resp.Header.Get(header) != "true" {
			t.Errorf("GET %s: %d %q, %s %q; want 200 with it true", path, resp.StatusCode, body, header, resp.Header.Get(header))
		}
		if !proxy.TakeOOBRequest(resp) {
			t.Errorf("GET %s: the core would not see the request for out-of-band work", path)
		}
	}
}

// An app with its own Ferry class (a model, say): the loader defines no
// Ferry module that would break it, and out-of-band work is GC.start (or
// the app's PhusionPassenger hooks).
func TestRackOwnFerryClass(t *testing.T) {
	l := rackReady(t, filepath.Join(rackFixture("oob"), "shadow"))
	if resp, body := rackOOBDo(t, l, "GET", "/"); resp.StatusCode != 200 || body != "the app's own Ferry" {
		t.Fatalf("GET /: %d %q; output:\n%s", resp.StatusCode, body, l.out)
	}
	if !strings.Contains(l.out.String(), "the app has its own app/models/ferry.rb") {
		t.Errorf("nothing on stderr about the app's own Ferry; output:\n%s", l.out)
	}
	if code, body := outOfBand(t, l); code != 200 || body != "out-of-band work done: GC.start\n" {
		t.Errorf("out-of-band: %d %q, want 200 after GC.start", code, body)
	}
}

// SIGQUIT, as the core sends it before killing a request that ran past
// --max-request-time: the backtrace of every thread on stderr, naming where
// the request is stuck, and the process carries on.
func TestRackSIGQUIT(t *testing.T) {
	for _, v := range rackOOBVariants {
		t.Run(v.name, func(t *testing.T) {
			l := v.start(t, rackFixture("oob"))
			release := filepath.Join(t.TempDir(), "release")
			c := l.dial()
			c.send("GET", "/sleep?s=120&release="+release, nil, nil)
			oobWaitOutput(t, l, "oob fixture: asleep\n")

			// To the process group, as the core signals it.
			pid := oobPID(l)
			if err := syscall.Kill(-pid, syscall.SIGQUIT); err != nil {
				t.Fatal(err)
			}
			oobWaitOutput(t, l, "ferry: SIGQUIT: end of backtraces\n")
			out := l.out.String()
			dump := out[strings.Index(out, "ferry: SIGQUIT: backtrace of every thread\n"):]
			if !regexp.MustCompile(`(?m)^    \S*config\.ru:\d+:in .*stuck_in_sleep`).MatchString(dump) {
				t.Errorf("the backtraces do not show the request in stuck_in_sleep:\n%s", dump)
			}
			if !regexp.MustCompile(`(?m)^    \S*config\.ru:\d+:in .*sleep`).MatchString(dump) {
				t.Errorf("the backtraces do not show the sleep:\n%s", dump)
			}
			wantThreads := 2 // main, the lifeline watcher
			if v.name == "threads" {
				wantThreads = 4 // and two connection threads
			}
			if n := strings.Count(dump, "\nThread "); n != wantThreads {
				t.Errorf("%d threads in the dump, want %d:\n%s", n, wantThreads, dump)
			}
			oobAlive(t, l)

			// The request was not disturbed: let it finish.
			if err := os.WriteFile(release, nil, 0o644); err != nil {
				t.Fatal(err)
			}
			resp := c.head("GET")
			body, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil || resp.StatusCode != 200 || string(body) != "awake" {
				t.Fatalf("the sleeping request: %d %q, %v", resp.StatusCode, body, err)
			}
			if body := c.get("/count", 200); !strings.Contains(body, fmt.Sprintf(`"pid":%d`, pid)) {
				t.Errorf("GET /count after SIGQUIT: %q", body)
			}

			// Idle, too.
			if err := syscall.Kill(pid, syscall.SIGQUIT); err != nil {
				t.Fatal(err)
			}
			c.get("/count", 200)
			oobWaitOutputN(t, l, "ferry: SIGQUIT: end of backtraces\n", 2)
			oobAlive(t, l)
		})
	}
}

// An error in a :starting_worker_process hook fails the spawn, like a load
// error, in direct spawning and in a smart-spawned worker (where the
// preloader serves on).
func TestRackStartingWorkerProcessError(t *testing.T) {
	dir := rackApp(t, map[string]string{"config.ru": `
PhusionPassenger.on_event(:starting_worker_process) do |forked|
  raise "no database (forked=#{forked})"
end
run ->(_env) { [200, {}, ["ok"]] }
`})
	l := rackStart(t, dir)
	if l.hs.Status != "error" || l.hs.Summary != "RuntimeError: no database (forked=false)" {
		t.Errorf("direct: handshake %q, want the hook's error", l.rawHS)
	}
	p := rackStart(t, dir, "FERRY_SPAWN_METHOD=smart")
	if p.hs.Status != "ready" {
		t.Fatalf("preloader handshake %q; output:\n%s", p.rawHS, p.out)
	}
	w := p.spawnWorker()
	if w.hs.Status != "error" || w.hs.Summary != "RuntimeError: no database (forked=true)" {
		t.Errorf("worker: handshake %q, want the hook's error", w.rawHS)
	}
	if !strings.Contains(w.hs.Details, "config.ru:3") {
		t.Errorf("worker: details lack config.ru:3:\n%s", w.hs.Details)
	}
}

// An app that reopens Ferry (a module) keeps its methods and Ferry's.
func TestRackAppReopensFerry(t *testing.T) {
	dir := rackApp(t, map[string]string{"config.ru": `
module Ferry
  def self.mine
    "mine"
  end
end
RUNS = [0]
Ferry.on_out_of_band_work { RUNS[0] += 1 }
run ->(_env) { [200, {}, ["#{Ferry.mine} #{RUNS[0]}"]] }
`})
	l := rackReady(t, dir)
	if code, body := outOfBand(t, l); code != 200 || body != "out-of-band work done: 1 hook\n" {
		t.Errorf("out-of-band: %d %q", code, body)
	}
	if _, body := rackOOBDo(t, l, "GET", "/"); body != "mine 1" {
		t.Errorf("GET / = %q, want \"mine 1\"", body)
	}
}

// The preloader prints its backtraces too, and spawns on.
func TestRackSIGQUITPreloader(t *testing.T) {
	p := rackStart(t, rackFixture("oob"), "FERRY_SPAWN_METHOD=smart")
	if p.hs.Status != "ready" {
		t.Fatalf("preloader handshake %q; output:\n%s", p.rawHS, p.out)
	}
	if err := syscall.Kill(-p.cmd.Process.Pid, syscall.SIGQUIT); err != nil {
		t.Fatal(err)
	}
	oobWaitOutput(t, p, "ferry: SIGQUIT: end of backtraces\n")
	oobAlive(t, p)
	w := p.spawnWorker()
	if w.hs.Status != "ready" {
		t.Fatalf("worker handshake %q after SIGQUIT; preloader output:\n%s", w.rawHS, p.out)
	}
	if strings.Contains(w.out.String(), "SIGQUIT") {
		t.Errorf("the worker printed the preloader's backtraces:\n%s", w.out)
	}
}
