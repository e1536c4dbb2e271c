package integration

// Security: who app processes run as, what they can reach, and what hostile
// requests get. Tests that switch users need root (CI runs as root) and skip
// with a message otherwise.

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ferry-server/ferry/internal/admin"
)

// The fixtures in testdata/ belong to whoever checked them out — root in
// CI — and the other tests of this package are about features, not users:
// they run their apps as root, explicitly (Ferry reads FERRY_* settings from
// the environment it inherits from the tests). The tests in this file start
// Ferry with an environment of their own (startFerryEnv) and exercise user
// switching as it is by default.
func init() {
	if os.Geteuid() == 0 {
		os.Setenv("FERRY_USER", "root")
		os.Setenv("FERRY_ALLOW_ROOT_APPS", "true")
	}
}

// startFerryEnv is startFerryArgs without the settings init gives the
// other tests, plus env (NAME=VALUE) in Ferry's environment. Its instance
// registry is traversable, as /run/ferry is, so that app users can reach
// their sockets.
func startFerryEnv(t *testing.T, env []string, args ...string) *ferry {
	t.Helper()
	needPython(t)
	reg := openTempDir(t)
	all := append([]string{"start", "--port", "0", "--address", "127.0.0.1",
		"--python", python, "--instance-registry-dir", reg}, args...)
	cmd := exec.Command(ferryBin, all...)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "FERRY_USER=") && !strings.HasPrefix(kv, "FERRY_ALLOW_ROOT_APPS=") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, env...)
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

func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: runs apps as other users (CI runs as root)")
	}
}

// openTempDir is a short temp dir every user may traverse (not list).
func openTempDir(t *testing.T) string {
	t.Helper()
	d := shortTempDir(t)
	if err := os.Chmod(d, 0o711); err != nil {
		t.Fatal(err)
	}
	return d
}

// testAccount is a system user with a group of its own.
type testAccount struct {
	name     string
	uid, gid int
	groups   []int // every group it is in, gid too
	home     string
}

// account creates (or reuses) a system user, member of the extra groups
// (created too).
func account(t *testing.T, name string, extra ...string) testAccount {
	t.Helper()
	run := func(args ...string) {
		if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil && !strings.Contains(string(out), "exists") {
			t.Skipf("%s: %v: %s", strings.Join(args, " "), err, out)
		}
	}
	for _, g := range extra {
		if _, err := user.LookupGroup(g); err != nil {
			run("groupadd", "--system", g)
		}
	}
	if _, err := user.Lookup(name); err != nil {
		args := []string{"useradd", "--system", "--user-group", "--no-create-home", "--shell", "/usr/sbin/nologin"}
		if len(extra) > 0 {
			args = append(args, "--groups", strings.Join(extra, ","))
		}
		run(append(args, name)...)
	}
	u, err := user.Lookup(name)
	if err != nil {
		t.Fatal(err)
	}
	a := testAccount{name: name, home: u.HomeDir}
	a.uid, _ = strconv.Atoi(u.Uid)
	a.gid, _ = strconv.Atoi(u.Gid)
	ids, _ := u.GroupIds()
	for _, s := range ids {
		g, _ := strconv.Atoi(s)
		a.groups = append(a.groups, g)
	}
	slices.Sort(a.groups)
	return a
}

// deploy copies a fixture app into a directory every user may traverse and
// gives it to uid:gid.
func deploy(t *testing.T, name string, uid, gid int) string {
	t.Helper()
	base := openTempDir(t)
	dst := filepath.Join(base, filepath.Base(name))
	if name == "" {
		dst = filepath.Join(base, "empty")
		os.Mkdir(dst, 0o755)
	} else if err := os.CopyFS(dst, os.DirFS(fixture(t, name))); err != nil {
		t.Fatal(err)
	}
	chownTree(t, dst, uid, gid)
	return dst
}

func chownTree(t *testing.T, root string, uid, gid int) {
	t.Helper()
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, uid, gid)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// identityOf reads the real, effective, saved and file-system ids and the
// groups of a process from /proc/PID/status.
func identityOf(t *testing.T, pid int) (uids, gids string, groups []int) {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.Lines(string(b)) {
		k, v, _ := strings.Cut(strings.TrimSpace(line), ":")
		switch k {
		case "Uid":
			uids = strings.Join(strings.Fields(v), " ")
		case "Gid":
			gids = strings.Join(strings.Fields(v), " ")
		case "Groups":
			for _, g := range strings.Fields(v) {
				n, _ := strconv.Atoi(g)
				groups = append(groups, n)
			}
		}
	}
	slices.Sort(groups)
	return uids, gids, groups
}

