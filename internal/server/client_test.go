package server

import (
	"net/http"
	"net/netip"
	"strings"
	"testing"
)

func trustedFunc(cidrs ...string) func(netip.Addr) bool {
	t := &Trusted{}
	for _, c := range cidrs {
		t.Nets = append(t.Nets, netip.MustParsePrefix(c))
	}
	return t.addr
}

func TestClientFromXFF(t *testing.T) {
	trusted := trustedFunc("10.0.0.0/8", "2001:db8::/32")
	for _, tc := range []struct {
		xff  []string
		want string // "" for none
	}{
		{nil, ""},
		{[]string{""}, ""},
		{[]string{"203.0.113.1"}, "203.0.113.1"},
		{[]string{"198.51.100.1, 203.0.113.1"}, "203.0.113.1"},
		{[]string{"203.0.113.1, 10.0.0.2"}, "203.0.113.1"},
		{[]string{"203.0.113.1", "10.0.0.2, 10.1.1.1"}, "203.0.113.1"},
		{[]string{"10.9.9.9, 10.0.0.2"}, "10.9.9.9"},
		{[]string{"garbage, 10.0.0.2"}, "10.0.0.2"},
		{[]string{"203.0.113.1, garbage"}, ""},
		{[]string{"203.0.113.1:4711, 10.0.0.1"}, "203.0.113.1"},
		{[]string{"[2001:db8::1]:80, 2001:db9::7"}, "2001:db9::7"},
		{[]string{"::ffff:203.0.113.1"}, "203.0.113.1"},
		{[]string{" , 203.0.113.1 ,, "}, "203.0.113.1"},
		{[]string{"fe80::1%eth0"}, "fe80::1"},
		// The proxy appended the client's address after a quote the
		// client left open: the quote swallows nothing.
		{[]string{`"x, 203.0.113.1`}, "203.0.113.1"},
		{[]string{`"x, 203.0.113.1, 10.0.0.2`}, "203.0.113.1"},
	} {
		a, ok := clientFromXFF(tc.xff, trusted)
		got := ""
		if ok {
			got = a.String()
		}
		if got != tc.want {
			t.Errorf("clientFromXFF(%q) = %q, want %q", tc.xff, got, tc.want)
		}
	}
}

// xffReference is clientFromXFF written plainly, for FuzzClientFromXFF.
func xffReference(xff []string, trusted func(netip.Addr) bool) (netip.Addr, bool) {
	var hops []string
	for _, v := range xff {
		for _, tok := range strings.Split(v, ",") {
			if tok = strings.Trim(tok, " \t"); tok != "" { // OWS
				hops = append(hops, tok)
			}
		}
	}
	var client netip.Addr
	ok := false
	for i := len(hops) - 1; i >= 0; i-- {
		a, valid := parseHop(hops[i])
		if !valid {
			break
		}
		client, ok = a, true
		if !trusted(a) {
			break
		}
	}
	return client, ok
}

// FuzzClientFromXFF: the client found in X-Forwarded-For agrees with a
// plain reading, is one of the hops, and every hop right of it is trusted.
func FuzzClientFromXFF(f *testing.F) {
	for _, s := range []string{"203.0.113.1, 10.0.0.2", "a,b,,c", "[::1]:1, 10.0.0.1\n10.2.2.2", "10.0.0.1", "1.2.3.4:5, x",
		`"x, 203.0.113.1, 10.0.0.2`, "\t10.0.0.3\t,\v10.0.0.4"} {
		f.Add(s)
	}
	trusted := trustedFunc("10.0.0.0/8", "::1/128")
	f.Fuzz(func(t *testing.T, s string) {
		xff := strings.Split(s, "\n")
		a, ok := clientFromXFF(xff, trusted)
		b, okRef := xffReference(xff, trusted)
		if a != b || ok != okRef {
			t.Fatalf("clientFromXFF(%q) = %v %v, reference %v %v", xff, a, ok, b, okRef)
		}
		if ok && !a.IsValid() {
			t.Fatalf("an invalid address reported: %v", a)
		}
	})
}

