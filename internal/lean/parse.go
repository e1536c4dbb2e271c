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
	lineEnd := bytes.IndexByte(buf, '\n')
	if lineEnd < 0 {
		if !mayStart(buf) {
			return nil, 0, declined
		}
		return nil, 0, more
	}
	if lineEnd == 0 || buf[lineEnd-1] != '\r' {
		return nil, 0, declined // a bare LF: net/http's to judge
	}
	line := buf[:lineEnd-1]
	var method string
	switch {
	case bytes.HasPrefix(line, []byte("GET /")):
		method, line = http.MethodGet, line[4:]
	case bytes.HasPrefix(line, []byte("HEAD /")):
		method, line = http.MethodHead, line[5:]
	default:
		return nil, 0, declined
	}
	const proto = " HTTP/1.1"
	if len(line) <= len(proto) || string(line[len(line)-len(proto):]) != proto {
		return nil, 0, declined
	}
	target := line[:len(line)-len(proto)]
	for _, b := range target {
		if b <= ' ' || b >= 0x7f || b == '#' {
			return nil, 0, declined
		}
	}

	lr := new(leanRequest)
	h := make(http.Header, 8)
	vals := lr.vals[:0:len(lr.vals)]
	var host []byte
	hosts, closeReq := 0, false
	pos := lineEnd + 1
	for fields := 0; ; fields++ {
		end := bytes.IndexByte(buf[pos:], '\n')
		if end < 0 {
			return nil, 0, more
		}
		if end == 0 || buf[pos+end-1] != '\r' {
			return nil, 0, declined
		}
		field := buf[pos : pos+end-1]
		pos += end + 1
		if len(field) == 0 {
			break // the empty line: the head is whole
		}
		if fields == maxFields {
			return nil, 0, declined
		}
		colon := -1
		for i, b := range field {
			if b == ':' {
				colon = i
				break
			}
			if !isTokenByte(b) {
				return nil, 0, declined // includes obs-fold (a leading space)
			}
		}
		if colon <= 0 {
			return nil, 0, declined
		}
		value := bytes.Trim(field[colon+1:], " \t")
		for _, b := range value {
			if (b < ' ' && b != '\t') || b == 0x7f {
				return nil, 0, declined
			}
		}
		name := fieldName(field[:colon])
		switch name {
		case "Host":
			hosts++
			host = value
			continue // Request.Host, as net/http has it
		case "Content-Length", "Transfer-Encoding", "Expect", "Upgrade", "Te", "Trailer":
			return nil, 0, declined
		case "Connection":
			switch {
			case asciiEqualFold(value, "close"):
				closeReq = true
			case asciiEqualFold(value, "keep-alive"):
			default:
				return nil, 0, declined
			}
		}
		v := string(value)
		if old, seen := h[name]; seen || len(vals) == cap(vals) {
			h[name] = append(old, v)
		} else {
			vals = append(vals, v)
			h[name] = vals[len(vals)-1 : len(vals) : len(vals)]
		}
	}
	if hosts != 1 || !validHost(host) {
		return nil, 0, declined
	}

	lr.r = *tmpl
	r = &lr.r
	// The target and the host in one string (one allocation).
	th := string(target) + string(host)
	t, hostStr := th[:len(target)], th[len(target):]
	path, query, hasQuery := strings.Cut(t, "?")
	if plainPath(path) {
		lr.u.Path, lr.u.RawQuery, lr.u.ForceQuery = path, query, hasQuery && query == ""
		r.URL = &lr.u
	} else {
		u, err := url.ParseRequestURI(t)
		if err != nil {
			return nil, 0, declined
		}
		r.URL = u
	}
	r.Method, r.Proto, r.ProtoMajor, r.ProtoMinor = method, "HTTP/1.1", 1, 1
	r.Header, r.Body, r.Close, r.Host, r.RemoteAddr, r.RequestURI = h, http.NoBody, closeReq, hostStr, remote, t
	return r, pos, taken
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
