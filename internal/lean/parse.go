package lean

import (
	"bytes"
	"net/http"
	"net/url"
	"strings"
)

// maxFields bounds the header fields of a head this engine takes.
const maxFields = 64

// verdict is what parseHead makes of the bytes read so far.
type verdict int

const (
	more     verdict = iota // the start of a head this engine may take: read on
	taken                   // a whole head this engine serves
	declined                // net/http's: anything else
)

// leanRequest is a request and its URL, made in one allocation. Each
// request gets its own: whatever the handler leaves running (a timer, a
// log line) may still read it after the next one has begun.
type leanRequest struct {
	r http.Request
	u url.URL
	// vals backs the first values of the header, one each, so that they
	// cost no allocation of their own; four keep the whole at 512 bytes,
	// the largest size the allocator serves without a header.
	vals [4]string
}

// parseHead reads the request head at the start of buf: the one head
// parser of this engine. It takes a GET or HEAD request for HTTP/1.1 with
// an origin-form target, exactly one valid Host, no body (no
// Content-Length, Transfer-Encoding), no Expect, Upgrade, TE or Trailer,
// only CRLF line ends and well-formed fields; it declines anything else
// as soon as it can tell (a POST at its first bytes). A taken head is n
// bytes long and read into a new request, a copy of tmpl (which carries
// the connection's context) with remote as its RemoteAddr.
func parseHead(buf []byte, tmpl *http.Request, remote string) (r *http.Request, n int, v verdict) {
	method, target, pos, v := requestLine(buf)
	if v != taken {
		return nil, 0, v
	}
	var f headFields
	if pos, v = f.parse(buf, pos); v != taken {
		return nil, 0, v
	}
	if f.hosts != 1 || !validHost(buf[f.host.a:f.host.b]) {
		return nil, 0, declined
	}
	// Every string of the request is a part of this one: one allocation.
	head := string(buf[:pos])
	lr := new(leanRequest)
	lr.r = *tmpl
	r = &lr.r
	t := head[len(method)+1 : len(method)+1+len(target)]
	if r.URL = lr.url(t); r.URL == nil {
		return nil, 0, declined
	}
	h := make(http.Header, f.n)
	f.header(h, head, lr.vals[:0:len(lr.vals)])
	r.Method, r.Proto, r.ProtoMajor, r.ProtoMinor = method, "HTTP/1.1", 1, 1
	r.Header, r.Body, r.Close, r.Host, r.RemoteAddr, r.RequestURI = h, http.NoBody, f.closeReq, head[f.host.a:f.host.b], remote, t
	return r, pos, taken
}

// requestLine reads the request line at the start of buf: taken with its
// method, its target and where the fields start; more while it may still
// be one this engine takes; declined otherwise.
func requestLine(buf []byte) (method string, target []byte, next int, v verdict) {
	lineEnd := bytes.IndexByte(buf, '\n')
	if lineEnd < 0 {
		if !mayStart(buf) {
			return "", nil, 0, declined
		}
		return "", nil, 0, more
	}
	if lineEnd == 0 || buf[lineEnd-1] != '\r' {
		return "", nil, 0, declined // a bare LF: net/http's to judge
	}
	line := buf[:lineEnd-1]
	switch {
	case bytes.HasPrefix(line, []byte("GET /")):
		method, line = http.MethodGet, line[4:]
	case bytes.HasPrefix(line, []byte("HEAD /")):
		method, line = http.MethodHead, line[5:]
	default:
		return "", nil, 0, declined
	}
	const proto = " HTTP/1.1"
	if len(line) <= len(proto) || string(line[len(line)-len(proto):]) != proto {
		return "", nil, 0, declined
	}
	target = line[:len(line)-len(proto)]
	for _, b := range target {
		if b <= ' ' || b >= 0x7f || b == '#' {
			return "", nil, 0, declined
		}
	}
	return method, target, lineEnd + 1, taken
}

// headFields are where the header fields of a head are, in its bytes.
type headFields struct {
	fields   [maxFields]span
	n        int
	host     span
	hosts    int
	closeReq bool
}

// span is a field's value, buf[a:b], and its canonical name.
type span struct {
	name string
	a, b int
}

// parse reads the fields from buf[pos:] up to the empty line: taken with
// where the head ends; more while it may still be one this engine takes;
// declined otherwise.
func (f *headFields) parse(buf []byte, pos int) (int, verdict) {
	for {
		end := bytes.IndexByte(buf[pos:], '\n')
		if end < 0 {
			return 0, more
		}
		if end == 0 || buf[pos+end-1] != '\r' {
			return 0, declined
		}
		line := buf[pos : pos+end-1]
		start := pos
		pos += end + 1
		if len(line) == 0 {
			return pos, taken // the empty line: the head is whole
		}
		if f.n == maxFields {
			return 0, declined
		}
		name, a, b, ok := splitField(line)
		if !ok {
			return 0, declined
		}
		sp := span{name, start + a, start + b}
		switch fieldAction(name, line[a:b]) {
		case decline:
			return 0, declined
		case asHost:
			f.hosts++
			f.host = sp
			continue // Request.Host, as net/http has it
		case asClose:
			f.closeReq = true
		}
		f.fields[f.n] = sp
		f.n++
	}
}

// header fills h with the fields, their values parts of head (the bytes
// parse read, as a string); the first value of each field goes in vals
// while there is room, costing no allocation of its own.
func (f *headFields) header(h http.Header, head string, vals []string) {
	for _, sp := range f.fields[:f.n] {
		v := head[sp.a:sp.b]
		if old, seen := h[sp.name]; seen || len(vals) == cap(vals) {
			h[sp.name] = append(old, v)
			continue
		}
		vals = append(vals, v)
		h[sp.name] = vals[len(vals)-1 : len(vals) : len(vals)]
	}
}

