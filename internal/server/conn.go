package server

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/ferry-server/ferry/internal/httpfield"
	"github.com/ferry-server/ferry/internal/lean"
)

// What the front accepts, before net/http sees it:
//
//	raw conn (TCP or Unix) ── slotConn: holds one of --max-connections until closed
//	     │ on a TLS listener, the handshake is done here (ALPN)
//	     ├─ "h2" ─────────────────────────────────► the *tls.Conn, to net/http's HTTP/2
//	     └─ HTTP/1.x, plain or over TLS ──────────► httpConn: sees the bytes of each request head
//
// httpConn lets the front do what net/http does not: refuse request heads
// that net/http accepts but that a proxy in front of Ferry could read
// differently (request smuggling: obs-fold, Content-Length with
// Transfer-Encoding, a repeated Content-Length, Transfer-Encoding in
// HTTP/1.0); log the requests net/http answers itself (400, 431, 501, 505)
// or that never arrived whole; and find hijacked (WebSocket) connections,
// which http.Server.Shutdown does not close.

// tracker is shared by a Server's listeners: the connection limit, the
// hijacked connections, and where refused requests are reported.
type tracker struct {
	sem      chan struct{} // nil: no limit
	log      *slog.Logger
	rejected func(rejection)
	warned   atomic.Int64 // unix time of the last "limit reached" warning

	mu       sync.Mutex
	hijacked map[*httpConn]struct{}
	closing  bool
	// fresh are the connections accepted whose first request has not been
	// read yet: Shutdown lets them deliver it before net/http's Shutdown,
	// which would drop it unanswered (see Server.Shutdown).
	fresh map[*slotConn]struct{}
}

func newTracker(maxConns int, log *slog.Logger, rejected func(rejection)) *tracker {
	t := &tracker{log: log, rejected: rejected, hijacked: map[*httpConn]struct{}{}, fresh: map[*slotConn]struct{}{}}
	if maxConns > 0 {
		t.sem = make(chan struct{}, maxConns)
	}
	return t
}

// acquire takes a connection slot, waiting (in the listen backlog, as it
// were) while --max-connections are open, until done closes.
func (t *tracker) acquire(done <-chan struct{}) error {
	if t.sem == nil {
		return nil
	}
	select {
	case t.sem <- struct{}{}:
		return nil
	default:
	}
	if now := time.Now().Unix(); t.warned.Load() < now-60 {
		t.warned.Store(now)
		t.log.Warn("connection limit reached; new connections wait until others close", "max_connections", cap(t.sem))
	}
	select {
	case t.sem <- struct{}{}:
		return nil
	case <-done:
		return net.ErrClosed
	}
}

func (t *tracker) release() {
	if t.sem != nil {
		<-t.sem
	}
}

// freshCount is how many connections have not delivered a first request.
func (t *tracker) freshCount() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.fresh)
}

// closeFresh closes the connections that have not delivered a first
// request, and reports how many there were.
func (t *tracker) closeFresh() int {
	t.mu.Lock()
	conns := make([]*slotConn, 0, len(t.fresh))
	for c := range t.fresh {
		conns = append(conns, c)
	}
	t.mu.Unlock()
	for _, c := range conns {
		c.Close()
	}
	return len(conns)
}

// closeHijacked closes the hijacked connections and any hijacked later:
// their tunnels end, and with them the app sessions they hold.
func (t *tracker) closeHijacked() int {
	t.mu.Lock()
	t.closing = true
	conns := make([]*httpConn, 0, len(t.hijacked))
	for c := range t.hijacked {
		conns = append(conns, c)
	}
	t.mu.Unlock()
	for _, c := range conns {
		c.Close()
	}
	return len(conns)
}

// connState is the http.Server's ConnState hook: it moves each HTTP/1
// connection between reading a request head and having read one.
func (t *tracker) connState(nc net.Conn, st http.ConnState) {
	c := asHTTPConn(nc)
	if c == nil {
		return // HTTP/2: net/http's own framing
	}
	switch st {
	case http.StateNew, http.StateIdle:
		c.startHead()
	case http.StateActive:
		c.mark.Store(c.served.Load())
		c.phase.Store(phaseActive)
		if c.raw != nil {
			c.raw.settle()
		}
	case http.StateHijacked:
		c.phase.Store(phaseHijacked)
		t.mu.Lock()
		closing := t.closing
		if !closing {
			t.hijacked[c] = struct{}{}
		}
		t.mu.Unlock()
		if closing {
			c.Close()
		}
	case http.StateClosed:
		c.closed()
	}
}

