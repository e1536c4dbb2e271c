package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ferry-server/ferry/internal/config"
)

// Values for each kind of option, good and bad: what a hurried user or a
// broken script passes. None names a command that does harm if run (hooks
// and app commands may be run by the starts below).
var cmdlineValues = map[string][]string{
	"int":     {"0", "1", "-1", "2", "65535", "65536", "abc", "", "99999999999999999999", "0x10", " 3", "1.5"},
	"seconds": {"0", "0.5", "-1", "5m", "1h", "abc", "1e400", "NaN", "300", "-5m", ""},
	"bytes":   {"0", "1k", "64k", "1m", "-1", "1q", "99999999999g", "1.5m", "", "1kb", "1mib"},
	"string":  {"", "x", "/nonexistent-ferry/x", "../x", "a b", "ünï", "%s%n", strings.Repeat("a", 300), "-", "off"},
	"list":    {"10.0.0.0/8", "loopback", "x", "", "text/html", "*/*", "unix", "10.0.0.0/99", "a,b"},
	"env":     {"A=b", "=b", "A", "A=b=c", ""},
	"level":   {"debug", "7", "loud", "", "-1"},
	"mode":    {"0660", "999", "abc", "0777", ""},
	"onoff":   {"true", "off", "maybe", ""},
	"hook":    {"app_restarted=true", "bogus=x", "x", "=", ""},
	"ctl":     {"hook_app_restarted=true", "x=y", "x", ""},
	"other":   {"", "x", "1", "true"},
}

// randomArgs draws one command line: a few options from the table with
// values of their kind (or of another), sometimes an unknown option, a
// missing value or a stray argument.
func randomArgs(rng *rand.Rand, opts []config.OptionInfo) []string {
	var args []string
	kinds := make([]string, 0, len(cmdlineValues))
	for k := range cmdlineValues {
		kinds = append(kinds, k)
	}
	// A fixed order, so that a seed gives the same cases everywhere.
	slices.Sort(kinds)
	for range 1 + rng.IntN(5) {
		o := opts[rng.IntN(len(opts))]
		name := "--" + o.Flag
		if o.Short != "" && rng.IntN(4) == 0 {
			name = "-" + o.Short
		}
		kind := o.Kind
		if rng.IntN(5) == 0 {
			kind = kinds[rng.IntN(len(kinds))] // a value of the wrong kind
		}
		vals := cmdlineValues[kind]
		if vals == nil {
			vals = cmdlineValues["other"]
		}
		v := vals[rng.IntN(len(vals))]
		switch {
		case o.Kind == "bool" && rng.IntN(2) == 0:
			args = append(args, name)
		case o.Kind == "bool" || rng.IntN(3) == 0:
			args = append(args, name+"="+v)
		default:
			args = append(args, name, v)
		}
	}
	switch rng.IntN(12) {
	case 0:
		args = append(args, "--no-such-option-"+strconv.Itoa(rng.IntN(100)))
	case 1:
		args = append(args, "--"+opts[rng.IntN(len(opts))].Flag) // its value missing
	case 2:
		args = append(args, "stray")
	case 3:
		args = append(args, "-")
	case 4:
		args = append(args, "---x")
	}
	return args
}

// cmdlineCases is how many command lines TestCommandLineProperty tries:
// 200 in CI (a fixed seed, so the same ones every run), more with
// FERRY_CMDLINE_CASES=N.
func cmdlineCases() int {
	if n, err := strconv.Atoi(os.Getenv("FERRY_CMDLINE_CASES")); err == nil && n > 0 {
		return n
	}
	return 200
}

