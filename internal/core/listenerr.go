package core

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"syscall"
)

// listenError is a failure to open a listener as one line for the
// operator: the option that chose the address, what is wrong with it, and
// what to do. opt is the option that names the host and port together
// (metrics-address), or "" for --address with --port (or --ssl-port).
func listenError(err error, opt, addr, portOpt string) error {
	var dnsErr *net.DNSError
	hostOpt, what := "--address", addr
	if opt != "" {
		hostOpt, portOpt = opt, opt
	}
	switch {
	case errors.Is(err, syscall.EADDRINUSE):
		return explained(err, "%s: %s is already in use by another process; stop it, or choose another %s", portOpt, what, portOpt)
	case errors.Is(err, syscall.EADDRNOTAVAIL):
		return explained(err, "%s: this machine has no address %s; use one of its own, 127.0.0.1, or 0.0.0.0 for all", hostOpt, hostOnly(addr))
	case errors.Is(err, syscall.EACCES):
		return explained(err, "%s: may not listen on %s (permission denied): ports below 1024 need root or CAP_NET_BIND_SERVICE; choose a port of 1024 or more", portOpt, what)
	case errors.As(err, &dnsErr):
		return explained(err, "%s: cannot resolve %q (%s); give an IP address or a host name this machine resolves", hostOpt, hostOnly(addr), dnsErr.Err)
	}
	return fmt.Errorf("%s: cannot listen on %s: %w", portOpt, what, err)
}

func hostOnly(addr string) string {
	if h, _, err := net.SplitHostPort(addr); err == nil {
		return h
	}
	return addr
}

// frontListenError names the front's option a failure to listen concerns:
// --ssl-port when its port is the HTTPS one, else --port (and --address).
func frontListenError(err error, addr, sslAddr string) error {
	var op *net.OpError
	if errors.As(err, &op) && op.Net == "unix" {
		return fmt.Errorf("--socket: cannot listen on %s: %w (its directory must exist and be Ferry's to write)", op.Addr, unwrapPath(op.Err))
	}
	portOpt, where := "--port", addr
	if sslAddr != "" && errors.As(err, &op) && op.Addr != nil {
		if _, p, e := net.SplitHostPort(op.Addr.String()); e == nil {
			if _, sp, _ := net.SplitHostPort(sslAddr); p == sp {
				portOpt, where = "--ssl-port", sslAddr
			}
		}
	}
	if where == "" {
		return err
	}
	return listenError(err, "", where, portOpt)
}

// unwrapPath is the errno inside an *os.SyscallError or *fs.PathError,
// whose own text repeats the call and path the message already names.
func unwrapPath(err error) error {
	var se *os.SyscallError
	if errors.As(err, &se) {
		return se.Err
	}
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// explainedError is a message for the operator that keeps the error it
// explains (errors.Is(err, syscall.EADDRINUSE) still holds).
type explainedError struct {
	msg string
	err error
}

func (e *explainedError) Error() string { return e.msg }
func (e *explainedError) Unwrap() error { return e.err }

func explained(err error, format string, args ...any) error {
	return &explainedError{msg: fmt.Sprintf(format, args...), err: err}
}
