// Package pid1 lets `ferry start` be a container's first process, so no
// tini or dumb-init is needed. PID 1 has two duties no ordinary program
// does: every orphaned process in the container becomes its child, and
// must be reaped (waited for) or it stays a zombie; and the kernel
// delivers to it only the signals it has handlers for. Reaping every
// child (wait4(-1)) cannot be mixed with Go's os/exec, which waits for the
// processes it started by pid, so as PID 1 Ferry runs this binary again as
// its one child (the real core, pid 2) and does only these two things
// itself: forward signals to the core, and reap whatever exits. It exits
// with the core's status.
//
// `ferry upgrade` starts the new core as the old core's child; when the
// old one exits the new one is orphaned to PID 1, which recognizes it (a
// child of its own with the core's arguments) and follows it from then on.
package pid1

import (
	"bytes"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
)

// Needed reports whether this process is PID 1 and must become the init.
func Needed() bool { return os.Getpid() == 1 }

// forwarded are the signals passed on to the core: stop (TERM, INT, QUIT),
// reload (HUP), log reopening (USR1), upgrade (USR2), terminal size.
var forwarded = []os.Signal{syscall.SIGTERM, syscall.SIGINT, syscall.SIGQUIT, syscall.SIGHUP,
	syscall.SIGUSR1, syscall.SIGUSR2, syscall.SIGWINCH}

// Run starts this binary again with the same arguments and environment as
// the core, then forwards signals and reaps children until the core (or the
// core an upgrade handed over to) exits. It returns the exit status to exit
// with: the core's, or 128+N if a signal N killed it.
func Run() int {
	sigs := make(chan os.Signal, 16)
	signal.Notify(sigs, append([]os.Signal{syscall.SIGCHLD}, forwarded...)...)
	// The core in its own process group: a terminal's Ctrl-C reaches it
	// once, through us, not twice.
	pid, err := syscall.ForkExec("/proc/self/exe", os.Args, &syscall.ProcAttr{
		Env:   os.Environ(),
		Files: []uintptr{0, 1, 2},
		Sys:   &syscall.SysProcAttr{Setpgid: true},
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "ferry: as PID 1, start the core:", err)
		return 1
	}
	args := os.Args[1:]
	core := pid
	status := 0
	for s := range sigs {
		if s != syscall.SIGCHLD {
			syscall.Kill(core, s.(syscall.Signal))
			continue
		}
		for {
			var ws syscall.WaitStatus
			p, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil)
			if err == syscall.EINTR {
				continue
			}
			if p <= 0 || err != nil {
				break // none left that has exited (or no children at all)
			}
			if p != core {
				continue // an orphan, reaped
			}
			status = exitStatus(ws)
			next := successor(args)
			if next == 0 {
				return status
			}
			core = next
		}
	}
	return status
}

func exitStatus(ws syscall.WaitStatus) int {
	if ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return ws.ExitStatus()
}

// successor finds the core an upgrade left behind: a child of ours (every
// orphan is) still running with the core's arguments. 0: none.
func successor(args []string) int {
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	self := os.Getpid()
	for _, d := range dirs {
		pid, err := strconv.Atoi(filepath.Base(d))
		if err != nil || pid == self || parent(d) != self {
			continue
		}
		b, err := os.ReadFile(d + "/cmdline")
		if err != nil {
			continue
		}
		argv := strings.Split(string(bytes.TrimSuffix(b, []byte{0})), "\x00")
		if len(argv) == len(args)+1 && slices.Equal(argv[1:], args) {
			return pid
		}
	}
	return 0
}

// parent reads the parent pid from /proc/PID/stat ("pid (comm) state
// ppid ..."; comm may hold spaces and parentheses, so read after the last
// ')'). A zombie counts: it is not the core.
func parent(dir string) int {
	b, err := os.ReadFile(dir + "/stat")
	if err != nil {
		return 0
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 2 || f[0] == "Z" {
		return 0
	}
	ppid, _ := strconv.Atoi(f[1])
	return ppid
}
