package spawn

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// What an app process may and may not touch, and how little the core
// believes of it. When the core runs as root and Config.User is set:
//
//   - the process runs as that user, with its primary and supplementary
//     groups (real, effective and saved ids alike), and HOME, USER, LOGNAME
//     and SHELL naming it (added by the caller, in Config.Env);
//   - before it starts, the core checks as that user that the app
//     directory, the startup file, the interpreter and the loader can be
//     reached, and fails with an error naming user, path and fix if not;
//   - its work directory is created by the core (os.Mkdir: never an existing
//     path) and handed to the user only until the handshake, so the process
//     can bind its socket there; then the core takes it back (root, 0700),
//     and checks that what is there is a socket of the app's user, not a
//     symlink to someone else's;
//   - a forked worker's pid comes from the kernel (SO_PEERCRED) and is
//     believed only if that process runs as the app's user and is a child of
//     the preloader; it is watched and signalled through a pidfd;
//   - a generic app's port is believed only if the app's user listens on it.
//
// Resource limits (open files, core dumps) are set on every process the
// core execs before the app's program runs (limits.go); forked workers
// inherit them.

// switching reports whether processes run as another user than the core.
func (s *Spawner) switching() bool {
	return s.cfg.User != nil && os.Geteuid() == 0
}

// appUID is the uid app processes run as.
func (s *Spawner) appUID() int {
	if s.switching() {
		return s.cfg.User.UID
	}
	return os.Geteuid()
}

// credential is the SysProcAttr credential of exec'd processes, or nil.
func (s *Spawner) credential() *syscall.Credential {
	if !s.switching() {
		return nil
	}
	return s.cfg.User.Credential()
}

// makeWorkDir creates a spawn's private work directory: never an existing
// path, and, when processes run as another user, owned by that user so the
// process can bind its socket in it (nobody else may enter: 0700).
func (s *Spawner) makeWorkDir(name string) (string, error) {
	work := filepath.Join(s.cfg.WorkDir, name)
	if err := os.Mkdir(work, 0o700); err != nil {
		return "", err
	}
	if s.switching() {
		u := s.cfg.User
		if err := os.Lchown(work, u.UID, u.GID); err != nil {
			os.Remove(work)
			return "", err
		}
	}
	return work, nil
}

