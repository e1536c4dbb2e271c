package spawn

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ferry-server/ferry/internal/identity"
)

func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: runs app processes as another user (CI runs as root)")
	}
}

// testUser creates (or reuses) a system user with a group of its own and a
// supplementary group, for processes to run as.
func testUser(t *testing.T) *identity.User {
	t.Helper()
	const name, extra = "ferry-sptest", "ferry-spextra"
	run := func(args ...string) {
		if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil && !strings.Contains(string(out), "exists") {
			t.Skipf("%s: %v: %s", strings.Join(args, " "), err, out)
		}
	}
	if _, err := identity.Lookup(name); err != nil {
		run("groupadd", "--system", extra)
		run("useradd", "--system", "--user-group", "--no-create-home", "--shell", "/bin/sh", "--groups", extra, name)
	}
	u, err := identity.Lookup(name)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// openDir is a temp dir other users may traverse (t.TempDir's parent is
// private), with the given mode.
func openDir(t *testing.T, mode os.FileMode) string {
	t.Helper()
	d, err := os.MkdirTemp("", "ferry-spawn-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	os.Chmod(d, mode)
	return d
}

// userSpawner runs script with sh as u, as the core does when it is root.
func userSpawner(t *testing.T, u *identity.User, script string, cfg Config) *Spawner {
	t.Helper()
	if cfg.Root == "" {
		cfg.Root = openDir(t, 0o755)
	}
	if cfg.WorkDir == "" {
		cfg.WorkDir = openDir(t, 0o711)
	}
	cfg.App = "t"
	cfg.Command = []string{"/bin/sh", "-c", script}
	cfg.Env = append([]string{"PATH=/usr/bin:/bin"}, u.Env()...)
	cfg.StartTimeout = 10 * time.Second
	cfg.User = u
	cfg.UserReason = "--user"
	return New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
}

// status reads /proc/PID/status lines by name.
func status(t *testing.T, pid int) map[string]string {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]string{}
	for line := range strings.Lines(string(b)) {
		if k, v, ok := strings.Cut(line, ":"); ok {
			m[k] = strings.Join(strings.Fields(v), " ")
		}
	}
	return m
}

func limit(t *testing.T, pid int, name string) string {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/limits", pid))
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.Lines(string(b)) {
		if strings.HasPrefix(line, name) {
			return strings.Join(strings.Fields(line[len(name):]), " ")
		}
	}
	t.Fatalf("no %q in /proc/%d/limits", name, pid)
	return ""
}

// listen makes the script's process listen on $FERRY_SOCKET, as a loader
// does, then report ready and stay.
const listen = `exec /usr/bin/python3 -c '
import os, socket, time
s = socket.socket(socket.AF_UNIX); s.bind(os.environ["FERRY_SOCKET"]); s.listen(8)
os.write(3, b"{\"status\":\"ready\",\"concurrency\":1}\n"); os.close(3)
time.sleep(600)'`

func needPython(t *testing.T) {
	t.Helper()
	if _, err := os.Stat("/usr/bin/python3"); err != nil {
		t.Skip("needs /usr/bin/python3")
	}
}

func TestSpawnAsUser(t *testing.T) {
	needRoot(t)
	needPython(t)
	u := testUser(t)
	sp := userSpawner(t, u, listen, Config{FileDescriptorLimit: 321})
	p, err := sp.Spawn(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer p.Kill()
	id := strconv.Itoa(u.UID)
	gid := strconv.Itoa(u.GID)
	st := status(t, p.PID())
	if want := strings.Join([]string{id, id, id, id}, " "); st["Uid"] != want {
		t.Errorf("Uid (real, effective, saved, fs) = %q, want %q", st["Uid"], want)
	}
	if want := strings.Join([]string{gid, gid, gid, gid}, " "); st["Gid"] != want {
		t.Errorf("Gid = %q, want %q", st["Gid"], want)
	}
	var groups []int
	for _, g := range strings.Fields(st["Groups"]) {
		n, _ := strconv.Atoi(g)
		groups = append(groups, n)
	}
	slices.Sort(groups)
	want := slices.Sorted(slices.Values(u.Groups))
	if !slices.Equal(groups, want) || len(want) < 2 {
		t.Errorf("Groups = %v, want %v (primary and supplementary)", groups, want)
	}
	if got := limit(t, p.PID(), "Max core file size"); !strings.HasPrefix(got, "0 0 ") {
		t.Errorf("core file size = %q, want 0 0", got)
	}
	if got := limit(t, p.PID(), "Max open files"); !strings.HasPrefix(got, "321 321 ") {
		t.Errorf("open files = %q, want 321 321", got)
	}
	env, _ := os.ReadFile(fmt.Sprintf("/proc/%d/environ", p.PID()))
	for _, kv := range []string{"HOME=" + u.Home, "USER=" + u.Name, "LOGNAME=" + u.Name} {
		if !slices.Contains(strings.Split(string(env), "\x00"), kv) {
			t.Errorf("environment lacks %s", kv)
		}
	}
	// Its work directory is root's again, and private.
	fi, err := os.Stat(p.workDir)
	if err != nil {
		t.Fatal(err)
	}
	if uid, _, _ := ownerOf(fi); uid != 0 || fi.Mode().Perm() != 0o700 {
		t.Errorf("work dir owned by %d mode %o after start-up, want root 0700", uid, fi.Mode().Perm())
	}
}

func ownerOf(fi os.FileInfo) (uid, gid int, ok bool) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return -1, -1, false
	}
	return int(st.Uid), int(st.Gid), true
}

