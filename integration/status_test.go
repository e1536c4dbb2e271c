package integration

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/ferry-server/ferry/internal/admin"
)

// startTwo starts a WSGI app (smart spawning: a preloader and two forked
// workers) and waits for both processes. args are more start options.
func startTwo(t *testing.T, args ...string) (*ferry, []int) {
	t.Helper()
	dir := filepath.Join(shortTempDir(t), "app")
	helloApp(t, dir, "v1")
	f := startFerry(t, dir, append([]string{"--min-instances", "2", "--max-pool-size", "2"}, args...)...)
	eventually(t, "two processes", func() bool { return len(f.pids()) == 2 })
	return f, f.pids()
}

// ferryCtx runs a ferry client command bounded by timeout, with stdout and
// stderr apart.
func ferryCtx(t *testing.T, timeout time.Duration, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, ferryBin, args...)
	var out, errOut strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err = cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("ferry %s did not finish within %s; output:\n%s%s", strings.Join(args, " "), timeout, out.String(), errOut.String())
	}
	return out.String(), errOut.String(), err
}

func TestStatus(t *testing.T) {
	pidFile := filepath.Join(shortTempDir(t), "ferry.pid")
	f, pids := startTwo(t, "--pid-file", pidFile)
	if code, _ := f.get("/"); code != 200 {
		t.Fatalf("GET / = %d", code)
	}

	t.Run("text", func(t *testing.T) {
		out, stderr, err := ferryCtx(t, time.Minute, "status", "--instance", f.Instance)
		if err != nil {
			t.Fatalf("ferry status: %v\n%s%s", err, out, stderr)
		}
		t.Logf("ferry status:\n%s", out)
		for _, want := range []string{
			`(?m)^-+ Application: app -+$`,
			`(?m)^PID:\s+` + strconv.Itoa(f.cmd.Process.Pid) + `$`,
			`(?m)^Instance:\s+` + regexp.QuoteMeta(f.Instance) + `$`,
			`(?m)^Spawn method:\s+smart \(preloader pid \d+\)$`,
			`(?m)^Processes:\s+2 \(min 2, max 2\)$`,
		} {
			if !regexp.MustCompile(want).MatchString(out) {
				t.Errorf("nothing matches %s in the output", want)
			}
		}
		if !regexp.MustCompile(`(?m)^Generation:\s+0$`).MatchString(out) {
			t.Errorf("no generation 0 in the output")
		}
		for _, pid := range pids {
			if !regexp.MustCompile(`(?m)^  ` + strconv.Itoa(pid) + `\s+serving\s+0\s`).MatchString(out) {
				t.Errorf("no table row for process %d (serving, generation 0)", pid)
			}
		}
		if strings.Contains(out, "\x1b[") {
			t.Errorf("colour escapes in output to a pipe")
		}
	})

	t.Run("pid file", func(t *testing.T) {
		out, stderr, err := ferryCtx(t, time.Minute, "status", "--pid-file", pidFile,
			"--instance-registry-dir", filepath.Dir(f.Instance))
		if err != nil {
			t.Fatalf("ferry status --pid-file: %v\n%s%s", err, out, stderr)
		}
		for _, pid := range pids {
			if !strings.Contains(out, strconv.Itoa(pid)) {
				t.Errorf("pid %d missing from:\n%s", pid, out)
			}
		}
	})

	t.Run("json", func(t *testing.T) {
		out, stderr, err := ferryCtx(t, time.Minute, "status", "--json", "--instance", f.Instance)
		if err != nil {
			t.Fatalf("ferry status --json: %v\n%s", err, stderr)
		}
		var ps admin.PoolStatus
		if err := json.Unmarshal([]byte(out), &ps); err != nil {
			t.Fatalf("ferry status --json is not the pool's JSON: %v\n%s", err, out)
		}
		if len(ps.Apps) != 1 || len(ps.Apps[0].Processes) != 2 || ps.Apps[0].Name != "app" {
			t.Fatalf("ferry status --json: %+v", ps)
		}
		for _, p := range ps.Apps[0].Processes {
			if p.PID != pids[0] && p.PID != pids[1] {
				t.Errorf("process %d in the JSON, want %v", p.PID, pids)
			}
		}
		out, _, err = ferryCtx(t, time.Minute, "status", "--show=server", "--json", "--instance", f.Instance)
		var info admin.Info
		if err != nil || json.Unmarshal([]byte(out), &info) != nil || info.PID != f.cmd.Process.Pid {
			t.Errorf("ferry status --show=server --json = %v, %v:\n%s", info, err, out)
		}
	})

	t.Run("server", func(t *testing.T) {
		out, stderr, err := ferryCtx(t, time.Minute, "status", "--show=server", "--instance", f.Instance)
		if err != nil {
			t.Fatalf("ferry status --show=server: %v\n%s", err, stderr)
		}
		// Options as users write them: keys of Passengerfile.json, seconds.
		if !strings.Contains(out, "Configuration in effect") || !regexp.MustCompile(`\napp\[0\]\.min_instances\s+2\n`).MatchString(out) ||
			!regexp.MustCompile(`\nshutdown_timeout\s+20\n`).MatchString(out) {
			t.Errorf("no configuration with app[0].min_instances 2 and shutdown_timeout 20 in:\n%s", out)
		}
	})

	t.Run("requests", func(t *testing.T) {
		done := make(chan int, 1)
		go func() {
			resp, err := client.Get(f.URL + "/sleep?s=5")
			if err != nil {
				done <- 0
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			done <- resp.StatusCode
		}()
		var out string
		eventually(t, "the slow request listed by status --show=requests", func() bool {
			o, _, err := ferryCtx(t, time.Minute, "status", "--show=requests", "--instance", f.Instance)
			out = o
			return err == nil && strings.Contains(o, "/sleep?s=5")
		})
		t.Logf("ferry status --show=requests:\n%s", out)
		row := regexp.MustCompile(`(?m)^  GET\s+/sleep\?s=5\s+127\.0\.0\.1:\d+\s+\S.*\s+[0-9.]+m?s\s+(\d+)$`).FindStringSubmatch(out)
		if row == nil {
			t.Fatalf("no row with method, path, client, state, age and pid")
		}
		if pid, _ := strconv.Atoi(row[1]); pid != pids[0] && pid != pids[1] {
			t.Errorf("the request is on pid %d, want one of %v", pid, pids)
		}
		if code := <-done; code != 200 {
			t.Errorf("the slow request got %d", code)
		}
	})

	t.Run("metrics", func(t *testing.T) {
		out, stderr, err := ferryCtx(t, time.Minute, "status", "--show=metrics", "--instance", f.Instance)
		if err != nil {
			t.Fatalf("ferry status --show=metrics: %v\n%s", err, stderr)
		}
		p := expfmt.NewTextParser(model.UTF8Validation)
		fams, err := p.TextToMetricFamilies(strings.NewReader(out))
		if err != nil {
			t.Fatalf("the metrics do not parse: %v\n%s", err, out)
		}
		if _, ok := fams["ferry_http_requests_total"]; !ok {
			t.Errorf("no ferry_http_requests_total among %d families", len(fams))
		}
		if _, _, err := ferryCtx(t, time.Minute, "status", "--show=metrics", "--json", "--instance", f.Instance); err == nil {
			t.Errorf("--show=metrics --json succeeded; the metrics are not JSON")
		}
	})

	t.Run("bad show", func(t *testing.T) {
		_, stderr, err := ferryCtx(t, time.Minute, "status", "--show=everything", "--instance", f.Instance)
		if err == nil || !strings.Contains(stderr, "--show must be") {
			t.Errorf("--show=everything: %v, %q", err, stderr)
		}
	})
}

// memStats is the JSON of memory-stats.
type memStats struct {
	CorePID   int `json:"core_pid"`
	Processes []struct {
		PID     int    `json:"pid"`
		PPID    int    `json:"ppid"`
		Role    string `json:"role"`
		Command string `json:"command"`
		RSS     int64  `json:"rss_bytes"`
		PSS     int64  `json:"pss_bytes"`
	} `json:"processes"`
	Total struct {
		PSS int64 `json:"pss_bytes"`
	} `json:"total"`
}

func TestMemoryStats(t *testing.T) {
	f, pids := startTwo(t)
	core := f.cmd.Process.Pid

	check := func(t *testing.T) {
		t.Helper()
		out, stderr, err := ferryCtx(t, time.Minute, "memory-stats", "--json", "--instance", f.Instance)
		if err != nil {
			t.Fatalf("ferry memory-stats --json: %v\n%s", err, stderr)
		}
		var ms memStats
		if err := json.Unmarshal([]byte(out), &ms); err != nil {
			t.Fatalf("memory-stats --json: %v\n%s", err, out)
		}
		roles := map[int]string{}
		var sum int64
		for _, p := range ms.Processes {
			roles[p.PID] = p.Role
			sum += p.PSS
			if p.PSS <= 0 || p.RSS < p.PSS {
				t.Errorf("process %d (%s): PSS %d, RSS %d; want 0 < PSS <= RSS", p.PID, p.Role, p.PSS, p.RSS)
			}
		}
		if roles[core] != "core" {
			t.Errorf("core %d has role %q", core, roles[core])
		}
		for _, pid := range pids {
			if roles[pid] != "app" {
				t.Errorf("app process %d has role %q", pid, roles[pid])
			}
		}
		var preloaders int
		for _, r := range roles {
			if r == "preloader" {
				preloaders++
			}
		}
		if preloaders != 1 || len(ms.Processes) != 4 {
			t.Errorf("%d preloaders in %d processes, want 1 in 4: %s", preloaders, len(ms.Processes), out)
		}
		if ms.Total.PSS != sum {
			t.Errorf("total PSS %d, want the sum %d", ms.Total.PSS, sum)
		}

		text, stderr, err := ferryCtx(t, time.Minute, "memory-stats", "--instance", f.Instance)
		if err != nil {
			t.Fatalf("ferry memory-stats: %v\n%s", err, stderr)
		}
		t.Logf("ferry memory-stats:\n%s", text)
		for pid, role := range roles {
			if !regexp.MustCompile(`(?m)^  ` + strconv.Itoa(pid) + `\s+\S+\s+` + role + `\s+[0-9.]+ MB\s+[0-9.]+ MB`).MatchString(text) {
				t.Errorf("no row for %s %d", role, pid)
			}
		}
		if !regexp.MustCompile(`(?m)^\s+total\s+[0-9.]+ MB`).MatchString(text) {
			t.Errorf("no totals row")
		}
	}
	t.Run("running", check)

	// A wedged core answers nothing; memory-stats does not ask it.
	t.Run("core stopped", func(t *testing.T) {
		if err := syscall.Kill(core, syscall.SIGSTOP); err != nil {
			t.Fatal(err)
		}
		defer syscall.Kill(core, syscall.SIGCONT)
		check(t)
		// By app directory too, which looks in the registry.
		out, stderr, err := ferryCtx(t, time.Minute, "memory-stats", "--instance-registry-dir", filepath.Dir(f.Instance))
		if err != nil || !strings.Contains(out, strconv.Itoa(core)) {
			t.Errorf("memory-stats by registry: %v\n%s%s", err, out, stderr)
		}
	})
	if code, _ := f.get("/"); code != 200 {
		t.Errorf("after SIGCONT, GET / = %d", code)
	}
}

// adminCall makes one admin API call with token ("" for none) and returns
// the status and body.
func adminCall(t *testing.T, dir, method, path, token string) (int, string) {
	t.Helper()
	hc := &http.Client{Timeout: time.Minute, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", filepath.Join(dir, "admin.sock"))
		},
	}}
	req, err := http.NewRequest(method, "http://ferry"+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func readToken(t *testing.T, dir, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

func TestAdminAuthorisation(t *testing.T) {
	f, _ := startTwo(t)
	read, adm := readToken(t, f.Instance, admin.ReadTokenFile), readToken(t, f.Instance, admin.AdminTokenFile)

	for _, name := range []string{admin.ReadTokenFile, admin.AdminTokenFile, "admin.sock"} {
		fi, err := os.Stat(filepath.Join(f.Instance, name))
		if err != nil {
			t.Fatal(err)
		}
		if perm := fi.Mode().Perm(); perm != 0o600 {
			t.Errorf("%s has mode %v, want 0600", name, perm)
		}
	}

	tests := []struct {
		name, method, path, token string
		want                      int
		wantBody                  string
	}{
		{"pool without token", "GET", "/pool", "", 401, "this call needs the read-only or admin token"},
		{"pool with a wrong token", "GET", "/pool", "not-a-token", 401, "this call needs the read-only or admin token"},
		{"pool with the read token", "GET", "/pool", read, 200, `"apps"`},
		{"metrics without token", "GET", "/metrics", "", 401, "needs the read-only or admin token"},
		{"restart with the read token", "POST", "/apps/app/restart", read, 401, "this call needs the admin token"},
		{"kill with the read token", "POST", "/apps/app/processes/1/kill", read, 401, "this call needs the admin token"},
		{"pprof with the read token", "GET", "/debug/pprof/", read, 401, "this call needs the admin token"},
		{"health without token", "GET", "/health", "", 200, `"live": true`},
		{"ready without token", "GET", "/ready", "", 200, `"ready": true`},
		{"restart of no such app", "POST", "/apps/nope/restart", adm, 404, `no app named \"nope\"`},
		{"kill of no such process", "POST", "/apps/app/processes/1/kill", adm, 404, `app \"app\" has no process \"1\"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, body := adminCall(t, f.Instance, tc.method, tc.path, tc.token)
			if code != tc.want || !strings.Contains(body, tc.wantBody) {
				t.Errorf("%s %s = %d %s; want %d with %q", tc.method, tc.path, code, body, tc.want, tc.wantBody)
			}
		})
	}

	// A restart while one is in progress: a request in flight holds a
	// blocking restart open.
	t.Run("restart in progress", func(t *testing.T) {
		done := make(chan struct{})
		go func() {
			defer close(done)
			resp, err := client.Get(f.URL + "/sleep?s=3")
			if err == nil {
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		}()
		eventually(t, "the slow request in flight", func() bool { return sessions(f) == 1 })
		code, body := adminCall(t, f.Instance, "POST", "/apps/app/restart?wait=false", adm)
		if code != 200 || !strings.Contains(body, `"finished": false`) {
			t.Fatalf("first restart = %d %s", code, body)
		}
		code, body = adminCall(t, f.Instance, "POST", "/apps/app/restart", adm)
		if code != 409 || !strings.Contains(body, `"error"`) {
			t.Errorf("second restart = %d %s; want 409", code, body)
		}
		t.Logf("409: %s", body)
		<-done
	})

	t.Run("another user", func(t *testing.T) {
		if os.Geteuid() != 0 {
			t.Skip("needs root, to create and become another user")
		}
		uid, gid := otherUser(t)
		// The registry as Ferry itself creates it (0755), so that what
		// keeps the other user out is the instance's own protection.
		reg := filepath.Dir(f.Instance)
		if err := os.Chmod(reg, 0o755); err != nil {
			t.Fatal(err)
		}
		sock := filepath.Join(f.Instance, "admin.sock")
		as := func(args ...string) (string, error) {
			all := append([]string{"--reuid=" + uid, "--regid=" + gid, "--clear-groups", "--"}, args...)
			out, err := exec.Command("setpriv", all...).CombinedOutput()
			return string(out), err
		}
		if _, err := exec.LookPath("setpriv"); err != nil {
			t.Skip("setpriv (util-linux) not installed")
		}
		if out, err := as("true"); err != nil {
			t.Skipf("cannot become uid %s: %v %s", uid, err, out)
		}

		// The instance directory is 0700.
		out, err := as(ferryBin, "status", "--instance", f.Instance)
		if err == nil || !strings.Contains(out, "permission denied") {
			t.Errorf("ferry status as another user: %v\n%s", err, out)
		}
		t.Logf("ferry status as another user: %s", out)
		if _, err := exec.LookPath("curl"); err == nil {
			out, err := as("curl", "-sS", "-v", "--unix-socket", sock, "http://ferry/health")
			if err == nil || !strings.Contains(out, "Permission denied") {
				t.Errorf("curl as another user: %v\n%s", err, out)
			}
		}

		// Even with the directory open, the socket itself (0600) refuses.
		if err := os.Chmod(f.Instance, 0o711); err != nil {
			t.Fatal(err)
		}
		defer os.Chmod(f.Instance, 0o700)
		out, err = as(ferryBin, "status", "--instance", f.Instance)
		// With the directory searchable the tokens are still unreadable
		// (0600), and the socket refuses the connection.
		if err == nil || !strings.Contains(out, "permission denied") {
			t.Errorf("ferry status as another user, directory searchable: %v\n%s", err, out)
		}
		t.Logf("ferry status as another user, directory searchable: %s", out)
		if _, err := exec.LookPath("curl"); err == nil {
			out, err := as("curl", "-sS", "-v", "--unix-socket", sock, "http://ferry/health")
			if err == nil || !strings.Contains(out, "Permission denied") {
				t.Errorf("curl as another user, directory searchable: %v\n%s", err, out)
			}
		}
	})
}

// otherUser creates (once) the unprivileged user ferrytest-other and
// returns its uid and gid.
func otherUser(t *testing.T) (uid, gid string) {
	t.Helper()
	const name = "ferrytest-other"
	if _, err := exec.Command("id", "-u", name).Output(); err != nil {
		if out, err := exec.Command("useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", name).CombinedOutput(); err != nil {
			t.Skipf("cannot create user %s: %v %s", name, err, out)
		}
	}
	u, err1 := exec.Command("id", "-u", name).Output()
	g, err2 := exec.Command("id", "-g", name).Output()
	if err := errors.Join(err1, err2); err != nil {
		t.Fatalf("id %s: %v", name, err)
	}
	return strings.TrimSpace(string(u)), strings.TrimSpace(string(g))
}

func TestTop(t *testing.T) {
	f, pids := startTwo(t)

	t.Run("no terminal", func(t *testing.T) {
		out, stderr, err := ferryCtx(t, time.Minute, "top", "--instance", f.Instance)
		if err != nil {
			t.Fatalf("ferry top without a terminal: %v\n%s", err, stderr)
		}
		t.Logf("ferry top | cat:\n%s", out)
		for _, pid := range pids {
			if !strings.Contains(out, strconv.Itoa(pid)) {
				t.Errorf("no pid %d", pid)
			}
		}
		if !strings.Contains(out, "app: 2 processes (min 2, max 2), queue 0") || strings.Contains(out, "\x1b") {
			t.Errorf("no header line, or escapes in a one-frame output")
		}
	})

	// In a pseudo-terminal under tmux: the view appears, refreshes (the
	// rate needs two frames), and q or Ctrl-C quits with exit status 0,
	// leaving the alternate screen and restoring the terminal mode.
	for _, key := range []string{"q", "C-c"} {
		t.Run("tmux "+key, func(t *testing.T) {
			tmux := tmuxServer(t)
			session := "top"
			script := fmt.Sprintf("%s top --instance %s --interval 200ms; echo EXIT=$?; stty -a; echo STTY-DONE; sleep 600", ferryBin, f.Instance)
			if out, err := tmux("new-session", "-d", "-s", session, "-x", "150", "-y", "40", script); err != nil {
				t.Fatalf("tmux new-session: %v %s", err, out)
			}
			pane := func() string {
				out, err := tmux("capture-pane", "-p", "-t", session)
				if err != nil {
					t.Fatalf("tmux capture-pane: %v %s", err, out)
				}
				return strings.TrimRight(out, "\n")
			}
			var screen string
			eventually(t, "ferry top to show the processes and a request rate", func() bool {
				screen = pane()
				return strings.Contains(screen, strconv.Itoa(pids[0])) && strings.Contains(screen, strconv.Itoa(pids[1])) &&
					regexp.MustCompile(`[0-9.]+ requests/s`).MatchString(screen)
			})
			t.Logf("screen:\n%s", screen)
			if out, err := tmux("send-keys", "-t", session, key); err != nil {
				t.Fatalf("tmux send-keys: %v %s", err, out)
			}
			eventually(t, "ferry top to exit", func() bool {
				screen = pane()
				return strings.Contains(screen, "STTY-DONE")
			})
			t.Logf("after %s:\n%s", key, screen)
			if !strings.Contains(screen, "EXIT=0") {
				t.Errorf("ferry top did not exit with 0")
			}
			if strings.Contains(screen, "requests/s") {
				t.Errorf("the view is still on the screen: the alternate screen was not left")
			}
			if !regexp.MustCompile(`(^|\s)icanon(\s|$)`).MatchString(screen) || !regexp.MustCompile(`(^|\s)echo(\s|$)`).MatchString(screen) {
				t.Errorf("the terminal is still in raw mode (stty -a shows no icanon/echo)")
			}
		})
	}
}

// tmuxServer returns a function running tmux commands against a private
// tmux server, killed at cleanup; it skips the test without tmux.
func tmuxServer(t *testing.T) func(args ...string) (string, error) {
	t.Helper()
	if _, err := exec.LookPath("tmux"); err != nil {
		t.Skip("tmux not installed (apt-get install -y tmux): no pseudo-terminal to drive ferry top in")
	}
	sock := filepath.Join(shortTempDir(t), "tmux.sock")
	run := func(args ...string) (string, error) {
		cmd := exec.Command("tmux", append([]string{"-S", sock}, args...)...)
		cmd.Env = append(os.Environ(), "TERM=xterm-256color")
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	t.Cleanup(func() { run("kill-server") })
	return run
}
