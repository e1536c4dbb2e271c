package integration

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// buildGoApp builds the generic Go app in testdata once per test run.
var buildGoApp = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "goapp-")
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "goapp")
	src, _ := filepath.Abs("../testdata/generic/goapp")
	cmd := exec.Command("go", "build", "-o", bin, ".")
	cmd.Dir = src
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build goapp: %v\n%s", err, out)
	}
	return bin, nil
})

func TestGenericApp(t *testing.T) {
	bin, err := buildGoApp()
	if err != nil {
		t.Fatal(err)
	}
	// The app dir of a generic app holds nothing Ferry recognises.
	// --trusted-proxies none: this client on loopback is not a proxy.
	f := startFerry(t, t.TempDir(), "--app-start-command", bin+" --port-is $PORT", "--max-pool-size", "2", "--trusted-proxies", "none")
	f.waitLog(`app_type=generic`)

	if code, body := f.get("/"); code != 200 || body != "hello from go" {
		t.Fatalf("GET / = %d %q", code, body)
	}
	data := bytes.Repeat([]byte("generic"), 300000)
	sum := sha256.Sum256(data)
	code, out := f.do("POST", "/echo?x=1", bytes.NewReader(data), http.Header{
		"X-Forwarded-For":   {"6.6.6.6"},
		"X-Forwarded-Proto": {"https"},
	})
	if code != 200 {
		t.Fatalf("POST /echo = %d %s", code, out)
	}
	var e struct {
		Method     string              `json:"method"`
		Query      string              `json:"query"`
		Headers    map[string][]string `json:"headers"`
		BodyLen    int                 `json:"body_len"`
		BodySHA256 string              `json:"body_sha256"`
	}
	json.Unmarshal([]byte(out), &e)
	if e.Method != "POST" || e.Query != "x=1" || e.BodyLen != len(data) || e.BodySHA256 != hex.EncodeToString(sum[:]) {
		t.Errorf("app saw %s ?%s %d bytes", e.Method, e.Query, e.BodyLen)
	}
	if xff := e.Headers["X-Forwarded-For"]; len(xff) != 1 || xff[0] != "127.0.0.1" {
		t.Errorf("X-Forwarded-For = %q, want Ferry's 127.0.0.1 only", xff)
	}
	if xfp := e.Headers["X-Forwarded-Proto"]; len(xfp) != 1 || xfp[0] != "http" {
		t.Errorf("X-Forwarded-Proto = %q", xfp)
	}
	for k := range e.Headers {
		if strings.HasPrefix(k, "X-Ferry") {
			t.Errorf("internal header %s reached a generic app", k)
		}
	}

	t.Run("upgrade tunnel", func(t *testing.T) {
		conn, err := net.Dial("tcp", strings.TrimPrefix(f.URL, "http://"))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		fmt.Fprint(conn, "GET /upgrade HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n")
		br := bufio.NewReader(conn)
		resp, err := http.ReadResponse(br, nil)
		if err != nil || resp.StatusCode != 101 || resp.Header.Get("Upgrade") != "echo" {
			t.Fatalf("upgrade answer %v %v", resp, err)
		}
		for i := range 3 {
			fmt.Fprintf(conn, "line %d\n", i)
			got, err := br.ReadString('\n')
			if err != nil || got != fmt.Sprintf("echo: line %d\n", i) {
				t.Fatalf("echo %d = %q, %v", i, got, err)
			}
		}
		// While the tunnel lives the process counts as busy.
		if s := f.pool().Apps[0].Processes; len(s) == 0 || s[0].Sessions+sessionsOf(s[1:]) != 1 {
			t.Errorf("sessions during the tunnel: %+v", s)
		}
	})

	t.Run("streaming", func(t *testing.T) {
		resp := f.request("GET", "/stream?n=2&delay=600", nil, nil)
		defer resp.Body.Close()
		line, err := bufio.NewReader(resp.Body).ReadString('\n')
		if err != nil || line != "chunk 0\n" {
			t.Fatalf("first chunk = %q, %v", line, err)
		}
	})
}

func sessionsOf(ps []struct {
	PID        int    `json:"pid"`
	Sessions   int    `json:"sessions"`
	Processed  int    `json:"processed"`
	Generation int    `json:"generation"`
	State      string `json:"state"`
}) int {
	n := 0
	for _, p := range ps {
		n += p.Sessions
	}
	return n
}

func TestGenericAppThatNeverListens(t *testing.T) {
	f := startFerry(t, t.TempDir(), "--app-start-command", "echo 'ignoring PORT='$PORT; exec sleep 600",
		"--start-timeout", "2", "--min-instances", "0")
	code, body := f.get("/")
	if code != 500 || !strings.Contains(body, "did not listen on port") || !strings.Contains(body, "ignoring PORT=") {
		t.Fatalf("GET / = %d %s", code, body)
	}
}

