package server

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/http3"
	"golang.org/x/net/ipv4"
)

// HTTP3Config is HTTP/3 over QUIC on the UDP port of every TLS listener,
// advertised to HTTP/1.1 and HTTP/2 clients by Alt-Svc.
type HTTP3Config struct {
	// Allow0RTT accepts requests sent in 0-RTT early data. Early data can
	// be replayed by an attacker, so it is off by default; when on, such
	// requests reach the app with "Early-Data: 1" (RFC 8470), so that it
	// can answer 425 to what must not run twice.
	Allow0RTT bool
	// MaxStreams bounds the requests a client may have open at once on
	// one connection. 0: DefaultHTTP3MaxStreams.
	MaxStreams int64
	// IdleTimeout closes a connection idle this long. 0: Config's
	// IdleTimeout, else quic-go's 30 seconds.
	IdleTimeout time.Duration
}

// DefaultHTTP3MaxStreams is HTTP/3's concurrent requests per connection,
// as HTTP/2's default in net/http (250) is for one TCP connection; 100 is
// quic-go's and most browsers' expectation.
const DefaultHTTP3MaxStreams = 100

// altSvcMaxAge is how long clients remember that HTTP/3 is offered: a day,
// so that turning it off takes effect within one.
const altSvcMaxAge = 86400

// udpBufferSize is the socket buffer quic-go asks for (7 MiB); below it, a
// busy server drops packets.
const udpBufferSize = 7 << 20

// h3Front serves HTTP/3 on UDP sockets beside the TLS listeners.
type h3Front struct {
	hs      *http3.Server
	conns   []*net.UDPConn
	sockets []*h3Socket // conns as quic-go reads them
	log     *slog.Logger

	mu    sync.Mutex
	peers map[*quic.Conn]*h3Conn // open client connections

	// quic-go's transport and listener on each socket: Ferry's own, so
	// that the connection IDs are steer's.
	transports []*quic.Transport
	listeners  []*quic.EarlyListener
	steer      *h3Steer
	// handshakeTimeout bounds a handshake (the header timeout).
	handshakeTimeout time.Duration

	// handedOver: the sockets went to a new Ferry (files).
	handedOver atomic.Bool
	// relayed counts the packets relayed to a new Ferry (h3handover.go).
	relayed atomic.Uint64
}

// h3Conn is what shutdown needs to know of a client connection: its
// requests in flight and when the last one ended.
type h3Conn struct {
	active int
	last   time.Time
}

// listenH3 opens a UDP socket on the port of each TLS listener, and makes
// s.app advertise them.
func (s *Server) listenH3(c Config, h *Handler, tlsConf *tls.Config) error {
	f := newH3Front(c, h, s.log)
	port := 0
	for _, l := range s.lns {
		if !strings.HasPrefix(l.url, "https://") {
			continue
		}
		sock, err := f.openSocket(c, l.ln.Addr().String())
		if err != nil {
			f.close()
			return err
		}
		port = sock.LocalAddr().(*net.UDPAddr).Port
	}
	if len(f.conns) == 0 {
		return nil
	}
	f.checkBuffers()
	// The certificates are the TCP listeners' (files reloaded, or
	// automatic HTTPS); ALPN is h3 alone. A TLS-ALPN-01 challenge comes
	// over TCP only.
	tc := http3.ConfigureTLSConfig(tlsConf)
	tc.MinVersion = tls.VersionTLS13 // QUIC is TLS 1.3 only
	bindEarlyDataToSettings(tc, h3SettingsID(c.MaxHeaderBytes))
	for _, sock := range f.sockets {
		// No StatelessResetKey: a packet of a connection this Ferry does
		// not know may be a previous Ferry's, never to be reset.
		tr := &quic.Transport{Conn: sock, ConnectionIDGenerator: f.steer}
		ln, err := tr.ListenEarly(tc, f.hs.QUICConfig)
		if err != nil {
			f.close()
			return fmt.Errorf("listen for HTTP/3 on %s: %w", sock.LocalAddr(), err)
		}
		f.transports = append(f.transports, tr)
		f.listeners = append(f.listeners, ln)
	}
	s.h3 = f
	altSvc := []string{`h3=":` + strconv.Itoa(port) + `"; ma=` + strconv.Itoa(altSvcMaxAge)}
	next := s.app.Handler
	s.app.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.TLS != nil {
			w.Header()["Alt-Svc"] = altSvc
		}
		next.ServeHTTP(w, r)
	})
	return nil
}