func four(id int) string { s := strconv.Itoa(id); return s + " " + s + " " + s + " " + s }

// environOf is a process's environment.
func environOf(t *testing.T, pid int) map[string]string {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid))
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]string{}
	for _, kv := range strings.Split(string(b), "\x00") {
		if k, v, ok := strings.Cut(kv, "="); ok {
			m[k] = v
		}
	}
	return m
}

// appPool is GET /pool for several apps.
type appPool struct {
	Apps []struct {
		Name      string `json:"name"`
		Preloader int    `json:"preloader_pid"`
		Processes []struct {
			PID int `json:"pid"`
		} `json:"processes"`
		LastError string `json:"last_spawn_error"`
	} `json:"apps"`
}

func (f *ferry) appPool() appPool {
	f.t.Helper()
	var st appPool
	if err := admin.NewClient(f.Instance).Do(context.Background(), "GET", "/pool", &st); err != nil {
		f.t.Fatalf("admin /pool: %v", err)
	}
	return st
}

// hostGet does a GET with a Host header, for multi-app instances.
func (f *ferry) hostGet(host, path string) (int, string) {
	f.t.Helper()
	req, _ := http.NewRequest("GET", f.URL+path, nil)
	req.Host = host
	resp, err := client.Do(req)
	if err != nil {
		f.t.Fatalf("GET %s%s: %v", host, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestAppsRunAsTheirOwners hosts apps of every kind, owned by different
// users, in one Ferry run as root, and checks who each process runs as.
func TestAppsRunAsTheirOwners(t *testing.T) {
	needRoot(t)
	a := account(t, "ferry-a", "ferry-shared")
	b := account(t, "ferry-b")
	nobody := account(t, "nobody")

	type app struct {
		name, fixture, interp string
		owner                 testAccount
		runsAs                testAccount
		extra                 string
		smart                 bool
	}
	apps := []app{
		{name: "wsgi-smart", fixture: "wsgi/echo", interp: python, owner: a, runsAs: a, smart: true},
		{name: "wsgi-direct", fixture: "wsgi/echo", interp: python, owner: b, runsAs: b, extra: `spawn_method = "direct"`},
		{name: "root-owned", fixture: "wsgi/echo", interp: python, owner: testAccount{name: "root"}, runsAs: nobody},
		{name: "rack", fixture: "rack/echo", interp: "/usr/bin/ruby", owner: b, runsAs: b, smart: true},
		{name: "node", fixture: "node/echo", interp: "/usr/bin/node", owner: a, runsAs: a},
		{name: "asgi", fixture: "asgi/echo", interp: python, owner: b, runsAs: b},
		{name: "generic", interp: python, owner: a, runsAs: a,
			extra: `app_start_command = "` + python + ` -m http.server --bind 127.0.0.1 $PORT"`},
	}
	var conf strings.Builder
	conf.WriteString("python = \"" + python + "\"\nruby = \"/usr/bin/ruby\"\nnodejs = \"/usr/bin/node\"\n")
	var hosted []app
	for _, ap := range apps {
		if _, err := os.Stat(ap.interp); err != nil {
			t.Logf("skipping the %s app: %s not installed", ap.name, ap.interp)
			continue
		}
		root := deploy(t, ap.fixture, ap.owner.uid, ap.owner.gid)
		fmt.Fprintf(&conf, "\n[[app]]\nname = %q\nroot = %q\nserver_names = [%q]\n%s\n", ap.name, root, ap.name+".test", ap.extra)
		hosted = append(hosted, ap)
	}
	dir := openTempDir(t)
	file := filepath.Join(dir, "ferry.toml")
	os.WriteFile(file, []byte(conf.String()), 0o644)
	f := startFerryEnv(t, nil, "--config", file)

	for _, ap := range hosted {
		if code, body := f.hostGet(ap.name+".test", "/"); code != 200 {
			t.Fatalf("%s: GET / = %d %s", ap.name, code, body)
		}
	}
	st := f.appPool()
	for _, ap := range hosted {
		t.Run(ap.name, func(t *testing.T) {
			var pids []int
			for _, s := range st.Apps {
				if s.Name != ap.name {
					continue
				}
				for _, p := range s.Processes {
					pids = append(pids, p.PID)
				}
				if ap.smart {
					if s.Preloader == 0 {
						t.Fatal("no preloader")
					}
					pids = append(pids, s.Preloader)
				}
			}
			if len(pids) == 0 {
				t.Fatal("no processes")
			}
			for _, pid := range pids {
				uids, gids, groups := identityOf(t, pid)
				if uids != four(ap.runsAs.uid) || gids != four(ap.runsAs.gid) {
					t.Errorf("pid %d: Uid %q Gid %q, want %s (uid %d gid %d) for real, effective, saved and fs",
						pid, uids, gids, ap.runsAs.name, ap.runsAs.uid, ap.runsAs.gid)
				}
				if !slices.Equal(groups, ap.runsAs.groups) {
					t.Errorf("pid %d: Groups %v, want %v", pid, groups, ap.runsAs.groups)
				}
				env := environOf(t, pid)
				if env["USER"] != ap.runsAs.name || env["LOGNAME"] != ap.runsAs.name || env["HOME"] != ap.runsAs.home || env["SHELL"] == "" {
					t.Errorf("pid %d: USER=%q LOGNAME=%q HOME=%q SHELL=%q, want %s's", pid,
						env["USER"], env["LOGNAME"], env["HOME"], env["SHELL"], ap.runsAs.name)
				}
			}
		})
	}
	if !slices.ContainsFunc(hosted, func(ap app) bool { return ap.name == "root-owned" }) {
		t.Fatal("the root-owned app was not hosted")
	}
	f.waitLog(`msg="app user" app=root-owned user=nobody .*owned by root`)

	t.Run("one app's user cannot reach another's", func(t *testing.T) {
		crossAppAttempts(t, f, a, "wsgi-direct")
	})
}

// crossAppAttempts runs, as app user u, a client that tries to reach
// another app's socket and work directory, the admin socket and its tokens,
// the instance's files, and the other app's processes; every attempt must
// be refused.
func crossAppAttempts(t *testing.T, f *ferry, u testAccount, victim string) {
	t.Helper()
	work := filepath.Join(f.Instance, "work")
	ents, err := os.ReadDir(work)
	if err != nil {
		t.Fatal(err)
	}
	var victimDir string
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), victim+".") {
			victimDir = filepath.Join(work, e.Name())
		}
	}
	if victimDir == "" {
		t.Fatalf("no work directory of %s in %s", victim, work)
	}
	var victimPID int
	for _, s := range f.appPool().Apps {
		if s.Name == victim && len(s.Processes) > 0 {
			victimPID = s.Processes[0].PID
		}
	}
	// Root may: the socket is there and serves.
	if c, err := net.Dial("unix", filepath.Join(victimDir, "sock")); err != nil {
		t.Fatalf("as root, %s's socket: %v", victim, err)
	} else {
		c.Close()
	}
	script := `
import json, os, signal, socket, sys
work, inst, pid = sys.argv[1], sys.argv[2], int(sys.argv[3])
out = {}
def attempt(name, f):
    try:
        f()
        out[name] = "ALLOWED"
    except OSError as e:
        out[name] = type(e).__name__
def connect(path):
    s = socket.socket(socket.AF_UNIX); s.settimeout(5); s.connect(path); s.close()
attempt("connect to the other app's socket", lambda: connect(os.path.join(work, "sock")))
attempt("list the other app's work directory", lambda: os.listdir(work))
attempt("connect to the admin socket", lambda: connect(os.path.join(inst, "admin.sock")))
attempt("read the admin token", lambda: open(os.path.join(inst, "admin.token")).read())
attempt("read the read-only token", lambda: open(os.path.join(inst, "read.token")).read())
attempt("read the properties", lambda: open(os.path.join(inst, "properties.json")).read())
attempt("list the instance directory", lambda: os.listdir(inst))
attempt("list the work directories", lambda: os.listdir(os.path.join(inst, "work")))
attempt("list the buffered bodies", lambda: os.listdir(os.path.join(inst, "buffers")))
attempt("create a file in the instance directory", lambda: open(os.path.join(inst, "evil"), "w").close())
attempt("create a file in the work directories", lambda: open(os.path.join(inst, "work", "evil"), "w").close())
attempt("signal the other app's process", lambda: os.kill(pid, 0))
attempt("read the other app's environment", lambda: open("/proc/%d/environ" % pid).read())
json.dump(out, sys.stdout)
`
	cmd := exec.Command("setpriv", "--reuid", strconv.Itoa(u.uid), "--regid", strconv.Itoa(u.gid), "--init-groups",
		python, "-c", script, victimDir, f.Instance, strconv.Itoa(victimPID))
	cmd.Dir = "/"
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("setpriv as %s: %v\n%s", u.name, err, out)
	}
	var results map[string]string
	if err := json.Unmarshal(out, &results); err != nil {
		t.Fatalf("client output %q: %v", out, err)
	}
	if len(results) < 13 {
		t.Fatalf("client output: %v", results)
	}
	for what, res := range results {
		if res == "ALLOWED" {
			t.Errorf("as %s: %s: allowed", u.name, what)
		} else {
			t.Logf("as %s: %s: refused (%s)", u.name, what, res)
		}
	}
}