func TestSpawnAccessDenied(t *testing.T) {
	needRoot(t)
	u := testUser(t)
	root := openDir(t, 0o700) // root's, private
	os.WriteFile(filepath.Join(root, "config.ru"), []byte("run nil\n"), 0o644)
	sp := userSpawner(t, u, "exit 0", Config{Root: root, StartupFile: "config.ru"})
	_, err := sp.Spawn(t.Context())
	var se *Error
	if !errors.As(err, &se) {
		t.Fatalf("want *Error, got %v", err)
	}
	for _, want := range []string{u.Name, root, "permission denied", "chown -R " + u.Name, "--user"} {
		if !strings.Contains(se.Summary, want) {
			t.Errorf("summary lacks %q: %s", want, se.Summary)
		}
	}
	t.Logf("refused: %v", err)
	// The directory is fine but the startup file is not.
	os.Chmod(root, 0o755)
	os.Chmod(filepath.Join(root, "config.ru"), 0o600)
	_, err = sp.Spawn(t.Context())
	if !errors.As(err, &se) || !strings.Contains(se.Summary, "read the startup file "+filepath.Join(root, "config.ru")) {
		t.Fatalf("unreadable startup file: %v", err)
	}
}

func TestSpawnSocketSwapped(t *testing.T) {
	needPython(t)
	// Another socket the app would like the core to talk to on its behalf
	// (another app's, or the admin socket).
	victimDir := openDir(t, 0o755)
	victim := filepath.Join(victimDir, "victim.sock")
	ln, err := net.Listen("unix", victim)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	os.Chmod(victim, 0o777)
	script := `ln -s ` + victim + ` "$FERRY_SOCKET" && echo '{"status":"ready","concurrency":1}' >&3 && exec 3>&- && exec sleep 600`
	cases := map[string]*Spawner{"as the core's user": spawner(t, script, 10*time.Second)}
	if os.Geteuid() == 0 {
		cases["as another user"] = userSpawner(t, testUser(t), script, Config{})
	}
	for name, sp := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := sp.Spawn(t.Context())
			var se *Error
			if !errors.As(err, &se) || !strings.Contains(se.Summary, "unsafe work directory") || !strings.Contains(se.Summary, "symlink") {
				t.Fatalf("a symlinked socket was accepted: %v", err)
			}
			t.Logf("refused: %v", err)
		})
	}
}

func TestGenericPortSquatted(t *testing.T) {
	needRoot(t)
	u := testUser(t)
	// Someone else (root, here) listens on the port.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	port := ln.Addr().(*net.TCPAddr).Port
	sp := userSpawner(t, u, "true", Config{})
	if err := sp.checkPortOwner(port); err == nil || !strings.Contains(err.Error(), "held by uid 0") {
		t.Fatalf("a port held by root passed for %s's: %v", u.Name, err)
	}
	own := spawner(t, "true", time.Second)
	if err := own.checkPortOwner(port); err != nil {
		t.Fatalf("our own port: %v", err)
	}
}