// newH3Front is HTTP/3's server, before any socket: quic-go's http3.Server
// with Ferry's limits, and the connection tracking for --max-connections
// and the drain.
func newH3Front(c Config, h *Handler, log *slog.Logger) *h3Front {
	conf := c.HTTP3
	idle := conf.IdleTimeout
	if idle == 0 {
		idle = c.IdleTimeout
	}
	streams := conf.MaxStreams
	if streams <= 0 {
		streams = DefaultHTTP3MaxStreams
	}
	f := &h3Front{log: log, peers: map[*quic.Conn]*h3Conn{}, steer: newH3Steer(log), handshakeTimeout: c.HeaderTimeout}
	if f.handshakeTimeout <= 0 {
		f.handshakeTimeout = defaultHandshakeTimeout
	}
	f.hs = &http3.Server{
		Handler:           f.track(earlyData(knownEmpty(h, c.HeaderTimeout))),
		MaxHeaderBytes:    c.MaxHeaderBytes,
		ReadHeaderTimeout: c.HeaderTimeout,
		IdleTimeout:       idle,
		QUICConfig: &quic.Config{
			Allow0RTT:          conf.Allow0RTT,
			MaxIncomingStreams: streams,
			MaxIdleTimeout:     idle,
			// The handshake, like TLS's on TCP, is bounded by the header
			// timeout.
			HandshakeIdleTimeout: c.HeaderTimeout,
			Tracer:               f.steer.tracer,
		},
		ConnContext: func(ctx context.Context, qc *quic.Conn) context.Context {
			return f.admit(ctx, qc, c.MaxConnections)
		},
		Logger: log,
	}
	return f
}

// admit records a new connection, or closes it past limit
// (--max-connections, counted apart from TCP's: the client tries again
// later, or over TCP).
func (f *h3Front) admit(ctx context.Context, qc *quic.Conn, limit int) context.Context {
	f.mu.Lock()
	full := limit > 0 && len(f.peers) >= limit
	if !full {
		f.peers[qc] = &h3Conn{last: time.Now()}
	}
	f.mu.Unlock()
	if full {
		qc.CloseWithError(quic.ApplicationErrorCode(http3.ErrCodeExcessiveLoad), "too many connections")
		return ctx
	}
	context.AfterFunc(qc.Context(), func() {
		f.mu.Lock()
		delete(f.peers, qc)
		f.mu.Unlock()
	})
	return context.WithValue(ctx, quicConnKey{}, qc)
}

// openSocket opens (or takes, inherited) the UDP socket on addr, with the
// relay a previous Ferry may have handed over beside it.
func (f *h3Front) openSocket(c Config, addr string) (*h3Socket, error) {
	listen := c.ListenPacket
	if listen == nil {
		listen = net.ListenPacket
	}
	pc, err := listen("udp", addr)
	if err != nil {
		return nil, &HTTP3ListenError{Addr: addr, Err: err}
	}
	var relay *net.UnixConn
	if r, ok := pc.(interface {
		HandedOver() (net.PacketConn, *os.File)
	}); ok {
		// A previous Ferry still reads this socket and relays to this
		// one what is not its own (h3handover.go).
		var rf *os.File
		pc, rf = r.HandedOver()
		if relay, err = relayConn(rf); err != nil {
			pc.Close()
			return nil, fmt.Errorf("listen for HTTP/3 on %s: the handed-over relay: %w", addr, err)
		}
	}
	uc, ok := pc.(*net.UDPConn)
	if !ok {
		pc.Close()
		if relay != nil {
			relay.Close()
		}
		return nil, fmt.Errorf("listen for HTTP/3 on %s: not a UDP socket", addr)
	}
	sock := &h3Socket{UDPConn: uc, batch: ipv4.NewPacketConn(uc), steer: f.steer, in: relay, relayed: &f.relayed}
	f.conns = append(f.conns, uc)
	f.sockets = append(f.sockets, sock)
	return sock, nil
}

// HTTP3ListenError is a failure to open HTTP/3's UDP socket beside a TCP
// listener that opened: its own message, so that it is not taken for the
// TCP port's.
type HTTP3ListenError struct {
	Addr string
	Err  error
}

func (e *HTTP3ListenError) Error() string {
	return fmt.Sprintf("HTTP/3: cannot listen on UDP %s: %v; free that UDP port, or serve HTTPS without HTTP/3 with --http3=false", e.Addr, e.Err)
}