// TestUnreadableApp: the user an app runs as cannot read it; the spawn
// fails with a page and a log line that say who, what and how to fix it.
func TestUnreadableApp(t *testing.T) {
	needRoot(t)
	a := account(t, "ferry-a", "ferry-shared")
	account(t, "ferry-b")
	root := deploy(t, "wsgi/echo", a.uid, a.gid)
	os.Chmod(root, 0o700) // ferry-a's alone
	for _, env := range []string{"development", "production"} {
		t.Run(env, func(t *testing.T) {
			f := startFerryEnv(t, nil, root, "--user", "ferry-b", "-e", env)
			code, body := f.get("/")
			if code != 500 && code != 503 {
				t.Fatalf("GET / = %d, want the start-up error page\n%s", code, body)
			}
			line := f.waitLog(`msg="spawn failed".*cannot read the app directory`)
			for _, want := range []string{"ferry-b", root, "permission denied", "chown -R ferry-b " + root, "--user"} {
				if !strings.Contains(line, want) {
					t.Errorf("log line lacks %q: %s", want, line)
				}
			}
			if env == "development" {
				if !strings.Contains(body, "user ferry-b cannot read the app directory "+root) || !strings.Contains(body, "chown") {
					t.Errorf("development error page lacks the details:\n%s", body)
				}
			} else if strings.Contains(body, root) {
				t.Errorf("production error page shows the path:\n%s", body)
			}
			if strings.Contains(body, "Traceback") {
				t.Errorf("a bare traceback instead of the explanation:\n%s", body)
			}
		})
	}
}