// fakePreloader speaks the smart-spawn protocol badly on purpose: on a
// spawn command it does what mode says instead of forking a worker that
// listens on the given socket.
const fakePreloader = `
import json, os, socket, sys, time
mode = sys.argv[1]
ctl = socket.socket(socket.AF_UNIX); ctl.bind(os.environ["FERRY_SOCKET"]); ctl.listen(8)
os.write(3, b'{"status":"ready","preloader":true}\n'); os.close(3)
while True:
    c, _ = ctl.accept()
    msg, fds, _, _ = socket.recv_fds(c, 4096, 3)
    path = json.loads(msg.decode())["socket"]
    if mode == "self":      # the preloader listens on the worker socket itself
        s = socket.socket(socket.AF_UNIX); s.bind(path); s.listen(8)
    elif mode == "symlink": # the worker socket points at another socket
        os.symlink(os.environ["CANARY"], path)
    elif mode == "grandchild":  # a grandchild, not a child, listens
        if os.fork() == 0:
            if os.fork() == 0:
                s = socket.socket(socket.AF_UNIX); s.bind(path); s.listen(8)
                os.write(fds[2], b'{"status":"ready","concurrency":1}\n')
                time.sleep(600)
            os._exit(0)
        time.sleep(0.5)
        continue
    os.write(fds[2], b'{"status":"ready","concurrency":1}\n')
    for fd in fds: os.close(fd)
`

func TestSmartWorkerNotBelieved(t *testing.T) {
	needPython(t)
	for _, mode := range []string{"self", "symlink", "grandchild"} {
		t.Run(mode, func(t *testing.T) {
			// The socket a planted symlink points at: the core must never
			// connect to it on the app's behalf.
			canary, err := net.ListenUnix("unix", &net.UnixAddr{Name: filepath.Join(shortDir(t), "canary"), Net: "unix"})
			if err != nil {
				t.Fatal(err)
			}
			defer canary.Close()
			sp := New(Config{
				App: "t", Root: t.TempDir(),
				Command: []string{"/usr/bin/python3", "-c", fakePreloader, mode},
				Env:     []string{"PATH=/usr/bin:/bin", "CANARY=" + canary.Addr().String()}, WorkDir: shortDir(t), StartTimeout: 10 * time.Second,
			}, slog.New(slog.NewTextHandler(io.Discard, nil)))
			sm := sp.Smart(0)
			defer sm.Stop(context.Background())
			w, err := sm.Spawn(t.Context())
			if err == nil {
				w.Kill()
				t.Fatalf("a worker the preloader did not fork was accepted (pid %d)", w.PID())
			}
			t.Logf("refused: %v", err)
			// A connection made is already queued on the listener (Spawn has
			// returned), so the accept finds it at once if there is one; the
			// deadline only ends the wait when there is none.
			canary.SetDeadline(time.Now().Add(200 * time.Millisecond))
			if c, err := canary.Accept(); err == nil {
				c.Close()
				t.Fatal("the core connected through the socket the app pointed elsewhere")
			}
			if sm.Preloader() == 0 {
				t.Fatal("the core killed the preloader while refusing the worker")
			}
		})
	}
}

// shortDir is a work directory with a short path (Unix socket paths are
// limited to 107 bytes).
func shortDir(t *testing.T) string {
	t.Helper()
	d, err := os.MkdirTemp("", "fs")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	return d
}

