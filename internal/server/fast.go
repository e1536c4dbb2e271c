package server

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// The lean HTTP/1.1 path.
//
// On plain listeners (TCP and Unix), every connection starts here rather
// than in net/http. A plain GET or HEAD HTTP/1.1 head (no body, no Expect,
// no Upgrade, well-formed) is parsed here and run through the request path
// (Handler.ServeHTTP, the same as net/http calls), with a fastResponse as
// the ResponseWriter: a small response goes out in one write, head and
// body. That spares most of what net/http costs per request (its
// allocations, buffered writer and background read), which is most of what
// a cache hit or a hot static file costs, and much of the front's share of
// an app's hello world.
//
// Anything else (a body, HTTP/1.0, a malformed or very long head, …) is
// handed to net/http with the bytes already read, and net/http serves the
// connection from then on, with all its checks and answers: this reader
// takes only what it is sure of, and a fuzz target holds it to reading
// those heads exactly as net/http would.
//
// While an app has a request, the connection is watched for the client
// leaving (a one-byte read, as net/http's background read), which cancels
// the request: a queued request of a gone client is dropped.

// fastBufSize is the connection's read buffer: a head that does not fit
// goes to net/http (which allows up to --max-header-bytes).
const fastBufSize = 4 << 10

// fastBodyMax is how much of a response body is held to go out in the same
// write as its head; past it, the head is written and the body streamed.
const fastBodyMax = 64 << 10

// fastMaxFields bounds the header fields of a head this path parses.
const fastMaxFields = 64

// fastEngine is the lean path of one http.Server's plain listeners.
type fastEngine struct {
	h                          *Handler
	headerTimeout, idleTimeout time.Duration
	log                        *slog.Logger

	// answered and handedOver count requests answered here and
	// connections handed to net/http.
	answered, handedOver atomic.Uint64

	closing atomic.Bool // set under mu, read without it

	mu    sync.Mutex
	conns map[*fastConn]struct{}
	wg    sync.WaitGroup
}

func newFastEngine(h *Handler, headerTimeout, idleTimeout time.Duration, log *slog.Logger) *fastEngine {
	return &fastEngine{h: h, headerTimeout: headerTimeout, idleTimeout: idleTimeout, log: log,
		conns: map[*fastConn]struct{}{}}
}

func (e *fastEngine) add(c *fastConn) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closing.Load() {
		return false
	}
	e.conns[c] = struct{}{}
	e.wg.Add(1)
	return true
}

func (e *fastEngine) remove(c *fastConn) {
	e.mu.Lock()
	delete(e.conns, c)
	e.mu.Unlock()
	e.wg.Done()
}

// shutdown ends the engine's connections as net/http's Shutdown ends its
// own: idle ones at once, busy ones after their response. It waits for them
// (a busy one may still hand its request to net/http, which must therefore
// still be serving) until ctx ends, and then closes what is left.
func (e *fastEngine) shutdown(ctx context.Context) {
	e.mu.Lock()
	e.closing.Store(true)
	for c := range e.conns {
		c.wake()
	}
	e.mu.Unlock()
	done := make(chan struct{})
	go func() { e.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		e.mu.Lock()
		for c := range e.conns {
			c.raw.Close()
		}
		e.mu.Unlock()
	}
}

// fastConn is one connection on the lean path.
type fastConn struct {
	e      *fastEngine
	raw    *slotConn
	br     *bufio.Reader
	remote string
	ctx    context.Context
	cancel context.CancelFunc
	idle   atomic.Bool // waiting for a request head: shutdown may close it
	// A byte the client-close watcher read: the start of the next request.
	pre    [1]byte
	hasPre bool
	resp   fastResponse
	req    *http.Request // reused: made once with ctx, which has no setter
	url    url.URL
}

// Read is what the read buffer reads: the watcher's byte, if it took one,
// then the connection.
func (c *fastConn) Read(p []byte) (int, error) {
	if c.hasPre && len(p) > 0 {
		c.hasPre = false
		p[0] = c.pre[0]
		return 1, nil
	}
	return c.raw.Read(p)
}