// connContext puts the connection in each request's context, for connFrom.
func connContext(ctx context.Context, nc net.Conn) context.Context {
	if c := asHTTPConn(nc); c != nil {
		return context.WithValue(ctx, connKey{}, c)
	}
	return ctx
}

type connKey struct{}

// connFrom is the HTTP/1 connection a request came on; nil for HTTP/2.
func connFrom(r *http.Request) *httpConn {
	c, _ := r.Context().Value(connKey{}).(*httpConn)
	return c
}

func asHTTPConn(nc net.Conn) *httpConn {
	switch c := nc.(type) {
	case *httpConn:
		return c
	case httpsConn:
		return c.httpConn
	}
	return nil
}

// rejection is a request that never reached the handler: net/http refused
// it, or the client did not send it whole.
type rejection struct {
	client string
	line   string // the start of the request line, as received
	status int    // the status net/http answered, or 408/400 for an incomplete request
	reason string
}

// slotConn is an accepted connection holding a slot of the limit. It is
// fresh (in tracker.fresh) until its first request head has been read or
// it closes.
type slotConn struct {
	net.Conn
	t        *tracker
	released atomic.Bool
	settled  atomic.Bool
}

func newSlotConn(c net.Conn, t *tracker) *slotConn {
	sc := &slotConn{Conn: c, t: t}
	t.mu.Lock()
	t.fresh[sc] = struct{}{}
	t.mu.Unlock()
	return sc
}

// settle takes the connection out of the fresh ones: its first request
// was read (or it is HTTP/2, which has its own graceful shutdown), or it
// closed.
func (c *slotConn) settle() {
	if c.settled.CompareAndSwap(false, true) {
		c.t.mu.Lock()
		delete(c.t.fresh, c)
		c.t.mu.Unlock()
	}
}

func (c *slotConn) Close() error {
	err := c.Conn.Close()
	c.settle()
	if c.released.CompareAndSwap(false, true) {
		c.t.release()
	}
	return err
}

// ReadFrom keeps sendfile and splice for plain TCP.
func (c *slotConn) ReadFrom(r io.Reader) (int64, error) {
	if rf, ok := c.Conn.(io.ReaderFrom); ok {
		return rf.ReadFrom(r)
	}
	return copyTo(c.Conn, r)
}

func (c *slotConn) CloseWrite() error { return closeWrite(c.Conn) }

func copyTo(w io.Writer, r io.Reader) (int64, error) {
	bp := copyBufs.Get().(*[]byte)
	n, err := io.CopyBuffer(writerOnly{w}, r, *bp)
	copyBufs.Put(bp)
	return n, err
}

func closeWrite(c net.Conn) error {
	if cw, ok := c.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return c.Close()
}

// Phases of an httpConn.
const (
	phaseHead     int32 = iota // reading a request head
	phaseActive                // a head was read: the handler, or net/http's own answer
	phaseHijacked              // a tunnel owns it
)

// httpConn is an HTTP/1 connection as net/http sees it: the raw connection
// or, on a TLS listener, the *tls.Conn over it.
type httpConn struct {
	net.Conn
	t   *tracker
	raw *slotConn // the accepted connection beneath

	phase  atomic.Int32
	served atomic.Uint64 // ServeHTTP calls on this connection
	mark   atomic.Uint64 // served when the current head was read

	// Only the goroutine serving the connection touches these while
	// phase is phaseHead (net/http reads a head only there); afterwards
	// the handler reads them on the same goroutine.
	scan     headScan
	line     [120]byte
	lineLen  int
	lineDone bool
	readErr  error
	answered bool // net/http wrote an answer of its own for this head
	// A byte net/http's background read took from the next request while
	// the handler ran; it belongs to the next head.
	pre    byte
	hasPre bool
}

// httpsConn is an HTTP/1 connection over TLS: net/http takes the TLS state
// for Request.TLS from ConnectionState.
type httpsConn struct{ *httpConn }

