package admin

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ferry-server/ferry/internal/certs"
	"github.com/ferry-server/ferry/internal/health"
	"github.com/ferry-server/ferry/internal/logs"
	"github.com/ferry-server/ferry/internal/pool"
	"github.com/ferry-server/ferry/internal/turbocache"
)

// The golden tests document the admin API's answers: a change to their
// shape shows in review as a change to testdata/*.json. Rewrite them with
//
//	go test ./internal/admin -run TestGolden -update
var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// fakeProc is an app process that is only bookkeeping: the pool starts,
// stops and kills it as it would a real one.
type fakeProc struct {
	pid  int
	done chan struct{}
	once sync.Once
}

func newFakeProc(pid int) *fakeProc { return &fakeProc{pid: pid, done: make(chan struct{})} }

func (p *fakeProc) PID() int              { return p.pid }
func (p *fakeProc) Addr() net.Addr        { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1} }
func (p *fakeProc) Concurrency() int      { return 1 }
func (p *fakeProc) Done() <-chan struct{} { return p.done }
func (p *fakeProc) Stop(context.Context)  { p.exit() }
func (p *fakeProc) Kill()                 { p.exit() }
func (p *fakeProc) Abort()                { p.exit() }
func (p *fakeProc) Reap()                 {}
func (p *fakeProc) exit()                 { p.once.Do(func() { close(p.done) }) }

// tracingProc is a fakeProc that can report its backtraces, as the
// loaders' processes do.
type tracingProc struct{ *fakeProc }

func (p *tracingProc) Backtraces(context.Context) (string, error) {
	return fmt.Sprintf("Thread 1 (pid %d):\n  File \"app.py\", line 7, in handle\n", p.pid), nil
}

// goldenSource is an instance with three apps on real pools: web (whose
// processes report backtraces, with a preloader and a response cache),
// worker (whose processes cannot) and broken (whose spawns fail).
type goldenSource struct {
	apps   []App
	probes *health.Checker
	logs   *logs.Outputs
	// reloadErr is what Reload fails with (nil: it succeeds).
	reloadErr atomic.Pointer[error]
}

var goldenStart = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func (s *goldenSource) Info() Info {
	return Info{Version: "1.2.3", PID: 4242, StartedAt: goldenStart, Listen: []string{"0.0.0.0:80", "0.0.0.0:443"},
		Instance: "/run/ferry/instance", Config: map[string]any{"port": 80, "max_pool_size": 6},
		Certificates: []certs.Status{{Domain: "example.org", State: certs.StateValid, DaysLeft: 60}}}
}
func (s *goldenSource) Apps() []App { return s.apps }
func (s *goldenSource) Requests() []RequestInfo {
	return []RequestInfo{{App: "web", Method: "GET", Path: "/slow", Client: "192.0.2.7:40000", State: "in the app",
		Start: goldenStart, AgeMS: 1500, PID: 4100001}}
}
func (s *goldenSource) Probes() http.Handler  { return s.probes.Handler() }
func (s *goldenSource) Ready() bool           { return s.probes.Readiness(context.Background()).Ready }
func (s *goldenSource) Metrics() http.Handler { return http.NotFoundHandler() }
func (s *goldenSource) ReopenLogs() error     { return s.logs.Reopen() }
func (s *goldenSource) Reload() error {
	if err := s.reloadErr.Load(); err != nil {
		return *err
	}
	return nil
}
func (s *goldenSource) Logs() *logs.Recent { return s.logs.Recent }

type goldenFixture struct {
	h            http.Handler
	src          *goldenSource
	read, admin_ string
	web, worker  *pool.Group
}

