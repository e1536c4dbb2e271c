package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/http3"
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
	hs    *http3.Server
	conns []*net.UDPConn
	log   *slog.Logger

	mu    sync.Mutex
	peers map[*quic.Conn]*h3Conn // open client connections
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
	listen := c.ListenPacket
	if listen == nil {
		listen = net.ListenPacket
	}
	conf := c.HTTP3
	idle := conf.IdleTimeout
	if idle == 0 {
		idle = c.IdleTimeout
	}
	streams := conf.MaxStreams
	if streams <= 0 {
		streams = DefaultHTTP3MaxStreams
	}
	f := &h3Front{log: s.log, peers: map[*quic.Conn]*h3Conn{}}
	f.hs = &http3.Server{
		Handler:           f.track(earlyData(h)),
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
		},
		ConnContext: func(ctx context.Context, qc *quic.Conn) context.Context {
			f.mu.Lock()
			f.peers[qc] = &h3Conn{last: time.Now()}
			f.mu.Unlock()
			context.AfterFunc(qc.Context(), func() {
				f.mu.Lock()
				delete(f.peers, qc)
				f.mu.Unlock()
			})
			return context.WithValue(ctx, quicConnKey{}, qc)
		},
		Logger: s.log,
	}
	// The certificates are the TCP listeners' (files reloaded, or
	// automatic HTTPS); ALPN is h3 alone. A TLS-ALPN-01 challenge comes
	// over TCP only.
	tc := tlsConf.Clone()
	tc.MinVersion = tls.VersionTLS13 // QUIC is TLS 1.3 only
	f.hs.TLSConfig = tc
	port := 0
	for _, l := range s.lns {
		if !strings.HasPrefix(l.url, "https://") {
			continue
		}
		addr := l.ln.Addr().String()
		pc, err := listen("udp", addr)
		if err != nil {
			f.close()
			return fmt.Errorf("listen for HTTP/3 on UDP %s: %w", addr, err)
		}
		uc, ok := pc.(*net.UDPConn)
		if !ok {
			pc.Close()
			f.close()
			return fmt.Errorf("listen for HTTP/3 on %s: not a UDP socket", addr)
		}
		f.conns = append(f.conns, uc)
		port = uc.LocalAddr().(*net.UDPAddr).Port
	}
	if len(f.conns) == 0 {
		return nil
	}
	f.checkBuffers()
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
	errc := make(chan error, len(f.conns))
	for _, c := range f.conns {
		go func() { errc <- f.hs.Serve(c) }()
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
// for the client: after a binary upgrade the new Ferry reads the same UDP
// socket, and may take (and drop) the client's own close.
func (f *h3Front) shutdown(ctx context.Context) error {
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

func (f *h3Front) close() {
	for _, c := range f.conns {
		c.Close()
	}
}

// files are copies of the UDP sockets, for a binary upgrade.
func (f *h3Front) files() ([]*os.File, error) {
	var out []*os.File
	for _, c := range f.conns {
		fl, err := c.File()
		if err != nil {
			for _, o := range out {
				o.Close()
			}
			return nil, fmt.Errorf("hand over UDP %s: %w", c.LocalAddr(), err)
		}
		out = append(out, fl)
	}
	return out, nil
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