// clientWatcher is a ResponseWriter that notices a client leaving only
// while asked to: Handler.forward asks for the time an app has the request.
type clientWatcher interface {
	watchClient() (stop func())
}

// watchClient reads one byte from the connection until stop: EOF or an
// error means the client left, and cancels the request (its context is the
// connection's); a byte is the start of a pipelined request, kept for the
// read buffer. A pipelined request already read stops the watch at once,
// as net/http's does.
func (w *fastResponse) watchClient() (stop func()) {
	c := w.c
	if c.br.Buffered() > 0 || c.hasPre {
		return func() {}
	}
	var stopping atomic.Bool
	done := make(chan struct{})
	go func() {
		defer close(done)
		n, err := c.raw.Read(c.pre[:])
		if n == 1 {
			c.hasPre = true
			return
		}
		if err != nil && !stopping.Load() {
			c.cancel()
		}
	}()
	return func() {
		stopping.Store(true)
		c.raw.SetReadDeadline(aLongTimeAgo)
		<-done
		c.raw.SetReadDeadline(time.Time{})
	}
}

// wake closes an idle connection, and makes a busy one close after its
// response.
func (c *fastConn) wake() {
	if c.idle.Load() {
		c.raw.SetReadDeadline(aLongTimeAgo)
	}
}

var aLongTimeAgo = time.Unix(1, 0)

var fastReaders = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, fastBufSize) }}

// serve answers requests on c until one must go to net/http (handoff is
// then called with the connection and every byte read from it that was
// not answered) or the connection ends.
func (e *fastEngine) serve(raw *slotConn, handoff func(net.Conn)) {
	c := &fastConn{e: e, raw: raw, remote: raw.RemoteAddr().String()}
	if !e.add(c) {
		raw.Close()
		return
	}
	defer e.remove(c)
	c.br = fastReaders.Get().(*bufio.Reader)
	c.br.Reset(c)
	c.ctx, c.cancel = context.WithCancel(context.Background())
	c.req = new(http.Request).WithContext(c.ctx)
	c.resp.c = c
	defer func() {
		c.cancel()
		if c.br != nil {
			c.br.Reset(nil)
			fastReaders.Put(c.br)
		}
	}()
	for {
		if e.closing.Load() {
			raw.Close()
			return
		}
		head, ok := c.readHead()
		if head == nil {
			if ok {
				c.handoff(handoff)
			} else {
				raw.Close()
			}
			return
		}
		switch c.answer(head) {
		case answered:
		case declined:
			c.handoff(handoff)
			return
		case closeConn:
			raw.Close()
			return
		}
	}
}

// handoff gives the connection to net/http with the bytes it has not
// answered yet.
func (c *fastConn) handoff(handoff func(net.Conn)) {
	c.e.handedOver.Add(1)
	c.raw.SetReadDeadline(time.Time{})
	var pending []byte
	if n := c.br.Buffered(); n > 0 {
		b, _ := c.br.Peek(n)
		pending = slices.Clone(b)
	}
	if c.hasPre {
		pending = append(pending, c.pre[0])
	}
	c.br.Reset(nil)
	fastReaders.Put(c.br)
	c.br = nil
	handoff(&replayConn{slotConn: c.raw, pending: pending})
}