// newGoldenFixture starts the apps and waits until web and worker have
// their process and broken has failed once.
func newGoldenFixture(t *testing.T) *goldenFixture {
	t.Helper()
	quiet := slog.New(slog.DiscardHandler)
	var webPID, workerPID atomic.Int32
	webPID.Store(4100000)
	workerPID.Store(4200000)
	web := pool.NewGroup(pool.Config{Name: "web", Min: 1, Max: 1, StopTimeout: time.Second},
		pool.SpawnFunc(func(context.Context) (pool.Proc, error) {
			return &tracingProc{newFakeProc(int(webPID.Add(1)))}, nil
		}), quiet)
	worker := pool.NewGroup(pool.Config{Name: "worker", Min: 1, Max: 1, StopTimeout: time.Second},
		pool.SpawnFunc(func(context.Context) (pool.Proc, error) { return newFakeProc(int(workerPID.Add(1))), nil }), quiet)
	broken := pool.NewGroup(pool.Config{Name: "broken", Min: 1, Max: 1, BackoffBase: time.Hour, BackoffMax: time.Hour},
		pool.SpawnFunc(func(context.Context) (pool.Proc, error) {
			return nil, errors.New("app exited before listening: SyntaxError in app.py")
		}), quiet)
	// slow's first process starts at once; its later ones wait for gate,
	// so that a rolling restart stays in progress while the test looks.
	gate := make(chan struct{})
	var slowPID atomic.Int32
	slowPID.Store(4300000)
	slow := pool.NewGroup(pool.Config{Name: "slow", Min: 1, Max: 1, StopTimeout: time.Second},
		pool.SpawnFunc(func(ctx context.Context) (pool.Proc, error) {
			pid := int(slowPID.Add(1))
			if pid == 4300001 {
				return newFakeProc(pid), nil
			}
			select {
			case <-gate:
				return newFakeProc(pid), nil
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}), quiet)
	groups := []*pool.Group{web, worker, broken, slow}

	out, err := logs.New(logs.Options{File: filepath.Join(t.TempDir(), "ferry.log")})
	if err != nil {
		t.Fatal(err)
	}
	probes := health.New(func() []*pool.Group { return groups }, "1.2.3", 0)
	probes.SetListening()
	src := &goldenSource{probes: probes, logs: out, apps: []App{
		{Group: web, Root: "/srv/web", Type: "wsgi", SpawnMethod: "smart", Preloader: func() int { return 4099999 },
			Cache: turbocache.New(turbocache.Options{})},
		{Group: worker, Root: "/srv/worker", Type: "rack", SpawnMethod: "direct"},
		{Group: broken, Root: "/srv/broken", Type: "wsgi", SpawnMethod: "direct"},
		{Group: slow, Root: "/srv/slow", Type: "node", SpawnMethod: "direct"},
	}}
	dir := t.TempDir()
	srv, err := Listen(dir, src, quiet)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		close(gate)
		srv.Shutdown(context.Background())
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		for _, g := range groups {
			g.Close(ctx)
		}
		probes.Close()
		out.Close()
	})
	for _, g := range groups {
		g.Start()
	}
	waitFor(t, "web and worker up, broken failed", func() bool {
		return len(web.PIDs()) == 1 && len(worker.PIDs()) == 1 && len(slow.PIDs()) == 1 && broken.Status().LastError != "" &&
			web.Status().Processes[0].State == "serving" && worker.Status().Processes[0].State == "serving"
	})

	out.Core.Info("ferry started", "version", "1.2.3", "listen", "0.0.0.0:80")
	appLog, err := out.App("")
	if err != nil {
		t.Fatal(err)
	}
	appLog.Info("Listening on 127.0.0.1:41000", "app", "web", "pid", 4100001)
	appLog.Warn("slow query: 2.1s", "app", "worker", "pid", 4200001)

	read, err := os.ReadFile(filepath.Join(dir, ReadTokenFile))
	if err != nil {
		t.Fatal(err)
	}
	adm, err := os.ReadFile(filepath.Join(dir, AdminTokenFile))
	if err != nil {
		t.Fatal(err)
	}
	return &goldenFixture{h: srv.Handler(), src: src, read: strings.TrimSpace(string(read)), admin_: strings.TrimSpace(string(adm)),
		web: web, worker: worker}
}

// waitFor waits for cond (checked often; a stuck one fails after a minute,
// which is no timing assertion: it only stops a hung test).
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(time.Minute); !cond(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("waiting for %s: timed out", what)
		}
	}
}

// volatile are the fields whose values change from run to run: times,
// durations and what /proc says of a pid. Their values become a
// placeholder; the golden files still show that they are there, where the
// API puts them. (The pids are the test's own, and fixed.)
var volatile = map[string]string{
	"started_at": "<time>", "started": "<time>", "last_used": "<time>", "spawn_retry_at": "<time>", "time": "<time>",
	"uptime_seconds": "<seconds>", "cpu_percent": "<percent>",
	"rss_bytes": "<bytes>", "pss_bytes": "<bytes>", "private_dirty_bytes": "<bytes>",
}

// volatileField is one of them with its value, a string or a number, in
// the indented JSON of most answers or the compact one of /logs.
var volatileField = regexp.MustCompile(`"([a-z_]+)":( ?)("(?:[^"\\]|\\.)*"|-?[0-9][0-9.eE+-]*)`)

// timeInLine is the time in a log line of the text format.
var timeInLine = regexp.MustCompile(`time=[^ "]+`)

// normalise puts placeholders in the answer's volatile values, leaving
// the rest as served.
func normalise(body string) string {
	body = volatileField.ReplaceAllStringFunc(body, func(f string) string {
		m := volatileField.FindStringSubmatch(f)
		if p, ok := volatile[m[1]]; ok {
			return `"` + m[1] + `":` + m[2] + `"` + p + `"`
		}
		return f
	})
	return timeInLine.ReplaceAllString(body, "time=<time>")
}

