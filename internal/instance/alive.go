package instance

import (
	"bytes"
	"errors"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Running reports whether pid is a core that still runs: the process
// exists, is not a zombie (a core that exited and that its parent has not
// reaped yet is stopped, whatever kill(pid, 0) says), and, when startedAt
// is known, did not start after it (a pid the kernel gave to another
// process since: after a reboot or a long time, with a stale instance
// directory).
func Running(pid int, startedAt time.Time) bool {
	if pid <= 0 {
		return false
	}
	if err := syscall.Kill(pid, 0); err != nil && !errors.Is(err, syscall.EPERM) {
		return false
	}
	state, start, ok := procStat(pid)
	if !ok {
		return true // no /proc to tell: it exists
	}
	if state == 'Z' || state == 'X' {
		return false
	}
	// A process that started well after the instance: not its core. The
	// slack covers the boot time's whole-second precision.
	if !startedAt.IsZero() && !start.IsZero() && start.After(startedAt.Add(5*time.Second)) {
		return false
	}
	return true
}

// procStat reads a process's state letter and start time from /proc.
func procStat(pid int) (state byte, start time.Time, ok bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, time.Time{}, false
	}
	// The command name, in parentheses, may hold spaces and ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, time.Time{}, false
	}
	fields := strings.Fields(string(b[i+1:]))
	if len(fields) < 20 || len(fields[0]) != 1 {
		return 0, time.Time{}, false
	}
	state = fields[0][0]
	// Field 22 of stat (20 after the name): start time in clock ticks
	// after boot; Linux's USER_HZ is 100 on every architecture Go runs on.
	if ticks, err := strconv.ParseInt(fields[19], 10, 64); err == nil {
		if boot, ok := bootTime(); ok {
			start = boot.Add(time.Duration(ticks) * (time.Second / 100))
		}
	}
	return state, start, true
}

func bootTime() (time.Time, bool) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return time.Time{}, false
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "btime "); ok {
			if s, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64); err == nil {
				return time.Unix(s, 0), true
			}
		}
	}
	return time.Time{}, false
}
