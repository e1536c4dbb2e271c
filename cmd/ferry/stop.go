package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/ferry-server/ferry/internal/instance"
)

const stopHelp = `Usage: ferry stop [APP_DIR | --pid-file FILE | --instance DIR] [options]

Stops a running instance gracefully (SIGTERM): it stops accepting, lets
requests in flight finish, stops its app processes, and exits. Waits until it
has exited, up to --timeout.
`

func stopCommand(fs *flag.FlagSet) func(context.Context, string) error {
	var inst instanceFlags
	inst.register(fs)
	pidFile := fs.String("pid-file", "", "the pid file `FILE` of the instance (as given to ferry start --pid-file)")
	timeout := fs.Duration("timeout", 60*time.Second, "how long to wait for the instance to exit")
	return func(ctx context.Context, appDir string) error { return stop(ctx, &inst, appDir, *pidFile, *timeout) }
}

func stop(ctx context.Context, inst *instanceFlags, appDir, pidFile string, timeout time.Duration) error {
	var pid int
	dir := "" // the instance directory, when known: its removal means stopped
	if pidFile != "" {
		b, err := os.ReadFile(pidFile)
		if err != nil {
			return fmt.Errorf("stop: --pid-file: %w", err)
		}
		if pid, err = strconv.Atoi(strings.TrimSpace(string(b))); err != nil || pid <= 0 {
			return fmt.Errorf("stop: --pid-file: %s does not hold a pid", pidFile)
		}
		if !instance.Running(pid, 0) {
			return fmt.Errorf("stop: ferry (pid %d, from %s) is not running; nothing to stop", pid, pidFile)
		}
	} else {
		in, err := inst.pick(appDir)
		if err != nil {
			return fmt.Errorf("stop: %w", err)
		}
		if pid, err = instancePID(in.Dir, in.PID); err != nil {
			return fmt.Errorf("stop: %w", err)
		}
		dir = in.Dir
	}
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
		if errors.Is(err, syscall.ESRCH) {
			return fmt.Errorf("stop: ferry (pid %d) is not running; nothing to stop", pid)
		}
		if errors.Is(err, syscall.EPERM) {
			return fmt.Errorf("stop: ferry (pid %d) is another user's; run ferry stop as that user or root", pid)
		}
		return fmt.Errorf("stop: signal %d: %w", pid, err)
	}
	deadline := time.Now().Add(timeout)
	for {
		// Not our child: all we can do is look until it is gone. A zombie
		// (exited, its parent has not reaped it yet) is gone, and so is a
		// core whose instance directory is: removing it is the last thing
		// a core does.
		if stopped(pid, dir) {
			fmt.Printf("stopped ferry (pid %d)\n", pid)
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("stop: ferry (pid %d) still running after --timeout %s; look at its log, or kill -9 %d", pid, timeout, pid)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// stopped reports whether the core pid (of the instance in dir, if known)
// has exited.
func stopped(pid int, dir string) bool {
	if !instance.Running(pid, 0) {
		return true
	}
	if dir != "" {
		if _, err := os.Lstat(dir); errors.Is(err, os.ErrNotExist) {
			return true
		}
	}
	return false
}

// instancePID is the pid of the instance in dir: known from discovery, or
// read from its pid file.
func instancePID(dir string, known int) (int, error) {
	if known > 0 {
		return known, nil
	}
	b, err := os.ReadFile(dir + "/core.pid")
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(strings.TrimSpace(string(b)))
}
