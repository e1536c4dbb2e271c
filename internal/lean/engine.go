// Package lean is Ferry's lean HTTP/1.1 engine for plain listeners (TCP
// and Unix sockets).
//
// Every connection of a plain listener starts here rather than in
// net/http. A plain GET or HEAD HTTP/1.1 head (no body, no Expect, no
// Upgrade, well-formed) is parsed here and served by the handler (the same
// one net/http calls) with this package's ResponseWriter: a small response
// goes out in one write, head and body. That spares most of what net/http
// costs per request (its allocations, buffered writer and background
// read), which is most of what a cache hit or a hot static file costs, and
// much of the front's share of an app's hello world.
//
// Anything else (a body, HTTP/1.0, a malformed or very long head, …) is
// handed, with the bytes already read, to a handoff function (net/http),
// which serves the connection from then on with all its checks and
// answers: this engine takes only what it is sure of, and fuzz targets
// hold it to reading those heads exactly as net/http would.
//
// While the handler waits for something slow, it may ask the
// ResponseWriter to watch the connection (WatchClient): a client that
// leaves then cancels the request's context.
package lean

import (
	"bufio"
	"context"
	"errors"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"
)

// bufSize is the connection's read buffer: a head that does not fit goes
// to net/http (which allows up to --max-header-bytes).
const bufSize = 4 << 10

// Options tune an Engine. Zero values are usable.
type Options struct {
	// HeaderTimeout bounds receiving a request head, from its first
	// byte; IdleTimeout bounds waiting for the next one. 0 = no limit.
	HeaderTimeout, IdleTimeout time.Duration
	// Log receives the handler's panics. Default: slog.Default().
	Log *slog.Logger
	// Rejected, if set, is told of a request head that never arrived
	// whole: the client timed out or left in the middle of it.
	Rejected func(Rejection)
	// FirstRequest, if set, is called with the connection Serve was given
	// when its first request head has been read here, before it is
	// answered (a shutdown waits for connections to get that far).
	FirstRequest func(net.Conn)
	// WatchDelay is how long a handler waits (WatchClient) before the
	// connection is watched for a client that leaves. 0 or less:
	// DefaultWatchDelay.
	WatchDelay time.Duration
}

// Rejection is a request head that never arrived whole.
type Rejection struct {
	Client string // the client's address
	Line   string // the start of the request line, as received
	Status int    // 408 for a timeout, 400 for a client that left
	Reason string
}

// Engine serves the lean path's connections for one handler. Its methods
// are safe for concurrent use.
type Engine struct {
	h    http.Handler
	opts Options

	// answered and handedOver count requests answered here and
	// connections handed to net/http.
	answered   counter
	handedOver atomic.Uint64

	closing  atomic.Bool // set under mu, read without it
	draining atomic.Bool // Drain was called: every response closes its connection

	waits     waits // handlers' waits, for WatchClient
	sweepOnce sync.Once

	mu    sync.Mutex
	conns map[*conn]struct{}
	wg    sync.WaitGroup
}

// New returns an engine serving h.
func New(h http.Handler, o Options) *Engine {
	if o.Log == nil {
		o.Log = slog.Default()
	}
	if o.WatchDelay <= 0 {
		o.WatchDelay = DefaultWatchDelay // the sweeper ticks every half delay
	}
	e := &Engine{h: h, opts: o, conns: map[*conn]struct{}{}}
	e.waits.init(o.WatchDelay)
	return e
}

// Stats are the engine's counters: requests it answered, and connections
// it handed over.
func (e *Engine) Stats() (requests, handoffs uint64) {
	return e.answered.load(), e.handedOver.Load()
}

func (e *Engine) add(c *conn) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closing.Load() {
		return false
	}
	e.conns[c] = struct{}{}
	e.wg.Add(1)
	return true
}

func (e *Engine) remove(c *conn) {
	e.mu.Lock()
	delete(e.conns, c)
	e.mu.Unlock()
	e.wg.Done()
}

// Drain makes every response from now on close its connection
// (Connection: close), before a Shutdown: a connection that has not sent
// its first request yet is still answered, once.
func (e *Engine) Drain() { e.draining.Store(true) }

