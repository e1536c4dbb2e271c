//go:build unix

package loaders

// The loader contract (docs/architecture.md, "The loader contract"), written
// once: every case runs against every loader, each under its real
// interpreter with its fixture app (testdata/KIND/echo, testdata/KIND/oob,
// testdata/KIND/broken), and in the ways the core starts it (directly, with
// threads, smart-spawned). Where the languages rightly differ (the
// concurrency a loader announces, how an app's error reads, what the
// default out-of-band work is) the table says so per loader. What only one
// language has stays in that language's tests.

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ferry-server/ferry/internal/appwire"
	"github.com/ferry-server/ferry/internal/proxy"
)

// contractLoader is one loader started one way.
type contractLoader struct {
	name        string
	kind        string   // a key of kinds
	env         []string // added to the start
	smart       bool     // a worker forked by a preloader
	concurrency int      // in the ready handshake
	// wire: the loader speaks ferry-wire/1 (docs/loader-wire.md), so every
	// case runs on both wires; framed is set for the ferry-wire/1 run.
	wire, framed bool

	// readyOutput is what the echo app prints once it serves, if anything.
	readyOutput string
	// broken is the error handshake of testdata/KIND/broken (direct only).
	broken *contractBroken
	// oob: the fixture's startup file without hooks, the answer's body and
	// the /count counter that the default work raises.
	oobStartup, oobDone, oobCounter string
	// appError is what the echo app's /error raises, as the output shows it.
	appError string
	// appCatches: the app answers its own errors (Node: a throw in a
	// request handler is the app's to catch; the echo app does).
	appCatches bool
	// backtraces are substrings of the backtraces on demand while a request
	// sleeps in the echo app's /sleep.
	backtraces []string
}

type contractBroken struct {
	summary string
	details []string // substrings of the handshake's details
	output  []string // substrings of what the process printed
}

