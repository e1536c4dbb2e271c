package integration

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// badEnv is what one bad start or stop runs with: its own instance
// registry, and a mark in the environment of every process it starts, to
// find any it leaves behind.
type badEnv struct {
	reg  string
	mark string
	app  string // a good WSGI app
	pid  int    // a process a case must leave alone
}

// badCase is one wrong start, stop or input. args gives the command line
// (after the binary); code is the exit status wanted; want are what its
// one line must say (on standard error for a failure, standard output for
// a success).
type badCase struct {
	name string
	args func(t *testing.T, e *badEnv) []string
	code int
	want []string
	// after, when set, checks more once the command has exited.
	after func(t *testing.T, e *badEnv)
}

// runFerry runs the binary with args and the mark; it returns exit
// status, stdout and stderr. A command still running after a minute is a
// hang: it is killed and the test fails.
func runFerry(t *testing.T, e *badEnv, cred *syscall.Credential, args ...string) (int, string, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, ferryBin, args...)
	cmd.Env = append(userEnv(), "FERRY_TEST_MARK="+e.mark, "NO_COLOR=1")
	if cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("ferry %s hung (killed after 60s)\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), stdout.String(), stderr.String())
	}
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("run ferry: %v", err)
	}
	return code, stdout.String(), stderr.String()
}

// logRecord matches the core's own log lines (text or JSON), which are
// not the error line.
var logRecord = regexp.MustCompile(`^(time=\S+ level=|\{"time":)`)

// messageLines are the lines of out that are not log records.
func messageLines(out string) []string {
	var lines []string
	for l := range strings.SplitSeq(strings.TrimRight(out, "\n"), "\n") {
		if l != "" && !logRecord.MatchString(l) {
			lines = append(lines, l)
		}
	}
	return lines
}

// noPanic fails on any sign of a Go panic or stack trace in out.
func noPanic(t *testing.T, what, out string) {
	t.Helper()
	for _, bad := range []string{"panic:", "goroutine ", "runtime error", "[signal ", ".go:"} {
		if strings.Contains(out, bad) {
			t.Fatalf("%s: %q in the output:\n%s", what, bad, out)
		}
	}
}

// markedProcesses are the live processes (not zombies) whose environment
// holds mark: what a command run with it left behind.
func markedProcesses(mark string) []string {
	ents, _ := os.ReadDir("/proc")
	var out []string
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() || !alive(pid) {
			continue
		}
		env, err := os.ReadFile("/proc/" + e.Name() + "/environ")
		if err != nil || !bytes.Contains(env, []byte("FERRY_TEST_MARK="+mark+"\x00")) {
			continue
		}
		cmdline, _ := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		out = append(out, fmt.Sprintf("%d %s", pid, bytes.ReplaceAll(cmdline, []byte{0}, []byte{' '})))
	}
	return out
}

// nothingLeft checks that no process of the mark runs and that the
// registry holds no instance directory (nor its admin socket).
func nothingLeft(t *testing.T, e *badEnv) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		left := markedProcesses(e.mark)
		if len(left) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("processes left behind:\n%s", strings.Join(left, "\n"))
		}
		time.Sleep(50 * time.Millisecond)
	}
	ents, _ := os.ReadDir(e.reg)
	for _, d := range ents {
		if strings.HasPrefix(d.Name(), "ferry-") {
			t.Errorf("instance directory left behind: %s", filepath.Join(e.reg, d.Name()))
		}
	}
}

// holdPort listens on a loopback port until the test ends.
func holdPort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	return port
}

// startArgs is `ferry start APP` on loopback with the env's registry.
func startArgs(e *badEnv, app string, more ...string) []string {
	return append([]string{"start", app, "--address", "127.0.0.1", "--port", "0", "--python", python,
		"--instance-registry-dir", e.reg}, more...)
}

