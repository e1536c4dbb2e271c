package server

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/qlogwriter"
	"golang.org/x/net/ipv4"
)

// A binary upgrade hands HTTP/3's UDP sockets to a new Ferry while the old
// one still has connections on them. Two processes reading one socket
// would each get a random half of every connection's packets (each drops
// what it does not know; a handshake the old one had begun then timed
// out, and its client was refused). So only one reads it at a time: the
// old Ferry reads on, keeps its own connections' packets and relays every
// other one, with its address and control data, to the new Ferry over a
// SOCK_SEQPACKET socket handed over beside the UDP socket. When the old
// one has finished, it stops reading and closes the relay; on that end of
// file the new one reads the socket itself. Replies go out on the shared
// socket from either. Nothing is read twice, and nothing is lost between
// them: the kernel queues what nobody reads for a moment.
//
// h3Steer decides which packets are this Ferry's: the connection IDs it
// issues carry a MAC under a key of its own (so that, unlike a fixed
// prefix, an observer cannot link them), and it knows the original
// connection IDs of its connections (a client's Initial and 0-RTT packets
// carry those until it hears from the server).
type h3Steer struct {
	key   [32]byte
	relay atomic.Bool // the sockets went to a new Ferry, and it serves
	// watching: the sockets went to a new Ferry, which does not serve
	// yet; the reader records the new connections it reads (saw).
	watching atomic.Bool
	log      *slog.Logger

	mu   sync.Mutex
	open map[string]int // original destination connection ID → connections
	// seen: the original destination IDs of connections read while
	// watching that quic-go has not created yet (it does a moment later,
	// on another goroutine), and when; see saw.
	seen map[string]time.Time
}

// A seen ID is this Ferry's for seenFor at most (a packet that never
// becomes a connection is forgotten), and at most maxSeen are kept.
const (
	seenFor = time.Second
	maxSeen = 4096
)

// cidRandomLen and cidMACLen make up a connection ID: 8 random bytes, as
// many as a client's own, then 4 of their MAC.
const (
	cidRandomLen = 8
	cidMACLen    = 4
	cidLen       = cidRandomLen + cidMACLen
)

func newH3Steer(log *slog.Logger) *h3Steer {
	s := &h3Steer{open: map[string]int{}, seen: map[string]time.Time{}, log: log}
	rand.Read(s.key[:])
	return s
}

// GenerateConnectionID is quic.ConnectionIDGenerator's.
func (s *h3Steer) GenerateConnectionID() (quic.ConnectionID, error) {
	var b [cidLen]byte
	rand.Read(b[:cidRandomLen])
	copy(b[cidRandomLen:], s.mac(b[:cidRandomLen]))
	return quic.ConnectionIDFromBytes(b[:]), nil
}

// ConnectionIDLen is quic.ConnectionIDGenerator's.
func (s *h3Steer) ConnectionIDLen() int { return cidLen }

func (s *h3Steer) mac(b []byte) []byte {
	m := hmac.New(sha256.New, s.key[:])
	m.Write(b)
	return m.Sum(nil)[:cidMACLen]
}

// issued reports whether this Ferry chose cid.
func (s *h3Steer) issued(cid []byte) bool {
	return len(cid) == cidLen && hmac.Equal(cid[cidRandomLen:], s.mac(cid[:cidRandomLen]))
}

// tracer is quic.Config's Tracer, called as each connection is created,
// with the client's original destination connection ID and the
// connection's context: it records the connection until that ends.
func (s *h3Steer) tracer(ctx context.Context, isClient bool, odcid quic.ConnectionID) qlogwriter.Trace {
	if isClient {
		return nil
	}
	id := string(odcid.Bytes())
	s.mu.Lock()
	s.open[id]++
	delete(s.seen, id)
	s.mu.Unlock()
	context.AfterFunc(ctx, func() {
		s.mu.Lock()
		if s.open[id]--; s.open[id] <= 0 {
			delete(s.open, id)
		}
		s.mu.Unlock()
	})
	return nil
}

// saw records the destination connection ID of a packet read while
// watching, before relaying begins, when it is a long-header packet to
// an ID this Ferry did not issue: a client's Initial or 0-RTT. Its
// connection is this Ferry's, but quic-go creates it (and tracer records
// it) a moment later; without this, a client's second Initial read after
// relaying began would go to the new Ferry, and the shutdown would not
// wait for that handshake.
func (s *h3Steer) saw(b []byte) {
	dcid, ok := longHeaderDCID(b)
	if !ok || s.issued(dcid) {
		return
	}
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, open := s.open[string(dcid)]; open {
		return
	}
	if _, dup := s.seen[string(dcid)]; dup {
		return
	}
	if len(s.seen) >= maxSeen {
		for id, at := range s.seen {
			if now.Sub(at) >= seenFor {
				delete(s.seen, id)
			}
		}
		if len(s.seen) >= maxSeen {
			return
		}
	}
	s.seen[string(dcid)] = now
}

