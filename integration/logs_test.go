package integration

import (
	"bufio"
	"context"
	"encoding/json"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ferry-server/ferry/internal/admin"
)

// TestLogs runs `ferry logs` against a running two-app instance (whose log
// goes to standard error, where no file can be read back): the latest
// lines, by app (name or directory), by pid, as JSON, and -f following new
// lines as they are logged.
func TestLogs(t *testing.T) {
	dir := shortTempDir(t)
	file := writeConfig(t, dir, `
max_pool_size = 1

[[app]]
name = "blog"
root = "`+fixture(t, "wsgi/echo")+`"
server_names = ["blog.test"]

[[app]]
name = "shop"
root = "`+fixture(t, "rack/echo")+`"
server_names = ["shop.test"]
`)
	f := startFerryArgs(t, "--config", file)
	eventually(t, "both apps' processes", func() bool {
		var st poolStatus
		return adminGet(t, f, "/pool", &st) && len(st.Apps) == 2 &&
			len(st.Apps[0].Processes) == 1 && len(st.Apps[1].Processes) == 1
	})
	for _, host := range []string{"blog.test", "shop.test"} {
		if code, _ := f.getHost(host, "/print"); code != 200 {
			t.Fatalf("GET %s/print = %d", host, code)
		}
	}
	logs := func(args ...string) string {
		t.Helper()
		out, stderr, err := ferryCtx(t, time.Minute, append([]string{"logs", "--instance", f.Instance}, args...)...)
		if err != nil {
			t.Fatalf("ferry logs %v: %v\n%s%s", args, err, out, stderr)
		}
		return out
	}
	eventually(t, "both apps' output in ferry logs", func() bool {
		out := logs("-n", "0")
		return strings.Contains(out, `app=blog`) && strings.Contains(out, `app=shop`) &&
			strings.Count(out, `msg="app output"`) >= 4
	})

	t.Run("all", func(t *testing.T) {
		out := logs("-n", "0")
		for _, want := range []string{`msg="ferry started"`, `app=blog`, `app=shop`, `line="hello stdout from app"`} {
			if !strings.Contains(out, want) {
				t.Errorf("ferry logs has no %s:\n%s", want, out)
			}
		}
		// The same lines as the core's log, which has more (the access
		// log's).
		b := f.logs.String()
		for line := range strings.Lines(out) {
			if !strings.Contains(b, line) {
				t.Errorf("a line of ferry logs is not in the core's log: %q", line)
			}
		}
	})

	t.Run("by app", func(t *testing.T) {
		for _, arg := range []string{"blog", fixture(t, "wsgi/echo")} {
			out := logs(arg, "-n", "0")
			if !strings.Contains(out, `msg="app output" app=blog`) || strings.Contains(out, "app=shop") || strings.Contains(out, `msg="ferry started"`) {
				t.Errorf("ferry logs %s:\n%s", arg, out)
			}
		}
		_, stderr, err := ferryCtx(t, time.Minute, "logs", "--instance", f.Instance, "nope")
		if err == nil || !strings.Contains(stderr, `no app named "nope"`) {
			t.Errorf("ferry logs nope: %v %s", err, stderr)
		}
	})

	t.Run("by pid, as JSON, last lines", func(t *testing.T) {
		var st poolStatus
		adminGet(t, f, "/pool", &st)
		blogPID := 0
		for _, a := range st.Apps {
			if a.Name == "blog" {
				blogPID = a.Processes[0].PID
			}
		}
		out := logs("--pid", strconv.Itoa(blogPID), "--json", "-n", "2")
		var n int
		for line := range strings.Lines(out) {
			var e struct {
				App  string
				PID  int
				Line string
			}
			if err := json.Unmarshal([]byte(line), &e); err != nil {
				t.Fatalf("--json line %q: %v", line, err)
			}
			if e.App != "blog" || e.PID != blogPID || !strings.Contains(e.Line, "pid="+strconv.Itoa(blogPID)) {
				t.Errorf("--pid %d: %+v", blogPID, e)
			}
			n++
		}
		// The last two of blog's process: its stdout and stderr lines.
		if n != 2 || !strings.Contains(out, "hello stderr from app") {
			t.Errorf("-n 2 gave %d lines:\n%s", n, out)
		}
	})

	t.Run("follow", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, ferryBin, "logs", "--instance", f.Instance, "-f", "-n", "0", "shop")
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		defer cmd.Wait()
		defer cancel()
		lines := make(chan string, 100)
		go func() {
			sc := bufio.NewScanner(stdout)
			for sc.Scan() {
				lines <- sc.Text()
			}
			close(lines)
		}()
		// First what was logged before (shop's only), then new lines,
		// whichever app's request comes first.
		next := func(what string, want func(string) bool) {
			t.Helper()
			for {
				select {
				case l, ok := <-lines:
					if !ok {
						t.Fatalf("ferry logs -f ended before %s", what)
					}
					if strings.Contains(l, "app=blog") {
						t.Fatalf("ferry logs -f shop printed a blog line: %s", l)
					}
					if want(l) {
						return
					}
				case <-ctx.Done():
					t.Fatalf("no %s from ferry logs -f", what)
				}
			}
		}
		// shop printed once before: its stdout line comes first; the
		// second is new.
		next("shop's earlier output", func(l string) bool { return strings.Contains(l, "hello stdout from app") })
		f.getHost("blog.test", "/print")
		f.getHost("shop.test", "/print")
		next("shop's new output", func(l string) bool { return strings.Contains(l, "hello stdout from app") })
	})
}

// TestLogsFollowEndsAtStop checks that `ferry logs -f` ends when the
// instance stops, and does not hold up its stop.
func TestLogsFollowEndsAtStop(t *testing.T) {
	f := startFerry(t, fixture(t, "wsgi/echo"))
	cmd := exec.Command(ferryBin, "logs", "--instance", f.Instance, "-f")
	var out strings.Builder
	cmd.Stdout = &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	eventually(t, "ferry logs -f printing", func() bool {
		f.get("/print")
		return strings.Contains(f.logs.String(), "hello stdout from app")
	})
	f.stop() // fails the test if ferry takes over 60s
	select {
	case err := <-done:
		if err != nil || !strings.Contains(out.String(), `msg="ferry started"`) {
			t.Errorf("ferry logs -f after the stop: %v\n%s", err, out.String())
		}
	case <-time.After(time.Minute):
		cmd.Process.Kill()
		t.Fatal("ferry logs -f still runs a minute after the instance stopped")
	}
}

// adminGet calls the admin API; false on error.
func adminGet(t *testing.T, f *ferry, path string, out any) bool {
	t.Helper()
	return admin.NewClient(f.Instance).Do(context.Background(), "GET", path, out) == nil
}