// readHead waits for the next request head and returns it, still in the
// read buffer (nothing is consumed until it is answered). nil with ok:
// what arrived must go to net/http; nil without: the connection ends.
func (c *fastConn) readHead() (head []byte, ok bool) {
	e := c.e
	if c.br.Buffered() == 0 {
		// Between requests: the idle timeout, then the header timeout from
		// the first byte, as net/http does.
		c.idle.Store(true)
		if e.closing.Load() {
			return nil, false
		}
		if e.idleTimeout > 0 {
			c.raw.SetReadDeadline(time.Now().Add(e.idleTimeout))
		} else if e.headerTimeout > 0 {
			c.raw.SetReadDeadline(time.Time{})
		}
		_, err := c.br.Peek(1)
		c.idle.Store(false)
		if err != nil {
			return nil, false
		}
	}
	if e.headerTimeout > 0 {
		c.raw.SetReadDeadline(time.Now().Add(e.headerTimeout))
	}
	for {
		buf, _ := c.br.Peek(c.br.Buffered())
		i := headEnd(buf)
		if i >= 0 {
			return buf[:i], true
		}
		if i == -2 || len(buf) == fastBufSize {
			return nil, true // longer than this path takes
		}
		if _, err := c.br.Peek(len(buf) + 1); err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() && !e.closing.Load() {
				e.h.logRejected(rejection{client: c.remote, line: firstLine(buf), status: http.StatusRequestTimeout,
					reason: "the request head did not arrive within --client-header-timeout"})
			} else if err == io.EOF || !e.closing.Load() {
				e.h.logRejected(rejection{client: c.remote, line: firstLine(buf), status: http.StatusBadRequest,
					reason: "the client closed the connection in the middle of its request head"})
			}
			return nil, false
		}
	}
}

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

func firstLine(buf []byte) string {
	for i, b := range buf {
		if b == '\r' || b == '\n' {
			buf = buf[:i]
			break
		}
	}
	return string(buf[:min(len(buf), 120)])
}

type outcome int

const (
	answered  outcome = iota // answered; read the next request
	declined                 // for net/http, from this request on
	closeConn                // answered (or broken, or the client left); close the connection
)

// answer parses head and, if it is one this path takes, runs the request
// path on it.
func (c *fastConn) answer(head []byte) outcome {
	r := c.req
	if !c.parse(head) {
		return declined
	}
	c.br.Discard(len(head))
	w := &c.resp
	w.reset(r.Method == http.MethodHead)
	if out := c.run(w, r); out != answered {
		return out
	}
	c.e.answered.Add(1)
	if c.ctx.Err() != nil {
		return closeConn // the client left: nothing to answer
	}
	if err := w.finish(); err != nil || w.close || r.Close || c.e.closing.Load() {
		return closeConn
	}
	return answered
}

// run calls the request path, as net/http would: a panic ends the
// connection and is logged, unless it is http.ErrAbortHandler.
func (c *fastConn) run(w *fastResponse, r *http.Request) (out outcome) {
	defer func() {
		if p := recover(); p != nil {
			if p != http.ErrAbortHandler {
				c.e.log.Error("panic serving a request", "client", c.remote, "panic", p, "stack", string(debug.Stack()))
			}
			out = closeConn
		}
	}()
	c.e.h.ServeHTTP(w, r)
	return answered
}

// parse fills c.req from head, if it is a request this path takes: GET or
// HEAD, HTTP/1.1, an origin-form target, exactly one Host, no body, no
// Expect, no Upgrade, well-formed fields. It does not consume head.
func (c *fastConn) parse(head []byte) bool {
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
		if fields == fastMaxFields {
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

// replayConn is a connection handed to net/http: it reads first the bytes
// the lean path had read but not answered.
type replayConn struct {
	*slotConn
	pending []byte
}

func (c *replayConn) Read(p []byte) (int, error) {
	if len(c.pending) > 0 {
		n := copy(p, c.pending)
		c.pending = c.pending[n:]
		return n, nil
	}
	return c.slotConn.Read(p)
}

// fastResponse is the http.ResponseWriter of the lean path. A response
// whose body fits in fastBodyMax goes out in one write, head and body; a
// larger one gets its head written first and its body streamed (with
// sendfile for a file when the length is known, chunked when it is not).
type fastResponse struct {
	c       *fastConn
	header  http.Header
	status  int
	head    bool // a HEAD request: no body goes out
	close   bool // the connection ends after this response
	sent    bool // the head is on the wire
	chunked bool
	err     error // a write failed: the connection is done
	body    []byte
	out     []byte
	keys    []string
}

func (w *fastResponse) reset(head bool) {
	if w.header == nil {
		w.header = make(http.Header, 8)
	} else {
		clear(w.header)
	}
	w.status, w.head, w.close, w.sent, w.chunked, w.err = 0, head, false, false, false, nil
	w.body = w.body[:0]
}

func (w *fastResponse) Header() http.Header { return w.header }

func (w *fastResponse) WriteHeader(code int) {
	if w.status != 0 || code < 200 {
		return // informational answers are not sent on this path
	}
	w.status = code
}

func (w *fastResponse) bodyAllowed() bool {
	return !w.head && w.status != http.StatusNoContent && w.status != http.StatusNotModified
}

func (w *fastResponse) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.WriteHeader(http.StatusOK)
	}
	if w.err != nil {
		return 0, w.err
	}
	if !w.bodyAllowed() {
		if w.head && !w.sent {
			w.body = append(w.body, p...) // counted for Content-Length, never sent
			if len(w.body) > fastBodyMax {
				w.body = w.body[:0]
				w.close = true // the length is then unknown: be safe
			}
		}
		return len(p), nil
	}
	if !w.sent && len(w.body)+len(p) <= fastBodyMax {
		w.body = append(w.body, p...)
		return len(p), nil
	}
	if !w.sent {
		if err := w.sendHead(false); err != nil {
			return 0, err
		}
	}
	return w.writeBody(p)
}