var contractLoaders = []contractLoader{
	{
		name: "wsgi", kind: "wsgi", concurrency: 1, wire: true,
		broken: &contractBroken{
			summary: "ImportError: broken fixture: no module named frobnicate",
			details: []string{"Traceback (most recent call last)", "passenger_wsgi.py", "line 3", "raise ImportError", "frobnicate"},
			output:  []string{"about to fail", "ImportError: broken fixture"},
		},
		oobStartup: "default_wsgi.py", oobDone: "out-of-band work done: gc.collect()\n", oobCounter: "full_collections",
		backtraces: []string{"(most recent call first)", "passenger_wsgi.py\", line", " in sleep\n", "Thread names:\n", " ferry-lifeline (daemon)\n"},
		appError:   "boom from app",
	},
	{
		name: "wsgi-threads", kind: "wsgi", env: []string{"FERRY_THREADS=2"}, concurrency: 2, wire: true,
		oobStartup: "default_wsgi.py", oobDone: "out-of-band work done: gc.collect()\n", oobCounter: "full_collections",
		backtraces: []string{"(most recent call first)", "passenger_wsgi.py\", line", " in sleep\n", "Thread names:\n", " ferry-lifeline (daemon)\n"},
		appError:   "boom from app",
	},
	{
		name: "wsgi-smart", kind: "wsgi", smart: true, concurrency: 1, wire: true,
		oobStartup: "default_wsgi.py", oobDone: "out-of-band work done: gc.collect()\n", oobCounter: "full_collections",
		backtraces: []string{"(most recent call first)", "passenger_wsgi.py\", line", " in sleep\n", "Thread names:\n", " ferry-lifeline (daemon)\n"},
		appError:   "boom from app",
	},
	{
		name: "asgi", kind: "asgi", concurrency: 0, wire: true,
		broken: &contractBroken{
			summary: "ImportError: broken asgi fixture: no module named frobnicate",
			details: []string{"Traceback (most recent call last)", "asgi.py\", line 3", "raise ImportError"},
			output:  []string{"about to fail", "ImportError: broken asgi fixture"},
		},
		oobStartup: "default.py", oobDone: "out-of-band work done: gc.collect()\n", oobCounter: "full_collections",
		backtraces: []string{"(most recent call first)", "Thread names:\n", " asyncio tasks:\n", "echo/asgi.py\", line", ", in sleep\n"},
		appError:   "boom from asgi app",
	},
	{
		name: "rack", kind: "rack", concurrency: 1, wire: true,
		broken: &contractBroken{
			summary: "ArgumentError: broken fixture: no frobnicate configured",
			details: []string{"config.ru:5", "broken fixture: no frobnicate configured (ArgumentError)"},
			output:  []string{"about to fail", "broken fixture: no frobnicate configured"},
		},
		oobStartup: "default.ru", oobDone: "out-of-band work done: GC.start\n", oobCounter: "major_gc_count",
		backtraces: []string{"Thread 1 of ", " (main)\n", "config.ru:", "in `sleep_for'"},
		appError:   "boom from app",
	},
	{
		name: "rack-threads", kind: "rack", env: []string{"FERRY_THREADS=4"}, concurrency: 4, wire: true,
		oobStartup: "default.ru", oobDone: "out-of-band work done: GC.start\n", oobCounter: "major_gc_count",
		backtraces: []string{"Thread 1 of ", " (main)\n", "config.ru:", "in `sleep_for'"},
		appError:   "boom from app",
	},
	{
		name: "rack-smart", kind: "rack", smart: true, concurrency: 1, wire: true,
		oobStartup: "default.ru", oobDone: "out-of-band work done: GC.start\n", oobCounter: "major_gc_count",
		backtraces: []string{"Thread 1 of ", " (main)\n", "config.ru:", "in `sleep_for'"},
		appError:   "boom from app",
	},
	{
		name: "node", kind: "node", concurrency: 0, appCatches: true,
		readyOutput: "echo app listening on port 3000",
		broken: &contractBroken{
			summary: "Error: broken fixture: cannot load frobnicate",
			details: []string{"Error: broken fixture", "app.js:3"},
			output:  []string{"about to fail", "Error: broken fixture: cannot load frobnicate", "app.js:3"},
		},
		oobStartup: "default.js", oobDone: "out-of-band work done: global.gc()\n", oobCounter: "gcs",
		backtraces: []string{"Main thread (1 of 1), pid ", "Requests in progress: 1\n", "    GET /sleep?s=600 for "},
		appError:   "boom from app",
	},
}

// start starts the loader for the app in dir and insists that it is ready.
func (cl contractLoader) start(t *testing.T, dir string, env ...string) *loader {
	t.Helper()
	env = append(append([]string{}, cl.env...), env...)
	if cl.framed {
		env = append(env, "FERRY_WIRE="+appwire.Versions)
	}
	if !cl.smart {
		l := startKind(t, cl.kind, dir, env...)
		if l.hs.Status != "ready" {
			t.Fatalf("handshake %q, want ready; output:\n%s", l.rawHS, l.out)
		}
		return l
	}
	p := startKind(t, cl.kind, dir, append([]string{"FERRY_SPAWN_METHOD=smart"}, env...)...)
	if p.hs.Status != "ready" {
		t.Fatalf("preloader handshake %q; output:\n%s", p.rawHS, p.out)
	}
	w := p.spawnWorker()
	if w.hs.Status != "ready" {
		t.Fatalf("worker handshake %q; preloader output:\n%s\nworker output:\n%s", w.rawHS, p.out, w.out)
	}
	return w
}

func (cl contractLoader) fixture(name string) string {
	return filepath.Join("..", "..", "testdata", cl.kind, name)
}

