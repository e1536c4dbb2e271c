package server

import (
	"bytes"
	"context"
	"crypto/tls"
	"log/slog"
	"net/netip"
	"runtime"
	"testing"
	"time"

	"github.com/quic-go/quic-go"
)

func TestSteerConnectionIDs(t *testing.T) {
	a, b := newH3Steer(slog.New(slog.DiscardHandler)), newH3Steer(slog.New(slog.DiscardHandler))
	seen := map[string]bool{}
	for range 100 {
		id, err := a.GenerateConnectionID()
		if err != nil {
			t.Fatal(err)
		}
		if id.Len() != a.ConnectionIDLen() {
			t.Fatalf("length %d, said %d", id.Len(), a.ConnectionIDLen())
		}
		if !a.issued(id.Bytes()) {
			t.Fatalf("%x: not recognised by the Ferry that issued it", id.Bytes())
		}
		if b.issued(id.Bytes()) {
			t.Fatalf("%x: recognised by another Ferry", id.Bytes())
		}
		if seen[string(id.Bytes())] {
			t.Fatalf("%x issued twice", id.Bytes())
		}
		seen[string(id.Bytes())] = true
		// Any change to a byte makes it someone else's.
		c := bytes.Clone(id.Bytes())
		c[0] ^= 1
		if a.issued(c) {
			t.Fatalf("%x: altered, still recognised", c)
		}
	}
	if a.issued(make([]byte, 8)) || a.issued(nil) {
		t.Fatal("a client-chosen connection ID recognised")
	}
}

// long is a QUIC v1 long-header packet of type typ (0 Initial, 1 0-RTT,
// 2 Handshake) to dcid; short a short-header one.
func long(typ byte, dcid []byte) []byte {
	return append(append([]byte{0xc3 | typ<<4, 0, 0, 0, 1, byte(len(dcid))}, dcid...), 0, 0)
}

func short(dcid []byte) []byte { return append(append([]byte{0x43}, dcid...), 9, 9, 9) }

type ownsCase struct {
	name string
	b    []byte
	want bool
}