// ppid reads a process's parent from /proc.
func ppid(t *testing.T, pid int) int {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	n, _ := strconv.Atoi(fields[1])
	return n
}

func TestSmartSpawning(t *testing.T) {
	f := startFerry(t, fixture(t, "wsgi/echo"), "--min-instances", "2", "--spawn-method", "smart")
	line := f.waitLog(`msg="preloader ready"`)
	var preloader int
	fmt.Sscanf(line[strings.Index(line, " pid=")+5:], "%d", &preloader)
	eventually(t, "two workers", func() bool { return len(f.pids()) == 2 })
	for _, pid := range f.pids() {
		if pid == preloader {
			t.Fatal("the preloader serves requests")
		}
		if got := ppid(t, pid); got != preloader {
			t.Errorf("worker %d has parent %d, want the preloader %d", pid, got, preloader)
		}
	}
	if code, body := f.get("/"); code != 200 || body != "hello world" {
		t.Fatalf("GET / = %d %q", code, body)
	}
	// A worker's output is tagged with its own pid.
	_, pid := f.get("/pid")
	f.get("/print")
	f.waitLog(`msg="app output" app=echo pid=` + pid + ` stream=stdout line="hello stdout from app"`)
}

func TestSmartSpawningSurvivesPreloaderDeath(t *testing.T) {
	f := startFerry(t, fixture(t, "wsgi/echo"), "--min-instances", "1", "--max-pool-size", "1", "--spawn-method", "smart")
	line := f.waitLog(`msg="preloader ready"`)
	var preloader int
	fmt.Sscanf(line[strings.Index(line, " pid=")+5:], "%d", &preloader)
	eventually(t, "a worker", func() bool { return len(f.pids()) == 1 })
	worker := f.pids()[0]
	syscallKill(t, preloader)
	// The worker lives on; a new worker comes from a new preloader.
	if code, _ := f.get("/"); code != 200 {
		t.Fatalf("after the preloader died GET / = %d", code)
	}
	syscallKill(t, worker)
	eventually(t, "a replacement worker", func() bool {
		p := f.pids()
		return len(p) == 1 && p[0] != worker
	})
	if code, body := f.get("/"); code != 200 || body != "hello world" {
		t.Fatalf("GET / = %d %q", code, body)
	}
	if strings.Count(f.logs.String(), `msg="preloader ready"`) != 2 {
		t.Errorf("want exactly one new preloader")
	}
}

func TestDirectSpawning(t *testing.T) {
	f := startFerry(t, fixture(t, "wsgi/echo"), "--min-instances", "2", "--spawn-method", "direct")
	eventually(t, "two processes", func() bool { return len(f.pids()) == 2 })
	for _, pid := range f.pids() {
		if got := ppid(t, pid); got != f.cmd.Process.Pid {
			t.Errorf("process %d has parent %d, want the core %d", pid, got, f.cmd.Process.Pid)
		}
	}
	if strings.Contains(f.logs.String(), "preloader") {
		t.Error("a preloader was started for direct spawning")
	}
}

func TestThreads(t *testing.T) {
	f := startFerry(t, fixture(t, "wsgi/echo"), "--concurrency-model", "thread", "--thread-count", "4",
		"--max-pool-size", "1", "--min-instances", "1")
	var wg sync.WaitGroup
	pids := make(chan string, 4)
	for i := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Distinct URLs: identical concurrent misses would be coalesced
			// by the response cache.
			code, pid := f.get(fmt.Sprintf("/sleep?s=2&i=%d", i))
			if code != 200 {
				t.Errorf("GET /sleep = %d", code)
			}
			pids <- pid
		}()
	}
	eventually(t, "four requests in one process at once", func() bool {
		a := f.pool().Apps[0]
		return len(a.Processes) == 1 && a.Processes[0].Sessions == 4 && a.Queued == 0
	})
	wg.Wait()
	close(pids)
	first := <-pids
	for p := range pids {
		if p != first {
			t.Errorf("served by %s and %s, want one process", first, p)
		}
	}
}

func TestEnvironment(t *testing.T) {
	f := startFerry(t, fixture(t, "wsgi/echo"), "-e", "staging", "--envvar", "GREETING=hi there",
		"--envvar", "RACK_ENV=custom")
	_, out := f.get("/osenv")
	var env map[string]any
	if err := json.Unmarshal([]byte(out), &env); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"GREETING": "hi there", "WSGI_ENV": "staging", "RAILS_ENV": "staging", "NODE_ENV": "staging",
		"PASSENGER_APP_ENV": "staging", "FERRY_APP_ENV": "staging", "PYTHONUNBUFFERED": "1",
		"RACK_ENV": "custom", // --envvar wins
	}
	for k, v := range want {
		if env[k] != v {
			t.Errorf("%s = %v, want %q", k, env[k], v)
		}
	}
}
