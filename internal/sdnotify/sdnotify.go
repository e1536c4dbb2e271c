// Package sdnotify owns telling a supervisor how the core is doing, by the
// systemd notify protocol: a datagram ("READY=1", "STOPPING=1", …) to the
// Unix socket in $NOTIFY_SOCKET. systemd uses it for Type=notify units;
// `ferry start --daemonize` uses it to learn when its child is ready.
package sdnotify

import (
	"errors"
	"net"
	"os"
	"strings"
	"time"
)

// Notify sends state to $NOTIFY_SOCKET. Without one it does nothing and
// returns nil: not being supervised is not an error.
func Notify(state string) error {
	return NotifySocket(os.Getenv("NOTIFY_SOCKET"), state)
}

// NotifySocket sends state to the notify socket at path ("" does nothing).
func NotifySocket(path, state string) error {
	if path == "" {
		return nil
	}
	if strings.HasPrefix(path, "@") {
		path = "\x00" + path[1:] // abstract socket
	}
	c, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		return err
	}
	defer c.Close()
	_, err = c.Write([]byte(state))
	return err
}

// Listener receives notifications, for a parent waiting on its child.
type Listener struct {
	conn *net.UnixConn
	path string
}

// Listen opens a notify socket at path; hand its path to the child as
// NOTIFY_SOCKET.
func Listen(path string) (*Listener, error) {
	os.Remove(path)
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		return nil, err
	}
	return &Listener{conn: c, path: path}, nil
}

// Path is the socket to put in NOTIFY_SOCKET.
func (l *Listener) Path() string { return l.path }

// Next waits for the next notification and returns its fields
// ("READY" → "1", "STATUS" → "…").
func (l *Listener) Next() (map[string]string, error) {
	buf := make([]byte, 4096)
	n, err := l.conn.Read(buf)
	if err != nil {
		return nil, err
	}
	fields := map[string]string{}
	for _, line := range strings.Split(string(buf[:n]), "\n") {
		if k, v, ok := strings.Cut(line, "="); ok {
			fields[k] = v
		}
	}
	if len(fields) == 0 {
		return nil, errors.New("empty notification")
	}
	return fields, nil
}

// Close closes and removes the socket.
func (l *Listener) Close() error {
	err := l.conn.Close()
	os.Remove(l.path)
	return err
}

// ErrTimeout: no READY=1 came in time.
var ErrTimeout = errors.New("no readiness reported in time")

// ExitError: the child exited before it was ready; Err is what its Wait
// returned (nil for a clean exit).
type ExitError struct{ Err error }

func (e *ExitError) Error() string {
	if e.Err == nil {
		return "it exited"
	}
	return "it exited: " + e.Err.Error()
}

func (e *ExitError) Unwrap() error { return e.Err }

// WaitReady waits for a READY=1 notification, and returns nil when it
// comes; an *ExitError when exited (the child's Wait, sent once) yields
// first; ErrTimeout after timeout. Close the listener afterwards in any
// case: that ends the reader this starts.
func (l *Listener) WaitReady(exited <-chan error, timeout time.Duration) error {
	ready := make(chan error, 1)
	go func() {
		for {
			f, err := l.Next()
			if err != nil || f["READY"] == "1" {
				ready <- err
				return
			}
		}
	}()
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case err := <-ready:
		return err
	case err := <-exited:
		return &ExitError{Err: err}
	case <-t.C:
		return ErrTimeout
	}
}
