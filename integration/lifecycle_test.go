package integration

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/ferry-server/ferry/internal/admin"
)

// helloApp writes a WSGI app that answers "hello VERSION" and its pid.
func helloApp(t *testing.T, dir, version string) {
	t.Helper()
	src := `import os, time
VERSION = ` + strconv.Quote(version) + `
def application(environ, start_response):
    path = environ.get("PATH_INFO", "/")
    if path == "/sleep":
        time.sleep(float(environ.get("QUERY_STRING", "s=1").split("=")[1]))
    body = ("hello %s %d" % (VERSION, os.getpid())).encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
`
	if version == "broken" {
		src = "raise RuntimeError('the new version is broken')\n"
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "passenger_wsgi.py"), []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
}

// ferryCmd runs a ferry client command against f's instance.
func (f *ferry) run(args ...string) (string, error) {
	return exec_(ferryBin, append(args, "--instance", f.Instance)...)
}

func TestRestartTxt(t *testing.T) {
	dir := filepath.Join(shortTempDir(t), "app")
	helloApp(t, dir, "v1")
	f := startFerry(t, dir, "--stat-throttle-rate", "0")
	if _, body := f.get("/"); !strings.HasPrefix(body, "hello v1 ") {
		t.Fatalf("GET / = %q", body)
	}
	helloApp(t, dir, "v2")
	os.MkdirAll(filepath.Join(dir, "tmp"), 0o755)
	os.WriteFile(filepath.Join(dir, "tmp", "restart.txt"), nil, 0o644)
	// The very next request is served by the new code.
	if code, body := f.get("/"); code != 200 || !strings.HasPrefix(body, "hello v2 ") {
		t.Fatalf("after touching restart.txt GET / = %d %q", code, body)
	}
	if code, body := f.get("/"); code != 200 || !strings.HasPrefix(body, "hello v2 ") {
		t.Fatalf("second request = %d %q", code, body)
	}
}

func TestBlockingRestartHoldsRequests(t *testing.T) {
	dir := filepath.Join(shortTempDir(t), "app")
	helloApp(t, dir, "v1")
	f := startFerry(t, dir, "--min-instances", "2", "--max-pool-size", "2")
	eventually(t, "two processes", func() bool { return len(f.pids()) == 2 })
	old := f.pids()

	// A slow request in flight and a stream of requests during the restart:
	// none fails, the slow one finishes on the old code.
	slow := make(chan string, 1)
	go func() {
		_, body := f.get("/sleep?s=2")
		slow <- body
	}()
	eventually(t, "the slow request in flight", func() bool { return sessions(f) == 1 })
	helloApp(t, dir, "v2")
	var failed atomic.Int32
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				resp, err := client.Get(f.URL + "/")
				if err != nil || resp.StatusCode != 200 {
					failed.Add(1)
				}
				if resp != nil {
					resp.Body.Close()
				}
			}
		}()
	}
	out, err := f.run("restart")
	close(stop)
	wg.Wait()
	if err != nil || !strings.Contains(out, "restarted") {
		t.Fatalf("ferry restart: %v\n%s", err, out)
	}
	if body := <-slow; !strings.HasPrefix(body, "hello v1 ") {
		t.Errorf("the in-flight request was answered by %q, want the old code", body)
	}
	if n := failed.Load(); n != 0 {
		t.Errorf("%d requests failed during a blocking restart", n)
	}
	for _, pid := range f.pids() {
		for _, o := range old {
			if pid == o {
				t.Errorf("old process %d survived the restart", pid)
			}
		}
	}
	if _, body := f.get("/"); !strings.HasPrefix(body, "hello v2 ") {
		t.Errorf("after the restart GET / = %q", body)
	}
}

func sessions(f *ferry) int {
	n := 0
	for _, p := range f.pool().Apps[0].Processes {
		n += p.Sessions
	}
	return n
}