func TestTrustedClient(t *testing.T) {
	req := func(remote string, h http.Header) *http.Request {
		r, _ := http.NewRequest("GET", "http://x/", nil)
		r.RemoteAddr, r.Header = remote, h
		return r
	}
	spoof := func() http.Header {
		return http.Header{"X-Forwarded-For": {"203.0.113.9"}, "X-Forwarded-Proto": {"https"},
			"X-Forwarded-Host": {"evil"}, "X-Real-Ip": {"6.6.6.6"}, "Forwarded": {"for=1.1.1.1"}, "Accept": {"*/*"}}
	}
	var none *Trusted
	r := req("192.0.2.1:5000", spoof())
	if scheme := none.client(r); scheme != "http" || r.RemoteAddr != "192.0.2.1:5000" || len(r.Header) != 1 {
		t.Errorf("untrusted: %s %s %v", scheme, r.RemoteAddr, r.Header)
	}
	tr := &Trusted{Nets: []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")}}
	r = req("192.0.2.1:5000", spoof())
	if scheme := tr.client(r); scheme != "https" || r.RemoteAddr != "203.0.113.9:0" ||
		r.Header.Get("X-Forwarded-For") != "" || r.Header.Get("X-Forwarded-Host") != "evil" {
		t.Errorf("trusted: %s %s %v", scheme, r.RemoteAddr, r.Header)
	}
	r = req("198.51.100.1:5000", spoof())
	if scheme := tr.client(r); scheme != "http" || r.RemoteAddr != "198.51.100.1:5000" || len(r.Header) != 1 {
		t.Errorf("untrusted peer with a trusted list: %s %s %v", scheme, r.RemoteAddr, r.Header)
	}
	unix := &Trusted{Unix: true}
	r = req("@", spoof())
	if scheme := unix.client(r); scheme != "https" || r.RemoteAddr != "203.0.113.9:0" {
		t.Errorf("unix: %s %s", scheme, r.RemoteAddr)
	}
	r = req("192.0.2.1:5000", spoof())
	if unix.client(r); r.RemoteAddr != "192.0.2.1:5000" {
		t.Errorf("unix-only trust believed a TCP peer: %s", r.RemoteAddr)
	}
}

func TestRequestID(t *testing.T) {
	seen := map[string]bool{}
	var ids idSource
	for range 1000 {
		id := ids.next()[0]
		if len(id) != 32 || !validRequestID(id) || seen[id] {
			t.Fatalf("generated %q (seen before: %v)", id, seen[id])
		}
		seen[id] = true
	}
	for _, ok := range []string{"a", "7f3a-01", "Root=1-5759e988-bd862e3fe1be46a994272793;", "dGVzdA==", strings.Repeat("x", 128)} {
		if want := !strings.Contains(ok, ";"); validRequestID(ok) != want {
			t.Errorf("validRequestID(%q) = %v", ok, !want)
		}
	}
	for _, bad := range []string{"", "a b", "a\"b", "a\r\nb", "ü", strings.Repeat("x", 129), "<script>"} {
		if validRequestID(bad) {
			t.Errorf("validRequestID(%q) = true", bad)
		}
	}
	r, _ := http.NewRequest("GET", "http://x/", nil)
	r.Header.Set("X-Request-Id", "keep-me")
	if id := requestID(r, &ids); len(id) != 1 || id[0] != "keep-me" {
		t.Errorf("kept %q", id)
	}
	r.Header["X-Request-Id"] = []string{"one", "two"}
	if id := requestID(r, &ids); len(id) != 1 || len(id[0]) != 32 || r.Header["X-Request-Id"][0] != id[0] {
		t.Errorf("two ids became %q, header %q", id, r.Header["X-Request-Id"])
	}
	// One block per idsPerBlock ids: well under one allocation an id.
	if n := testing.AllocsPerRun(10*idsPerBlock, func() { ids.next() }); n > 0.1 {
		t.Errorf("a request id costs %v allocations", n)
	}
	// An id handed out never changes as more are made.
	first := ids.next()
	keep := strings.Clone(first[0])
	for range 3 * idsPerBlock {
		ids.next()
	}
	if first[0] != keep || len(first) != 1 || cap(first) != 1 {
		t.Errorf("id %q changed to %q (len %d cap %d)", keep, first[0], len(first), cap(first))
	}
}

// FuzzRequestID: a kept X-Request-Id can never break a header or a log
// line.
func FuzzRequestID(f *testing.F) {
	for _, s := range []string{"abc", "a b", "x\r\nSet-Cookie: a=b", strings.Repeat("z", 200)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if !validRequestID(s) {
			return
		}
		if len(s) > maxRequestIDLen || strings.ContainsAny(s, " \t\r\n\"\\,;<>'") {
			t.Fatalf("kept %q", s)
		}
		for _, c := range []byte(s) {
			if c < 0x21 || c > 0x7e {
				t.Fatalf("kept byte %#x in %q", c, s)
			}
		}
	})
}
