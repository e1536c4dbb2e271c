// Package proxy owns one request's trip to an app process: buffering the
// request body, the HTTP/1.1 wire over the process's Unix socket with
// kept-alive connections, and spooling the response so the process is free
// as soon as the app is done, whatever the client's pace. It knows nothing of
// spawning or choosing processes; it is handed an Upstream.
package proxy

import (
	"bufio"
	"errors"
	"fmt"
	"github.com/ferry-server/ferry/internal/appwire"
	"github.com/ferry-server/ferry/internal/httpfield"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
)

// Upstream is a session on one app process.
type Upstream interface {
	Addr() net.Addr
	// TakeConn returns a kept-alive connection made by this package, or nil.
	TakeConn() io.Closer
	// ReleaseConn ends the session, keeping conn (if non-nil) for reuse; ok
	// says whether the request completed.
	ReleaseConn(conn io.Closer, ok bool)
	// Failed ends the session of a request whose connection to the process
	// failed before a byte of answer: connecting failed (connect), or the
	// connection was closed or reset. One such failure does not show the
	// process dead; the pool judges (its exit, or connects that keep
	// failing).
	Failed(connect bool, err error)
	// FramingError reports that the app broke HTTP/1.1 framing on a
	// connection (bytes past the end of a response, a malformed head): the
	// connection is closed rather than reused. For the log; the session
	// goes on.
	FramingError(err error)
}

// Internal headers the core sets on every request; clients' copies are
// dropped, and loaders never show them to apps.
const (
	HeaderClientAddr = "X-Ferry-Client-Addr"
	HeaderScheme     = "X-Ferry-Scheme"
	internalPrefix   = "X-Ferry-"
)

// Transport sends requests to app processes.
type Transport struct {
	// DialTimeout bounds connecting to a process socket. Default 5s.
	DialTimeout time.Duration
	// Forwarded tells the app the client's address, scheme and host in
	// X-Forwarded-For/-Proto/-Host (client copies replaced), for generic apps
	// that do not speak Ferry's internal headers. Loaders get X-Ferry-*.
	Forwarded bool
	// StripPrefix removes the app's base URI from the request path and says
	// so in X-Forwarded-Prefix, for apps that have no SCRIPT_NAME (Node,
	// generic). "" leaves the path alone.
	StripPrefix string
	// MaxTunnels caps the Upgrade (WebSocket) tunnels open at once through
	// this transport, i.e. to one app: each holds two of the core's file
	// descriptors, which all apps share. Past it, an app's 101 is answered
	// with 503 and the app's connection closed. 0 or less: no cap.
	MaxTunnels int
	// MaxResponseHead bounds the response head an app may send (status
	// line and fields, 1xx heads included): past it the response is a 502
	// and the connection is closed, so a runaway app cannot grow the
	// core's memory without end. 0: DefaultMaxResponseHead. A framed head
	// is bounded by appwire.MaxHead as well.
	MaxResponseHead int64

	tunnels atomic.Int64
}

// DefaultMaxResponseHead is Transport.MaxResponseHead's default, 1 MiB:
// far more than any app's fields (nginx gives 4–8 KiB by default), little
// next to the response buffers.
const DefaultMaxResponseHead = 1 << 20

// ErrResponseHeadTooLarge: an app's response head passed
// Transport.MaxResponseHead.
var ErrResponseHeadTooLarge = errors.New("the app's response head is too large")

// RoundTripError is a failed exchange. Retryable reports that the app cannot
// have acted on the request, so it may be sent to another process.
type RoundTripError struct {
	Err       error
	Retryable bool
}

func (e *RoundTripError) Error() string { return "forward to app: " + e.Err.Error() }
func (e *RoundTripError) Unwrap() error { return e.Err }

// Retryable reports whether err (from RoundTrip) allows sending the request
// to another process.
func Retryable(err error) bool {
	var rt *RoundTripError
	return errors.As(err, &rt) && rt.Retryable
}