// TestStaticFilesOverHTTP throws traversal and symlink attempts at a real
// Ferry serving public/ of an app owned by an unprivileged user.
func TestStaticFilesOverHTTP(t *testing.T) {
	const (
		secret     = "SECRET-OF-THE-APP"    // the app's, outside public/
		rootSecret = "SECRET-ONLY-FOR-ROOT" // not even the app's user may read it
	)
	uid, gid := os.Geteuid(), os.Getegid()
	if os.Geteuid() == 0 {
		a := account(t, "ferry-a", "ferry-shared")
		uid, gid = a.uid, a.gid
	}
	root := deploy(t, "wsgi/echo", uid, gid)
	pub := filepath.Join(root, "public")
	outside := openTempDir(t)
	os.Chmod(outside, 0o755)
	for p, body := range map[string]string{
		filepath.Join(pub, "hello.txt"):                    "hello",
		filepath.Join(pub, ".env"):                         secret,
		filepath.Join(pub, ".git", "config"):               secret,
		filepath.Join(pub, "sub", ".htpasswd"):             secret,
		filepath.Join(root, "secret.txt"):                  secret,
		filepath.Join(outside, "shared.txt"):               "shared",
		filepath.Join(outside, "private", "root-only.txt"): rootSecret,
	} {
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	os.Chmod(filepath.Join(outside, "private"), 0o700) // root's
	for name, target := range map[string]string{
		"up.txt":     "../secret.txt",
		"abs.txt":    filepath.Join(root, "secret.txt"),
		"shared.txt": filepath.Join(outside, "shared.txt"),
		"root.txt":   filepath.Join(outside, "private", "root-only.txt"),
		"shadow":     "/etc/shadow",
		"updir":      "..",
	} {
		if err := os.Symlink(target, filepath.Join(pub, name)); err != nil {
			t.Fatal(err)
		}
	}
	chownTree(t, root, uid, gid)

	raw := func(f *ferry, target string) (int, string) {
		t.Helper()
		c, err := net.Dial("tcp", strings.TrimPrefix(f.URL, "http://"))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", target)
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			return 0, ""
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	// Never served, whatever the options: traversal by the request path,
	// dotfiles, and files the app's user could not read itself.
	never := []string{
		"/../secret.txt", "/%2e%2e/secret.txt", "/%2E%2E/secret.txt", "/.%2e/secret.txt",
		"/%252e%252e/secret.txt", "/%25252e%25252e/secret.txt", "/..%2fsecret.txt", "/..%252fsecret.txt",
		"/..%5csecret.txt", "/..\\secret.txt", "/%5c..%5csecret.txt", "/hello.txt%00", "/hello.txt%00.png",
		"/..%00/secret.txt", "/public/../secret.txt", "//secret.txt", "/./../secret.txt",
		"/.env", "/%2eenv", "/.git/config", "/%2egit/config", "/sub/.htpasswd", "/sub/%2ehtpasswd",
		"/updir/public/.env", "/updir/public/%2eenv", "/" + root + "/secret.txt", "/..;/secret.txt",
		"/%c0%ae%c0%ae/secret.txt", "/\u2024\u2024/secret.txt", "/root.txt", "/shadow",
	}
	// Symlinks out of public/ to what the app's user may read: served only
	// with --static-follow-symlinks.
	outOfPublic := map[string]string{
		"/up.txt": secret, "/abs.txt": secret, "/updir/secret.txt": secret, "/shared.txt": "shared",
	}
	check := func(f *ferry, follow bool) {
		if code, body := raw(f, "/hello.txt"); code != 200 || body != "hello" {
			t.Fatalf("GET /hello.txt = %d %q", code, body)
		}
		for _, target := range never {
			code, body := raw(f, target)
			if strings.Contains(body, secret) || strings.Contains(body, rootSecret) || strings.Contains(body, "root:") {
				t.Errorf("GET %s = %d: leaked %q", target, code, body)
			}
		}
		for target, content := range outOfPublic {
			code, body := raw(f, target)
			if served := code == 200 && body == content; served != follow {
				t.Errorf("GET %s = %d %q; served=%v, want %v", target, code, body, served, follow)
			}
		}
	}
	t.Run("default", func(t *testing.T) {
		check(startFerryEnv(t, nil, root), false)
	})
	t.Run("static-follow-symlinks", func(t *testing.T) {
		check(startFerryEnv(t, nil, root, "--static-follow-symlinks"), true)
	})
}

// TestHeaderNameCollisions: a client header that differs from one Ferry sets
// (or from another client header) only by '-' versus '_' must not reach a
// WSGI or Rack app, where both become the same CGI variable (Passenger's
// CVE-2015-7519).
func TestHeaderNameCollisions(t *testing.T) {
	for _, app := range []struct{ name, fixture, interp string }{
		{"wsgi", "wsgi/echo", python},
		{"rack", "rack/echo", "/usr/bin/ruby"},
	} {
		t.Run(app.name, func(t *testing.T) {
			needInterp(t, app.interp)
			// This loopback client is no proxy: trust no one.
			f := startFerry(t, fixture(t, app.fixture), "--trusted-proxies", "none")
			c, err := net.Dial("tcp", strings.TrimPrefix(f.URL, "http://"))
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			fmt.Fprint(c, "GET /echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"+
				"X_Ferry_Client_Addr: 6.6.6.6:1\r\nX-Ferry-Client-Addr: 6.6.6.6:2\r\nx_ferry_scheme: https\r\n"+
				"X-Ferry-Scheme: https\r\nX-Forwarded-For: 1.2.3.4\r\nX-Forwarded_For: 6.6.6.6\r\n"+
				"X_Forwarded_Proto: https\r\nRemote_Addr: 6.6.6.6\r\nX-Auth-User: alice\r\nX_Auth_User: admin\r\n\r\n")
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			var e struct {
				Headers    map[string]string `json:"headers"`
				RemoteAddr string            `json:"remote_addr"`
				URLScheme  string            `json:"url_scheme"`
			}
			if err := json.Unmarshal(b, &e); err != nil {
				t.Fatalf("%s: %v", b, err)
			}
			if e.RemoteAddr != "127.0.0.1" || e.URLScheme != "http" {
				t.Errorf("REMOTE_ADDR %q, scheme %q: spoofed", e.RemoteAddr, e.URLScheme)
			}
			for k, v := range e.Headers {
				if strings.Contains(v, "6.6.6.6") || v == "admin" || strings.HasPrefix(k, "HTTP_X_FERRY") || k == "HTTP_X_FORWARDED_PROTO" || k == "HTTP_REMOTE_ADDR" {
					t.Errorf("%s=%q reached the app", k, v)
				}
			}
			// The dash-named header arrives whole; X-Forwarded-For from a
			// peer that is not a trusted proxy is dropped by the front
			// (--trusted-proxies), so it may only be absent, never the
			// underscore twin's value.
			if e.Headers["HTTP_X_AUTH_USER"] != "alice" {
				t.Errorf("the dash-named headers were lost or overwritten: %v", e.Headers)
			}
			if xff, ok := e.Headers["HTTP_X_FORWARDED_FOR"]; ok && xff != "1.2.3.4" {
				t.Errorf("X-Forwarded-For overwritten: %q", xff)
			}
		})
	}
}

// TestEnvironmentHygiene: apps get Ferry's environment without Ferry's
// settings, its service manager's sockets or its login session's agents.
func TestEnvironmentHygiene(t *testing.T) {
	env := []string{
		"NOTIFY_SOCKET=/run/systemd/notify", "LISTEN_FDS=3", "LISTEN_PID=1", "LISTEN_FDNAMES=http",
		"WATCHDOG_USEC=1000", "CREDENTIALS_DIRECTORY=/run/credentials/ferry.service",
		"SSH_AUTH_SOCK=/tmp/ssh-XXXX/agent.1", "DBUS_SESSION_BUS_ADDRESS=unix:path=/run/user/0/bus",
		"FERRY_SOME_SECRET=hunter2", "PASSENGER_MAX_POOL_SIZE=2", "DATABASE_URL=postgres://db/app",
	}
	root := fixture(t, "wsgi/echo")
	if os.Geteuid() == 0 {
		a := account(t, "ferry-a", "ferry-shared")
		root = deploy(t, "wsgi/echo", a.uid, a.gid)
	}
	f := startFerryEnv(t, env, root, "--envvar", "APP_SECRET=for-the-app")
	_, out := f.get("/osenv")
	var got map[string]string
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("%s: %v", out, err)
	}
	for k := range got {
		switch {
		case k == "NOTIFY_SOCKET", strings.HasPrefix(k, "LISTEN_"), strings.HasPrefix(k, "WATCHDOG_"),
			k == "CREDENTIALS_DIRECTORY", k == "SSH_AUTH_SOCK", k == "DBUS_SESSION_BUS_ADDRESS",
			k == "FERRY_SOME_SECRET", k == "PASSENGER_MAX_POOL_SIZE":
			t.Errorf("%s=%q reached the app", k, got[k])
		}
	}
	if got["DATABASE_URL"] != "postgres://db/app" || got["APP_SECRET"] != "for-the-app" {
		t.Errorf("the app's own settings were lost: DATABASE_URL=%q APP_SECRET=%q", got["DATABASE_URL"], got["APP_SECRET"])
	}
	if os.Geteuid() == 0 && (got["USER"] != "ferry-a" || got["HOME"] == os.Getenv("HOME")) {
		t.Errorf("USER=%q HOME=%q: the core's user leaked", got["USER"], got["HOME"])
	}
	for _, k := range []string{"FERRY_APP_ROOT", "FERRY_SOCKET", "FERRY_APP_ENV"} {
		if got[k] == "" {
			t.Errorf("%s missing: the handshake variables must stay", k)
		}
	}
}

// TestWebSocketTunnelCap: past --max-websocket-tunnels, an upgrade gets 503.
func TestWebSocketTunnelCap(t *testing.T) {
	needInterp(t, "/usr/bin/node")
	f := startFerry(t, fixture(t, "node/echo"), "--max-websocket-tunnels", "1")
	ws := dialWebSocket(t, f, "/ws")
	defer ws.Close()
	c, err := net.Dial("tcp", strings.TrimPrefix(f.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprint(c, "GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("a second WebSocket with a cap of 1: %d, want 503", resp.StatusCode)
	}
}

// TestSlowClientsDoNotHoldProcesses: a client that uploads at a crawl, or
// never reads its response, holds no app process: with a single process,
// other requests are served meanwhile.
func TestSlowClientsDoNotHoldProcesses(t *testing.T) {
	f := startFerry(t, fixture(t, "wsgi/echo"), "--max-pool-size", "1", "--min-instances", "1")
	addr := strings.TrimPrefix(f.URL, "http://")

	// A slow upload: headers and a few bytes of a 1 MiB body, then nothing.
	up, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer up.Close()
	fmt.Fprint(up, "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 1048576\r\n\r\nfirst bytes")

	// A slow reader: 64 MiB asked for, not one byte read.
	down, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer down.Close()
	down.(*net.TCPConn).SetReadBuffer(4096)
	fmt.Fprint(down, "GET /big?n=67108864 HTTP/1.1\r\nHost: x\r\n\r\n")

	// The process finishes the big response into Ferry's buffer and is free.
	eventually(t, "the big response spooled and its process released", func() bool {
		ps := f.pool().Apps[0].Processes
		return len(ps) == 1 && ps[0].Processed >= 1 && ps[0].Sessions == 0
	})
	for i := range 5 {
		if code, body := f.get("/"); code != 200 || body != "hello world" {
			t.Fatalf("request %d while slow clients hang on: %d %q", i, code, body)
		}
	}
}

// TestRequestSmuggling: Ferry parses each request once, buffers its body
// and sends the app a fresh request framed by Content-Length alone, so a
// body can never become a second request at the app; and framing that
// front-ends and back-ends could read differently is refused.
func TestRequestSmuggling(t *testing.T) {
	f := startFerry(t, fixture(t, "wsgi/echo"))
	smuggled := "GET /status/299 HTTP/1.1\r\nHost: x\r\n\r\n"
	send := func(t *testing.T, req string) []*http.Response {
		t.Helper()
		c, err := net.Dial("tcp", strings.TrimPrefix(f.URL, "http://"))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		io.WriteString(c, req)
		br := bufio.NewReader(c)
		var out []*http.Response
		for {
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				return out
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body = io.NopCloser(strings.NewReader(string(b)))
			out = append(out, resp)
			if resp.Close {
				return out
			}
		}
	}
	t.Run("a body that looks like a request stays a body", func(t *testing.T) {
		for name, req := range map[string]string{
			"Content-Length": "POST /echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: " +
				strconv.Itoa(len(smuggled)) + "\r\n\r\n" + smuggled,
			"chunked": "POST /echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n" +
				fmt.Sprintf("%x\r\n%s\r\n0\r\n\r\n", len(smuggled), smuggled),
		} {
			resps := send(t, req)
			if len(resps) != 1 || resps[0].StatusCode != 200 {
				t.Fatalf("%s: %d responses", name, len(resps))
			}
			b, _ := io.ReadAll(resps[0].Body)
			var e struct{ Body string }
			json.Unmarshal(b, &e)
			if e.Body != smuggled {
				t.Errorf("%s: the app got body %q, want the request text as a body", name, e.Body)
			}
		}
	})
	t.Run("ambiguous framing is refused", func(t *testing.T) {
		for name, req := range map[string]string{
			"two Content-Lengths": "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nContent-Length: " +
				strconv.Itoa(len(smuggled)) + "\r\n\r\n" + smuggled,
			"unknown Transfer-Encoding": "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: " + strconv.Itoa(5+len(smuggled)) +
				"\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n" + smuggled,
			"space before the colon": "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: " + strconv.Itoa(5+len(smuggled)) +
				"\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n" + smuggled,
			"chunk size overflow": "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" +
				"10000000000000000\r\n" + smuggled + "\r\n0\r\n\r\n",
		} {
			resps := send(t, req)
			if len(resps) != 1 || resps[0].StatusCode < 400 {
				var codes []int
				for _, r := range resps {
					codes = append(codes, r.StatusCode)
				}
				t.Errorf("%s: statuses %v, want one refusal", name, codes)
			}
		}
	})
	if strings.Contains(f.logs.String(), "path=/status/299") {
		t.Fatalf("the smuggled request was taken as a request:\n%s", f.logs.String())
	}
	if code, body := f.get("/"); code != 200 || body != "hello world" {
		t.Fatalf("next request: %d %q", code, body)
	}
}