// lockWorkDir takes a work directory back from the app's user once the
// process listens: root owns it again (0700), so the app can no longer put
// anything there, and the socket found there must be a socket the app's
// user made — not a symlink to another app's socket or the admin socket,
// which the core would otherwise connect to on the app's behalf. A missing
// socket is left for the connection to fail on.
func (s *Spawner) lockWorkDir(work, socket string) error {
	if s.switching() {
		if err := os.Lchown(work, os.Geteuid(), os.Getegid()); err != nil {
			return fmt.Errorf("take back work directory: %w", err)
		}
		if err := os.Chmod(work, 0o700); err != nil {
			return fmt.Errorf("take back work directory: %w", err)
		}
	}
	fi, err := os.Lstat(socket)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if fi.Mode().Type() != fs.ModeSocket {
		return fmt.Errorf("%s is a %s, not the socket the app should have made", socket, kind(fi.Mode()))
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && int(st.Uid) != s.appUID() {
		return fmt.Errorf("%s belongs to uid %d, not to the app's user (uid %d)", socket, st.Uid, s.appUID())
	}
	// The core connects to the socket: it owns it now, so that it needs
	// no CAP_DAC_OVERRIDE for that (the packaged unit does not give it).
	// The app, which listens on it, needs no permission on the file.
	if s.switching() {
		if err := os.Lchown(socket, os.Geteuid(), os.Getegid()); err != nil {
			return fmt.Errorf("take back the socket: %w", err)
		}
	}
	return nil
}

func kind(m fs.FileMode) string {
	switch m.Type() {
	case fs.ModeSymlink:
		return "symlink"
	case fs.ModeDir:
		return "directory"
	case 0:
		return "regular file"
	}
	return "special file"
}

// checkAccess makes sure, as the app's user, that everything a process
// needs can be reached, so that a permission problem is an error that says
// what to do rather than an interpreter's traceback. exe is the resolved
// program the process runs (checked when found).
func (s *Spawner) checkAccess(exe string, found bool, work string) error {
	if !s.switching() {
		return nil
	}
	u := s.cfg.User
	who := u.String()
	if s.cfg.UserReason != "" {
		who += ", chosen as " + s.cfg.UserReason
	}
	fixApp := fmt.Sprintf("Ferry runs this app as %s. Let that user read the app: e.g. chown -R %s %s, or chmod o+rX on it and every directory above it; or choose the user with --user.",
		who, u.Name, s.cfg.Root)
	type check struct {
		path string
		mode uint32
		what string
		fix  string
	}
	checks := []check{{s.cfg.Root, r | x, "read the app directory", fixApp}}
	if s.cfg.StartupFile != "" {
		checks = append(checks, check{filepath.Join(s.cfg.Root, s.cfg.StartupFile), r, "read the startup file", fixApp})
	}
	if found {
		checks = append(checks, check{exe, x, "run the interpreter",
			fmt.Sprintf("Ferry runs this app as %s. Use a program that user can run (--python, --ruby, --nodejs, or --app-start-command), e.g. one installed outside /root.", who)})
	}
	fixInst := fmt.Sprintf("Ferry runs this app as %s, which cannot reach Ferry's instance directory. Use an --instance-registry-dir whose parent directories every app user can traverse (the default, /run/ferry, is fine).", who)
	if len(s.cfg.Command) > 1 && filepath.IsAbs(s.cfg.Command[1]) && strings.HasPrefix(s.cfg.Command[1], filepath.Dir(s.cfg.WorkDir)+"/") {
		checks = append(checks, check{s.cfg.Command[1], r, "read the loader", fixInst})
	}
	if work != "" {
		checks = append(checks, check{work, w | x, "use its work directory", fixInst})
	}
	for _, c := range checks {
		if err := u.Access(c.path, c.mode); err != nil {
			reason := err
			var pe *fs.PathError
			if errors.As(err, &pe) {
				reason = pe.Err
			}
			return &Error{App: s.cfg.App, Err: err,
				Summary: fmt.Sprintf("user %s cannot %s %s (%v). %s", u.Name, c.what, c.path, reason, c.fix)}
		}
	}
	return nil
}

const (
	r = 4 // R_OK
	w = 2 // W_OK
	x = 1 // X_OK
)

// worker identifies the process listening on a freshly forked worker's
// socket, from the kernel: it must run as the app's user and be a child of
// the preloader. Only then is it watched and, later, signalled — through a
// pidfd, so a pid reused by another process is never hit.
func (s *Spawner) worker(socket string, preloader int) (pid int, pidfd *os.File, err error) {
	cred, err := peerCred(socket)
	if err != nil {
		return 0, nil, err
	}
	pid = int(cred.Pid)
	switch {
	case int(cred.Uid) != s.appUID():
		return 0, nil, fmt.Errorf("the process on %s (pid %d) runs as uid %d, not as the app's user (uid %d)", socket, pid, cred.Uid, s.appUID())
	case pid == os.Getpid() || pid == preloader || pid <= 1:
		return 0, nil, fmt.Errorf("the process on %s is pid %d, not a new worker", socket, pid)
	}
	fd, err := unix.PidfdOpen(pid, unix.PIDFD_NONBLOCK)
	if err != nil {
		return 0, nil, fmt.Errorf("pidfd_open %d: %w", pid, err)
	}
	f := os.NewFile(uintptr(fd), "pidfd")
	// The pidfd pins the process: read its parent, then make sure it still
	// lives, so the parent read is that process's and not a successor's.
	ppid, perr := parentPID(pid)
	if aerr := unix.PidfdSendSignal(fd, 0, nil, 0); aerr != nil {
		f.Close()
		return 0, nil, fmt.Errorf("worker %d exited: %w", pid, aerr)
	}
	if perr != nil {
		f.Close()
		return 0, nil, perr
	}
	if ppid != preloader {
		f.Close()
		return 0, nil, fmt.Errorf("the process on %s (pid %d) is not a child of the preloader (pid %d) but of pid %d", socket, pid, preloader, ppid)
	}
	return pid, f, nil
}

// peerCred is the identity (pid, uid, gid) of the process that listens on a
// Unix socket, as the kernel recorded it (SO_PEERCRED).
func peerCred(socket string) (*unix.Ucred, error) {
	c, err := net.DialTimeout("unix", socket, 5*time.Second)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	raw, err := c.(*net.UnixConn).SyscallConn()
	if err != nil {
		return nil, err
	}
	var cred *unix.Ucred
	var cerr error
	if err := raw.Control(func(fd uintptr) {
		cred, cerr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	}); err != nil {
		return nil, err
	}
	return cred, cerr
}

// parentPID reads a process's parent from /proc/PID/status.
func parentPID(pid int) (int, error) {
	f, err := os.Open("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "PPid:"); ok {
			return strconv.Atoi(strings.TrimSpace(v))
		}
	}
	return 0, fmt.Errorf("no PPid in /proc/%d/status", pid)
}