// TestRollingRestartUnderLoad is the acceptance test of rolling restarts:
// steady load, zero failed requests, and afterwards only new code answers.
func TestRollingRestartUnderLoad(t *testing.T) {
	dir := filepath.Join(shortTempDir(t), "app")
	helloApp(t, dir, "v1")
	f := startFerry(t, dir, "--min-instances", "4", "--max-pool-size", "4")
	eventually(t, "four processes", func() bool { return len(f.pids()) == 4 })
	helloApp(t, dir, "v2")

	var served, failed atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				resp, err := client.Get(f.URL + "/")
				if err != nil || resp.StatusCode != 200 {
					failed.Add(1)
				} else {
					served.Add(1)
				}
				if resp != nil {
					resp.Body.Close()
				}
			}
		}()
	}
	out, err := f.run("restart", "--rolling")
	close(stop)
	wg.Wait()
	if err != nil || !strings.Contains(out, "rolling") {
		t.Fatalf("ferry restart --rolling: %v\n%s", err, out)
	}
	t.Logf("rolling restart under 20 concurrent clients: %d served, %d failed", served.Load(), failed.Load())
	if failed.Load() != 0 {
		t.Fatalf("%d requests failed during a rolling restart", failed.Load())
	}
	for range 20 {
		if _, body := f.get("/"); !strings.HasPrefix(body, "hello v2 ") {
			t.Fatalf("after the rolling restart GET / = %q, want new code only", body)
		}
	}
	for _, p := range f.pool().Apps[0].Processes {
		if p.Generation != 1 {
			t.Errorf("process %d of generation %d after the restart", p.PID, p.Generation)
		}
	}
}

func TestFailedDeployKeepsOldVersion(t *testing.T) {
	dir := filepath.Join(shortTempDir(t), "app")
	helloApp(t, dir, "v1")
	f := startFerry(t, dir, "--min-instances", "2", "--max-pool-size", "2")
	eventually(t, "two processes", func() bool { return len(f.pids()) == 2 })
	old := f.pids()
	helloApp(t, dir, "broken")
	out, err := f.run("restart", "--rolling")
	if err == nil || !strings.Contains(out, "the new version is broken") {
		t.Fatalf("ferry restart --rolling of a broken version: %v\n%s", err, out)
	}
	if code, body := f.get("/"); code != 200 || !strings.HasPrefix(body, "hello v1 ") {
		t.Fatalf("after a failed deploy GET / = %d %q", code, body)
	}
	if got := f.pids(); len(got) != 2 || got[0] != old[0] || got[1] != old[1] {
		t.Errorf("processes %v after a failed deploy, want the old %v", got, old)
	}
	st := f.poolRaw()
	if !strings.Contains(st, `"deploy_error"`) || !strings.Contains(st, "the new version is broken") {
		t.Errorf("status does not report the failed deploy:\n%s", st)
	}
	f.waitLog(`level=ERROR msg="rolling restart failed`)
}

func TestMaxRequests(t *testing.T) {
	f := startFerry(t, fixture(t, "wsgi/echo"), "--max-requests", "3", "--min-instances", "1", "--max-pool-size", "1")
	seen := map[string]int{}
	for range 10 {
		code, pid := f.get("/pid")
		if code != 200 {
			t.Fatalf("GET /pid = %d", code)
		}
		seen[pid]++
	}
	if len(seen) < 3 {
		t.Fatalf("10 requests with --max-requests 3 were served by %v, want at least 3 processes", seen)
	}
	for pid, n := range seen {
		if n > 3 {
			t.Errorf("process %s served %d requests, past --max-requests 3", pid, n)
		}
	}
}

func TestMemoryLimit(t *testing.T) {
	f := startFerry(t, fixture(t, "wsgi/echo"), "--memory-limit", "60", "--min-instances", "1", "--max-pool-size", "1")
	_, pid := f.get("/pid")
	if code, body := f.get("/hog?mb=100"); code != 200 {
		t.Fatalf("GET /hog = %d %s", code, body)
	}
	f.waitLog(`msg="recycling process" app=echo pid=` + pid + ` reason="memory \d+ MiB over --memory-limit 60 MiB`)
	eventually(t, "the big process replaced", func() bool {
		_, now := f.get("/pid")
		return now != pid
	})
}