// check serves one request and compares its answer (status line, content
// type, body) with testdata/name.golden; shown is the path as the file
// shows it.
func (f *goldenFixture) check(t *testing.T, name, method, shown, path, token string) {
	t.Helper()
	r := httptest.NewRequest(method, path, nil)
	if token != "" {
		r.Header.Set("Authorization", "Bearer "+token)
	}
	w := httptest.NewRecorder()
	f.h.ServeHTTP(w, r)
	ct := w.Header().Get("Content-Type")
	body := normalise(w.Body.String())
	// Each answer is JSON: one document, or one a line for x-ndjson.
	docs := []string{body}
	if ct == "application/x-ndjson" {
		docs = strings.SplitAfter(strings.TrimSuffix(body, "\n"), "\n")
	}
	for _, d := range docs {
		if !json.Valid([]byte(d)) {
			t.Errorf("%s %s: not JSON: %q", method, path, d)
		}
	}
	got := []byte(fmt.Sprintf("%s %s\n%d %s\n%s\n\n%s", method, shown, w.Code, http.StatusText(w.Code), "Content-Type: "+ct, body))
	file := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.WriteFile(file, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(file)
	if err != nil {
		t.Fatalf("%v (write it with -update)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s %s: the answer differs from %s (if the change is meant, rewrite it with -update and review the diff):\n--- got\n%s\n--- want\n%s",
			method, path, file, got, want)
	}
}

// TestGolden compares each endpoint's answer with its golden file, in an
// order that keeps it deterministic: the reads first, then what changes
// the pools.
func TestGolden(t *testing.T) {
	f := newGoldenFixture(t)
	for _, c := range []struct {
		name, method, path string
		token              string // "read", "admin", or the token itself
	}{
		{"server", "GET", "/server", "read"},
		{"pool", "GET", "/pool", "read"},
		{"requests", "GET", "/requests", "read"},
		{"health", "GET", "/health", ""},
		{"ready", "GET", "/ready", ""},
		{"logs_json", "GET", "/logs?format=json", "read"},
		{"logs_json_app", "GET", "/logs?format=json&app=web", "read"},
		{"logs_bad_format", "GET", "/logs?format=xml", "read"},
		{"logs_unknown_app", "GET", "/logs?app=nope", "read"},
		{"backtraces", "GET", "/backtraces", "admin"},
		{"backtraces_bad_timeout", "GET", "/backtraces?timeout=soon", "admin"},
		{"backtraces_bad_pid", "GET", "/backtraces?pid=0", "admin"},
		{"backtraces_unknown_app", "GET", "/backtraces?app=nope", "admin"},
		{"backtraces_unknown_pid", "GET", "/backtraces?pid=999999999", "admin"},
		{"backtraces_read_token", "GET", "/backtraces", "read"},
		{"no_token", "GET", "/pool", ""},
		{"bad_token", "GET", "/pool", "not-a-token"},
		{"restart_read_token", "POST", "/apps/web/restart", "read"},
		{"restart_unknown_app", "POST", "/apps/nope/restart", "admin"},
		{"reload", "POST", "/reload", "admin"},
		{"reload_error", "POST", "/reload", "admin"},
		{"logs_reopen", "POST", "/logs/reopen", "admin"},
		{"restart", "POST", "/apps/web/restart", "admin"},
		{"detach_unknown_process", "POST", "/apps/web/processes/999999999/detach", "admin"},
		{"kill_unknown_app", "POST", "/apps/nope/processes/1/kill", "admin"},
		{"detach", "POST", "/apps/web/processes/{pid}/detach", "admin"},
		{"kill", "POST", "/apps/worker/processes/{pid}/kill", "admin"},
		{"restart_rolling_nowait", "POST", "/apps/slow/restart?rolling=true&wait=false", "admin"},
		{"restart_in_progress", "POST", "/apps/slow/restart", "admin"},
	} {
		t.Run(c.name, func(t *testing.T) {
			path := c.path
			// The pid of the app's process at that moment; a configuration
			// that does not load.
			switch c.name {
			case "reload_error":
				err := errors.New(`reload: config /srv/web/Passengerfile.json: unknown option "prot"`)
				f.src.reloadErr.Store(&err)
			case "detach":
				path = strings.Replace(path, "{pid}", fmt.Sprint(f.web.PIDs()[0]), 1)
			case "kill":
				path = strings.Replace(path, "{pid}", fmt.Sprint(f.worker.PIDs()[0]), 1)
			}
			tok := c.token
			switch tok {
			case "read":
				tok = f.read
			case "admin":
				tok = f.admin_
			}
			f.check(t, c.name, c.method, c.path, path, tok)
		})
	}
}