func (e *HTTP3ListenError) Unwrap() error { return e.Err }

type quicConnKey struct{}

// earlyData marks a request that came in 0-RTT data, before the handshake
// completed (RFC 8470 section 5.1), whatever the client claimed.
func earlyData(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		delete(r.Header, "Early-Data")
		if qc, ok := r.Context().Value(quicConnKey{}).(*quic.Conn); ok {
			select {
			case <-qc.HandshakeComplete():
			default:
				r.Header["Early-Data"] = []string{"1"}
			}
		}
		next.ServeHTTP(w, r)
	})
}

// knownEmpty gives a GET or HEAD without Content-Length a known empty body
// when the client ended its stream with the headers, as browsers do: HTTP/3
// has no other way to say "no body", and the request path (the turbocache
// above all) treats an unknown length as a body. It waits at most timeout
// for the end of the stream.
func knownEmpty(next http.Handler, timeout time.Duration) http.Handler {
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ContentLength < 0 && (r.Method == http.MethodGet || r.Method == http.MethodHead) && r.Body != nil {
			rc := http.NewResponseController(w)
			rc.SetReadDeadline(time.Now().Add(timeout))
			var b [1]byte
			n, err := io.ReadFull(r.Body, b[:])
			rc.SetReadDeadline(time.Time{})
			switch {
			case n == 0 && err == io.EOF:
				r.ContentLength, r.Body = 0, http.NoBody
			case n == 1:
				r.Body = struct {
					io.Reader
					io.Closer
				}{io.MultiReader(bytes.NewReader(b[:]), r.Body), r.Body}
			default:
				http.Error(w, "reading the request: "+err.Error(), http.StatusBadRequest)
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

var bufferWarning sync.Once

// checkBuffers raises the UDP socket buffers to what QUIC needs, and says
// once (in Ferry's log rather than quic-go's on standard error) how to let
// the kernel allow it.
func (f *h3Front) checkBuffers() {
	// quic-go tries too; its own warning would repeat ours.
	os.Setenv("QUIC_GO_DISABLE_RECEIVE_BUFFER_WARNING", "true")
	for _, c := range f.conns {
		c.SetReadBuffer(udpBufferSize)
		c.SetWriteBuffer(udpBufferSize)
		rc, err := c.SyscallConn()
		if err != nil {
			continue
		}
		var rcv, snd int
		rc.Control(func(fd uintptr) {
			rcv, _ = syscall.GetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF)
			snd, _ = syscall.GetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_SNDBUF)
		})
		// Linux reports twice what was set (its bookkeeping overhead).
		if rcv < udpBufferSize || snd < udpBufferSize {
			bufferWarning.Do(func() {
				f.log.Warn("HTTP/3: the kernel limits UDP socket buffers below what QUIC needs under load; raise them with sysctl -w net.core.rmem_max=7500000 net.core.wmem_max=7500000 (or run Ferry with CAP_NET_ADMIN)",
					"receive_buffer", rcv, "send_buffer", snd, "wanted", udpBufferSize)
			})
			return
		}
	}
}

// serve answers HTTP/3 on every UDP socket until shutdown.
func (f *h3Front) serve() error {
	errc := make(chan error, len(f.listeners))
	for _, ln := range f.listeners {
		go func() { errc <- f.hs.ServeListener(ln) }()
	}
	var first error
	for range f.conns {
		if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) && first == nil {
			first = fmt.Errorf("HTTP/3: %w", err)
		}
	}
	return first
}

// track counts each connection's requests in flight, for shutdown.
func (f *h3Front) track(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		qc, _ := r.Context().Value(quicConnKey{}).(*quic.Conn)
		f.mu.Lock()
		pc := f.peers[qc]
		if pc != nil {
			pc.active++
		}
		f.mu.Unlock()
		defer func() {
			if pc != nil {
				f.mu.Lock()
				pc.active--
				pc.last = time.Now()
				f.mu.Unlock()
			}
		}()
		next.ServeHTTP(w, r)
	})
}

// drainGrace is how long shutdown leaves a connection without requests
// open after GOAWAY, for the client to close it and for the last
// response's data to arrive; then the server closes it.
const drainGrace = 2 * time.Second