// portOwner checks that whoever listens on the loopback port a generic app
// was told to use is the app's user: another local user could have bound
// the port first and would then be sent the app's requests.
func (s *Spawner) checkPortOwner(port int) error {
	uids, err := listeners(port)
	if err != nil {
		return err
	}
	if len(uids) == 0 {
		return fmt.Errorf("nothing listens on port %d", port)
	}
	for _, uid := range uids {
		if uid != s.appUID() {
			return fmt.Errorf("port %d is held by uid %d, not by the app's user (uid %d): another program took it", port, uid, s.appUID())
		}
	}
	return nil
}

// listeners lists the uids of the TCP sockets listening on port at an
// address that 127.0.0.1 reaches (127.0.0.1, 0.0.0.0, ::, ::ffff:127.0.0.1),
// from /proc/net/tcp and tcp6.
func listeners(port int) ([]int, error) {
	reach := map[string]bool{
		// The kernel prints each 32-bit word in host byte order.
		"0100007F": true, "7F000001": true, "00000000": true, // 127.0.0.1, 0.0.0.0
		"00000000000000000000000000000000": true, // ::
		"0000000000000000FFFF00000100007F": true, // ::ffff:127.0.0.1
		"00000000000000000000FFFF7F000001": true,
	}
	want := fmt.Sprintf("%04X", port)
	var uids []int
	for _, file := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		b, err := os.ReadFile(file)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		for line := range strings.Lines(string(b)) {
			f := strings.Fields(line)
			// sl local rem st tx:rx tr:when retr uid timeout inode
			if len(f) < 8 || f[3] != "0A" { // 0A: LISTEN
				continue
			}
			addr, p, ok := strings.Cut(f[1], ":")
			if !ok || p != want || !reach[addr] {
				continue
			}
			uid, err := strconv.Atoi(f[7])
			if err != nil {
				continue
			}
			uids = append(uids, uid)
		}
	}
	return uids, nil
}

// resolve finds a bare program name (python3) along the app environment's
// PATH as the app's user would: directories that user cannot reach (root's
// ~/.pyenv, say) are passed over, so the first interpreter it can run is
// taken. Names with a slash, or not found, are left as they are (the access
// check and Start report them).
func (s *Spawner) resolve(name string) string {
	if !s.switching() || strings.Contains(name, "/") {
		return name
	}
	path := os.Getenv("PATH")
	for _, kv := range s.cfg.Env {
		if v, ok := strings.CutPrefix(kv, "PATH="); ok {
			path = v
		}
	}
	for _, dir := range filepath.SplitList(path) {
		if dir == "" || !filepath.IsAbs(dir) {
			continue
		}
		cand := filepath.Join(dir, name)
		fi, err := os.Stat(cand)
		if err != nil || fi.IsDir() || fi.Mode()&0o111 == 0 {
			continue
		}
		if s.cfg.User.Access(cand, x) == nil {
			return cand
		}
	}
	return name
}