// Shutdown ends the engine's connections as net/http's Shutdown ends its
// own: idle ones at once, busy ones after their response. It waits for
// them (a busy one may still hand its request over, so the handoff's
// server must still be serving) until ctx ends, and then closes what is
// left. Serve refuses connections from then on.
func (e *Engine) Shutdown(ctx context.Context) {
	e.mu.Lock()
	if !e.closing.Load() {
		close(e.waits.closed) // the sweeper, if started, ends
	}
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

// counter is a count kept in stripes, each on its own cache line, one
// picked at random per add: one atomic shared by the requests on both
// cores would move its cache line between them on every request.
type counter [8]struct {
	n atomic.Uint64
	_ [56]byte
}

func (c *counter) add() { c[rand.Uint32()%uint32(len(c))].n.Add(1) }

func (c *counter) load() (n uint64) {
	for i := range c {
		n += c[i].n.Load()
	}
	return n
}

// conn is one connection on the lean path.
type conn struct {
	e      *Engine
	raw    net.Conn
	br     *bufio.Reader
	remote string
	ctx    context.Context
	cancel context.CancelFunc
	idle   atomic.Bool // waiting for a request head: shutdown may close it
	first  bool        // its first request head was read
	// A byte the client-close watcher read: the start of the next request.
	pre    [1]byte
	hasPre bool
	watch  watcher
	// stopWatch ends a wait WatchClient started, made once per
	// connection rather than per request.
	stopWatch func()
	resp      response
	// tmpl is the request every request of the connection is a copy of:
	// it carries the connection's context, which has no setter.
	tmpl *http.Request
}

// Read is what the read buffer reads: the watcher's byte, if it took one,
// then the connection.
func (c *conn) Read(p []byte) (int, error) {
	if c.hasPre && len(p) > 0 {
		c.hasPre = false
		p[0] = c.pre[0]
		return 1, nil
	}
	return c.raw.Read(p)
}

// wake closes an idle connection, and makes a busy one close after its
// response.
func (c *conn) wake() {
	if c.idle.Load() {
		c.raw.SetReadDeadline(aLongTimeAgo)
	}
}

var aLongTimeAgo = time.Unix(1, 0)

var readers = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, bufSize) }}

// Serve answers requests on raw until one must go to net/http (handoff is
// then called with the connection, which reads first every byte read from
// it that was not answered) or the connection ends; it closes raw unless
// it hands it over. The request's context is the connection's: it ends
// when the client leaves (see WatchClient) or the connection ends.
func (e *Engine) Serve(raw net.Conn, handoff func(net.Conn)) {
	c := &conn{e: e, raw: raw, remote: raw.RemoteAddr().String()}
	if !e.add(c) {
		raw.Close()
		return
	}
	defer e.remove(c)
	c.br = readers.Get().(*bufio.Reader)
	c.br.Reset(c)
	c.ctx, c.cancel = context.WithCancel(context.Background())
	c.tmpl = new(http.Request).WithContext(c.ctx)
	c.resp.c = c
	c.watch.stripe = e.waits.stripeFor()
	c.stopWatch = func() { e.waits.stop(c) }
	defer func() {
		c.cancel()
		if c.br != nil {
			c.br.Reset(nil)
			readers.Put(c.br)
		}
	}()
	for {
		if e.closing.Load() {
			raw.Close()
			return
		}
		r, n, v := c.readHead()
		switch {
		case v == declined:
			c.handoff(handoff)
			return
		case r == nil:
			raw.Close()
			return
		}
		if !c.first {
			c.first = true
			if e.opts.FirstRequest != nil {
				e.opts.FirstRequest(raw)
			}
		}
		if !c.answer(r, n) {
			raw.Close()
			return
		}
	}
}

// handoff gives the connection to net/http with the bytes it has not
// answered yet.
func (c *conn) handoff(handoff func(net.Conn)) {
	c.e.handedOver.Add(1)
	c.raw.SetReadDeadline(time.Time{})
	var pending []byte
	if c.hasPre { // what the read buffer would have read first
		pending = append(pending, c.pre[0])
	}
	if n := c.br.Buffered(); n > 0 {
		b, _ := c.br.Peek(n)
		pending = append(pending, b...)
	}
	c.br.Reset(nil)
	readers.Put(c.br)
	c.br = nil
	handoff(&replayConn{Conn: c.raw, pending: pending})
}