// splitField splits a field line into its canonical name and its value,
// trimmed, line[a:b]; ok is false for anything net/http must judge: no name, a byte
// that is not a token's in it (obs-fold's leading space included), a
// control character in the value.
func splitField(line []byte) (name string, a, b int, ok bool) {
	colon := -1
	for i, c := range line {
		if c == ':' {
			colon = i
			break
		}
		if !isTokenByte(c) {
			return "", 0, 0, false
		}
	}
	if colon <= 0 {
		return "", 0, 0, false
	}
	a, b = colon+1, len(line)
	for a < b && (line[a] == ' ' || line[a] == '\t') {
		a++
	}
	for b > a && (line[b-1] == ' ' || line[b-1] == '\t') {
		b--
	}
	for _, c := range line[a:b] {
		if (c < ' ' && c != '\t') || c == 0x7f {
			return "", 0, 0, false
		}
	}
	return fieldName(line[:colon]), a, b, true
}

// What parseHead does with one field.
type action int

const (
	keep    action = iota // into the header
	asHost                // Request.Host
	asClose               // into the header, and the request closes the connection
	decline               // the head is net/http's
)

// fieldAction is what a field means to this engine: a body, an
// expectation, an upgrade or trailers make the head net/http's, and so
// does a Connection other than close or keep-alive.
func fieldAction(name string, value []byte) action {
	switch name {
	case "Host":
		return asHost
	case "Content-Length", "Transfer-Encoding", "Expect", "Upgrade", "Te", "Trailer":
		return decline
	case "Connection":
		switch {
		case asciiEqualFold(value, "close"):
			return asClose
		case asciiEqualFold(value, "keep-alive"):
			return keep
		}
		return decline
	}
	return keep
}

// url is the URL of target t, in lr's own when its path is plain; nil
// when net/http would refuse it.
func (lr *leanRequest) url(t string) *url.URL {
	path, query, hasQuery := strings.Cut(t, "?")
	if plainPath(path) {
		lr.u.Path, lr.u.RawQuery, lr.u.ForceQuery = path, query, hasQuery && query == ""
		return &lr.u
	}
	u, err := url.ParseRequestURI(t)
	if err != nil {
		return nil
	}
	return u
}

// mayStart: buf, with no line end yet, may be the start of a request line
// this engine takes.
func mayStart(buf []byte) bool {
	for _, m := range [...]string{"GET /", "HEAD /"} {
		n := min(len(buf), len(m))
		if string(buf[:n]) == m[:n] {
			return true
		}
	}
	return false
}

// plainPath: a path of unreserved characters and slashes only, which
// url.ParseRequestURI would take as it is (no RawPath); any other is
// parsed by it.
func plainPath(s string) bool {
	for i := 0; i < len(s); i++ {
		switch b := s[i]; {
		case 'a' <= b && b <= 'z', 'A' <= b && b <= 'Z', '0' <= b && b <= '9':
		case b == '/' || b == '-' || b == '.' || b == '_' || b == '~':
		default:
			return false
		}
	}
	return true
}

func asciiEqualFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := range b {
		x := b[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if x != s[i] {
			return false
		}
	}
	return true
}

// isTokenByte: RFC 9110's tchar.
func isTokenByte(b byte) bool {
	switch {
	case 'a' <= b && b <= 'z', 'A' <= b && b <= 'Z', '0' <= b && b <= '9':
		return true
	}
	switch b {
	case '!', '#', '$', '%', '&', '\'', '*', '+', '-', '.', '^', '_', '`', '|', '~':
		return true
	}
	return false
}

// validHost is a conservative reading of a Host value: a reg-name or IPv4
// address, or a bracketed IPv6 address, with an optional port. Anything
// else goes to net/http, which has the last word.
func validHost(h []byte) bool {
	if len(h) == 0 {
		return false
	}
	for i := 0; i < len(h); i++ {
		b := h[i]
		switch {
		case 'a' <= b && b <= 'z', 'A' <= b && b <= 'Z', '0' <= b && b <= '9':
		case b == '.' || b == '-' || b == ':' || b == '[' || b == ']' || b == '_':
		default:
			return false
		}
	}
	return true
}

// commonFields are canonical names of the fields browsers and tools send,
// so that the usual head costs no allocation for its names.
var commonFields = func() map[string]string {
	m := map[string]string{}
	for _, n := range []string{"Host", "User-Agent", "Accept", "Accept-Encoding", "Accept-Language", "Accept-Charset",
		"Connection", "Cookie", "Referer", "Cache-Control", "Pragma", "If-None-Match", "If-Modified-Since",
		"If-Match", "If-Unmodified-Since", "If-Range", "Range", "Origin", "Dnt", "Upgrade-Insecure-Requests",
		"Sec-Fetch-Dest", "Sec-Fetch-Mode", "Sec-Fetch-Site", "Sec-Fetch-User", "Sec-Ch-Ua", "Sec-Ch-Ua-Mobile",
		"Sec-Ch-Ua-Platform", "Authorization", "X-Forwarded-For", "X-Forwarded-Proto", "X-Forwarded-Host",
		"X-Real-Ip", "X-Request-Id", "Content-Length", "Transfer-Encoding", "Expect", "Upgrade", "Te",
		"Trailer", "Priority", "Via", "Forwarded"} {
		m[n] = n
	}
	return m
}()

// fieldName is the canonical form of a field name (made only of token
// bytes, as parseHead checked).
func fieldName(b []byte) string {
	if n, ok := commonFields[string(b)]; ok {
		return n
	}
	return http.CanonicalHeaderKey(string(b))
}