// contractCases are the contract, one case a rule.
var contractCases = []struct {
	name  string
	smart bool // also for smart-spawned workers (they have no lifeline or process of their own to test here)
	run   func(t *testing.T, cl contractLoader)
}{
	{"ready handshake", true, contractReady},
	{"error handshake", false, contractError},
	{"keep-alive", true, contractKeepAlive},
	{"request bodies", true, contractBodies},
	{"app error", true, contractAppError},
	{"lifeline", false, contractLifeline},
	{"SIGTERM", false, contractSIGTERM},
	{"out-of-band default", true, contractOOBDefault},
	{"backtraces on demand", true, contractBacktraces},
	{"same environ on both wires", true, contractSameEnviron},
}

func TestLoaderContract(t *testing.T) {
	for _, cl := range contractLoaders {
		variants := []contractLoader{cl}
		if cl.wire {
			framed := cl
			framed.name, framed.framed = cl.name+"/ferry-wire-1", true
			variants = append(variants, framed)
		}
		for _, cl := range variants {
			t.Run(cl.name, func(t *testing.T) {
				for _, c := range contractCases {
					if cl.smart && !c.smart {
						continue
					}
					t.Run(c.name, func(t *testing.T) { c.run(t, cl) })
				}
			})
		}
	}
}

// contractReady: one JSON line on the status fd naming the socket and the
// concurrency, then the app answers there, in this very process.
func contractReady(t *testing.T, cl contractLoader) {
	l := cl.start(t, cl.fixture("echo"))
	if l.hs.Socket != l.sock || l.hs.Concurrency != cl.concurrency {
		t.Fatalf("handshake %q, want ready on %s with concurrency %d", l.rawHS, l.sock, cl.concurrency)
	}
	if want := map[bool]int{false: 0, true: appwire.Version}[cl.framed]; l.hs.Wire != want {
		t.Errorf("handshake %q chose wire %d, want %d", l.rawHS, l.hs.Wire, want)
	}
	if !strings.Contains(l.rawHS, `"concurrency":`) {
		t.Errorf("handshake %q does not say its concurrency", l.rawHS)
	}
	if !strings.HasSuffix(l.rawHS, "}\n") || strings.Count(l.rawHS, "\n") != 1 {
		t.Errorf("handshake %q is not one newline-terminated line", l.rawHS)
	}
	c := l.dial()
	if body := c.get("/", 200); body != "hello world" {
		t.Errorf("GET / = %q", body)
	}
	if pid := c.get("/pid", 200); pid != strconv.Itoa(oobPID(l)) {
		t.Errorf("/pid = %s, want %d", pid, oobPID(l))
	}
	if cl.readyOutput != "" {
		if code := l.stop(); code != 0 {
			t.Errorf("exit code %d after the lifeline closed", code)
		}
		if out := l.out.String(); !strings.Contains(out, cl.readyOutput) {
			t.Errorf("output lacks %q:\n%s", cl.readyOutput, out)
		}
	}
}

