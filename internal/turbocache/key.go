package turbocache

import (
	"encoding/binary"
	"github.com/ferry-server/ferry/internal/httpfield"
	"hash/maphash"
	"net/http"
	"strings"
)

// keyedHeaders are request headers that frameworks (Rack, Django, Express
// with trust proxy, …) use to build absolute URLs, redirects or the client's
// view of the scheme and host. A client can send them straight to Ferry, so
// they are part of the key: a request carrying X-Forwarded-Host: evil.example
// gets its own entry instead of poisoning everybody else's. Behind a front
// proxy that sets them, all requests carry the same values and share.
var keyedHeaders = [...]string{
	"Forwarded",
	"X-Forwarded-Host",
	"X-Forwarded-Proto",
	"X-Forwarded-Scheme",
	"X-Forwarded-Ssl",
	"X-Forwarded-Port",
	"X-Forwarded-Prefix",
	"X-Forwarded-Server",
	"X-Host",
	"X-Original-Url",
	"X-Rewrite-Url",
	"Front-End-Https",
	"X-Url-Scheme",
}

// key identifies one resource variant apart from Accept-Encoding, which is
// checked per entry (only entries whose response says Vary: Accept-Encoding
// depend on it).
type key struct {
	host      string // lower case
	uri       string // the raw request-target, as sent
	cookie    string // value of the vary-by cookie
	extra     string // keyed headers, encoded by encodeExtra
	tls       bool
	hasCookie bool
	base      uint64 // hash of host and uri: shard, invalidation
	primary   uint64 // hash of everything in the key
}

// request is one GET/HEAD request as the cache sees it. It lives on the
// caller's stack: building it allocates nothing.
type request struct {
	host, uri string // host as sent (any case)
	cookie    string
	hasCookie bool
	tls       bool
	extra     [len(keyedHeaders)][]string
	hasExtra  bool
	base      uint64
	primary   uint64

	hdr     http.Header // the request's, for Vary
	head    bool
	serve   bool // may be answered from a stored entry
	store   bool // its response may be stored (it gets a Fill)
	plain   bool // may lead a coalesced fetch and mark a key uncacheable
	auth    bool
	cc      reqCacheControl
	inm     []string
	ims     []string
	ae      []string
	aeMasks uint16 // aeMask(ae), once computed
	aeDone  bool
}

func (q *request) aeMask() uint16 {
	if !q.aeDone {
		q.aeMasks, q.aeDone = aeMask(q.ae), true
	}
	return q.aeMasks
}

