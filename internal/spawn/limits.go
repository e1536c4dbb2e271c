package spawn

import (
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"syscall"
)

// Resource limits must be in place before the app's first instruction, and
// go's exec offers no hook between fork and exec to set them; setting them
// from the core afterwards (prlimit) races with the app and, once the
// process runs as another user, needs CAP_SYS_RESOURCE, which containers
// often lack. So a process with limits starts as this binary itself, under
// the name limitsHelper: it sets its own limits (as the app's user, which
// may always lower them) and execs the real program in its place — same
// pid, same file descriptors, same environment, same parent-death signal.
// This is the init below; it runs before main in any binary linking this
// package.

const limitsHelper = "ferry-exec-with-limits"

func init() {
	if len(os.Args) > 0 && os.Args[0] == limitsHelper {
		os.Exit(execWithLimits(os.Args[1:]))
	}
}

// withLimits makes cmd start through the helper when the spawner has limits
// to set (by default: core dumps off).
func (s *Spawner) withLimits(cmd *exec.Cmd) {
	if cmd.Err != nil || s.cfg.CoreDumps && s.cfg.FileDescriptorLimit <= 0 {
		return
	}
	core := "keep"
	if !s.cfg.CoreDumps {
		core = "0"
	}
	args := []string{limitsHelper, core, strconv.Itoa(s.cfg.FileDescriptorLimit), cmd.Path}
	cmd.Args = append(args, cmd.Args...)
	// The running binary, whatever its path now: /proc/self/exe in the
	// forked child is the core's executable, reachable whatever the
	// permissions of the directories it lives in.
	cmd.Path = "/proc/self/exe"
}

// execWithLimits is the helper: args are core ("0" or "keep"), nofile (0:
// keep), the program's path, then its argv. It returns only on failure,
// with the exit status.
func execWithLimits(args []string) int {
	if len(args) < 4 {
		fmt.Fprintln(os.Stderr, "ferry: "+limitsHelper+": bad arguments")
		return 127
	}
	if args[0] == "0" {
		if err := syscall.Setrlimit(syscall.RLIMIT_CORE, &syscall.Rlimit{}); err != nil {
			fmt.Fprintf(os.Stderr, "ferry: cannot turn off core dumps: %v\n", err)
			return 127
		}
	}
	if n, _ := strconv.ParseUint(args[1], 10, 64); n > 0 {
		var cur syscall.Rlimit
		syscall.Getrlimit(syscall.RLIMIT_NOFILE, &cur)
		// syscall's Setrlimit, which also stops syscall.Exec from putting
		// back the soft limit the Go runtime raised at start-up.
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &syscall.Rlimit{Cur: n, Max: n}); err != nil {
			fmt.Fprintf(os.Stderr, "ferry: cannot set the open files limit to %d (--app-file-descriptor-ulimit): %v; the most an app may have here is %d, the hard limit Ferry was started with\n", n, err, cur.Max)
			return 127
		}
	}
	err := syscall.Exec(args[2], args[3:], os.Environ())
	fmt.Fprintf(os.Stderr, "ferry: exec %s: %v\n", args[2], err)
	return 127
}