// contractError: an app that fails to load is an error handshake with a
// one-line summary and the app's own backtrace (none of the loader's
// frames), the same on the output, and exit code 1.
func contractError(t *testing.T, cl contractLoader) {
	if cl.broken == nil {
		t.Skip("no broken fixture for this variant")
	}
	l := startKind(t, cl.kind, cl.fixture("broken"), cl.env...)
	if l.hs.Status != "error" {
		t.Fatalf("handshake %q, want an error", l.rawHS)
	}
	if l.hs.Summary != cl.broken.summary {
		t.Errorf("summary %q, want %q", l.hs.Summary, cl.broken.summary)
	}
	for _, want := range cl.broken.details {
		if !strings.Contains(l.hs.Details, want) {
			t.Errorf("details lack %q:\n%s", want, l.hs.Details)
		}
	}
	// The loader (and what it imports from beside it) lives in the
	// directory of its socket.
	if dir := filepath.Dir(l.sock) + "/"; strings.Contains(l.hs.Details, dir) {
		t.Errorf("details show the loader's own frames (%s):\n%s", dir, l.hs.Details)
	}
	if code := l.exitCode(); code != 1 {
		t.Errorf("exit code %d, want 1", code)
	}
	out := l.out.String()
	for _, want := range cl.broken.output {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

// contractKeepAlive: many requests on one connection, all answered in
// order by the same process; Connection: close is announced and honoured.
func contractKeepAlive(t *testing.T, cl contractLoader) {
	l := cl.start(t, cl.fixture("echo"))
	c := l.dial()
	pid := strconv.Itoa(oobPID(l))
	for i := range 300 {
		switch i % 3 {
		case 0:
			if body := c.get("/", 200); body != "hello world" {
				t.Fatalf("request %d: %q", i, body)
			}
		case 1:
			if body := c.get("/pid", 200); body != pid {
				t.Fatalf("request %d: pid %q, want %q", i, body, pid)
			}
		case 2:
			// The fields every echo fixture answers, whatever its environ
			// (or scope, or request) is called.
			var e struct {
				QueryString string `json:"query_string"`
				BodyLen     int    `json:"body_len"`
			}
			resp, body := c.do("POST", "/echo?i="+strconv.Itoa(i), nil, []byte("ping"))
			if err := json.Unmarshal([]byte(body), &e); resp.StatusCode != 200 || err != nil {
				t.Fatalf("request %d: %d %q: %v", i, resp.StatusCode, body, err)
			}
			if e.QueryString != "i="+strconv.Itoa(i) || e.BodyLen != 4 {
				t.Fatalf("request %d: %+v", i, e)
			}
		}
	}
	if cl.framed {
		return // Connection is hop-by-hop: the core never passes it on
	}
	resp, _ := c.do("GET", "/", []string{"Connection: close"}, nil)
	if !resp.Close {
		t.Errorf("answer to Connection: close does not announce the close")
	}
	c.c.SetDeadline(time.Now().Add(wait))
	if n, err := c.br.ReadByte(); err != io.EOF {
		t.Errorf("after Connection: close: read %q, %v; want EOF", n, err)
	}
}

// contractLifeline: the process exits 0 as soon as the core's end of the
// lifeline closes, idle or in the middle of a request.
func contractLifeline(t *testing.T, cl contractLoader) {
	t.Run("idle", func(t *testing.T) {
		l := cl.start(t, cl.fixture("echo"))
		l.dial().get("/", 200)
		if code := l.stop(); code != 0 {
			t.Errorf("exit code %d, want 0", code)
		}
	})
	t.Run("busy", func(t *testing.T) {
		l := cl.start(t, cl.fixture("echo"))
		c := l.dial()
		c.get("/", 200)
		c.send("GET", "/sleep?s=600", nil, nil)
		if code := l.stop(); code != 0 {
			t.Errorf("exit code %d, want 0", code)
		}
	})
}

// contractSIGTERM: no new work, idle connections closed, the request in
// flight finishes; then exit 0 with the socket file removed.
func contractSIGTERM(t *testing.T, cl contractLoader) {
	t.Run("idle", func(t *testing.T) {
		l := cl.start(t, cl.fixture("echo"))
		l.dial().get("/", 200) // and the connection stays open, idle
		if err := l.cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		if code := l.exitCode(); code != 0 {
			t.Errorf("exit code %d, want 0; output:\n%s", code, l.out)
		}
		if _, err := os.Stat(l.sock); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("socket left behind: %v", err)
		}
	})
	t.Run("busy", func(t *testing.T) {
		l := cl.start(t, cl.fixture("echo"))
		c := l.dial()
		c.send("GET", "/stream?n=3&delay=0.2", nil, nil)
		resp := c.head("GET")
		first := make([]byte, len("chunk 0\n"))
		if _, err := io.ReadFull(resp.Body, first); err != nil {
			t.Fatal(err)
		}
		// The app is between chunks now: the request must still complete.
		if err := l.cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		rest, err := io.ReadAll(resp.Body)
		if err != nil || string(first)+string(rest) != "chunk 0\nchunk 1\nchunk 2\n" {
			t.Errorf("body %q %q, %v", first, rest, err)
		}
		if code := l.exitCode(); code != 0 {
			t.Errorf("exit code %d, want 0; output:\n%s", code, l.out)
		}
		c.c.SetDeadline(time.Now().Add(wait))
		if _, err := c.br.ReadByte(); err != io.EOF {
			t.Errorf("connection after the exit: %v, want EOF", err)
		}
		if _, err := os.Stat(l.sock); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("socket left behind: %v", err)
		}
	})
}

