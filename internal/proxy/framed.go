package proxy

import (
	"bufio"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/ferry-server/ferry/internal/appwire"
	"github.com/ferry-server/ferry/internal/httpfield"
)

// This file is the core's side of ferry-wire/1 (docs/loader-wire.md): the
// request as the CGI environment a Rack, WSGI or ASGI loader would have
// built from the HTTP/1.1 head writeHead sends, and the framed response.

// Wirer is implemented by an Upstream whose process said, in its ready
// handshake, which loader wire it chose (0: HTTP/1.1).
type Wirer interface {
	Wire() int
}

// WireHeader is implemented by an Upstream whose process said which
// layout of request heads it reads ("": the CGI environment).
type WireHeader interface {
	WireHead() string
}

// framedFor reports whether r goes to up on ferry-wire/1: the process chose
// it, and the request does not switch protocols (a tunnel is raw bytes on
// the connection, which only HTTP/1.1 hands over).
func (t *Transport) framedFor(up Upstream, r *http.Request) bool {
	w, ok := up.(Wirer)
	return ok && w.Wire() == appwire.Version && t.StripPrefix == "" && !t.Forwarded && !IsUpgrade(r)
}

// headOf is the head layout up's process reads.
func headOf(up Upstream) string {
	if w, ok := up.(WireHeader); ok {
		return w.WireHead()
	}
	return ""
}

// writeFramed writes the request frame's head on w: the environment that a
// loader computes today from writeHead's HTTP/1.1 head (see
// _ferry_common.py and wsgi.py: header names to HTTP_*, repeated fields
// joined, Ferry's headers to REMOTE_*, HTTPS and SERVER_*). SCRIPT_NAME and
// the decoding of PATH_INFO stay the loader's: they differ by interface.
func writeFramed(w *bufio.Writer, q *appwire.Request, buf []byte, r *http.Request, size int64, scheme, head string) ([]byte, error) {
	q.Begin(buf[:0])
	if head == appwire.HeadASGI {
		AppendASGI(q, r, size, scheme)
	} else {
		AppendEnv(q, r, size, scheme)
	}
	frame, err := q.End()
	if err != nil {
		return buf, err
	}
	w.Write(frame)
	return frame, nil
}

// AppendEnv adds the ferry-wire/1 environment of r, with a body of size
// bytes from a client on scheme, to q (the loaders' tests frame with it too).
func AppendEnv(q *appwire.Request, r *http.Request, size int64, scheme string) {
	q.Pair("REQUEST_METHOD", r.Method)
	target := requestTarget(r)
	path, query, _ := strings.Cut(target, "?")
	q.Pair("REQUEST_URI", target)
	q.Pair("PATH_INFO", path)
	q.Pair("QUERY_STRING", query)
	q.Pair("SERVER_PROTOCOL", "HTTP/1.1")
	https := scheme == "https"
	if https {
		q.Pair("HTTPS", "on")
	}
	name, port := splitHost(r.Host, https)
	q.Pair("SERVER_NAME", name)
	q.Pair("SERVER_PORT", port)
	if r.RemoteAddr != "" {
		// REMOTE_PORT even when empty (an address from X-Forwarded-For
		// has none), as the WSGI loader sets it; the Rack loader drops an
		// empty one, as it does from X-Ferry-Client-Addr.
		ip, pport := splitPeer(r.RemoteAddr)
		q.Pair("REMOTE_ADDR", ip)
		q.Pair("REMOTE_PORT", pport)
	}
	if size > 0 || bodyExpected(r.Method) {
		q.Pair("CONTENT_LENGTH", strconv.FormatInt(size, 10))
	}
	q.Pair("HTTP_HOST", r.Host)
	connTokens := r.Header["Connection"]
	var kbuf [64]byte
	kb := kbuf[:0]
	for k, vs := range r.Header {
		if len(vs) == 0 || hopByHop(k) || httpfield.HasToken(connTokens, k) || hasPrefixFold(k, internalPrefix) {
			continue
		}
		kb = envKey(kb[:0], k)
		if kb == nil {
			continue
		}
		v := vs[0]
		if len(vs) > 1 {
			sep := ", "
			if k == "Cookie" {
				sep = "; "
			}
			v = strings.Join(vs, sep)
		}
		q.PairBytes(kb, v)
	}
}

// AppendASGI adds r in the ASGI layout to q: method, raw path, query,
// scheme, the client's address, Host and Content-Length ("" if none), then
// one name and value pair per field line, names lower-cased, as the ASGI
// loader lists the fields of writeHead's HTTP/1.1 head: host first, the
// client's fields (minus hop-by-hop and Ferry's own), content-length last.
func AppendASGI(q *appwire.Request, r *http.Request, size int64, scheme string) {
	target := requestTarget(r)
	path, query, _ := strings.Cut(target, "?")
	clen := ""
	if size > 0 || bodyExpected(r.Method) {
		clen = strconv.FormatInt(size, 10)
	}
	q.Field(r.Method)
	q.Field(path)
	q.Field(query)
	q.Field(scheme)
	q.Field(r.RemoteAddr)
	q.Field(r.Host)
	q.Field(clen)
	q.Pair("host", r.Host)
	connTokens := r.Header["Connection"]
	var kbuf [64]byte
	for k, vs := range r.Header {
		if hopByHop(k) || httpfield.HasToken(connTokens, k) || hasPrefixFold(k, internalPrefix) {
			continue
		}
		kb := kbuf[:0]
		for i := 0; i < len(k); i++ {
			c := k[i]
			if 'A' <= c && c <= 'Z' {
				c += 'a' - 'A'
			}
			kb = append(kb, c)
		}
		for _, v := range vs {
			q.PairBytes(kb, v)
		}
	}
	if clen != "" {
		q.Pair("content-length", clen)
	}
}