func (c httpsConn) ConnectionState() tls.ConnectionState {
	return c.Conn.(*tls.Conn).ConnectionState()
}

func (c *httpConn) startHead() {
	c.scan = headScan{}
	c.lineLen, c.lineDone, c.readErr, c.answered = 0, false, nil, false
	c.phase.Store(phaseHead)
	if c.hasPre {
		c.hasPre = false
		c.head([]byte{c.pre})
	}
}

func (c *httpConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	switch c.phase.Load() {
	case phaseHead:
		if n > 0 {
			c.head(p[:n])
		}
		if err != nil {
			c.readErr = err
		}
	case phaseActive:
		if n == 1 && len(p) == 1 && c.served.Load() != c.mark.Load() {
			c.pre, c.hasPre = p[0], true // net/http's one-byte background read
		}
	}
	return n, err
}

// head takes the next bytes of a request head.
func (c *httpConn) head(p []byte) {
	if !c.lineDone {
		i := bytes.IndexByte(p, '\n')
		end := len(p)
		if i >= 0 {
			end, c.lineDone = i, true
		}
		c.lineLen += copy(c.line[c.lineLen:], p[:end])
		if c.lineLen == len(c.line) {
			c.lineDone = true
		}
	}
	c.scan.feed(p)
}

func (c *httpConn) Write(p []byte) (int, error) {
	if c.phase.Load() == phaseActive && !c.answered && c.served.Load() == c.mark.Load() && bytes.HasPrefix(p, httpPrefix) {
		// No handler ran for this head: net/http is answering it itself,
		// with an error (or, for OPTIONS *, a 200 of its own).
		c.answered = true
		if status, reason := parseAnswer(p); status >= 400 {
			c.t.rejected(c.rejection(status, reason))
		}
	}
	return c.Conn.Write(p)
}

var httpPrefix = []byte("HTTP/1.")

func (c *httpConn) ReadFrom(r io.Reader) (int64, error) {
	if rf, ok := c.Conn.(io.ReaderFrom); ok {
		return rf.ReadFrom(r)
	}
	return copyTo(c.Conn, r)
}

func (c *httpConn) CloseWrite() error { return closeWrite(c.Conn) }

func (c *httpConn) Close() error {
	if c.phase.Load() == phaseHijacked {
		c.t.mu.Lock()
		delete(c.t.hijacked, c)
		c.t.mu.Unlock()
	}
	return c.Conn.Close()
}

// closed reports a head that was started but never finished: the client
// went away or timed out in the middle of its request line or headers.
func (c *httpConn) closed() {
	if c.phase.Load() != phaseActive || c.answered || c.served.Load() != c.mark.Load() || c.readErr == nil {
		return
	}
	var ne net.Error
	if errors.As(c.readErr, &ne) && ne.Timeout() {
		c.t.rejected(c.rejection(http.StatusRequestTimeout, "the request head did not arrive within --client-header-timeout"))
		return
	}
	c.t.rejected(c.rejection(http.StatusBadRequest, "the client closed the connection in the middle of its request head"))
}

func (c *httpConn) rejection(status int, reason string) rejection {
	return rejection{client: c.RemoteAddr().String(), line: string(bytes.TrimRight(c.line[:c.lineLen], "\r")),
		status: status, reason: reason}
}

// parseAnswer reads the status and reason of an answer net/http wrote
// itself: "HTTP/1.1 400 Bad Request: malformed Host header\r\n...".
func parseAnswer(p []byte) (int, string) {
	line, _, _ := bytes.Cut(p, []byte("\r\n"))
	_, rest, _ := bytes.Cut(line, []byte(" "))
	code, reason, _ := bytes.Cut(rest, []byte(" "))
	status, err := strconv.Atoi(string(code))
	if err != nil {
		status = http.StatusBadRequest
	}
	return status, string(reason)
}

// headScan watches the lines of one request head for what net/http accepts
// but a proxy in front could frame differently. It sees the bytes read while
// a head is awaited, up to the head's empty line: a pipelined request that
// arrived in the same read as the one before it is not scanned (net/http's
// own checks still apply to it). A smuggling attempt puts its second request
// after a refused first one, whose connection is then closed.
type headScan struct {
	started bool // past the request line
	midLine bool // inside a line (its start was seen)
	done    bool // the empty line was seen: what follows is body or the next request
	name    [len("transfer-encoding:")]byte
	nameLen int
	naming  bool // collecting the current line's field name
	cl, te  int  // Content-Length and Transfer-Encoding fields
	fold    bool // a line starting with whitespace: obs-fold
}