// contractOOBDefault: the core's out-of-band request never reaches the
// app; without hooks the loader runs its language's collector and says so.
func contractOOBDefault(t *testing.T, cl contractLoader) {
	l := cl.start(t, cl.fixture("oob"), "FERRY_STARTUP_FILE="+cl.oobStartup)
	before := oobCount(t, l)
	if before.n("hooks_registered") != 0 {
		t.Fatalf("/count: %v", before)
	}
	code, body := outOfBand(t, l)
	if code != 200 || body != cl.oobDone {
		t.Fatalf("out-of-band: %d %q, want 200 %q; output:\n%s", code, body, cl.oobDone, l.out)
	}
	after := oobCount(t, l)
	if after.n(cl.oobCounter) <= before.n(cl.oobCounter) {
		t.Errorf("%s %d → %d: the default work did not run", cl.oobCounter, before.n(cl.oobCounter), after.n(cl.oobCounter))
	}
	if after.n("requests") != before.n("requests")+1 {
		t.Errorf("requests %d → %d: the out-of-band request reached the app", before.n("requests"), after.n("requests"))
	}
}

// contractBacktraces: SIGWINCH writes the stack of every thread (and what
// the language adds) on the status pipe, not the output, ended by the
// marker, and the process carries on and answers the next SIGWINCH alike.
// The request sleeping in the app shows once it is in the app: until then,
// the test asks again.
func contractBacktraces(t *testing.T, cl contractLoader) {
	l := cl.start(t, cl.fixture("echo"))
	c := l.dial()
	c.send("GET", "/sleep?s=600", nil, nil)
	var dump string
	for deadline := time.Now().Add(wait); ; {
		dump = l.backtraces()
		missing := ""
		for _, want := range cl.backtraces {
			if !strings.Contains(dump, want) {
				missing = want
				break
			}
		}
		if missing == "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("backtraces lack %q:\n%s", missing, dump)
		}
	}
	if strings.Contains(l.out.String(), btEnd) {
		t.Errorf("the backtraces went to the output too:\n%s", l.out)
	}
	if !alive(oobPID(l)) {
		t.Errorf("the process is gone after its backtraces; output:\n%s", l.out)
	}
}

// contractBodies: request bodies of every size (none, in the head's read,
// at once, streamed to the app) arrive whole, and the connection goes on.
func contractBodies(t *testing.T, cl contractLoader) {
	l := cl.start(t, cl.fixture("echo"))
	c := l.dial()
	for _, n := range []int{0, 1, 1000, 64<<10 - 1, 64<<10 + 1, 1<<20 + 3} {
		body := payload(n)
		resp, data := c.do("POST", "/upload", []string{"Content-Type: application/octet-stream"}, body)
		var got struct {
			Len    int    `json:"len"`
			SHA256 string `json:"sha256"`
		}
		if err := json.Unmarshal([]byte(data), &got); resp.StatusCode != 200 || err != nil {
			t.Fatalf("%d bytes: %d %q: %v", n, resp.StatusCode, data, err)
		}
		if got.Len != n || got.SHA256 != sum(body) {
			t.Errorf("%d bytes: the app read %d, sha256 %s, want %s", n, got.Len, got.SHA256, sum(body))
		}
	}
	if body := c.get("/", 200); body != "hello world" {
		t.Errorf("GET / after the bodies = %q", body)
	}
}