// conn is a connection to a process, with its buffers and a count of bytes
// read so that "nothing came back" can be told from "something did".
type conn struct {
	net.Conn
	br   *bufio.Reader
	bw   *bufio.Writer
	read int64
	// full: the last read filled the buffer it was given, so more may be
	// waiting in the socket.
	full bool
	// rc peeks at the socket (unread); nil if it cannot.
	rc      syscall.RawConn
	peek    func(fd uintptr) bool // c.peekFD, bound once
	peekN   int
	peekErr error
	// framed: the last exchange was on ferry-wire/1, which ends exactly at
	// its end chunk (the loader frames everything the app writes), so no
	// peek is needed before reuse. q and qbuf build its request frames.
	framed bool
	q      appwire.Request
	qbuf   []byte
	// headEnd, while a response head is read, is c.read's bound (what
	// the head may take, plus one buffer read ahead into the body); 0
	// otherwise.
	headEnd int64
}

func (c *conn) Read(p []byte) (int, error) {
	if c.headEnd > 0 && c.read >= c.headEnd {
		return 0, ErrResponseHeadTooLarge
	}
	n, err := c.Conn.Read(p)
	c.read += int64(n)
	c.full = n == len(p)
	return n, err
}

func (t *Transport) dial(addr net.Addr) (*conn, error) {
	timeout := t.DialTimeout
	if timeout <= 0 {
		timeout = 5 * time.Second
	}
	nc, err := net.DialTimeout(addr.Network(), addr.String(), timeout)
	if err != nil {
		return nil, err
	}
	return newConn(nc), nil
}

func newConn(nc net.Conn) *conn {
	c := &conn{Conn: nc}
	if sc, ok := nc.(syscall.Conn); ok {
		if rc, err := sc.SyscallConn(); err == nil {
			c.rc, c.peek = rc, c.peekFD
		}
	}
	c.br = bufio.NewReaderSize(c, connBufSize)
	c.bw = bufio.NewWriterSize(nc, connBufSize)
	return c
}

// connBufSize is the read and the write buffer of a connection to an app
// process. A response or request head of any length still goes through
// (lines are read in pieces), and bodies are copied in larger chunks past
// the buffer; kept-alive connections number one per concurrent request, so
// their buffers are much of the core's memory under load.
const connBufSize = 4 << 10

// Exchange is a response whose head has arrived; WriteTo sends it on.
type Exchange struct {
	Resp *http.Response
	up   Upstream
	c    *conn
	t    *Transport
	msg  *message
}

// RoundTrip sends r (with its buffered body) to the upstream and reads the
// response head. On error the upstream has been released.
func (t *Transport) RoundTrip(up Upstream, r *http.Request, body *Body, scheme string) (*Exchange, error) {
	return t.RoundTripInterim(up, r, body, scheme, nil)
}

// RoundTripInterim is RoundTrip that hands the app's interim (1xx)
// responses to interim as they arrive (nil: dropped).
func (t *Transport) RoundTripInterim(up Upstream, r *http.Request, body *Body, scheme string, interim InterimFunc) (*Exchange, error) {
	if c := takeConn(up); c != nil {
		m, nothing, err := t.send(c, up, r, body, scheme, interim)
		if err == nil {
			return &Exchange{Resp: m.resp, up: up, c: c, t: t, msg: m}, nil
		}
		c.Close()
		if !Retryable(err) {
			ended(up, nothing, err)
			return nil, err
		}
		// A kept-alive connection that failed before any response byte: the
		// app closed it while idle (the request never reached the app), or
		// the process died. A new connection to the same process tells.
	}
	c, err := t.dial(up.Addr())
	if err != nil {
		err = fmt.Errorf("connect to %s: %w", up.Addr(), err)
		up.Failed(true, err)
		return nil, &RoundTripError{Err: err, Retryable: true}
	}
	m, nothing, err := t.send(c, up, r, body, scheme, interim)
	if err == nil {
		return &Exchange{Resp: m.resp, up: up, c: c, t: t, msg: m}, nil
	}
	c.Close()
	ended(up, nothing, err)
	return nil, err
}