// parse fills q from a GET or HEAD request. It reports false when the
// request must bypass the cache entirely: neither served nor stored.
func (c *Cache) parse(r *http.Request, q *request) bool {
	if r.ContentLength != 0 {
		// A GET with a body (some search APIs do that): the body is not in
		// the key.
		return false
	}
	q.head = r.Method == http.MethodHead
	q.store = !q.head
	q.hdr = r.Header
	var cc, pragma, cookies []string
	for k, vs := range r.Header {
		switch k {
		case "Cache-Control":
			cc = vs
		case "Pragma":
			pragma = vs
		case "Authorization":
			q.auth = true
		case "Cookie":
			cookies = vs
		case "Accept-Encoding":
			q.ae = vs
		case "If-None-Match":
			q.inm = vs
		case "If-Modified-Since":
			q.ims = vs
		case "Upgrade", "Range", "If-Range", "If-Match", "If-Unmodified-Since",
			"X-Http-Method-Override", "X-Http-Method", "X-Method-Override":
			// WebSocket, partial content, preconditions the cache does not
			// evaluate, and method overrides: straight to the app.
			return false
		case "Forwarded":
			q.extra[0], q.hasExtra = vs, true
		case "X-Forwarded-Host":
			q.extra[1], q.hasExtra = vs, true
		case "X-Forwarded-Proto":
			q.extra[2], q.hasExtra = vs, true
		case "X-Forwarded-Scheme":
			q.extra[3], q.hasExtra = vs, true
		case "X-Forwarded-Ssl":
			q.extra[4], q.hasExtra = vs, true
		case "X-Forwarded-Port":
			q.extra[5], q.hasExtra = vs, true
		case "X-Forwarded-Prefix":
			q.extra[6], q.hasExtra = vs, true
		case "X-Forwarded-Server":
			q.extra[7], q.hasExtra = vs, true
		case "X-Host":
			q.extra[8], q.hasExtra = vs, true
		case "X-Original-Url":
			q.extra[9], q.hasExtra = vs, true
		case "X-Rewrite-Url":
			q.extra[10], q.hasExtra = vs, true
		case "Front-End-Https":
			q.extra[11], q.hasExtra = vs, true
		case "X-Url-Scheme":
			q.extra[12], q.hasExtra = vs, true
		default:
			// A name the server did not canonicalise (e.g. X_Forwarded_Host,
			// which CGI-style apps read as X-Forwarded-Host): it could be
			// an unkeyed input, so this response is not stored.
			if oddName(k) {
				q.store = false
			}
		}
	}
	if cc != nil || pragma != nil {
		q.cc = parseReqCacheControl(cc, pragma)
	} else {
		q.cc.maxAge = -1
	}
	if q.cc.noStore {
		q.store = false
	}
	q.serve = !q.cc.bypass
	q.plain = q.store && !q.cc.bypass && !q.auth && q.inm == nil && q.ims == nil &&
		q.cc.maxAge < 0 && q.cc.minFresh == 0

	if c.varyCookie != "" && cookies != nil {
		v, found, ok := findCookie(cookies, c.varyCookie)
		if !ok {
			return false
		}
		q.cookie, q.hasCookie = v, found
	}

	q.host = r.Host
	q.uri = requestURI(r)
	q.tls = r.TLS != nil
	c.hash(q)
	return true
}

// oddName reports a header name the server would not have produced from a
// well-formed field: an underscore, or lower case where a canonical name
// has capitals.
func oddName(k string) bool {
	if k == "" || ('a' <= k[0] && k[0] <= 'z') {
		return true
	}
	for i := 1; i < len(k); i++ {
		if k[i] == '_' {
			return true
		}
	}
	return false
}

// requestURI is the request-target as sent (origin form).
func requestURI(r *http.Request) string {
	u := r.RequestURI
	if u == "" || u[0] != '/' {
		// Absolute form (or a request built in a test): the same resource
		// must get the same key as its origin-form twin.
		u = r.URL.RequestURI()
	}
	return u
}

// hash computes q.base (host, URI) and q.primary (the whole key) in one pass.
func (c *Cache) hash(q *request) {
	var h maphash.Hash
	h.SetSeed(c.seed)
	writeLower(&h, q.host)
	h.WriteByte(0)
	h.WriteString(q.uri)
	q.base = h.Sum64()
	var flags byte
	if q.tls {
		flags |= 1
	}
	if q.hasCookie {
		flags |= 2
	}
	h.WriteByte(flags)
	if q.hasCookie {
		h.WriteString(q.cookie)
	}
	if !q.hasExtra {
		q.primary = h.Sum64()
		return
	}
	var buf [binary.MaxVarintLen64]byte
	for i, vs := range q.extra {
		if vs == nil {
			continue
		}
		h.WriteByte(byte(i + 1))
		h.Write(binary.AppendUvarint(buf[:0], uint64(len(vs))))
		for _, v := range vs {
			h.Write(binary.AppendUvarint(buf[:0], uint64(len(v))))
			h.WriteString(v)
		}
	}
	q.primary = h.Sum64()
}

// baseHash is q.base for a host and URI.
func (c *Cache) baseHash(host, uri string) uint64 {
	var h maphash.Hash
	h.SetSeed(c.seed)
	writeLower(&h, host)
	h.WriteByte(0)
	h.WriteString(uri)
	return h.Sum64()
}