// pending is how many seen connections quic-go has not created yet.
func (s *h3Steer) pending() int {
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, at := range s.seen {
		if now.Sub(at) < seenFor {
			n++
		}
	}
	return n
}

// connections is how many connections this Ferry has, handshakes included.
func (s *h3Steer) connections() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, c := range s.open {
		n += c
	}
	return n
}

// owns reports whether packet b belongs to a connection of this Ferry.
func (s *h3Steer) owns(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	if b[0]&0x80 == 0 {
		// A short header names no length: a connection ID of ours
		// has ours.
		return len(b) >= 1+cidLen && s.issued(b[1:1+cidLen])
	}
	dcid, ok := longHeaderDCID(b)
	if !ok {
		return false
	}
	if s.issued(dcid) {
		return true
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, known := s.open[string(dcid)]; known {
		return true
	}
	at, seen := s.seen[string(dcid)]
	return seen && time.Since(at) < seenFor
}

// longHeaderDCID is the destination connection ID of a QUIC long-header
// packet (RFC 8999 section 5.1).
func longHeaderDCID(b []byte) (dcid []byte, ok bool) {
	if len(b) < 6 || b[0]&0x80 == 0 {
		return nil, false
	}
	n := int(b[5])
	if len(b) < 6+n {
		return nil, false
	}
	return b[6 : 6+n], true
}

// A relayed packet is one SOCK_SEQPACKET message: the control data's
// length (2 bytes, big endian) and bytes, the client's address (1 byte of
// length, then netip.AddrPort's binary form), then the packet.
const relayMaxMessage = 64 << 10

// appendRelayed appends packet p, from addr with control data oob, as a
// relay message.
func appendRelayed(dst []byte, addr netip.AddrPort, oob, p []byte) ([]byte, error) {
	a, err := addr.MarshalBinary()
	if err != nil {
		return dst, err
	}
	if len(oob) > 0xffff || len(a) > 0xff {
		return dst, errors.New("relay: control data or address too long")
	}
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(oob)))
	dst = append(dst, oob...)
	dst = append(dst, byte(len(a)))
	dst = append(dst, a...)
	return append(dst, p...), nil
}

// parseRelayed splits a relay message; the slices are m's.
func parseRelayed(m []byte) (addr netip.AddrPort, oob, p []byte, err error) {
	if len(m) < 2 {
		return addr, nil, nil, errors.New("relay: short message")
	}
	n := int(binary.BigEndian.Uint16(m))
	m = m[2:]
	if len(m) < n+1 {
		return addr, nil, nil, errors.New("relay: short control data")
	}
	oob, m = m[:n], m[n:]
	n = int(m[0])
	m = m[1:]
	if len(m) < n {
		return addr, nil, nil, errors.New("relay: short address")
	}
	if err := addr.UnmarshalBinary(m[:n]); err != nil || !addr.IsValid() {
		return addr, nil, nil, fmt.Errorf("relay: bad address: %v", err)
	}
	return addr, oob, m[n:], nil
}

// h3SettingsID names the HTTP/3 SETTINGS a Ferry sends: a client may send
// 0-RTT requests under the settings it remembers from the connection that
// gave it its ticket, so a ticket is good for early data only while they
// hold (RFC 9114 section 7.2.4.2).
func h3SettingsID(maxHeaderBytes int) []byte {
	return []byte("ferry-h3-settings max-field-section=" + strconv.Itoa(maxHeaderBytes))
}

// bindEarlyDataToSettings makes tc's session tickets carry settings, and
// refuses early data (not the resumption) on a ticket issued under other
// ones, as quic-go's http3.Server does on the sockets it opens itself.
func bindEarlyDataToSettings(tc *tls.Config, settings []byte) {
	wrap, unwrap := tc.WrapSession, tc.UnwrapSession
	if wrap == nil {
		wrap = tc.EncryptTicket
	}
	if unwrap == nil {
		unwrap = tc.DecryptTicket
	}
	tc.WrapSession = func(cs tls.ConnectionState, ss *tls.SessionState) ([]byte, error) {
		ss.Extra = append(ss.Extra, bytes.Clone(settings))
		return wrap(cs, ss)
	}
	tc.UnwrapSession = func(identity []byte, cs tls.ConnectionState) (*tls.SessionState, error) {
		ss, err := unwrap(identity, cs)
		if err != nil || ss == nil || !ss.EarlyData {
			return ss, err
		}
		if !slices.ContainsFunc(ss.Extra, func(e []byte) bool { return bytes.Equal(e, settings) }) {
			ss.EarlyData = false
		}
		return ss, nil
	}
}

