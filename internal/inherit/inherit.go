// Package inherit owns listening sockets handed to the core by whoever
// started it: systemd socket activation (LISTEN_FDS, LISTEN_PID, fds from
// 3). The front asks it for a listener before opening one itself. It does
// not decide what to listen on.
package inherit

import (
	"fmt"
	"net"
	"os"
	"strconv"
	"sync"
	"syscall"
)

// Listeners are the inherited sockets not yet taken.
type Listeners struct {
	mu   sync.Mutex
	lns  []net.Listener
	used []bool
	// pcs are the datagram (UDP) sockets: HTTP/3's; relays[i], if not
	// nil, is the relay of pcs[i] from a Ferry that still reads it.
	pcs    []net.PacketConn
	relays []*os.File
	pcUsed []bool
}

// HandedOver is a datagram socket that a Ferry handed over in a binary
// upgrade while it still reads it: it relays what is not its own over
// Relay (a SOCK_SEQPACKET socket), and closes that when it stops reading
// (internal/server's h3handover.go).
type HandedOver struct {
	net.PacketConn
	Relay *os.File
}

// HandedOver is how the server finds the relay of a socket.
func (h *HandedOver) HandedOver() (net.PacketConn, *os.File) { return h.PacketConn, h.Relay }

// FromEnv takes the sockets systemd passed (when LISTEN_PID is this
// process) and clears the variables, so that app processes never see them.
func FromEnv() (*Listeners, error) {
	l := &Listeners{}
	pid, _ := strconv.Atoi(os.Getenv("LISTEN_PID"))
	n, _ := strconv.Atoi(os.Getenv("LISTEN_FDS"))
	os.Unsetenv("LISTEN_PID")
	os.Unsetenv("LISTEN_FDS")
	os.Unsetenv("LISTEN_FDNAMES")
	if pid != os.Getpid() || n <= 0 {
		return l, nil
	}
	for fd := 3; fd < 3+n; fd++ {
		f := os.NewFile(uintptr(fd), "inherited-"+strconv.Itoa(fd))
		typ, _ := syscall.GetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_TYPE)
		listening, _ := syscall.GetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_ACCEPTCONN)
		if typ == syscall.SOCK_SEQPACKET && listening == 0 {
			// The relay of the datagram socket before it.
			if len(l.pcs) == 0 || l.relays[len(l.pcs)-1] != nil {
				f.Close()
				l.Close()
				return nil, fmt.Errorf("inherited relay socket fd %d follows no datagram socket", fd)
			}
			l.relays[len(l.pcs)-1] = f
			continue
		}
		if typ == syscall.SOCK_DGRAM {
			pc, err := net.FilePacketConn(f)
			f.Close()
			if err != nil {
				l.Close()
				return nil, fmt.Errorf("inherited datagram socket fd %d: %w", fd, err)
			}
			l.pcs = append(l.pcs, pc)
			l.relays = append(l.relays, nil)
			l.pcUsed = append(l.pcUsed, false)
			continue
		}
		ln, err := net.FileListener(f)
		f.Close() // FileListener made its own copy
		if err != nil {
			l.Close()
			return nil, fmt.Errorf("inherited socket fd %d: %w", fd, err)
		}
		l.lns = append(l.lns, ln)
		l.used = append(l.used, false)
	}
	return l, nil
}

// Len is how many sockets were inherited (relays apart).
func (l *Listeners) Len() int { return len(l.lns) + len(l.pcs) }

// Listen returns an inherited listener for network and address: the one
// bound to that address, or else the next unused one of the same kind (the
// supervisor decides where to listen). Without one, it listens itself.
func (l *Listeners) Listen(network, address string) (net.Listener, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	kind := func(n string) string {
		if n == "unix" {
			return "unix"
		}
		return "tcp"
	}
	pick := -1
	for i, ln := range l.lns {
		if l.used[i] || kind(ln.Addr().Network()) != kind(network) {
			continue
		}
		if ln.Addr().String() == address {
			pick = i
			break
		}
		if pick < 0 {
			pick = i
		}
	}
	if pick >= 0 {
		l.used[pick] = true
		return l.lns[pick], nil
	}
	return net.Listen(network, address)
}

// ListenPacket is Listen for datagram sockets (HTTP/3's UDP): the
// inherited one bound to address, or else the next unused one, or else a
// new one.
func (l *Listeners) ListenPacket(network, address string) (net.PacketConn, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	pick := -1
	for i, pc := range l.pcs {
		if l.pcUsed[i] {
			continue
		}
		if pc.LocalAddr().String() == address {
			pick = i
			break
		}
		if pick < 0 {
			pick = i
		}
	}
	if pick >= 0 {
		l.pcUsed[pick] = true
		if r := l.relays[pick]; r != nil {
			return &HandedOver{PacketConn: l.pcs[pick], Relay: r}, nil
		}
		return l.pcs[pick], nil
	}
	return net.ListenPacket(network, address)
}

// Close closes the inherited sockets nobody took.
func (l *Listeners) Close() {
	l.mu.Lock()
	defer l.mu.Unlock()
	for i, ln := range l.lns {
		if !l.used[i] {
			ln.Close()
		}
	}
	for i, pc := range l.pcs {
		if !l.pcUsed[i] {
			pc.Close()
			if l.relays[i] != nil {
				l.relays[i].Close()
			}
		}
	}
}