// envKey is the CGI name of header k: CONTENT_TYPE, or HTTP_ and k upper
// cased with '-' as '_'; nil for a name a loader drops (holding '_' or
// space, which SanitizeRequest removed already).
func envKey(dst []byte, k string) []byte {
	if k == "" || strings.ContainsAny(k, "_ \t") {
		return nil
	}
	if httpfield.EqualFold(k, "Content-Type") {
		return append(dst, "CONTENT_TYPE"...)
	}
	dst = append(dst, "HTTP_"...)
	for i := 0; i < len(k); i++ {
		c := k[i]
		switch {
		case c == '-':
			c = '_'
		case 'a' <= c && c <= 'z':
			c -= 'a' - 'A'
		}
		dst = append(dst, c)
	}
	return dst
}

// splitHost is SERVER_NAME and SERVER_PORT of a Host header, as
// _ferry_common.split_host and the Rack loader split it.
func splitHost(host string, https bool) (name, port string) {
	def := "80"
	if https {
		def = "443"
	}
	if host == "" {
		return "localhost", def
	}
	if host[0] == '[' {
		i := strings.IndexByte(host, ']')
		if i < 0 {
			return host, def
		}
		var rest string
		name, rest = host[:i+1], host[i+1:]
		if len(rest) > 0 && rest[0] == ':' {
			port = rest[1:]
		}
	} else if i := strings.LastIndexByte(host, ':'); i >= 0 {
		name, port = host[:i], host[i+1:]
	} else {
		name = host
	}
	if port == "" {
		port = def
	}
	return name, port
}

// splitPeer is REMOTE_ADDR and REMOTE_PORT ("" if none) of the client's
// address, as _ferry_common.split_peer splits X-Ferry-Client-Addr.
func splitPeer(addr string) (ip, port string) {
	if addr[0] == '[' {
		if i := strings.IndexByte(addr, ']'); i >= 0 {
			rest := addr[i+1:]
			if len(rest) > 0 && rest[0] == ':' {
				return addr[1:i], rest[1:]
			}
			return addr[1:i], ""
		}
	}
	i := strings.LastIndexByte(addr, ':')
	if i < 0 || strings.IndexByte(addr[:i], ':') >= 0 {
		return addr, ""
	}
	return addr[:i], addr[i+1:]
}

// readFramed reads the app's final response to r on ferry-wire/1, handing
// interim ones to interim, and frames its body.
func readFramed(br *bufio.Reader, r *http.Request, interim InterimFunc) (*message, error) {
	for i := 0; ; i++ {
		h, err := appwire.ReadHead(br)
		if err == appwire.ErrSwitchHTTP {
			// An HTTP/1.1 response follows, then the close.
			m, err := readMessage(br, r, interim)
			if err == nil {
				m.keep, m.resp.Close = false, true
			}
			return m, err
		}
		if err != nil {
			return nil, err
		}
		resp := &http.Response{
			Request: r, Status: h.Status, StatusCode: h.Code, Header: h.Header,
			Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		}
		if h.Code == http.StatusSwitchingProtocols {
			return nil, fmt.Errorf("%w: 101 on ferry-wire/1 (upgrades go on HTTP/1.1)", appwire.ErrFraming)
		}
		if h.Code >= 200 {
			return frameFramed(br, resp, r.Method)
		}
		if i == maxInterim {
			return nil, fmt.Errorf("%w: more than %d interim (1xx) responses", appwire.ErrFraming, maxInterim)
		}
		if interim != nil && h.Code != http.StatusContinue {
			hh := make(http.Header, len(h.Header))
			copyResponseHeader(hh, h.Header)
			interim(h.Code, hh)
		}
	}
}

// frameFramed sets up the body of a final framed response: its chunks, or,
// where there can be none, the end chunk read at once.
func frameFramed(br *bufio.Reader, resp *http.Response, method string) (*message, error) {
	h := resp.Header
	m := &message{resp: resp, keep: !httpfield.HasToken(h["Connection"], "close"), framed: true}
	n := int64(-1)
	if cls := h["Content-Length"]; len(cls) > 0 {
		v, err := strconv.ParseUint(cls[0], 10, 63)
		if err != nil || len(cls) > 1 || cls[0][0] == '+' {
			return nil, fmt.Errorf("%w: bad Content-Length %q", appwire.ErrFraming, cls)
		}
		n = int64(v)
	}
	delete(h, "Transfer-Encoding")
	if p := h["Pragma"]; len(p) > 0 && p[0] == "no-cache" {
		if _, ok := h["Cache-Control"]; !ok {
			h["Cache-Control"] = []string{"no-cache"}
		}
	}
	code := resp.StatusCode
	resp.Body, resp.ContentLength = http.NoBody, 0
	if method == http.MethodHead || code == http.StatusNoContent || code == http.StatusNotModified {
		if method == http.MethodHead {
			resp.ContentLength = n
		}
		if err := appwire.ReadEnd(br); err != nil {
			return nil, err
		}
		return m, nil
	}
	if n == 0 {
		// Read the end chunk now: the no-body path then keeps the
		// connection.
		if err := appwire.ReadEnd(br); err != nil {
			return nil, err
		}
		return m, nil
	}
	m.body = &wireBody{br: br, kind: bodyFramed}
	m.body.framedBody.Reset(br, n)
	m.body.frames = &m.body.framedBody
	resp.Body, resp.ContentLength = m.body, n
	return m, nil
}