func (s *headScan) feed(p []byte) {
	for len(p) > 0 && !s.done {
		if s.naming {
			i := 0
			for ; i < len(p) && p[i] != ':' && p[i] != '\n'; i++ {
				if s.nameLen == len(s.name) {
					s.naming = false // longer than any name we look for
					break
				}
				s.name[s.nameLen] = p[i]
				s.nameLen++
			}
			if s.naming && i < len(p) {
				s.naming = false
				if p[i] == ':' {
					s.count(s.name[:s.nameLen])
				}
			}
			p = p[i:]
			continue
		}
		if !s.midLine {
			// p[0] starts a line.
			switch c := p[0]; {
			case !s.started:
			case c == '\r' || c == '\n':
				s.done = true
				return
			case c == ' ' || c == '\t':
				s.fold = true
			default:
				s.naming, s.nameLen = true, 0
			}
			s.midLine = true
			continue
		}
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			return
		}
		p = p[i+1:]
		s.midLine, s.started = false, true
	}
}

// count counts the framing fields among the head's field names, folding
// ASCII case only, as net/http reads them (bytes.EqualFold would also take
// a name with a long s, U+017F, for Transfer-Encoding).
func (s *headScan) count(name []byte) {
	switch {
	case len(name) == len("Content-Length") && httpfield.EqualFold(string(name), "Content-Length"):
		s.cl++
	case len(name) == len("Transfer-Encoding") && httpfield.EqualFold(string(name), "Transfer-Encoding"):
		s.te++
	}
}

// problem says why a head must be refused although net/http accepted it;
// "" when it need not be. http10 says the request is HTTP/1.0.
func (s *headScan) problem(http10 bool) string {
	switch {
	case s.fold:
		return "obsolete line folding (obs-fold) in the request headers"
	case s.cl > 1:
		return "more than one Content-Length"
	case s.cl > 0 && s.te > 0:
		return "both Content-Length and Transfer-Encoding"
	case s.te > 0 && http10:
		return "Transfer-Encoding in an HTTP/1.0 request"
	}
	return ""
}

// listener hands net/http connections: plain ones as accepted; on a TLS
// listener, after the handshake, done concurrently so that a slow client
// cannot hold up the others.
type listener struct {
	net.Listener
	t         *tracker
	tlsConf   *tls.Config // nil: plain
	hsTimeout time.Duration
	log       *slog.Logger
	// lean, on a plain listener, serves connections on the lean HTTP/1.1
	// engine first; nil: net/http serves them all.
	lean     *lean.Engine
	stopping atomic.Bool // stopAccepting was called

	ready chan net.Conn
	errc  chan error
	done  chan struct{}
	once  sync.Once
}

func newListener(ln net.Listener, t *tracker, tlsConf *tls.Config, hsTimeout time.Duration, le *lean.Engine, log *slog.Logger) *listener {
	l := &listener{Listener: ln, t: t, tlsConf: tlsConf, hsTimeout: hsTimeout, log: log, done: make(chan struct{})}
	switch {
	case tlsConf != nil:
		if l.hsTimeout <= 0 {
			l.hsTimeout = 10 * time.Second
		}
		l.ready, l.errc = make(chan net.Conn), make(chan error, 1)
		go l.acceptLoop(l.handshake)
	case le != nil:
		l.lean = le
		l.ready, l.errc = make(chan net.Conn), make(chan error, 1)
		go l.acceptLoop(func(raw *slotConn) { le.Serve(raw, func(c net.Conn) { l.handoff(raw, c) }) })
	}
	return l
}

// handoff gives net/http a connection the lean engine will not serve.
func (l *listener) handoff(raw *slotConn, c net.Conn) {
	select {
	case l.ready <- &httpConn{Conn: c, t: l.t, raw: raw}:
	case <-l.done:
		c.Close()
	}
}