// readHead waits for the next request head and parses it, still in the
// read buffer (nothing is consumed until it is answered): a request this
// engine takes, of n bytes; declined: what arrived must go to net/http;
// nil otherwise: the connection ends.
func (c *conn) readHead() (r *http.Request, n int, v verdict) {
	e := c.e
	if c.br.Buffered() == 0 {
		// Between requests: the idle timeout, then the header timeout from
		// the first byte, as net/http does.
		c.idle.Store(true)
		if e.closing.Load() {
			return nil, 0, more
		}
		if e.opts.IdleTimeout > 0 {
			c.raw.SetReadDeadline(time.Now().Add(e.opts.IdleTimeout))
		} else if e.opts.HeaderTimeout > 0 {
			c.raw.SetReadDeadline(time.Time{})
		}
		_, err := c.br.Peek(1)
		c.idle.Store(false)
		if err != nil {
			return nil, 0, more
		}
	}
	if e.opts.HeaderTimeout > 0 {
		c.raw.SetReadDeadline(time.Now().Add(e.opts.HeaderTimeout))
	}
	for {
		buf, _ := c.br.Peek(c.br.Buffered())
		r, n, v := parseHead(buf, c.tmpl, c.remote)
		if v != more {
			return r, n, v
		}
		if len(buf) == bufSize {
			return nil, 0, declined // longer than this engine takes
		}
		if _, err := c.br.Peek(len(buf) + 1); err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() && !e.closing.Load() {
				c.reject(buf, http.StatusRequestTimeout, "the request head did not arrive within --client-header-timeout")
			} else if err == io.EOF || !e.closing.Load() {
				c.reject(buf, http.StatusBadRequest, "the client closed the connection in the middle of its request head")
			}
			return nil, 0, more
		}
	}
}

func (c *conn) reject(buf []byte, status int, reason string) {
	if c.e.opts.Rejected != nil {
		c.e.opts.Rejected(Rejection{Client: c.remote, Line: firstLine(buf), Status: status, Reason: reason})
	}
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

// answer runs the handler on r, whose head is the next n buffered bytes,
// and reports whether the connection may serve another request.
func (c *conn) answer(r *http.Request, n int) (keep bool) {
	c.br.Discard(n)
	w := &c.resp
	w.reset(r)
	if !c.run(w, r) {
		return false
	}
	c.e.answered.add()
	if c.ctx.Err() != nil {
		return false // the client left: nothing to answer
	}
	// Draining is not looked at again here: a response whose head went out
	// without Connection: close promised the client one more request, and
	// closing now would reset it (that next response says close).
	return !w.finish() && !r.Close && !c.e.closing.Load()
}

// run calls the handler, as net/http would: a panic ends the connection
// and is logged, unless it is http.ErrAbortHandler.
func (c *conn) run(w *response, r *http.Request) (ok bool) {
	defer func() {
		if p := recover(); p != nil {
			if p != http.ErrAbortHandler {
				c.e.opts.Log.Error("panic serving a request", "client", c.remote, "panic", p, "stack", string(debug.Stack()))
			}
			ok = false
		}
	}()
	c.e.h.ServeHTTP(w, r)
	return true
}

// replayConn is a connection handed over: it reads first the bytes the
// engine had read but not answered.
type replayConn struct {
	net.Conn
	pending []byte
}

func (c *replayConn) Read(p []byte) (int, error) {
	if len(c.pending) > 0 {
		n := copy(p, c.pending)
		c.pending = c.pending[n:]
		return n, nil
	}
	return c.Conn.Read(p)
}

// ReadFrom keeps sendfile and splice of the connection beneath.
func (c *replayConn) ReadFrom(r io.Reader) (int64, error) {
	if rf, ok := c.Conn.(io.ReaderFrom); ok {
		return rf.ReadFrom(r)
	}
	return copyTo(c.Conn, r)
}

// CloseWrite half-closes the connection beneath, or closes it.
func (c *replayConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return c.Conn.Close()
}

var copyBufs = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

func copyTo(w io.Writer, r io.Reader) (int64, error) {
	bp := copyBufs.Get().(*[]byte)
	n, err := io.CopyBuffer(writerOnly{w}, r, *bp)
	copyBufs.Put(bp)
	return n, err
}

// writerOnly hides ReadFrom, so that io.CopyBuffer does not call it back.
type writerOnly struct{ io.Writer }