// h3Socket is a UDP socket as quic-go reads it (in batches, as it would
// itself), with the relays of a handover: in from a previous Ferry, out
// to a new one.
type h3Socket struct {
	*net.UDPConn
	batch *ipv4.PacketConn
	steer *h3Steer

	// in carries what a previous Ferry relays, until it closes it; then
	// this one reads the socket. inDone and inBuf are the reader's.
	in     *net.UnixConn
	inDone bool
	inBuf  []byte

	// out is set by newRelay before steer.relay, and used by the reader
	// once steer.relay is set.
	out       *net.UnixConn
	outBuf    []byte
	outFailed bool
	relayed   *atomic.Uint64 // packets relayed, all sockets together
}

// ReadBatch is what quic-go reads packets with.
func (c *h3Socket) ReadBatch(ms []ipv4.Message, flags int) (int, error) {
	var n int
	var err error
	if c.in != nil && !c.inDone {
		n, err = c.readRelayed(ms)
		if err != nil && !isTimeout(err) {
			// The previous Ferry is done (or gone): the socket is
			// this one's alone.
			c.inDone = true
			c.in.Close()
			n, err = c.batch.ReadBatch(ms, flags)
		}
	} else {
		n, err = c.batch.ReadBatch(ms, flags)
	}
	switch {
	case c.steer.relay.Load():
		for i := range n {
			if !c.steer.owns(ms[i].Buffers[0][:ms[i].N]) {
				c.relay(&ms[i])
				ms[i].N = 0 // quic-go drops an empty packet
			}
		}
	case c.steer.watching.Load():
		for i := range n {
			c.steer.saw(ms[i].Buffers[0][:ms[i].N])
		}
	}
	return n, err
}

// SetReadDeadline is how quic-go's Transport.Close wakes its reader, who
// may be waiting on the relay.
func (c *h3Socket) SetReadDeadline(t time.Time) error {
	if c.in != nil {
		c.in.SetReadDeadline(t)
	}
	return c.UDPConn.SetReadDeadline(t)
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// readRelayed reads one relayed packet into ms[0]; a malformed message is
// skipped.
func (c *h3Socket) readRelayed(ms []ipv4.Message) (int, error) {
	if c.inBuf == nil {
		c.inBuf = make([]byte, relayMaxMessage)
	}
	for {
		k, err := c.in.Read(c.inBuf)
		if err != nil {
			return 0, err
		}
		addr, oob, p, err := parseRelayed(c.inBuf[:k])
		m := &ms[0]
		if err != nil || len(p) > len(m.Buffers[0]) || len(oob) > len(m.OOB) {
			continue
		}
		m.N = copy(m.Buffers[0], p)
		m.NN = copy(m.OOB, oob)
		m.Flags = 0
		m.Addr = net.UDPAddrFromAddrPort(addr)
		return 1, nil
	}
}

// relay passes m on to the new Ferry. If it cannot (the new one is gone),
// the packet is dropped, as a network would.
func (c *h3Socket) relay(m *ipv4.Message) {
	ua, ok := m.Addr.(*net.UDPAddr)
	if !ok || c.out == nil {
		return
	}
	buf, err := appendRelayed(c.outBuf[:0], ua.AddrPort(), m.OOB[:m.NN], m.Buffers[0][:m.N])
	c.outBuf = buf
	if err == nil {
		_, err = c.out.Write(buf)
	}
	if err == nil {
		c.relayed.Add(1)
	}
	if err != nil && !c.outFailed {
		c.outFailed = true
		c.steer.log.Warn("HTTP/3: relaying packets to the new ferry failed; they are dropped", "addr", c.LocalAddr(), "error", err)
	}
}

// newRelay makes the relay to a new Ferry, and returns its end.
func (c *h3Socket) newRelay() (*os.File, error) {
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_SEQPACKET|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("relay socket: %w", err)
	}
	mine := os.NewFile(uintptr(fds[0]), "h3-relay")
	out, err := relayConn(mine)
	if err != nil {
		syscall.Close(fds[1])
		return nil, err
	}
	if c.out != nil {
		c.out.Close() // a handover that did not happen
	}
	c.out = out
	return os.NewFile(uintptr(fds[1]), "h3-relay"), nil
}

// relayConn is f, a SOCK_SEQPACKET socket, as a connection; f is closed.
func relayConn(f *os.File) (*net.UnixConn, error) {
	defer f.Close()
	nc, err := net.FileConn(f)
	if err != nil {
		return nil, fmt.Errorf("relay socket: %w", err)
	}
	uc, ok := nc.(*net.UnixConn)
	if !ok {
		nc.Close()
		return nil, fmt.Errorf("relay socket: a %T, not a Unix socket", nc)
	}
	return uc, nil
}

func (c *h3Socket) closeIn() {
	if c.in != nil {
		c.in.Close()
	}
}

func (c *h3Socket) closeOut() {
	if c.out != nil {
		c.out.Close()
	}
}