// takeConn returns a kept-alive connection to reuse, or nil. One on which
// the app has sent anything since its last response ended is closed
// instead: bytes there are a framing error that would otherwise be read as
// the next client's response; an EOF is the app closing it while idle.
func takeConn(up Upstream) *conn {
	for {
		c, _ := up.TakeConn().(*conn)
		if c == nil {
			return nil
		}
		if c.framed && c.br.Buffered() == 0 {
			// See conn.framed. A loader that closed it while idle shows
			// as a failed write (EPIPE) or an EOF before any byte, which
			// send reports as retryable, as the peek would have.
			return c
		}
		data, closed := c.unread()
		if !data && !closed {
			return c
		}
		c.Close()
		if data {
			up.FramingError(fmt.Errorf("%w: bytes on an idle connection after the end of a response", ErrFraming))
		}
	}
}

// ended ends the session after a failed exchange: a connection closed or
// reset without a byte of answer goes to the pool's judgement; a broken
// answer is the app's framing error.
func ended(up Upstream, nothing bool, err error) {
	if nothing {
		up.Failed(false, err)
		return
	}
	up.FramingError(err)
	up.ReleaseConn(nil, false)
}

// send writes the request on c and reads the response head. On error,
// nothing reports that no response byte came back, and the error says
// whether the request may go to another process.
func (t *Transport) send(c *conn, up Upstream, r *http.Request, body *Body, scheme string, interim InterimFunc) (m *message, nothing bool, err error) {
	c.framed = t.framedFor(up, r)
	if c.framed {
		var ferr error
		// A request that cannot be framed (a NUL in a field, which the
		// HTTP front refuses anyway) goes as HTTP/1.1; nothing was written.
		c.qbuf, ferr = writeFramed(c.bw, &c.q, c.qbuf, r, body.Size(), scheme, headOf(up))
		c.framed = ferr == nil
	}
	if !c.framed {
		writeHead(c.bw, r, body.Size(), scheme, t.Forwarded, t.StripPrefix)
	}
	_, werr := body.WriteTo(c.bw)
	if werr == nil {
		werr = c.bw.Flush()
	}
	before := c.read
	limit := t.MaxResponseHead
	if limit <= 0 {
		limit = DefaultMaxResponseHead
	}
	// What br holds already was counted; the head may take limit past it.
	c.headEnd = c.read + limit + connBufSize
	if c.framed {
		m, err = readFramed(c.br, r, interim)
	} else {
		m, err = readMessage(c.br, r, interim)
	}
	c.headEnd = 0
	if err == nil {
		return m, false, nil
	}
	nothing = c.read == before
	// A request that could not be written in full cannot have been acted
	// on, whatever its method. An idempotent one that got no response byte
	// may go to another process once, as nginx's proxy_next_upstream does:
	// the stale kept-alive connection race, or a process that died (perhaps
	// before it even accepted).
	retry := nothing && (werr != nil || idempotent(r.Method))
	if werr != nil {
		err = werr
	}
	return nil, nothing, &RoundTripError{Err: fmt.Errorf("read response: %w", err), Retryable: retry}
}

func idempotent(method string) bool {
	switch method {
	case "GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE":
		return true
	}
	return false
}

