package pool

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"strconv"
)

// exiting reports that p's process is dead or on its way out, as the
// kernel sees it now: its watcher may not have seen the exit yet (it lags
// a kill -9 by the time the kernel takes to tear the process down, during
// which its sockets are already closed). A process is dead when it is, not
// when one of its connections fails.
//
// A Proc may answer itself (tests' fake processes); otherwise
// /proc/PID/stat tells: gone, a zombie, or PF_EXITING set (the kernel sets
// it when exit begins, before it closes the process's files, so a
// connection that died with its process always finds it set). The stat
// is the main thread's: a process whose main thread alone has exited
// (pthread_exit, rare in app servers) reads as a zombie, and is replaced.
func exiting(p Proc) bool {
	select {
	case <-p.Done():
		return true
	default:
	}
	if x, ok := p.(interface{ Exiting() bool }); ok {
		return x.Exiting()
	}
	return pidExiting(p.PID())
}

// pfExiting is PF_EXITING of include/linux/sched.h.
const pfExiting = 0x4

func pidExiting(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		// No such process: it has been reaped. Anything else (a /proc
		// mounted with hidepid): unknown, so alive.
		return errors.Is(err, fs.ErrNotExist)
	}
	state, flags, ok := parseStat(b)
	return ok && (state == 'Z' || state == 'X' || state == 'x' || flags&pfExiting != 0)
}

// parseStat reads the state and the flags of a /proc/PID/stat line:
// "pid (comm) state ppid pgrp session tty_nr tpgid flags ...", where comm
// may hold spaces and parentheses, so fields count from its last ')'.
func parseStat(b []byte) (state byte, flags uint64, ok bool) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, 0, false
	}
	f := bytes.Fields(b[i+1:])
	if len(f) < 7 || len(f[0]) != 1 {
		return 0, 0, false
	}
	flags, err := strconv.ParseUint(string(f[6]), 10, 64)
	if err != nil {
		return 0, 0, false
	}
	return f[0][0], flags, true
}