func writeLower(h *maphash.Hash, s string) {
	if !hasUpper(s) {
		h.WriteString(s)
		return
	}
	var buf [64]byte
	for s != "" {
		n := copy(buf[:], s)
		for i := range n {
			buf[i] = httpfield.Lower(buf[i])
		}
		h.Write(buf[:n])
		s = s[n:]
	}
}

func hasUpper(s string) bool {
	for i := 0; i < len(s); i++ {
		if 'A' <= s[i] && s[i] <= 'Z' {
			return true
		}
	}
	return false
}

// equalLower reports whether s, lower-cased, is l.
func equalLower(l, s string) bool {
	if len(l) != len(s) {
		return false
	}
	for i := 0; i < len(s); i++ {
		if httpfield.Lower(s[i]) != l[i] {
			return false
		}
	}
	return true
}

// matches reports whether k is q's key (collisions of the hash excluded).
func (k *key) matches(q *request) bool {
	return k.primary == q.primary && k.tls == q.tls && k.hasCookie == q.hasCookie &&
		k.uri == q.uri && k.cookie == q.cookie && equalLower(k.host, q.host) &&
		(q.hasExtra || k.extra == "") && (!q.hasExtra || extraEqual(k.extra, &q.extra))
}

// makeKey copies q's key for an entry or flight (the only allocations are a
// lower-case host when the client sent capitals, and keyed headers).
func (q *request) makeKey() key {
	host := q.host
	if hasUpper(host) {
		host = strings.ToLower(host)
	}
	return key{
		host: host, uri: q.uri, cookie: q.cookie, extra: encodeExtra(&q.extra),
		tls: q.tls, hasCookie: q.hasCookie, base: q.base, primary: q.primary,
	}
}

// encodeExtra encodes the keyed headers present: per header, its index+1,
// the number of values and each value length-prefixed.
func encodeExtra(ex *[len(keyedHeaders)][]string) string {
	var b []byte
	for i, vs := range ex {
		if vs == nil {
			continue
		}
		b = append(b, byte(i+1))
		b = binary.AppendUvarint(b, uint64(len(vs)))
		for _, v := range vs {
			b = binary.AppendUvarint(b, uint64(len(v)))
			b = append(b, v...)
		}
	}
	return string(b)
}

// extraEqual compares an encoded string with the request's keyed headers
// without allocating.
func extraEqual(enc string, ex *[len(keyedHeaders)][]string) bool {
	for i, vs := range ex {
		if vs == nil {
			continue
		}
		if enc == "" || enc[0] != byte(i+1) {
			return false
		}
		enc = enc[1:]
		n, ok := uvarint(&enc)
		if !ok || n != uint64(len(vs)) {
			return false
		}
		for _, v := range vs {
			n, ok := uvarint(&enc)
			if !ok || n != uint64(len(v)) || !strings.HasPrefix(enc, v) {
				return false
			}
			enc = enc[len(v):]
		}
	}
	return enc == ""
}

func uvarint(s *string) (uint64, bool) {
	var x uint64
	var shift uint
	for i := 0; i < len(*s) && i < binary.MaxVarintLen64; i++ {
		b := (*s)[i]
		x |= uint64(b&0x7f) << shift
		if b < 0x80 {
			*s = (*s)[i+1:]
			return x, true
		}
		shift += 7
	}
	return 0, false
}

// findCookie finds the value of the cookie called name in Cookie header
// values, without allocating. ok is false when the cookie appears twice with
// different values: the app might read either, so the request is not cached.
func findCookie(headers []string, name string) (value string, found, ok bool) {
	for _, line := range headers {
		for line != "" {
			var part string
			part, line, _ = strings.Cut(line, ";")
			part = strings.TrimSpace(part)
			n, v, hasEq := strings.Cut(part, "=")
			if !hasEq || strings.TrimSpace(n) != name {
				continue
			}
			v = strings.TrimSpace(v)
			if found && v != value {
				return "", false, false
			}
			value, found = v, true
		}
	}
	return value, found, true
}