// stopAccepting closes the socket but not the listener: connections
// already accepted (on the lean path, or in a TLS handshake) may still be
// handed to net/http while they finish, and Accept waits for Close rather
// than fail, so that http.Server.Serve goes on until its Shutdown.
func (l *listener) stopAccepting() {
	l.stopping.Store(true)
	l.Listener.Close()
}

func (l *listener) Accept() (net.Conn, error) {
	if l.tlsConf == nil && l.lean == nil {
		raw, err := l.acceptRaw()
		if err != nil {
			if l.stopping.Load() {
				<-l.done
				return nil, net.ErrClosed
			}
			return nil, err
		}
		return &httpConn{Conn: raw, t: l.t, raw: raw}, nil
	}
	select {
	case c := <-l.ready:
		return c, nil
	case err := <-l.errc:
		return nil, err
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *listener) acceptRaw() (*slotConn, error) {
	if err := l.t.acquire(l.done); err != nil {
		return nil, err
	}
	c, err := l.Listener.Accept()
	if err != nil {
		l.t.release()
		return nil, err
	}
	return newSlotConn(c, l.t), nil
}

func (l *listener) Close() error {
	l.once.Do(func() { close(l.done) })
	err := l.Listener.Close()
	if l.stopping.Load() {
		return nil // closed already by stopAccepting
	}
	return err
}

// acceptLoop accepts until the listener closes, serving each connection
// (a TLS handshake, or the lean path) in a goroutine of its own.
func (l *listener) acceptLoop(serve func(*slotConn)) {
	var delay time.Duration
	for {
		raw, err := l.acceptRaw()
		if err != nil {
			select {
			case <-l.done:
				return
			default:
			}
			if l.stopping.Load() {
				return
			}
			if errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) || errors.Is(err, syscall.ENOBUFS) || errors.Is(err, syscall.ENOMEM) {
				// Out of descriptors or memory: wait for some to free up, as
				// http.Server does for its own accepts.
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				l.log.Warn("accept failed; retrying", "error", err, "delay", delay)
				select {
				case <-time.After(delay):
					continue
				case <-l.done:
					return
				}
			}
			l.errc <- err
			return
		}
		delay = 0
		go serve(raw)
	}
}

func (l *listener) handshake(raw *slotConn) {
	tc := tls.Server(raw, l.tlsConf)
	raw.SetDeadline(time.Now().Add(l.hsTimeout))
	if err := tc.Handshake(); err != nil {
		var rhe tls.RecordHeaderError
		if errors.As(err, &rhe) && rhe.Conn != nil && looksLikeHTTP(rhe.RecordHeader[:]) {
			io.WriteString(rhe.Conn, "HTTP/1.0 400 Bad Request\r\n\r\nClient sent an HTTP request to an HTTPS server.\n")
			l.t.rejected(rejection{client: raw.RemoteAddr().String(), status: http.StatusBadRequest,
				reason: "a plain-HTTP request to an HTTPS port", line: string(rhe.RecordHeader[:])})
		} else {
			l.log.Debug("TLS handshake failed", "client", raw.RemoteAddr().String(), "error", err)
		}
		tc.Close()
		return
	}
	raw.SetDeadline(time.Time{})
	if tc.ConnectionState().NegotiatedProtocol == acmeTLSALPN {
		tc.Close() // a CA's TLS-ALPN-01 validation: the handshake was all
		return
	}
	var c net.Conn = tc
	if tc.ConnectionState().NegotiatedProtocol != "h2" {
		c = httpsConn{&httpConn{Conn: tc, t: l.t, raw: raw}}
	} else {
		raw.settle() // HTTP/2's GOAWAY tells the client which streams were taken
	}
	select {
	case l.ready <- c:
	case <-l.done:
		c.Close()
	}
}

// acmeTLSALPN is the ALPN protocol of the ACME TLS-ALPN-01 challenge
// (RFC 8737).
const acmeTLSALPN = "acme-tls/1"

// looksLikeHTTP reports whether the first bytes of a TLS record are really
// an HTTP request.
func looksLikeHTTP(hdr []byte) bool {
	for _, m := range []string{"GET /", "HEAD ", "POST ", "PUT /", "OPTIO", "DELET", "PATCH", "CONNE"} {
		if string(hdr) == m {
			return true
		}
	}
	return false
}