func checkOwns(t *testing.T, s *h3Steer, cases []ownsCase) {
	t.Helper()
	for _, tc := range cases {
		if got := s.owns(tc.b); got != tc.want {
			t.Errorf("%s: owns %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestSteerOwns(t *testing.T) {
	s := newH3Steer(slog.New(slog.DiscardHandler))
	ours, _ := s.GenerateConnectionID()
	theirs, _ := newH3Steer(slog.New(slog.DiscardHandler)).GenerateConnectionID()
	known := []byte{1, 2, 3, 4, 5, 6, 7, 8}
	unknown := []byte{8, 7, 6, 5, 4, 3, 2, 1}
	ctx, end := context.WithCancel(t.Context())
	s.tracer(ctx, false, quic.ConnectionIDFromBytes(known))
	s.tracer(t.Context(), true, quic.ConnectionIDFromBytes(unknown)) // a client's own: not recorded

	checkOwns(t, s, []ownsCase{
		{"Initial of a new connection", long(0, unknown), false},
		{"Initial of a handshake under way here", long(0, known), true},
		{"0-RTT of a connection here", long(1, known), true},
		{"Initial to an ID this Ferry chose", long(0, ours.Bytes()), true},
		{"Handshake to an ID this Ferry chose", long(2, ours.Bytes()), true},
		{"Handshake to the new Ferry's ID", long(2, theirs.Bytes()), false},
		{"short header to an ID this Ferry chose", short(ours.Bytes()), true},
		{"short header to the new Ferry's ID", short(theirs.Bytes()), false},
		{"short header cut short", short(ours.Bytes())[:cidLen], false},
		{"long header with an ID past its end", []byte{0xc3, 0, 0, 0, 1, 9, 1}, false},
		{"empty", nil, false},
	})
	if n := s.connections(); n != 1 {
		t.Fatalf("%d connections recorded, want 1", n)
	}
	end()
	// The record goes when the connection's context ends (AfterFunc).
	for s.connections() != 0 {
		runtime.Gosched()
	}
	if s.owns(long(0, known)) {
		t.Fatal("the Initial of a connection that ended is still owned")
	}
}

// TestSteerSeen: a new connection read while watching (sockets handed
// over, relaying not begun) stays this Ferry's after relaying begins,
// before quic-go has created it and after; the shutdown counts it as
// pending until then. One that never becomes a connection is forgotten
// after seenFor, and the record is bounded.
func TestSteerSeen(t *testing.T) {
	s := newH3Steer(slog.New(slog.DiscardHandler))
	early := []byte{1, 1, 1, 1, 1, 1, 1, 1}
	late := []byte{2, 2, 2, 2, 2, 2, 2, 2}
	junk := []byte{3, 3, 3, 3, 3, 3, 3, 3}
	ours, _ := s.GenerateConnectionID()

	s.watching.Store(true) // what the reader checks before calling saw
	s.saw(long(0, early))
	s.saw(long(0, junk))
	s.saw(long(2, ours.Bytes())) // to an ID this Ferry issued: not a new connection
	if n := s.pending(); n != 2 {
		t.Fatalf("pending %d, want 2 (early and junk)", n)
	}
	s.relay.Store(true)
	checkOwns(t, s, []ownsCase{
		{"second Initial of a connection read before relaying", long(0, early), true},
		{"0-RTT of it", long(1, early), true},
		{"Initial of a connection first read after relaying began", long(0, late), false},
	})
	// quic-go creates the early connection: it is open, no longer pending.
	s.tracer(t.Context(), false, quic.ConnectionIDFromBytes(early))
	if p, c := s.pending(), s.connections(); p != 1 || c != 1 {
		t.Fatalf("pending %d and connections %d, want 1 and 1", p, c)
	}
	if !s.owns(long(0, early)) {
		t.Fatal("the early connection is not owned once created")
	}
	// The junk never became a connection: forgotten after seenFor.
	s.mu.Lock()
	s.seen[string(junk)] = time.Now().Add(-seenFor)
	s.mu.Unlock()
	if s.owns(long(0, junk)) || s.pending() != 0 {
		t.Fatalf("an ID seen %v ago is still owned or pending", seenFor)
	}
	// Bounded: past maxSeen, old entries go first, and then no more are kept.
	for i := range maxSeen + 10 {
		id := []byte{9, 9, 9, 9, byte(i >> 24), byte(i >> 16), byte(i >> 8), byte(i)}
		s.saw(long(0, id))
	}
	s.mu.Lock()
	n := len(s.seen)
	s.mu.Unlock()
	if n != maxSeen {
		t.Fatalf("%d IDs kept, want the bound %d", n, maxSeen)
	}
}

func TestRelayMessage(t *testing.T) {
	for _, tc := range []struct {
		addr   string
		oob, p []byte
	}{
		{"192.0.2.1:443", nil, []byte{0xc3, 1, 2}},
		{"[2001:db8::1]:8443", []byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}, bytes.Repeat([]byte{7}, 1452)},
		{"[::ffff:192.0.2.1]:1", []byte{}, []byte{}},
	} {
		ap := netip.MustParseAddrPort(tc.addr)
		m, err := appendRelayed([]byte("junk"), ap, tc.oob, tc.p)
		if err != nil {
			t.Fatal(err)
		}
		addr, oob, p, err := parseRelayed(m[len("junk"):])
		if err != nil || addr != ap || !bytes.Equal(oob, tc.oob) || !bytes.Equal(p, tc.p) {
			t.Errorf("%s: got %v %x %x %v", tc.addr, addr, oob, p, err)
		}
	}
	for _, bad := range [][]byte{nil, {0}, {0, 5, 1}, {0, 0, 4, 1, 2}, {0, 0, 1, 9}, {0, 0, 0}} {
		if _, _, _, err := parseRelayed(bad); err == nil {
			t.Errorf("%x: parsed", bad)
		}
	}
}

// FuzzRelayMessage: parsing any message never panics, and what parses
// is built again byte for byte.
func FuzzRelayMessage(f *testing.F) {
	m, _ := appendRelayed(nil, netip.MustParseAddrPort("192.0.2.1:443"), []byte{1, 2}, []byte{0xc3, 0, 0, 0, 1})
	f.Add(m)
	m, _ = appendRelayed(nil, netip.MustParseAddrPort("[2001:db8::1%eth0]:443"), nil, nil)
	f.Add(m)
	f.Add([]byte{0, 0, 0})
	f.Fuzz(func(t *testing.T, m []byte) {
		addr, oob, p, err := parseRelayed(m)
		if err != nil {
			return
		}
		again, err := appendRelayed(nil, addr, oob, p)
		if err != nil {
			t.Fatalf("%v from %x does not build again: %v", addr, m, err)
		}
		a2, o2, p2, err := parseRelayed(again)
		if err != nil || a2 != addr || !bytes.Equal(o2, oob) || !bytes.Equal(p2, p) {
			t.Fatalf("%x: round trip gave %v %x %x %v", m, a2, o2, p2, err)
		}
	})
}

func TestBindEarlyDataToSettings(t *testing.T) {
	for _, tc := range []struct {
		name  string
		extra [][]byte
		early bool
	}{
		{"same settings", [][]byte{[]byte("other"), h3SettingsID(100)}, true},
		{"other settings", [][]byte{h3SettingsID(200)}, false},
		{"no settings", nil, false},
	} {
		tc2 := &tls.Config{
			UnwrapSession: func([]byte, tls.ConnectionState) (*tls.SessionState, error) {
				return &tls.SessionState{EarlyData: true, Extra: tc.extra}, nil
			},
		}
		bindEarlyDataToSettings(tc2, h3SettingsID(100))
		ss, err := tc2.UnwrapSession(nil, tls.ConnectionState{})
		if err != nil || ss == nil {
			t.Fatalf("%s: %v %v", tc.name, ss, err)
		}
		if ss.EarlyData != tc.early {
			t.Errorf("%s: early data %v, want %v", tc.name, ss.EarlyData, tc.early)
		}
	}
}

// FuzzSteer: whatever a packet holds, saw and owns neither panic nor
// disagree: a long-header packet to an ID this Ferry did not issue, seen
// while watching, is owned once relaying begins.
func FuzzSteer(f *testing.F) {
	f.Add(long(0, []byte{1, 2, 3, 4, 5, 6, 7, 8}))
	f.Add(long(2, []byte{}))
	f.Add(short([]byte{1, 2, 3}))
	f.Add([]byte{0xc3, 0, 0, 0, 1, 200, 1})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		s := newH3Steer(slog.New(slog.DiscardHandler))
		s.watching.Store(true)
		s.saw(b)
		s.relay.Store(true)
		dcid, ok := longHeaderDCID(b)
		if ok && !s.owns(b) {
			t.Fatalf("a long-header packet to %x, seen while watching, is not owned", dcid)
		}
		if !ok && len(b) > 0 && b[0]&0x80 != 0 && s.pending() != 0 {
			t.Fatal("a malformed long header was recorded")
		}
	})
}
