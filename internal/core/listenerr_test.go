package core

import (
	"errors"
	"net"
	"strings"
	"syscall"
	"testing"
)

// A failure to listen is one line naming the option, what is wrong and
// what to do, and still tells its cause (a second start looks for the
// instance holding the port on EADDRINUSE).
func TestListenError(t *testing.T) {
	held, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	addr := held.Addr().String()
	listen := func(addr string) error {
		ln, err := net.Listen("tcp", addr)
		if err == nil {
			ln.Close()
			t.Fatalf("listen on %s succeeded", addr)
		}
		return err
	}
	for _, tc := range []struct {
		err  error
		want string
	}{
		{frontListenError(listen(addr), addr, ""), "--port: " + addr + " is already in use by another process; stop it, or choose another --port"},
		{frontListenError(listen("192.0.2.1:0"), "192.0.2.1:0", ""), "--address: this machine has no address 192.0.2.1; use one of its own"},
		{listenError(listen(addr), "--metrics-address", addr, ""), "--metrics-address: " + addr + " is already in use by another process; stop it, or choose another --metrics-address"},
		{frontListenError(listen(addr), "127.0.0.1:1", addr), "--ssl-port: " + addr + " is already in use"},
	} {
		if got := tc.err.Error(); !strings.HasPrefix(got, tc.want) || strings.Contains(got, "\n") {
			t.Errorf("got %q, want %q", got, tc.want)
		}
	}
	if err := frontListenError(listen(addr), addr, ""); !errors.Is(err, syscall.EADDRINUSE) {
		t.Errorf("%v: does not unwrap to EADDRINUSE", err)
	}
}