// startZombie starts `ferry start` as our own child and never reaps it
// until the test ends: once it exits it is a zombie, as under a
// supervisor that reaps only after `ferry stop` returns. It returns the
// core's pid and instance directory.
func startZombie(t *testing.T, e *badEnv) (int, string) {
	t.Helper()
	cmd := exec.Command(ferryBin, startArgs(e, e.app)...)
	cmd.Env = append(os.Environ(), "FERRY_TEST_MARK="+e.mark)
	logs := newLogBuffer()
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	line, ok := logs.wait(regexp.MustCompile(`msg="ferry started"`), 60*time.Second, nil)
	if !ok {
		t.Fatalf("ferry did not start:\n%s", logs.String())
	}
	return cmd.Process.Pid, instanceRe.FindStringSubmatch(line)[1]
}

// isZombie reports whether pid has exited and waits to be reaped.
func isZombie(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	i := bytes.LastIndexByte(b, ')')
	return i > 0 && i+2 < len(b) && b[i+2] == 'Z'
}

// staleInstance writes an instance directory whose core has exited, as a
// core killed with -9 leaves it.
func staleInstance(t *testing.T, e *badEnv) string {
	t.Helper()
	gone := exec.Command("/bin/true")
	if err := gone.Run(); err != nil {
		t.Fatal(err)
	}
	return instanceOf(t, e, gone.Process.Pid, 0)
}

