package server

import (
	"encoding/hex"
	"math/rand/v2"
	"net/http"
	"net/netip"
	"strings"
	"unsafe"

	"github.com/ferry-server/ferry/internal/httpfield"
)

// Who the client is: its address and scheme (believing X-Forwarded-For and
// X-Forwarded-Proto only from trusted proxies), and the request's id.

// Trusted is the set of peers whose forwarding headers are believed.
type Trusted struct {
	// Nets are the trusted addresses.
	Nets []netip.Prefix
	// Unix trusts every peer on a Unix socket.
	Unix bool
}

func (t *Trusted) any() bool { return t != nil && (len(t.Nets) > 0 || t.Unix) }

func (t *Trusted) addr(a netip.Addr) bool {
	a = a.Unmap()
	for _, p := range t.Nets {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// peer reports whether the connection's peer (a RemoteAddr) is trusted.
// Peers on a Unix socket have no IP address ("@", or a path).
func (t *Trusted) peer(remote string) bool {
	ap, err := netip.ParseAddrPort(remote)
	if err != nil {
		return t.Unix
	}
	return t.addr(ap.Addr())
}

// trusts reports whether the peer (a RemoteAddr) is a trusted proxy, whose
// word on the client (and on its trace context) is believed.
func (t *Trusted) trusts(remote string) bool { return t.any() && t.peer(remote) }

// client settles the client's address (r.RemoteAddr) and the scheme the
// app is told. From a trusted peer, X-Forwarded-For and X-Forwarded-Proto
// are believed and consumed, or, from a proxy that sends neither, RFC 7239
// Forwarded (for=, proto=); from any other peer, every header by which a
// proxy describes the client is dropped, so that no app is misled by what
// a client says of itself.
//
// Forwarded is consumed either way: a proxy that writes X-Forwarded-* but
// passes Forwarded through untouched (nginx, by default) would otherwise
// let a client's own Forwarded reach apps that prefer it (Rack 3 does).
func (t *Trusted) client(r *http.Request) (scheme string) {
	scheme = "http"
	if r.TLS != nil {
		scheme = "https"
	}
	h := r.Header
	if !t.any() || !t.peer(r.RemoteAddr) {
		dropForwarded(h)
		return scheme
	}
	xff, xfp, fwd := h["X-Forwarded-For"], h["X-Forwarded-Proto"], h["Forwarded"]
	delete(h, "X-Forwarded-For")
	delete(h, "X-Forwarded-Proto")
	delete(h, "Forwarded")
	if len(xff) == 0 && len(xfp) == 0 && len(fwd) > 0 {
		xff, xfp = fromForwarded(fwd)
	}
	if a, ok := clientFromXFF(xff, t.addr); ok {
		r.RemoteAddr = netip.AddrPortFrom(a, 0).String()
	}
	if p := httpfield.Last(xfp); httpfield.EqualFold(p, "https") {
		scheme = "https"
	} else if httpfield.EqualFold(p, "http") {
		scheme = "http"
	}
	return scheme
}

// dropForwarded removes the headers a proxy uses to describe the client or
// the original request.
func dropForwarded(h http.Header) {
	for k := range h {
		if len(k) < len("Forwarded") {
			continue
		}
		switch k {
		case "X-Forwarded-For", "X-Forwarded-Proto", "X-Forwarded-Host", "X-Forwarded-Port",
			"X-Forwarded-Prefix", "X-Forwarded-Server", "X-Forwarded-Ssl", "X-Forwarded-Scheme",
			"X-Real-Ip", "Forwarded", "X-Url-Scheme", "Front-End-Https", "X-Client-Ip":
			delete(h, k)
		}
	}
}

// clientFromXFF finds the client in X-Forwarded-For: walking from the
// nearest hop (the right) outwards, the first address that is not a
// trusted proxy. Anything left of it was written by whoever that is, so it
// is not believed. When every hop is trusted, the farthest one is the
// client. A hop that is not an address ends the walk at the hop before it:
// garbage is never believed. ok is false when there is no address at all.
func clientFromXFF(xff []string, trusted func(netip.Addr) bool) (client netip.Addr, ok bool) {
	for i := len(xff) - 1; i >= 0; i-- {
		for v, hop := xff[i], ""; v != ""; {
			if v, hop = httpfield.Prev(v); hop == "" {
				continue
			}
			a, valid := parseHop(hop)
			if !valid {
				return client, ok
			}
			client, ok = a, true
			if !trusted(a) {
				return client, ok
			}
		}
	}
	return client, ok
}

// fromForwarded reads RFC 7239 Forwarded as the X-Forwarded-For and
// X-Forwarded-Proto it stands for: each element's for= in order, and the
// last element's proto= (what the nearest proxy saw). Quoted values are
// unquoted ("[2001:db8::1]:4711"); obfuscated and "unknown" nodes stay as
// they are, which clientFromXFF does not believe.
func fromForwarded(vs []string) (xff, xfp []string) {
	var proto string
	httpfield.Elements(vs, func(elem string) bool {
		proto = ""
		for params := elem; params != ""; {
			var name, val string
			name, val, params = httpfield.Param(params)
			val = httpfield.Unquote(val)
			switch {
			case httpfield.EqualFold(name, "for"):
				if strings.HasPrefix(val, "[") && strings.HasSuffix(val, "]") {
					val = val[1 : len(val)-1] // an IPv6 node without a port
				}
				xff = append(xff, val)
			case httpfield.EqualFold(name, "proto"):
				proto = val
			}
		}
		return true
	})
	if proto != "" {
		xfp = []string{proto}
	}
	return xff, xfp
}

// parseHop reads one X-Forwarded-For entry: an address, possibly with a
// port ("192.0.2.1:4711", "[2001:db8::1]:4711"), as some proxies write.
func parseHop(s string) (netip.Addr, bool) {
	if a, err := netip.ParseAddr(s); err == nil {
		return a.Unmap().WithZone(""), true
	}
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap.Addr().Unmap().WithZone(""), true
	}
	return netip.Addr{}, false
}

// maxRequestIDLen bounds a client's X-Request-Id; longer ones are replaced.
const maxRequestIDLen = 128

// requestIDChars are the bytes a client's X-Request-Id may hold: letters,
// digits and the punctuation of UUIDs, base64 and common tracing formats.
// Nothing that could break a log line or a header.
var requestIDChars = func() (t [256]bool) {
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c], t[c-'a'+'A'] = true, true
	}
	for _, c := range "-_.:+/=@" {
		t[c] = true
	}
	return
}()