// shutdown sends GOAWAY, waits for the requests in flight until ctx ends,
// then closes the connections and the sockets. Connections left without
// requests are closed by the server after drainGrace rather than waiting
// for the client: the sooner this Ferry is done, the sooner a new one
// reads the sockets itself.
func (f *h3Front) shutdown(ctx context.Context) error {
	if f.handedOver.Load() {
		// The new Ferry serves: from now on this one relays to it every
		// packet that is not of its own connections (h3handover.go).
		// Handshakes already under way here finish and serve their first
		// requests before GOAWAY.
		f.steer.relay.Store(true)
		f.awaitHandshakes(ctx)
	}
	// Closing a listener refuses the handshakes still under way on it;
	// the connections it accepted stay, for GOAWAY.
	for _, ln := range f.listeners {
		ln.Close()
	}
	done := make(chan error, 1)
	go func() { done <- f.hs.Shutdown(ctx) }()
	tick := time.NewTicker(drainGrace / 4)
	defer tick.Stop()
	for {
		select {
		case err := <-done:
			f.close()
			return err
		case now := <-tick.C:
			f.mu.Lock()
			for qc, pc := range f.peers {
				if pc.active == 0 && now.Sub(pc.last) >= drainGrace {
					go qc.CloseWithError(quic.ApplicationErrorCode(http3.ErrCodeNoError), "server shutting down")
				}
			}
			f.mu.Unlock()
		}
	}
}

// awaitHandshakes waits until no handshake is under way, those being
// connections opened (steer) but not yet accepted (peers): at most
// handoverHandshakeWait, or a handshake's timeout if shorter, for a
// client that never finishes its handshake holds GOAWAY back meanwhile.
func (f *h3Front) awaitHandshakes(ctx context.Context) {
	deadline := time.NewTimer(min(f.handshakeTimeout, handoverHandshakeWait))
	defer deadline.Stop()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		f.mu.Lock()
		accepted := len(f.peers)
		f.mu.Unlock()
		// Handshakes under way, and connections read but not created yet.
		if f.steer.connections()+f.steer.pending() <= accepted {
			return
		}
		select {
		case <-tick.C:
		case <-deadline.C:
			return
		case <-ctx.Done():
			return
		}
	}
}

// close stops everything; a relay to a new Ferry closes last, once
// nothing reads the sockets here any more (Transport.Close waits for its
// reader), so that the new one then reads them itself.
func (f *h3Front) close() {
	for _, ln := range f.listeners {
		ln.Close()
	}
	for _, sock := range f.sockets {
		sock.closeIn() // a reader waiting on a relay from an older Ferry
	}
	for _, tr := range f.transports {
		tr.Close()
	}
	for _, c := range f.conns {
		c.Close()
	}
	for _, sock := range f.sockets {
		sock.closeOut()
	}
}

// handoverHandshakeWait bounds how long a Ferry that handed its sockets
// over waits for its handshakes under way before it sends GOAWAY.
const handoverHandshakeWait = 3 * time.Second

// defaultHandshakeTimeout bounds a QUIC handshake without a header
// timeout, as quic-go's own default does.
const defaultHandshakeTimeout = 5 * time.Second

// files are copies of the UDP sockets for a binary upgrade, each followed
// by the new Ferry's end of its relay (h3handover.go).
func (f *h3Front) files() ([]*os.File, error) {
	var out []*os.File
	fail := func(err error) ([]*os.File, error) {
		for _, o := range out {
			o.Close()
		}
		return nil, err
	}
	for _, sock := range f.sockets {
		fl, err := sock.File()
		if err != nil {
			return fail(fmt.Errorf("hand over UDP %s: %w", sock.LocalAddr(), err))
		}
		out = append(out, fl)
		theirs, err := sock.newRelay()
		if err != nil {
			return fail(fmt.Errorf("hand over UDP %s: %w", sock.LocalAddr(), err))
		}
		out = append(out, theirs)
	}
	f.handedOver.Store(true)
	f.steer.watching.Store(true)
	return out, nil
}

// HTTP3Stats are HTTP/3's figures for the metrics: connections open
// (handshakes included), and packets relayed to a new Ferry after an
// upgrade (h3handover.go). Zero without HTTP/3.
func (s *Server) HTTP3Stats() (connections int, relayed uint64) {
	if s.h3 == nil {
		return 0, 0
	}
	return s.h3.steer.connections(), s.h3.relayed.Load()
}

// HTTP3Addrs are the UDP addresses HTTP/3 is served on; none without it.
func (s *Server) HTTP3Addrs() []string {
	if s.h3 == nil {
		return nil
	}
	var out []string
	for _, c := range s.h3.conns {
		out = append(out, c.LocalAddr().String())
	}
	return out
}