// instanceOf writes an instance directory for pid, started at ticks (0:
// not known).
func instanceOf(t *testing.T, e *badEnv, pid int, ticks uint64) string {
	t.Helper()
	dir := filepath.Join(e.reg, "ferry-stale1")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	props, _ := json.Marshal(map[string]any{"pid": pid, "app_root": e.app, "app_roots": []string{e.app},
		"listen": "127.0.0.1:1", "started_at": time.Now(), "start_ticks": ticks})
	for name, data := range map[string][]byte{"properties.json": props, "core.pid": []byte(strconv.Itoa(pid) + "\n")} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// TestBadStartsAndStops runs every wrong start, stop and input a new user
// makes in their first hour against the real binary: each must exit with
// the right status, print exactly one line that names the option or file
// and says what to do, never a panic or a stack trace, and leave no
// process, instance directory or socket behind.
func TestBadStartsAndStops(t *testing.T) {
	needPython(t)
	root := os.Geteuid() == 0
	noInstance := []string{"no running Ferry instance", "start one with ferry start"}
	cases := []badCase{
		{name: "taken port", code: 1, want: []string{"--port: 127.0.0.1:", "is already in use", "choose another --port"},
			args: func(t *testing.T, e *badEnv) []string { return startArgs(e, e.app, "--port", holdPort(t)) }},
		{name: "unassignable address", code: 1, want: []string{"--address: this machine has no address 192.0.2.1", "0.0.0.0 for all"},
			args: func(t *testing.T, e *badEnv) []string { return startArgs(e, e.app, "--address", "192.0.2.1") }},
		{name: "taken metrics address", code: 1, want: []string{"--metrics-address: 127.0.0.1:", "already in use", "choose another --metrics-address"},
			args: func(t *testing.T, e *badEnv) []string {
				return startArgs(e, e.app, "--metrics-address", "127.0.0.1:"+holdPort(t))
			}},
		{name: "missing app dir", code: 1, want: []string{"APP_DIR /nonexistent-ferry-app: no such directory"},
			args: func(t *testing.T, e *badEnv) []string { return startArgs(e, "/nonexistent-ferry-app") }},
		{name: "app dir is a file", code: 1, want: []string{"passenger_wsgi.py: not a directory; give the directory of the app"},
			args: func(t *testing.T, e *badEnv) []string {
				return startArgs(e, filepath.Join(e.app, "passenger_wsgi.py"))
			}},
		{name: "no app found", code: 1, want: []string{"cannot tell what kind of app", "passenger_wsgi.py", "--app-type"},
			args: func(t *testing.T, e *badEnv) []string { return startArgs(e, shortTempDir(t)) }},
		{name: "unknown flag", code: 1, want: []string{"unknown option --prot (did you mean --port?)", "ferry start --help"},
			args: func(t *testing.T, e *badEnv) []string { return startArgs(e, e.app, "--prot", "3000") }},
		{name: "option without its value", code: 1, want: []string{"--max-pool-size needs a value"},
			args: func(t *testing.T, e *badEnv) []string { return startArgs(e, e.app, "--max-pool-size") }},
		{name: "bad number", code: 1, want: []string{`--max-pool-size: want a whole number (got "many")`},
			args: func(t *testing.T, e *badEnv) []string { return startArgs(e, e.app, "--max-pool-size", "many") }},
		{name: "number out of range", code: 1, want: []string{"--port: must be between 0 and 65535 (got 70000)"},
			args: func(t *testing.T, e *badEnv) []string { return startArgs(e, e.app, "--port", "70000") }},
		{name: "bad duration", code: 1, want: []string{`--start-timeout: want seconds (e.g. 300) or a duration (e.g. 5m) (got "5x")`},
			args: func(t *testing.T, e *badEnv) []string { return startArgs(e, e.app, "--start-timeout", "5x") }},
		{name: "bad size", code: 1, want: []string{`--client-max-body-size: want a byte count such as 1048576, 512k, 1m or 1g (got "5q")`},
			args: func(t *testing.T, e *badEnv) []string { return startArgs(e, e.app, "--client-max-body-size", "5q") }},
		{name: "bad bool", code: 1, want: []string{`--rolling-restarts: want true or false (got "perhaps")`},
			args: func(t *testing.T, e *badEnv) []string { return startArgs(e, e.app, "--rolling-restarts=perhaps") }},
		{name: "bad enum", code: 1, want: []string{`--log-format: must be text or json (got "xml")`},
			args: func(t *testing.T, e *badEnv) []string { return startArgs(e, e.app, "--log-format", "xml") }},
		{name: "bad log level", code: 1, want: []string{`--log-level: want debug, info, warn, error, or Passenger's 0-7 (got "loud")`},
			args: func(t *testing.T, e *badEnv) []string { return startArgs(e, e.app, "--log-level", "loud") }},
		{name: "bad path: log file", code: 1, want: []string{"--log-file: cannot open log file /nonexistent-ferry-dir/ferry.log: no such file or directory"},
			args: func(t *testing.T, e *badEnv) []string {
				return startArgs(e, e.app, "--log-file", "/nonexistent-ferry-dir/ferry.log")
			}},
		{name: "bad path: startup file outside the app", code: 1, want: []string{"--startup-file: /etc/passwd is not inside the app directory"},
			args: func(t *testing.T, e *badEnv) []string { return startArgs(e, e.app, "--startup-file", "/etc/passwd") }},
		{name: "bad path: pid file", code: 1, want: []string{"--pid-file: cannot write /nonexistent-ferry-dir/ferry.pid: no such file or directory"},
			args: func(t *testing.T, e *badEnv) []string {
				return startArgs(e, e.app, "--pid-file", "/nonexistent-ferry-dir/ferry.pid")
			}},
		{name: "bad path: socket", code: 1, want: []string{"--socket: cannot listen on /nonexistent-ferry-dir/s.sock: no such file or directory"},
			args: func(t *testing.T, e *badEnv) []string {
				return startArgs(e, e.app, "--socket", "/nonexistent-ferry-dir/s.sock")
			}},
		{name: "bad CIDR", code: 1, want: []string{`--trusted-proxies: "10.0.0.0/33" is not a CIDR such as 10.0.0.0/8`},
			args: func(t *testing.T, e *badEnv) []string { return startArgs(e, e.app, "--trusted-proxies", "10.0.0.0/33") }},
		{name: "bad user", code: 1, want: []string{`--user: no user "no-such-ferry-user" on this system`},
			args: func(t *testing.T, e *badEnv) []string { return startArgs(e, e.app, "--user", "no-such-ferry-user") }},
		{name: "bad group", code: 1, want: []string{`--group: no group "no-such-ferry-group" on this system`},
			args: func(t *testing.T, e *badEnv) []string { return startArgs(e, e.app, "--group", "no-such-ferry-group") }},
		{name: "bad Passengerfile.json", code: 1, want: []string{"Passengerfile.json: not a JSON object: line 3, column 1"},
			args: func(t *testing.T, e *badEnv) []string {
				app := copyFixture(t, "wsgi/echo")
				writeFile(t, filepath.Join(app, "Passengerfile.json"), "{\n  \"max_pool_size\": 2,\n}\n")
				return startArgs(e, app)
			}},
		{name: "bad value in Passengerfile.json", code: 1, want: []string{`Passengerfile.json: max_pool_size: want a whole number (got "lots")`},
			args: func(t *testing.T, e *badEnv) []string {
				app := copyFixture(t, "wsgi/echo")
				writeFile(t, filepath.Join(app, "Passengerfile.json"), `{"max_pool_size": "lots"}`)
				return startArgs(e, app)
			}},
		{name: "bad TOML", code: 1, want: []string{"--config ", "ferry.toml: toml: line 3: expected end of table array name delimiter"},
			args: func(t *testing.T, e *badEnv) []string {
				file := filepath.Join(shortTempDir(t), "ferry.toml")
				writeFile(t, file, "port = 3000\n[[app]\nroot = \"/srv/app\"\n")
				return []string{"start", "--config", file, "--instance-registry-dir", e.reg}
			}},
		{name: "conflicting options", code: 1, want: []string{"--min-instances: must not exceed --max-pool-size 2 (got 5)"},
			args: func(t *testing.T, e *badEnv) []string {
				return startArgs(e, e.app, "--min-instances", "5", "--max-pool-size", "2")
			}},
		{name: "APP_DIR and --config", code: 1, want: []string{"give either APP_DIR or --config, not both"},
			args: func(t *testing.T, e *badEnv) []string { return startArgs(e, e.app, "--config", "/etc/ferry.toml") }},
		{name: "option that needs another", code: 1, want: []string{"--ssl-certificate: has no effect without --ssl"},
			args: func(t *testing.T, e *badEnv) []string {
				return startArgs(e, e.app, "--ssl-certificate", "/etc/ssl/x.pem")
			}},
		{name: "second start on the same instance", code: 1, want: []string{"Ferry already serves", "stop it first (ferry stop"},
			args: func(t *testing.T, e *badEnv) []string {
				port := freePort(t)
				first := startFerry(t, e.app, "--port", port)
				return []string{"start", e.app, "--address", "127.0.0.1", "--port", port, "--python", python,
					"--instance-registry-dir", filepath.Dir(first.Instance)}
			}},
		{name: "stop with no instance", code: 1, want: noInstance,
			args: func(t *testing.T, e *badEnv) []string { return []string{"stop", "--instance-registry-dir", e.reg} }},
		{name: "restart with no instance", code: 1, want: noInstance,
			args: func(t *testing.T, e *badEnv) []string { return []string{"restart", "--instance-registry-dir", e.reg} }},
		{name: "status with no instance", code: 1, want: noInstance,
			args: func(t *testing.T, e *badEnv) []string { return []string{"status", "--instance-registry-dir", e.reg} }},
		{name: "stop of an app no instance serves", code: 1, want: []string{"no running Ferry instance serves", "start it with ferry start"},
			args: func(t *testing.T, e *badEnv) []string {
				return []string{"stop", e.app, "--instance-registry-dir", e.reg}
			}},
		{name: "stop with an unknown flag", code: 1, want: []string{"unknown option --timout (did you mean --timeout?)", "ferry stop --help"},
			args: func(t *testing.T, e *badEnv) []string { return []string{"stop", "--timout", "5s"} }},
		// The pid of a stale instance directory is another process's now:
		// it must not be signalled.
		{name: "stop with a stale instance dir whose pid is reused", code: 1, want: noInstance,
			args: func(t *testing.T, e *badEnv) []string {
				other := exec.Command("sleep", "300")
				if err := other.Start(); err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { other.Process.Kill(); other.Wait() })
				e.pid = other.Process.Pid
				instanceOf(t, e, e.pid, 1)
				return []string{"stop", "--instance-registry-dir", e.reg}
			},
			after: func(t *testing.T, e *badEnv) {
				if alive(e.pid) {
					return
				}
				t.Error("the process that has the stale instance's pid now was stopped")
			}},
		{name: "stop with a stale pid file", code: 1, want: []string{"is not running; nothing to stop"},
			args: func(t *testing.T, e *badEnv) []string {
				pidFile := filepath.Join(shortTempDir(t), "ferry.pid")
				writeFile(t, pidFile, "999999999\n")
				return []string{"stop", "--pid-file", pidFile}
			}},
	}
	for _, cmd := range []string{"stop", "restart", "status"} {
		cases = append(cases,
			badCase{name: cmd + " with a stale instance dir", code: 1, want: noInstance,
				args: func(t *testing.T, e *badEnv) []string {
					staleInstance(t, e)
					return []string{cmd, "--instance-registry-dir", e.reg}
				}},
			badCase{name: cmd + " with --instance of a stale dir", code: 1, want: []string{"--instance ", "is not running; the directory is stale"},
				args: func(t *testing.T, e *badEnv) []string {
					return []string{cmd, "--instance", staleInstance(t, e)}
				},
				after: func(t *testing.T, e *badEnv) { os.RemoveAll(filepath.Join(e.reg, "ferry-stale1")) }},
			// A core killed with -9 that its parent has not reaped: a zombie
			// with its instance directory still there.
			badCase{name: cmd + " with a killed, unreaped (zombie) core", code: 1,
				want: []string{"no running Ferry instance serves", "start it with ferry start"},
				args: func(t *testing.T, e *badEnv) []string {
					pid, _ := startZombie(t, e)
					syscall.Kill(pid, syscall.SIGKILL)
					eventually(t, "the core a zombie", func() bool { return isZombie(pid) })
					return []string{cmd, e.app, "--instance-registry-dir", e.reg}
				}},
		)
	}
	// The hang of issue 19: the stopped core stays a zombie until stop
	// returns. Stop must see it as stopped and return at once.
	cases = append(cases, badCase{name: "stop of a core that becomes a zombie", code: 0, want: []string{"stopped ferry (pid "},
		args: func(t *testing.T, e *badEnv) []string {
			return []string{"stop", e.app, "--instance-registry-dir", e.reg, "--timeout", "50s"}
		},
		after: func(t *testing.T, e *badEnv) {}})
	if root {
		cases = append(cases, badCase{name: "--user root without --allow-root-apps", code: 1,
			want: []string{"--user root: running an app as root needs --allow-root-apps"},
			args: func(t *testing.T, e *badEnv) []string { return startArgs(e, e.app, "--user", "root") }})
	}
	cases = append(cases, badCase{name: "unreadable app dir", code: 1, want: []string{"APP_DIR ", "cannot read it (permission denied)", "needs to read the app directory"}})

	var report []string
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var mark [8]byte
			rand.Read(mark[:])
			e := &badEnv{reg: shortTempDir(t), mark: hex.EncodeToString(mark[:]), app: fixture(t, "wsgi/echo")}
			var cred *syscall.Credential
			var args []string
			var zombie int
			switch {
			case tc.name == "unreadable app dir":
				args, cred = unreadableApp(t, e)
			case tc.name == "stop of a core that becomes a zombie":
				zombie, _ = startZombie(t, e)
				args = tc.args(t, e)
			default:
				args = tc.args(t, e)
			}
			code, stdout, stderr := runFerry(t, e, cred, args...)
			noPanic(t, tc.name, stdout+stderr)
			if code != tc.code {
				t.Fatalf("exit status %d, want %d\nstdout:\n%s\nstderr:\n%s", code, tc.code, stdout, stderr)
			}
			out, other := stderr, stdout
			if tc.code == 0 {
				out, other = stdout, stderr
			}
			lines := messageLines(out)
			if len(lines) != 1 || len(messageLines(other)) != 0 {
				t.Fatalf("want exactly one line; stdout:\n%s\nstderr:\n%s", stdout, stderr)
			}
			line := lines[0]
			if tc.code != 0 && !strings.HasPrefix(line, "ferry: ") {
				t.Errorf("the error line does not start with \"ferry: \": %q", line)
			}
			for _, w := range tc.want {
				if !strings.Contains(line, w) {
					t.Errorf("the line lacks %q:\n%s", w, line)
				}
			}
			if zombie != 0 && !isZombie(zombie) {
				t.Errorf("the core (pid %d) is not a zombie: the case proves nothing", zombie)
			}
			if tc.after != nil {
				tc.after(t, e)
			}
			nothingLeft(t, e)
			report = append(report, fmt.Sprintf("%-48s exit %d  %s", tc.name, code, line))
		})
	}
	t.Logf("what Ferry prints:\n%s", strings.Join(report, "\n"))
}