// TestCommandLineProperty runs real `ferry config check` on random
// command lines drawn from the option table, and real `ferry start` on
// some of those it accepts: whatever the input, Ferry exits 0 or 1, never
// panics or prints a trace, says what is wrong on a line starting
// "ferry: ", and a start that fails or is stopped leaves nothing running.
func TestCommandLineProperty(t *testing.T) {
	needPython(t)
	opts := config.Options()
	if len(opts) < 50 {
		t.Fatalf("only %d options in the table", len(opts))
	}
	app := fixture(t, "wsgi/echo")
	seed := uint64(19)
	if s, err := strconv.ParseUint(os.Getenv("FERRY_CMDLINE_SEED"), 10, 64); err == nil {
		seed = s
	}
	rng := rand.New(rand.NewPCG(seed, 2026))
	// Relative paths in the values ("x", "../x") land in here.
	work := filepath.Join(shortTempDir(t), "a", "b")
	if err := os.MkdirAll(work, 0o755); err != nil {
		t.Fatal(err)
	}
	accepted, starts := 0, 0
	for i := range cmdlineCases() {
		args := randomArgs(rng, opts)
		full := append([]string{"config", "check", app}, args...)
		code, stdout, stderr := runIn(t, work, "", full...)
		what := fmt.Sprintf("case %d: ferry %q", i, full)
		noPanic(t, what, stdout+stderr)
		switch code {
		case 0:
			var m map[string]any
			if err := json.Unmarshal([]byte(stdout), &m); err != nil {
				t.Fatalf("%s: exit 0 but no JSON configuration: %v\n%s", what, err, stdout)
			}
			accepted++
		case 1:
			if stdout != "" || !strings.HasPrefix(stderr, "ferry: ") {
				t.Fatalf("%s: exit 1, want the error on standard error after \"ferry: \"\nstdout:\n%s\nstderr:\n%s", what, stdout, stderr)
			}
			continue
		default:
			t.Fatalf("%s: exit %d\nstdout:\n%s\nstderr:\n%s", what, code, stdout, stderr)
		}
		// Start every fourth accepted one for real, on loopback, and stop it.
		if accepted%4 != 1 || starts >= 12 {
			continue
		}
		starts++
		startProperty(t, what, work, app, args)
	}
	// The client commands, with no instance to talk to, or a bogus one.
	reg := shortTempDir(t)
	clientFlags := []string{"--timeout", "--show", "--json", "--instance", "--pid-file", "--name", "--rolling",
		"--interval", "--instance-registry-dir", "--no-such-flag"}
	clientValues := []string{"", "x", "0", "-1s", "5s", "pool", "server", "metrics", "requests", "/nonexistent-ferry", reg, "true", "maybe"}
	for i := range cmdlineCases() / 4 {
		cmd := []string{"stop", "status", "restart", "reload", "upgrade", "memory-stats", "top", "config", "version", "nosuchcommand"}[rng.IntN(10)]
		args := []string{cmd}
		for range rng.IntN(4) {
			f, v := clientFlags[rng.IntN(len(clientFlags))], clientValues[rng.IntN(len(clientValues))]
			if rng.IntN(2) == 0 {
				args = append(args, f+"="+v)
			} else {
				args = append(args, f, v)
			}
		}
		if !slices.Contains(args, "--instance-registry-dir") && !slices.ContainsFunc(args, func(a string) bool { return strings.HasPrefix(a, "--instance-registry-dir=") }) {
			args = append(args, "--instance-registry-dir", reg)
		}
		code, stdout, stderr := runIn(t, work, "", args...)
		what := fmt.Sprintf("client case %d: ferry %q", i, args)
		noPanic(t, what, stdout+stderr)
		if code != 0 && code != 1 {
			t.Fatalf("%s: exit %d\nstdout:\n%s\nstderr:\n%s", what, code, stdout, stderr)
		}
	}
	t.Logf("%d command lines, %d accepted by config check, %d started", cmdlineCases(), accepted, starts)
	if accepted == 0 {
		t.Error("no command line was accepted: the generator tries nothing that works")
	}
}

// startProperty runs `ferry start` with args (plus loopback, a port of its
// own and a registry), stops it once it serves or sees it fail, and checks
// it never panics and leaves nothing running.
func startProperty(t *testing.T, what, work, app string, args []string) {
	t.Helper()
	var m [6]byte
	for i := range m {
		m[i] = byte('a' + rand.IntN(26))
	}
	e := &badEnv{reg: shortTempDir(t), mark: string(m[:])}
	full := append(append([]string{"start", app}, args...), "--address", "127.0.0.1", "--port", "0",
		"--python", python, "--instance-registry-dir", e.reg, "--daemonize=false", "--metrics-address=", "--log-file=-")
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, ferryBin, full...)
	cmd.Dir = work
	cmd.Env = append(userEnv(), "FERRY_TEST_MARK="+e.mark)
	logs := newLogBuffer()
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	var werr error
	go func() { werr = cmd.Wait(); close(exited) }()
	if _, ok := logs.wait(regexp.MustCompile(`msg="ferry started"|^ferry: `), 60*time.Second, exited); ok {
		cmd.Process.Signal(syscall.SIGTERM)
	}
	select {
	case <-exited:
	case <-time.After(60 * time.Second):
		cmd.Process.Kill()
		<-exited
		t.Fatalf("%s: start did not stop after SIGTERM\n%s", what, logs.String())
	}
	out := logs.String()
	noPanic(t, "ferry "+strings.Join(full, " "), out)
	if ee, ok := werr.(*exec.ExitError); ok && (ee.ExitCode() != 1 || !strings.Contains(out, "\nferry: ") && !strings.HasPrefix(out, "ferry: ")) {
		t.Fatalf("%s: start exited %v without a \"ferry: \" line\n%s", what, werr, out)
	}
	nothingLeft(t, e)
}

// runIn runs the binary in dir, with mark (if any) in its environment.
func runIn(t *testing.T, dir, mark string, args ...string) (int, string, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, ferryBin, args...)
	cmd.Dir = dir
	cmd.Env = userEnv()
	if mark != "" {
		cmd.Env = append(cmd.Env, "FERRY_TEST_MARK="+mark)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("ferry %q hung (killed after 60s)", args)
	}
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode(), stdout.String(), stderr.String()
	} else if err != nil {
		t.Fatal(err)
	}
	return 0, stdout.String(), stderr.String()
}