func TestLimitsHelper(t *testing.T) {
	needPython(t)
	sp := New(Config{
		App: "t", Root: t.TempDir(), Command: []string{"/bin/sh", "-c", listen},
		Env: []string{"PATH=/usr/bin:/bin"}, WorkDir: shortDir(t), StartTimeout: 10 * time.Second,
		FileDescriptorLimit: 100,
	}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	p, err := sp.Spawn(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer p.Kill()
	if got := limit(t, p.PID(), "Max core file size"); !strings.HasPrefix(got, "0 0 ") {
		t.Errorf("core file size = %q, want 0 0", got)
	}
	if got := limit(t, p.PID(), "Max open files"); !strings.HasPrefix(got, "100 100 ") {
		t.Errorf("open files = %q, want 100 100", got)
	}
	cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", p.PID()))
	if !strings.HasPrefix(string(cmdline), "/usr/bin/python3\x00") {
		t.Errorf("the helper did not exec the program in its place: %q", cmdline)
	}

	// More than the hard limit: a clear failure, not a silent one.
	sp.cfg.FileDescriptorLimit = 1 << 30
	if os.Geteuid() == 0 {
		sp.cfg.User = testUser(t)
		sp.cfg.Root = openDir(t, 0o755)
		sp.cfg.WorkDir = openDir(t, 0o711)
	}
	_, err = sp.Spawn(t.Context())
	var se *Error
	if !errors.As(err, &se) || !strings.Contains(se.Output, "--app-file-descriptor-ulimit") {
		t.Fatalf("an impossible open files limit: %v (%+v)", err, se)
	}
}

func TestInherit(t *testing.T) {
	environ := []string{
		"PATH=/usr/bin", "LANG=C.UTF-8", "TZ=UTC", "HOME=/root", "USER=root", "LOGNAME=root", "SHELL=/bin/bash",
		"FERRY_MAX_POOL_SIZE=3", "PASSENGER_APP_ENV=staging", "NOTIFY_SOCKET=/run/systemd/notify",
		"LISTEN_FDS=2", "LISTEN_PID=1", "CREDENTIALS_DIRECTORY=/run/credentials/ferry.service",
		"SSH_AUTH_SOCK=/tmp/ssh-x/agent.1", "XDG_RUNTIME_DIR=/run/user/0", "PWD=/root", "RAILS_ENV=production",
		"DATABASE_URL=postgres://app",
	}
	same := Inherit(environ, nil)
	want := []string{"PATH=/usr/bin", "LANG=C.UTF-8", "TZ=UTC", "HOME=/root", "USER=root", "LOGNAME=root", "SHELL=/bin/bash",
		"XDG_RUNTIME_DIR=/run/user/0", "DATABASE_URL=postgres://app"}
	if !slices.Equal(same, want) {
		t.Errorf("as the core's user:\n got %q\nwant %q", same, want)
	}
	u := &identity.User{Name: "www", Home: "/srv/www", Shell: "/bin/sh"}
	other := Inherit(environ, u)
	want = []string{"PATH=/usr/bin", "LANG=C.UTF-8", "TZ=UTC", "DATABASE_URL=postgres://app",
		"HOME=/srv/www", "USER=www", "LOGNAME=www", "SHELL=/bin/sh"}
	if !slices.Equal(other, want) {
		t.Errorf("as another user:\n got %q\nwant %q", other, want)
	}
}

func TestResolveAsTheAppUser(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to run apps as another user")
	}
	nobody, err := identity.Lookup("nobody")
	if err != nil {
		t.Skip("no user nobody")
	}
	base, err := os.MkdirTemp("", "resolve")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(base)
	os.Chmod(base, 0o755)
	private, public := filepath.Join(base, "private"), filepath.Join(base, "public")
	os.Mkdir(private, 0o700) // like /root/.pyenv/shims
	os.Mkdir(public, 0o755)
	for _, d := range []string{private, public} {
		os.WriteFile(filepath.Join(d, "interp"), []byte("#!/bin/sh\n"), 0o755)
	}
	s := New(Config{App: "t", Command: []string{"interp"}, User: nobody,
		Env: []string{"PATH=" + private + ":" + public}}, slog.New(slog.DiscardHandler))
	if got := s.cfg.Command[0]; got != filepath.Join(public, "interp") {
		t.Fatalf("resolved to %q, want the one nobody can run", got)
	}
	s = New(Config{App: "t", Command: []string{"/abs/interp"}, User: nobody}, slog.New(slog.DiscardHandler))
	if s.cfg.Command[0] != "/abs/interp" {
		t.Fatal("an absolute path was changed")
	}
}