// unreadableApp makes an app directory Ferry's user cannot read: mode 000
// when the test is not root; as root (who reads everything), the app is
// root's and 0700 and Ferry runs as nobody.
func unreadableApp(t *testing.T, e *badEnv) ([]string, *syscall.Credential) {
	t.Helper()
	parent := shortTempDir(t)
	if err := os.Chmod(parent, 0o755); err != nil {
		t.Fatal(err)
	}
	app := filepath.Join(parent, "app")
	if err := os.Mkdir(app, 0o700); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(app, "passenger_wsgi.py"), "def application(env, start): pass\n")
	args := startArgs(e, app)
	if os.Geteuid() != 0 {
		if err := os.Chmod(app, 0); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.Chmod(app, 0o700) })
		return args, nil
	}
	// nobody must reach the binary.
	if err := os.Chmod(filepath.Dir(ferryBin), 0o755); err != nil {
		t.Fatal(err)
	}
	return args, &syscall.Credential{Uid: 65534, Gid: 65534}
}

func writeFile(t *testing.T, path, s string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}

// userEnv is the test's environment without the run-apps-as-root settings
// security_test.go gives the other tests: these are a new user's starts.
func userEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "FERRY_USER=") && !strings.HasPrefix(kv, "FERRY_ALLOW_ROOT_APPS=") {
			env = append(env, kv)
		}
	}
	return env
}

