package inherit

import (
	"net"
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
	l := &Listeners{pcs: pcs, pcUsed: make([]bool, 2)}
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
