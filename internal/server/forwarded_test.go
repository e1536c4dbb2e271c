package server

import (
	"net/http"
	"net/netip"
	"slices"
	"testing"
)

func TestFromForwarded(t *testing.T) {
	for _, tc := range []struct {
		in       []string
		xff, xfp []string
	}{
		{[]string{"for=192.0.2.60;proto=http;by=203.0.113.43"}, []string{"192.0.2.60"}, []string{"http"}},
		{[]string{`for="[2001:db8:cafe::17]:4711"`}, []string{"[2001:db8:cafe::17]:4711"}, nil},
		{[]string{`For="[2001:db8::1]";Proto=https`}, []string{"2001:db8::1"}, []string{"https"}},
		{[]string{"for=192.0.2.43, for=198.51.100.17;proto=https"}, []string{"192.0.2.43", "198.51.100.17"}, []string{"https"}},
		{[]string{"for=192.0.2.43;proto=https", "for=198.51.100.17"}, []string{"192.0.2.43", "198.51.100.17"}, nil},
		{[]string{`for=unknown, for="_hidden;x,y"`}, []string{"unknown", "_hidden;x,y"}, nil},
		{[]string{`FOR="[2001:db8::1]:4711";PROTO="https"`}, []string{"[2001:db8::1]:4711"}, []string{"https"}},
		{[]string{`for="198.51.100.\7"`}, []string{"198.51.100.7"}, nil}, // a quoted-pair
		{[]string{"for=192.0.2.43 ; proto = https"}, []string{"192.0.2.43"}, []string{"https"}},
		{[]string{"for=192.0.2.43;proto=https,"}, []string{"192.0.2.43"}, []string{"https"}}, // an empty element is none
		{[]string{"for=192.0.2.43;proto=https, for=198.51.100.17"}, []string{"192.0.2.43", "198.51.100.17"}, nil},
		{[]string{"garbage"}, nil, nil},
		{[]string{""}, nil, nil},
	} {
		xff, xfp := fromForwarded(tc.in)
		if !slices.Equal(xff, tc.xff) || !slices.Equal(xfp, tc.xfp) {
			t.Errorf("fromForwarded(%q) = %q %q, want %q %q", tc.in, xff, xfp, tc.xff, tc.xfp)
		}
	}
}

// The local hop, trusted by default, may describe the client with
// Forwarded instead of X-Forwarded-*; when it writes X-Forwarded-*, a
// Forwarded it passes through is the client's own and is neither believed
// nor passed on.
func TestTrustedForwarded(t *testing.T) {
	local := &Trusted{Nets: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}, Unix: true}
	tests := []struct {
		name   string
		remote string
		h      http.Header
		addr   string
		scheme string
	}{
		{"Forwarded from loopback", "127.0.0.1:4000", http.Header{"Forwarded": {`for=203.0.113.5;proto=https`}}, "203.0.113.5:0", "https"},
		{"Forwarded from a Unix socket", "@", http.Header{"Forwarded": {`for="[2001:db8::5]:1234";proto=https`}}, "[2001:db8::5]:0", "https"},
		{"client's Forwarded behind an X-Forwarded proxy", "127.0.0.1:4000",
			http.Header{"X-Forwarded-For": {"198.51.100.7"}, "Forwarded": {"for=6.6.6.6;proto=https"}}, "198.51.100.7:0", "http"},
		{"Forwarded from elsewhere", "192.0.2.1:4000", http.Header{"Forwarded": {"for=6.6.6.6;proto=https"}}, "192.0.2.1:4000", "http"},
		{"unknown node", "127.0.0.1:4000", http.Header{"Forwarded": {"for=unknown;proto=https"}}, "127.0.0.1:4000", "https"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, _ := http.NewRequest("GET", "http://x/", nil)
			r.RemoteAddr, r.Header = tc.remote, tc.h
			scheme := local.client(r)
			if scheme != tc.scheme || r.RemoteAddr != tc.addr || r.Header.Get("Forwarded") != "" {
				t.Errorf("client = %s %s, Forwarded %q; want %s %s", scheme, r.RemoteAddr, r.Header.Get("Forwarded"), tc.scheme, tc.addr)
			}
		})
	}
}
