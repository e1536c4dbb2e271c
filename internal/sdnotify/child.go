package sdnotify

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"time"
)

// Child is a process started with a notify socket of its own, for a parent
// that waits until it serves: `ferry start --daemonize` and an upgrade's
// new ferry.
type Child struct {
	Cmd *exec.Cmd
	// Exited receives what the child's Wait returned, once.
	Exited <-chan error

	notify *Listener
	dir    string
}

// StartChild starts cmd with NOTIFY_SOCKET naming a new socket (after
// cmd.Env, or the parent's environment when cmd.Env is nil, so that it
// wins over one inherited). Call WaitReady next.
func StartChild(cmd *exec.Cmd) (*Child, error) {
	dir, err := os.MkdirTemp("", "ferry-notify-")
	if err != nil {
		return nil, fmt.Errorf("notify socket: %w", err)
	}
	notify, err := Listen(filepath.Join(dir, "notify"))
	if err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("notify socket: %w", err)
	}
	if cmd.Env == nil {
		cmd.Env = os.Environ()
	}
	cmd.Env = append(cmd.Env, "NOTIFY_SOCKET="+notify.Path())
	if err := cmd.Start(); err != nil {
		notify.Close()
		os.RemoveAll(dir)
		return nil, err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	return &Child{Cmd: cmd, Exited: exited, notify: notify, dir: dir}, nil
}

// WaitReady waits until the child says READY=1 (nil), exits (an
// *ExitError) or timeout passes (ErrTimeout). A child that is not ready
// and has not exited is killed: nothing is left running. The notify
// socket is removed in any case.
func (c *Child) WaitReady(timeout time.Duration) error {
	defer os.RemoveAll(c.dir)
	defer c.notify.Close()
	err := c.notify.WaitReady(c.Exited, timeout)
	if err != nil {
		if ee, ok := errors.AsType[*ExitError](err); ok {
			return ee
		}
		c.Cmd.Process.Kill()
	}
	return err
}