func TestMaxRequestTime(t *testing.T) {
	f := startFerry(t, fixture(t, "wsgi/echo"), "--max-request-time", "1", "--min-instances", "1", "--max-pool-size", "1")
	_, pid := f.get("/pid")
	code, _ := f.get("/sleep?s=600")
	if code != http.StatusGatewayTimeout {
		t.Fatalf("a request past --max-request-time = %d, want 504", code)
	}
	f.waitLog(`msg="request ran longer than --max-request-time; killing its process" method=GET path="/sleep\?s=600" duration=\S+ pid=` + pid)
	// Before the kill, the loader printed where it was stuck (faulthandler).
	f.waitLog(`pid=` + pid + ` stream=stderr line=".*most recent call first`)
	f.waitLog(`pid=` + pid + ` stream=stderr line=".*File .*passenger_wsgi.py.*in sleep`)
	if code, now := f.get("/pid"); code != 200 || now == pid {
		t.Fatalf("after the kill GET /pid = %d %s (was %s)", code, now, pid)
	}
}

func TestMaxRequestQueueTime(t *testing.T) {
	f := startFerry(t, fixture(t, "wsgi/echo"), "--max-request-queue-time", "1", "--max-pool-size", "1")
	f.get("/")
	go f.get("/sleep?s=5")
	eventually(t, "the process busy", func() bool { return sessions(f) == 1 })
	if code, _ := f.get("/"); code != http.StatusGatewayTimeout {
		t.Fatalf("a request queued past --max-request-queue-time = %d, want 504", code)
	}
}

func TestQueuedRequestOfGoneClientIsDropped(t *testing.T) {
	f := startFerry(t, fixture(t, "wsgi/echo"), "--max-pool-size", "1")
	f.get("/")
	go f.get("/sleep?s=2")
	eventually(t, "the process busy", func() bool { return sessions(f) == 1 })
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "GET", f.URL+"/print", nil)
	go func() {
		eventually(t, "the request queued", func() bool { return f.pool().Apps[0].Queued == 1 })
		cancel()
	}()
	if _, err := client.Do(req); err == nil {
		t.Fatal("the cancelled request got an answer")
	}
	eventually(t, "the queue empty", func() bool { return f.pool().Apps[0].Queued == 0 })
	f.waitLog(`path="/sleep\?s=2" status=200`)
	f.waitLog(`path=/print status=499`)
	if strings.Contains(f.logs.String(), "hello stdout from app") {
		t.Fatal("the app ran the request of a client that had hung up")
	}
}

func (f *ferry) poolRaw() string {
	f.t.Helper()
	var raw json.RawMessage
	if err := admin.NewClient(f.Instance).Do(context.Background(), "GET", "/pool", &raw); err != nil {
		f.t.Fatal(err)
	}
	return string(raw)
}

func TestOutOfBandWork(t *testing.T) {
	f := startFerry(t, fixture(t, "wsgi/echo"), "--max-pool-size", "1")
	resp := f.request("GET", "/oob", nil, nil)
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("X-Ferry-Request-Oob-Work") != "" {
		t.Fatalf("GET /oob = %d, header passed on: %q", resp.StatusCode, resp.Header.Get("X-Ferry-Request-Oob-Work"))
	}
	var stats struct {
		Apps []struct {
			Stats struct {
				OutOfBand int `json:"out_of_band_work"`
			} `json:"stats"`
		} `json:"apps"`
	}
	eventually(t, "the out-of-band work done", func() bool {
		if err := admin.NewClient(f.Instance).Do(context.Background(), "GET", "/pool", &stats); err != nil {
			t.Fatal(err)
		}
		return stats.Apps[0].Stats.OutOfBand == 1 && f.pool().Apps[0].Processes[0].State == "serving"
	})
	// Still serving afterwards, by the same process.
	if code, _ := f.get("/"); code != 200 {
		t.Fatalf("after out-of-band work GET / = %d", code)
	}
}