// ReadFrom sends a file with sendfile once the head is out, when its length
// is known; otherwise it copies through Write.
func (w *fastResponse) ReadFrom(src io.Reader) (int64, error) {
	if w.status == 0 {
		w.WriteHeader(http.StatusOK)
	}
	if w.err != nil {
		return 0, w.err
	}
	if !isFile(src) {
		return copyTo(writerOnly{w}, src) // held, to go out with the head
	}
	if w.sent && !w.chunked || !w.sent && w.bodyAllowed() && len(w.header["Content-Length"]) == 1 {
		if !w.sent {
			if err := w.sendHead(false); err != nil {
				return 0, err
			}
		}
		n, err := w.c.raw.ReadFrom(src)
		if err != nil {
			w.err = err
		}
		return n, err
	}
	return copyTo(writerOnly{w}, src)
}

// isFile: src is a file, or a limited reader over one, which sendfile
// takes.
func isFile(src io.Reader) bool {
	if lr, ok := src.(*io.LimitedReader); ok {
		src = lr.R
	}
	_, ok := src.(*os.File)
	return ok
}

func (w *fastResponse) writeBody(p []byte) (int, error) {
	var err error
	if w.chunked {
		w.out = strconv.AppendInt(w.out[:0], int64(len(p)), 16)
		w.out = append(w.out, "\r\n"...)
		w.out = append(w.out, p...)
		w.out = append(w.out, "\r\n"...)
		_, err = w.c.raw.Write(w.out)
	} else {
		_, err = w.c.raw.Write(p)
	}
	if err != nil {
		w.err = err
		return 0, err
	}
	return len(p), nil
}

func (w *fastResponse) SetWriteDeadline(t time.Time) error { return w.c.raw.SetWriteDeadline(t) }

func (w *fastResponse) SetReadDeadline(t time.Time) error { return w.c.raw.SetReadDeadline(t) }

func (w *fastResponse) Flush() { w.FlushError() }

func (w *fastResponse) FlushError() error {
	if w.status == 0 {
		w.WriteHeader(http.StatusOK)
	}
	if w.err != nil || w.sent {
		return w.err
	}
	return w.sendHead(false)
}