// validRequestID reports whether a client's X-Request-Id is kept.
func validRequestID(s string) bool {
	if len(s) == 0 || len(s) > maxRequestIDLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !requestIDChars[s[i]] {
			return false
		}
	}
	return true
}

// idsPerBlock is how many request ids one allocation of an idBlock holds.
const idsPerBlock = 64

// idBlock is where request ids are made: each id's hex digits and the
// one-element []string that carries it (in the request's and the
// response's header) are carved from the block, so a request costs no
// allocation for its id; a block is one allocation per idsPerBlock ids.
// A slot is written once, before its string exists, and never again: an
// id stays valid for as long as anything holds it (which keeps its block).
type idBlock struct {
	hex  [idsPerBlock * 32]byte
	vals [idsPerBlock]string
	next int
}

// idSource hands out new request ids from its current block. It is part
// of the pooled per-request state: one goroutine uses it at a time.
type idSource struct{ blk *idBlock }

// next returns a new id, 128 random bits in hex from the runtime's
// per-thread generator (no lock, no system call), as a header value.
func (s *idSource) next() []string {
	b := s.blk
	if b == nil || b.next == idsPerBlock {
		b = new(idBlock)
		s.blk = b
	}
	k := b.next
	b.next++
	var raw [16]byte
	for i := 0; i < 16; i += 8 {
		v := rand.Uint64()
		for j := range 8 {
			raw[i+j] = byte(v >> (8 * j))
		}
	}
	out := b.hex[k*32 : k*32+32 : k*32+32]
	hex.Encode(out, raw[:])
	b.vals[k] = unsafe.String(&out[0], len(out))
	return b.vals[k : k+1 : k+1]
}

// requestID is the request's X-Request-Id: the client's when it sent one
// valid id, else a new one from ids. Either way the request carries it to
// the app.
func requestID(r *http.Request, ids *idSource) []string {
	if v := r.Header["X-Request-Id"]; len(v) == 1 && validRequestID(v[0]) {
		return v
	}
	id := ids.next()
	r.Header["X-Request-Id"] = id
	return id
}
