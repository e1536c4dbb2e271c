package inherit

import (
	"net"
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"testing"
)

// TestListenPacket: an inherited UDP socket is taken for its own address
// first, else the next unused one; past them a new socket is opened.
func TestListenPacket(t *testing.T) {
	var pcs []net.PacketConn
	for range 2 {
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer pc.Close()
		pcs = append(pcs, pc)
	}
	l := &Listeners{pcs: pcs, relays: make([]*os.File, 2), pcUsed: make([]bool, 2)}
	if l.Len() != 2 {
		t.Fatalf("Len %d, want 2", l.Len())
	}
	got, err := l.ListenPacket("udp", pcs[1].LocalAddr().String())
	if err != nil || got != pcs[1] {
		t.Fatalf("by address: %v %v, want the second socket", got, err)
	}
	got, err = l.ListenPacket("udp", "127.0.0.1:1")
	if err != nil || got != pcs[0] {
		t.Fatalf("no address match: %v %v, want the first, unused socket", got, err)
	}
	got, err = l.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer got.Close()
	if got == pcs[0] || got == pcs[1] {
		t.Fatal("all taken, yet an inherited socket was given again")
	}
	l.Close() // closes none: all were taken
	if _, err := pcs[0].WriteTo([]byte("x"), pcs[1].LocalAddr()); err != nil {
		t.Fatalf("Close closed a socket that was taken: %v", err)
	}
}

// TestFromEnvRelay: a UDP socket handed over with a SOCK_SEQPACKET socket
// after it (a binary upgrade while the old Ferry still reads it) is given
// out with that relay; a relay after no datagram socket is an error. Run
// in a child process, which gets the sockets as fds 3 and on.
func TestFromEnvRelay(t *testing.T) {
	if os.Getenv("FERRY_INHERIT_CHILD") != "" {
		os.Setenv("LISTEN_PID", strconv.Itoa(os.Getpid()))
		l, err := FromEnv()
		if os.Getenv("FERRY_INHERIT_CHILD") == "orphan" {
			if err == nil {
				t.Fatal("a relay after no datagram socket was taken")
			}
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		if l.Len() != 1 {
			t.Fatalf("Len %d, want 1 (the relay is not a socket of its own)", l.Len())
		}
		pc, err := l.ListenPacket("udp", os.Getenv("FERRY_INHERIT_ADDR"))
		if err != nil {
			t.Fatal(err)
		}
		h, ok := pc.(*HandedOver)
		if !ok {
			t.Fatalf("got a %T, want *HandedOver", pc)
		}
		if h.PacketConn.LocalAddr().String() != os.Getenv("FERRY_INHERIT_ADDR") {
			t.Fatalf("socket on %v", h.PacketConn.LocalAddr())
		}
		if _, err := h.Relay.Write([]byte("relayed")); err != nil {
			t.Fatalf("write to the relay: %v", err)
		}
		return
	}
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	udp, err := pc.(*net.UDPConn).File()
	if err != nil {
		t.Fatal(err)
	}
	defer udp.Close()
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_SEQPACKET|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	mine, theirs := os.NewFile(uintptr(fds[0]), "mine"), os.NewFile(uintptr(fds[1]), "theirs")
	defer mine.Close()
	defer theirs.Close()

	run := func(kind string, files ...*os.File) {
		cmd := exec.Command(os.Args[0], "-test.run=^TestFromEnvRelay$", "-test.count=1")
		cmd.Env = append(os.Environ(), "FERRY_INHERIT_CHILD="+kind, "FERRY_INHERIT_ADDR="+pc.LocalAddr().String(),
			"LISTEN_FDS="+strconv.Itoa(len(files)))
		cmd.ExtraFiles = files
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("child (%s): %v\n%s", kind, err, out)
		}
	}
	run("relay", udp, theirs)
	buf := make([]byte, 64)
	n, err := mine.Read(buf)
	if err != nil || string(buf[:n]) != "relayed" {
		t.Fatalf("from the child's relay: %q %v", buf[:n], err)
	}
	run("orphan", theirs, udp)
}