// sendHead writes the head, with the body held so far when final (the
// whole response), or starts streaming: the held body follows the head,
// and the rest is chunked unless its length is known.
func (w *fastResponse) sendHead(final bool) error {
	h := w.header
	if !final && w.bodyAllowed() && len(h["Content-Length"]) == 0 {
		w.chunked = true
	}
	out := w.out[:0]
	out = append(out, "HTTP/1.1 "...)
	out = strconv.AppendInt(out, int64(w.status), 10)
	out = append(out, ' ')
	if text := http.StatusText(w.status); text != "" {
		out = append(out, text...)
	} else {
		out = append(out, "status code "...)
		out = strconv.AppendInt(out, int64(w.status), 10)
	}
	out = append(out, "\r\n"...)
	if final && len(h["Content-Length"]) == 0 && w.status != http.StatusNoContent && w.status != http.StatusNotModified &&
		(!w.head || len(w.body) > 0) {
		out = append(out, "Content-Length: "...)
		out = strconv.AppendInt(out, int64(len(w.body)), 10)
		out = append(out, "\r\n"...)
	}
	if _, ok := h["Content-Type"]; !ok && len(w.body) > 0 && w.status != http.StatusNoContent && w.status != http.StatusNotModified {
		out = append(out, "Content-Type: "...)
		out = append(out, http.DetectContentType(w.body)...)
		out = append(out, "\r\n"...)
	}
	if _, ok := h["Date"]; !ok {
		out = append(out, "Date: "...)
		out = appendHTTPDate(out)
		out = append(out, "\r\n"...)
	}
	if w.chunked {
		out = append(out, "Transfer-Encoding: chunked\r\n"...)
	}
	for _, v := range h["Connection"] {
		if asciiEqualFold([]byte(v), "close") {
			w.close = true
		}
	}
	if (w.close || w.c.req.Close || w.c.e.closing.Load()) && len(h["Connection"]) == 0 {
		out = append(out, "Connection: close\r\n"...)
		w.close = true
	}
	keys := w.keys[:0]
	for k := range h {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	w.keys = keys
	for _, k := range keys {
		if k == "Transfer-Encoding" || !validFieldName(k) {
			continue
		}
		for _, v := range h[k] {
			out = append(out, k...)
			out = append(out, ": "...)
			out = appendFieldValue(out, v)
			out = append(out, "\r\n"...)
		}
	}
	out = append(out, "\r\n"...)
	if w.bodyAllowed() && len(w.body) > 0 {
		if w.chunked {
			out = strconv.AppendInt(out, int64(len(w.body)), 16)
			out = append(out, "\r\n"...)
			out = append(out, w.body...)
			out = append(out, "\r\n"...)
		} else {
			out = append(out, w.body...)
		}
	}
	w.out = out
	w.sent = true
	w.body = w.body[:0]
	if _, err := w.c.raw.Write(out); err != nil {
		w.err = err
		return err
	}
	return nil
}

// finish ends the response: the whole of it when nothing was sent yet, or
// the last chunk.
func (w *fastResponse) finish() error {
	if w.status == 0 {
		w.WriteHeader(http.StatusOK)
	}
	if w.err != nil {
		return w.err
	}
	if !w.sent {
		return w.sendHead(true)
	}
	if w.chunked {
		if _, err := io.WriteString(w.c.raw, "0\r\n\r\n"); err != nil {
			w.err = err
			return err
		}
	}
	return nil
}

func validFieldName(k string) bool {
	if k == "" {
		return false
	}
	for i := 0; i < len(k); i++ {
		if !isTokenByte(k[i]) {
			return false
		}
	}
	return true
}

// appendFieldValue writes a field value with CR and LF made spaces, as
// net/http does, so that no value can start a field or a body of its own.
func appendFieldValue(out []byte, v string) []byte {
	for i := 0; i < len(v); i++ {
		b := v[i]
		if b == '\r' || b == '\n' {
			b = ' '
		}
		out = append(out, b)
	}
	return out
}

// The Date field, formatted once a second.
type httpDate struct {
	sec int64
	b   []byte
}

var currentDate atomic.Pointer[httpDate]

func appendHTTPDate(out []byte) []byte {
	now := time.Now()
	d := currentDate.Load()
	if d == nil || d.sec != now.Unix() {
		d = &httpDate{sec: now.Unix(), b: now.UTC().AppendFormat(nil, http.TimeFormat)}
		currentDate.Store(d)
	}
	return append(out, d.b...)
}
