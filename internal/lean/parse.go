package lean

import (
	"bytes"
	"net/http"
	"net/url"
	"strings"
)

// maxFields bounds the header fields of a head this path parses.
const maxFields = 64

var crlf = []byte("\r\n")

// headEnd is the length of the head at the start of buf, through its empty
// line; -1 if it has not all arrived; -2 if a line ends in a bare LF, which
// this path leaves to net/http.
func headEnd(buf []byte) int {
	for i := 0; i < len(buf); i++ {
		if buf[i] != '\n' {
			continue
		}
		if i == 0 || buf[i-1] != '\r' {
			return -2
		}
		if i >= 3 && buf[i-2] == '\n' && buf[i-3] == '\r' {
			return i + 1
		}
	}
	return -1
}

// parse fills c.req from head, if it is a request this path takes: GET or
// HEAD, HTTP/1.1, an origin-form target, exactly one Host, no body, no
// Expect, no Upgrade, well-formed fields. It does not consume head.
func (c *conn) parse(head []byte) bool {
	line, rest, _ := bytes.Cut(head, crlf)
	var method string
	switch {
	case bytes.HasPrefix(line, []byte("GET /")):
		method, line = http.MethodGet, line[4:]
	case bytes.HasPrefix(line, []byte("HEAD /")):
		method, line = http.MethodHead, line[5:]
	default:
		return false
	}
	const proto = " HTTP/1.1"
	if len(line) <= len(proto) || string(line[len(line)-len(proto):]) != proto {
		return false
	}
	target := line[:len(line)-len(proto)]
	for _, b := range target {
		if b <= ' ' || b >= 0x7f || b == '#' {
			return false
		}
	}
	h := c.req.Header
	if h == nil {
		h = make(http.Header, 8)
	} else {
		clear(h)
	}
	host, hosts, closeReq := "", 0, false
	for fields := 0; len(rest) > 2; fields++ {
		if fields == maxFields {
			return false
		}
		var field []byte
		field, rest, _ = bytes.Cut(rest, crlf)
		colon := -1
		for i, b := range field {
			if b == ':' {
				colon = i
				break
			}
			if !isTokenByte(b) {
				return false // includes obs-fold (a leading space) and bare LF
			}
		}
		if colon <= 0 {
			return false
		}
		value := bytes.Trim(field[colon+1:], " \t")
		for _, b := range value {
			if (b < ' ' && b != '\t') || b == 0x7f {
				return false
			}
		}
		name := fieldName(field[:colon])
		switch name {
		case "Host":
			hosts++
			host = string(value)
			continue // Request.Host, as net/http has it
		case "Content-Length", "Transfer-Encoding", "Expect", "Upgrade", "Te", "Trailer":
			return false
		case "Connection":
			switch {
			case asciiEqualFold(value, "close"):
				closeReq = true
			case asciiEqualFold(value, "keep-alive"):
			default:
				return false
			}
		}
		h[name] = append(h[name], string(value))
	}
	if hosts != 1 || !validHost(host) {
		return false
	}
	u := &c.url
	*u = url.URL{}
	t := string(target)
	path, query, hasQuery := strings.Cut(t, "?")
	if !plainPath(path) {
		pu, err := url.ParseRequestURI(t)
		if err != nil {
			return false
		}
		*u = *pu
	} else {
		u.Path, u.RawQuery, u.ForceQuery = path, query, hasQuery && query == ""
	}
	r := c.req
	r.Method, r.URL, r.Proto, r.ProtoMajor, r.ProtoMinor = method, u, "HTTP/1.1", 1, 1
	r.Header, r.Body, r.GetBody, r.ContentLength, r.TransferEncoding = h, http.NoBody, nil, 0, nil
	r.Close, r.Host, r.RemoteAddr, r.RequestURI = closeReq, host, c.remote, t
	r.Form, r.PostForm, r.MultipartForm, r.Trailer, r.TLS, r.Response, r.Pattern = nil, nil, nil, nil, nil, nil, ""
	return true
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
func validHost(h string) bool {
	if h == "" {
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
// bytes, as parse checked).
func fieldName(b []byte) string {
	if n, ok := commonFields[string(b)]; ok {
		return n
	}
	return http.CanonicalHeaderKey(string(b))
}