// ferry start -d of an app that cannot start says so, in one line with the
// app's error, exits 1 and leaves no daemon behind; before, it reported
// "running in the background" and left a core serving error pages.
func TestDaemonizeReportsAppFailure(t *testing.T) {
	needPython(t)
	e := &badEnv{reg: shortTempDir(t), mark: "daemon" + strconv.Itoa(os.Getpid())}
	dir := shortTempDir(t)
	args := []string{"start", fixture(t, "wsgi/broken"), "-d", "--address", "127.0.0.1",
		"--port", freePort(t), "--python", python, "--instance-registry-dir", e.reg,
		"--log-file", filepath.Join(dir, "ferry.log"), "--pid-file", filepath.Join(dir, "ferry.pid")}
	if os.Geteuid() == 0 {
		args = append(args, "--user", "root", "--allow-root-apps") // the fixture is root's
	}
	code, stdout, stderr := runFerry(t, e, nil, args...)
	noPanic(t, "start -d", stdout+stderr)
	lines := messageLines(stderr)
	if code != 1 || stdout != "" || len(lines) != 1 {
		t.Fatalf("exit %d, want 1 and one line\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	for _, want := range []string{"ferry: start: app broken did not start: ", "no module named frobnicate", "ferry stopped again (log: "} {
		if !strings.Contains(lines[0], want) {
			t.Errorf("the line lacks %q: %s", want, lines[0])
		}
	}
	t.Logf("what Ferry prints: %s", lines[0])
	nothingLeft(t, e)
	if _, err := os.Stat(filepath.Join(dir, "ferry.pid")); err == nil {
		t.Error("the pid file of the stopped daemon is left")
	}
}
