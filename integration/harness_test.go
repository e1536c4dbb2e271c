// Package integration drives the real ferry binary against real apps in
// testdata/ over real sockets.
package integration

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"

	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ferry-server/ferry/internal/admin"
)

// ferryBin is the binary under test, built once by TestMain.
var ferryBin string

// python is the interpreter fixture apps run with: Debian's, which sees
// Debian's Python packages.
const python = "/usr/bin/python3"

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "ferry-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	ferryBin = filepath.Join(dir, "ferry")
	args := []string{"build", "-o", ferryBin}
	if raceEnabled {
		args = append(args, "-race") // races in the core show up under real traffic
	}
	cmd := exec.Command("go", append(args, "../cmd/ferry")...)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build ferry:", err)
		os.Exit(1)
	}
	// Every ferry the tests start stops at once on SIGTERM, unless a test
	// asks for a drain delay (flags win over the environment).
	os.Setenv("FERRY_DRAIN_DELAY", "0")
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func needPython(t *testing.T) {
	t.Helper()
	if _, err := os.Stat(python); err != nil {
		t.Skipf("%s not installed: %v", python, err)
	}
}

// ferry is one running `ferry start`.
type ferry struct {
	t        *testing.T
	cmd      *exec.Cmd
	URL      string // http://127.0.0.1:PORT
	Instance string // instance directory
	logs     *logBuffer
	exited   chan struct{}
	exitErr  error
}

var (
	listenRe   = regexp.MustCompile(`listen=\S*:(\d+)`)
	instanceRe = regexp.MustCompile(`instance=(\S+)`)
)

// startFerry runs `ferry start appDir --port 0 args...` and waits until it
// listens. It is stopped with SIGTERM at test cleanup unless already gone.
func startFerry(t *testing.T, appDir string, args ...string) *ferry {
	t.Helper()
	return startFerryArgs(t, append([]string{appDir}, args...)...)
}

// startFerryArgs is startFerry with the arguments as given (e.g. --config
// FILE instead of an APP_DIR).
func startFerryArgs(t *testing.T, args ...string) *ferry {
	t.Helper()
	needPython(t)
	reg := shortTempDir(t)
	all := append([]string{"start", "--port", "0", "--address", "127.0.0.1",
		"--python", python, "--instance-registry-dir", reg}, args...)
	cmd := exec.Command(ferryBin, all...)
	f := &ferry{t: t, cmd: cmd, logs: newLogBuffer(), exited: make(chan struct{})}
	cmd.Stdout = f.logs
	cmd.Stderr = f.logs
	if err := cmd.Start(); err != nil {
		t.Fatalf("start ferry: %v", err)
	}
	go func() {
		f.exitErr = cmd.Wait()
		close(f.exited)
	}()
	t.Cleanup(func() {
		f.stop()
		if t.Failed() {
			t.Logf("ferry log:\n%s", f.logs.String())
		}
	})
	line := f.waitLog(`msg="ferry started"`)
	m := listenRe.FindStringSubmatch(line)
	if m == nil {
		t.Fatalf("no listen address in %q", line)
	}
	f.URL = "http://127.0.0.1:" + m[1]
	f.Instance = instanceRe.FindStringSubmatch(line)[1]
	return f
}

// shortTempDir is a temp dir with a short path, as Unix socket paths are
// limited to 107 bytes and t.TempDir paths can be long.
func shortTempDir(t *testing.T) string {
	t.Helper()
	d, err := os.MkdirTemp("", "fy")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	return d
}

func (f *ferry) stop() {
	select {
	case <-f.exited:
		return
	default:
	}
	f.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-f.exited:
	case <-time.After(60 * time.Second):
		f.cmd.Process.Kill()
		<-f.exited
		f.t.Errorf("ferry did not exit within 60s of SIGTERM")
	}
}

// waitLog waits until a log line matches pattern and returns it.
func (f *ferry) waitLog(pattern string) string {
	f.t.Helper()
	re := regexp.MustCompile(pattern)
	line, ok := f.logs.wait(re, 60*time.Second, f.exited)
	if !ok {
		f.t.Fatalf("no log line matching %q; log:\n%s", pattern, f.logs.String())
	}
	return line
}

// get does a GET and returns status and body.
func (f *ferry) get(path string) (int, string) {
	f.t.Helper()
	return f.do("GET", path, nil, nil)
}

