package instance

import (
	"bytes"
	"errors"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// Running reports whether pid is a core that still runs: the process
// exists, is not a zombie (a core that exited and that its parent has not
// reaped yet is stopped, whatever kill(pid, 0) says), and, when startTicks
// is known (Properties.StartTicks), started then: otherwise the pid is
// another process's now (a stale instance directory after a long time).
// Ticks after boot, unlike the wall clock, never jump.
func Running(pid int, startTicks uint64) bool {
	if pid <= 0 {
		return false
	}
	if err := syscall.Kill(pid, 0); err != nil && !errors.Is(err, syscall.EPERM) {
		return false
	}
	state, ticks, ok := procStat(pid)
	if !ok {
		return true // no /proc to tell: it exists
	}
	if state == 'Z' || state == 'X' {
		return false
	}
	return startTicks == 0 || ticks == startTicks
}

// StartTicks is when pid started, in clock ticks after boot (field 22 of
// /proc/PID/stat), or 0 when unknown.
func StartTicks(pid int) uint64 {
	_, ticks, _ := procStat(pid)
	return ticks
}

// procStat reads a process's state letter and start time from /proc.
func procStat(pid int) (state byte, startTicks uint64, ok bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, 0, false
	}
	// The command name, in parentheses, may hold spaces and ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, 0, false
	}
	fields := strings.Fields(string(b[i+1:]))
	if len(fields) < 20 || len(fields[0]) != 1 {
		return 0, 0, false
	}
	// Field 22 of stat is the 20th after the name.
	startTicks, _ = strconv.ParseUint(fields[19], 10, 64)
	return fields[0][0], startTicks, true
}