// contractAppError: an app that raises answers 500 (its error on the
// output, not to the client), and the process serves on.
func contractAppError(t *testing.T, cl contractLoader) {
	l := cl.start(t, cl.fixture("echo"))
	c := l.dial()
	resp, body := c.do("GET", "/error", nil, nil)
	if resp.StatusCode != 500 {
		t.Errorf("GET /error: %d %q, want 500", resp.StatusCode, body)
	}
	if !cl.appCatches && strings.Contains(body, cl.appError) {
		t.Errorf("the app's error reached the client: %q", body)
	}
	if !resp.Close {
		c.get("/", 200)
	}
	if body := l.dial().get("/", 200); body != "hello world" {
		t.Errorf("GET / after the error = %q", body)
	}
	oobWaitOutput(t, l, cl.appError)
}

// contractSameEnviron: the app sees the same request whichever wire it
// came on: ferry-wire/1's environment (framed by the core's code) equals
// what the loader builds from the HTTP/1.1 head the core sends, Ferry's
// own headers (client address, scheme) included.
func contractSameEnviron(t *testing.T, cl contractLoader) {
	if !cl.wire || !cl.framed {
		t.Skip("for loaders that speak ferry-wire/1, in that run")
	}
	l := cl.start(t, cl.fixture("echo"))
	for _, tc := range []struct {
		method, target string
		headers        []string
		body           []byte
		remote         string // the client's address; default [2001:db8::7]:4242
	}{
		{"GET", "/echo/portless", nil, nil, "192.0.2.9"}, // from a trusted proxy's X-Forwarded-For
		{"GET", "/echo", nil, nil, ""},
		{"GET", "/echo/a%20b/%E2%82%AC?x=1&y=%20", []string{"Accept: text/html", "Cookie: a=1", "Cookie: b=2", "X-Multi: 1", "X-Multi: 2"}, nil, ""},
		{"POST", "/echo?q", []string{"Content-Type: application/json", "Host: example.org:8443"}, []byte(`{"a":1}`), ""},
		{"PUT", "/echo", []string{"Host: [::1]:9000", "User-Agent: t/1.0"}, []byte{}, ""},
		{"DELETE", "/echo/", []string{"Host: example.org"}, nil, ""},
	} {
		// One connection at a time: a single-threaded loader gives an
		// idle one up when another waits.
		remote := tc.remote
		if remote == "" {
			remote = "[2001:db8::7]:4242"
		}
		framed := l.dial()
		framed.remote, framed.scheme = remote, "https"
		got := framed.echoAny(tc.method, tc.target, tc.headers, tc.body)
		framed.c.Close()
		plain := l.dial()
		plain.framed = false
		ferry := []string{proxy.HeaderClientAddr + ": " + remote, proxy.HeaderScheme + ": https"}
		want := plain.echoAny(tc.method, tc.target, append(append([]string{}, tc.headers...), ferry...), tc.body)
		gj, _ := json.Marshal(got)
		wj, _ := json.Marshal(want)
		if string(gj) != string(wj) {
			t.Errorf("%s %s:\nferry-wire/1: %s\nHTTP/1.1:     %s", tc.method, tc.target, gj, wj)
		}
		plain.c.Close()
	}
}

// echoAny is echo as a generic JSON object, whatever the fixture's
// language calls its fields; a list of header pairs (ASGI) is sorted, since
// the core sends the client's fields in no fixed order on either wire.
func (c *client) echoAny(method, target string, headers []string, body []byte) map[string]any {
	c.tb.Helper()
	resp, data := c.do(method, target, headers, body)
	if resp.StatusCode != 200 {
		c.tb.Fatalf("%s %s: status %d; body %q", method, target, resp.StatusCode, data)
	}
	var e map[string]any
	if err := json.Unmarshal([]byte(data), &e); err != nil {
		c.tb.Fatalf("%s %s: %v in %q", method, target, err, data)
	}
	if hs, ok := e["headers"].([]any); ok {
		sort.Slice(hs, func(i, j int) bool { return fmt.Sprint(hs[i]) < fmt.Sprint(hs[j]) })
	}
	return e
}