// writeHead writes the request line and headers: the client's, minus
// hop-by-hop and internal ones, plus framing and Ferry's own. An Upgrade
// request keeps its Upgrade header.
func writeHead(w *bufio.Writer, r *http.Request, size int64, scheme string, forwarded bool, strip string) {
	w.WriteString(r.Method)
	w.WriteByte(' ')
	target := requestTarget(r)
	if strip != "" {
		if rest, ok := strings.CutPrefix(target, strip); ok && (rest == "" || rest[0] == '/' || rest[0] == '?') {
			target = rest
			if target == "" || target[0] == '?' {
				target = "/" + target
			}
		} else {
			strip = "" // the raw target does not start with it (encoded): leave it
		}
	}
	w.WriteString(target)
	w.WriteString(" HTTP/1.1\r\nHost: ")
	w.WriteString(r.Host)
	w.WriteString("\r\n")
	connTokens := r.Header["Connection"]
	for k, vs := range r.Header {
		if hopByHop(k) || httpfield.HasToken(connTokens, k) || (forwarded && isForwardedHeader(k)) || (strip != "" && k == "X-Forwarded-Prefix") {
			continue
		}
		for _, v := range vs {
			w.WriteString(k)
			w.WriteString(": ")
			w.WriteString(v)
			w.WriteString("\r\n")
		}
	}
	if IsUpgrade(r) {
		w.WriteString("Connection: Upgrade\r\nUpgrade: ")
		w.WriteString(r.Header.Get("Upgrade"))
		w.WriteString("\r\n")
	}
	if strip != "" {
		w.WriteString("X-Forwarded-Prefix: ")
		w.WriteString(strip)
		w.WriteString("\r\n")
	}
	if size > 0 || bodyExpected(r.Method) {
		w.WriteString("Content-Length: ")
		var num [20]byte
		w.Write(strconv.AppendInt(num[:0], size, 10))
		w.WriteString("\r\n")
	}
	if forwarded {
		host, _, err := net.SplitHostPort(r.RemoteAddr)
		if err != nil {
			host = r.RemoteAddr
		}
		w.WriteString("X-Forwarded-For: ")
		w.WriteString(host)
		w.WriteString("\r\nX-Forwarded-Proto: ")
		w.WriteString(scheme)
		w.WriteString("\r\nX-Forwarded-Host: ")
		w.WriteString(r.Host)
		w.WriteString("\r\n\r\n")
		return
	}
	w.WriteString(HeaderClientAddr + ": ")
	w.WriteString(r.RemoteAddr)
	w.WriteString("\r\n" + HeaderScheme + ": ")
	w.WriteString(scheme)
	w.WriteString("\r\n\r\n")
}

func isForwardedHeader(k string) bool {
	return k == "X-Forwarded-For" || k == "X-Forwarded-Proto" || k == "X-Forwarded-Host" || k == "Forwarded"
}

// IsUpgrade reports a request to switch protocols (e.g. WebSocket).
func IsUpgrade(r *http.Request) bool {
	if r.ProtoMajor != 1 || r.Header.Get("Upgrade") == "" {
		return false
	}
	return httpfield.HasToken(r.Header["Connection"], "upgrade")
}

func requestTarget(r *http.Request) string {
	if rt := r.RequestURI; rt != "" && (rt[0] == '/' || rt == "*") {
		return rt
	}
	// Absolute-form or HTTP/2: rebuild the origin form.
	return r.URL.RequestURI()
}

func bodyExpected(method string) bool {
	return method == "POST" || method == "PUT" || method == "PATCH"
}

// hopByHop reports headers that describe one connection, not the message
// (RFC 9110 §7.6.1), plus framing and expectations the core has already
// dealt with by buffering the body.
func hopByHop(k string) bool {
	switch k {
	case "Connection", "Proxy-Connection", "Keep-Alive", "Te", "Trailer",
		"Transfer-Encoding", "Upgrade", "Content-Length", "Expect", "Host":
		return true
	}
	return false
}

// SanitizeRequest drops client-sent headers that could impersonate Ferry's
// internal ones: any X-Ferry-* and any name containing '_' (which a CGI-style
// loader would map to the same variable as its '-' twin; Passenger's
// CVE-2015-7519).
func SanitizeRequest(h http.Header) {
	for k := range h {
		if strings.IndexByte(k, '_') >= 0 || hasPrefixFold(k, internalPrefix) {
			delete(h, k)
		}
	}
}

func hasPrefixFold(s, prefix string) bool {
	return len(s) >= len(prefix) && httpfield.EqualFold(s[:len(prefix)], prefix)
}

// copyResponseHeader copies the app's headers to the client's, minus
// hop-by-hop ones.
func copyResponseHeader(dst, src http.Header) {
	connTokens := src["Connection"]
	for k, vs := range src {
		switch k {
		case "Connection", "Proxy-Connection", "Keep-Alive", "Te", "Trailer", "Transfer-Encoding", "Upgrade":
			continue
		}
		if httpfield.HasToken(connTokens, k) {
			continue
		}
		dst[k] = vs
	}
}