func (f *ferry) do(method, path string, body io.Reader, header http.Header) (int, string) {
	f.t.Helper()
	resp := f.request(method, path, body, header)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		f.t.Fatalf("%s %s: read body: %v", method, path, err)
	}
	return resp.StatusCode, string(b)
}

func (f *ferry) request(method, path string, body io.Reader, header http.Header) *http.Response {
	f.t.Helper()
	req, err := http.NewRequest(method, f.URL+path, body)
	if err != nil {
		f.t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := client.Do(req)
	if err != nil {
		f.t.Fatalf("%s %s: %v", method, path, err)
	}
	return resp
}

var client = &http.Client{Timeout: 120 * time.Second}

// poolStatus asks the admin API for the pool.
type poolStatus struct {
	Apps []struct {
		Name      string `json:"name"`
		Queued    int    `json:"queued"`
		Processes []struct {
			PID        int    `json:"pid"`
			Sessions   int    `json:"sessions"`
			Processed  int    `json:"processed"`
			Generation int    `json:"generation"`
			State      string `json:"state"`
		} `json:"processes"`
		LastError string `json:"last_spawn_error"`
		Stats     struct {
			Spawned     int `json:"spawned"`
			SpawnFailed int `json:"spawn_failed"`
			Died        int `json:"died"`
			IdleStopped int `json:"idle_stopped"`
		} `json:"stats"`
	} `json:"apps"`
}

func (f *ferry) pool() poolStatus {
	f.t.Helper()
	var st poolStatus
	if err := admin.NewClient(f.Instance).Do(context.Background(), "GET", "/pool", &st); err != nil {
		f.t.Fatalf("admin /pool: %v", err)
	}
	if len(st.Apps) != 1 {
		f.t.Fatalf("admin /pool: %d apps, want 1", len(st.Apps))
	}
	return st
}

// pids are the app processes the pool has.
func (f *ferry) pids() []int {
	var out []int
	for _, p := range f.pool().Apps[0].Processes {
		out = append(out, p.PID)
	}
	return out
}

// eventually polls cond until it holds, failing after a generous deadline.
// It waits for the system to reach a state; it asserts nothing about speed.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for: %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// A zombie is as good as gone: it runs nothing.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || s[i+2] != 'Z'
}

// logBuffer collects ferry's output and lets tests wait for lines.
type logBuffer struct {
	mu     sync.Mutex
	buf    strings.Builder
	notify chan struct{}
}

func newLogBuffer() *logBuffer { return &logBuffer{notify: make(chan struct{})} }

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	l.buf.Write(p)
	close(l.notify)
	l.notify = make(chan struct{})
	l.mu.Unlock()
	return len(p), nil
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

func (l *logBuffer) wait(re *regexp.Regexp, timeout time.Duration, exited <-chan struct{}) (string, bool) {
	deadline := time.After(timeout)
	for {
		l.mu.Lock()
		text, ch := l.buf.String(), l.notify
		l.mu.Unlock()
		sc := bufio.NewScanner(strings.NewReader(text))
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			if re.MatchString(sc.Text()) {
				return sc.Text(), true
			}
		}
		select {
		case <-ch:
		case <-exited:
			// Drain what the process wrote last before giving up.
			select {
			case <-ch:
			case <-time.After(100 * time.Millisecond):
				return "", false
			}
		case <-deadline:
			return "", false
		}
	}
}

// fixture returns the absolute path of a testdata app.
func fixture(t *testing.T, name string) string {
	t.Helper()
	p, err := filepath.Abs(filepath.Join("..", "testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// copyFixture copies a testdata app to a temp dir the test may change.
func copyFixture(t *testing.T, name string) string {
	t.Helper()
	dst := filepath.Join(shortTempDir(t), filepath.Base(name))
	if err := os.CopyFS(dst, os.DirFS(fixture(t, name))); err != nil {
		t.Fatal(err)
	}
	return dst
}

// exec_ runs a command and returns its combined output.
func exec_(name string, args ...string) (string, error) {
	out, err := exec.Command(name, args...).CombinedOutput()
	return string(out), err
}

func syscallKill(t *testing.T, pid int) {
	t.Helper()
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatalf("kill %d: %v", pid, err)
	}
}

func ioCopy(w io.Writer, resp *http.Response) (int64, error) { return io.Copy(w, resp.Body) }
