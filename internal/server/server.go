// Package server owns the HTTP front: the listeners (TCP, TLS with HTTP/2,
// Unix socket), connection limits and timeouts, the request path from an
// accepted request to a response (static files, the cache, body buffering,
// checkout, forwarding, compression), error pages, the access log, and
// graceful shutdown. It does not spawn or choose processes itself, and it
// knows nothing of flags: core maps the configuration onto Config and
// Options.
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
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/ferry-server/ferry/internal/lean"
)

// Config says where the front listens and what a connection may do before
// the request path sees a request.
type Config struct {
	// Addr is the TCP listener's host:port; "" for none.
	Addr string
	// TLS makes Addr serve HTTPS, or SSLAddr when that is set; nil: plain
	// HTTP only.
	TLS *TLSConfig
	// SSLAddr is a second TCP listener, for HTTPS beside plain HTTP on Addr.
	SSLAddr string
	// Redirect answers every request on plain Addr with a redirect to the
	// same URL on SSLAddr.
	Redirect bool
	// Socket is a Unix socket listener (plain HTTP), created with
	// SocketMode permissions; "" for none.
	Socket     string
	SocketMode os.FileMode
	// SocketGID, when not 0, is the socket's group (--socket-group: the
	// web server's, so that SocketMode 0660 lets it connect).
	SocketGID int
	// Backlog is every listener's listen backlog; 0: the system's.
	Backlog int
	// MaxConnections bounds the client connections open at once; past it,
	// accepting pauses. 0 = no limit.
	MaxConnections int
	// HeaderTimeout bounds receiving a request line and headers (and the
	// TLS handshake); IdleTimeout closes kept-alive connections idle this
	// long. 0 = no limit.
	HeaderTimeout, IdleTimeout time.Duration
	// MaxHeaderBytes bounds a request line and headers (431 past it).
	// 0: net/http's 1 MiB.
	MaxHeaderBytes int
	// WriteTimeout closes an HTTP/2 connection that takes no byte for this
	// long (each response has its own deadline too: Options.WriteTimeout).
	// 0 = no limit.
	WriteTimeout time.Duration
	// Lean serves plain GET and HEAD requests on plain (TCP and Unix)
	// listeners without net/http: the lean HTTP/1.1 engine (internal/lean).
	Lean bool
	// HTTPChallenge, if set, wraps what plain HTTP on Addr serves beside
	// HTTPS on SSLAddr (the redirect, or the app): automatic HTTPS answers
	// the CA's HTTP-01 requests there. That listener then has no lean path.
	HTTPChallenge func(http.Handler) http.Handler
	// FirstRequestGrace is how long Shutdown, having stopped accepting,
	// waits for connections accepted just before to send their first
	// request (answered, with Connection: close) before it closes those
	// that have not; within Shutdown's context. 0: none, they are closed.
	FirstRequestGrace time.Duration
	// Listen opens a listener. Default: net.Listen. A caller that inherits
	// sockets (systemd socket activation, a binary upgrade) hands them over
	// here.
	Listen func(network, address string) (net.Listener, error)
	// HTTP3, with TLS, serves HTTP/3 on the UDP port of each HTTPS
	// listener (h3.go); nil: none.
	HTTP3 *HTTP3Config
	// ListenPacket opens HTTP/3's UDP sockets. Default: net.ListenPacket.
	ListenPacket func(network, address string) (net.PacketConn, error)
}

// TLSConfig is HTTPS: a certificate, the oldest version accepted, HTTP/2.
type TLSConfig struct {
	// CertFile and KeyFile are PEM files, read again when they change.
	CertFile, KeyFile string
	// GetCertificate, if set, chooses the certificate instead of the files
	// (automatic HTTPS), and the ACME TLS-ALPN-01 protocol is offered:
	// such a connection ends after its handshake.
	GetCertificate func(*tls.ClientHelloInfo) (*tls.Certificate, error)
	// MinVersion is tls.VersionTLS12 (default) or tls.VersionTLS13.
	MinVersion uint16
	// HTTP2 offers "h2" by ALPN besides "http/1.1".
	HTTP2 bool
}

// Server is the HTTP front on its listeners.
type Server struct {
	app      *http.Server // the request path
	redirect *http.Server // plain HTTP beside HTTPS when not s.app's: the redirect, or the ACME hook; else nil
	lns      []served
	lean     *lean.Engine // nil: no lean path
	h3       *h3Front     // nil: no HTTP/3
	t        *tracker
	log      *slog.Logger
	grace    time.Duration // Config.FirstRequestGrace
}

type served struct {
	ln  *listener
	hs  *http.Server
	url string // http://127.0.0.1:3000, https://…, unix:/path
}

// Listen opens every listener at once, so that a taken port or a bad
// certificate is an error before any app starts: the TLS configuration,
// net/http's servers and the lean engine, then the listeners planListeners
// decides on, then HTTP/3 beside the HTTPS ones.
func Listen(c Config, h *Handler, log *slog.Logger) (*Server, error) {
	if c.Listen == nil {
		c.Listen = net.Listen
	}
	var tlsConf *tls.Config
	if c.TLS != nil {
		var err error
		if tlsConf, err = newTLSConfig(c.TLS, log); err != nil {
			return nil, err
		}
	}
	s := &Server{t: newTracker(c.MaxConnections, log, h.logRejected), log: log, grace: c.FirstRequestGrace}
	plan := planListeners(&c)
	s.newHTTPServers(&c, h, plan)
	if c.Lean {
		s.lean = newLeanEngine(&c, h, log)
	}
	if err := s.openListeners(&c, h, plan, tlsConf); err != nil {
		s.closeListeners()
		return nil, err
	}
	if len(s.lns) == 0 {
		return nil, errors.New("no listener: give a TCP address or a Unix socket")
	}
	if c.HTTP3 != nil && tlsConf != nil {
		if err := s.listenH3(c, h, tlsConf); err != nil {
			s.closeListeners()
			return nil, err
		}
	}
	return s, nil
}

// listenSpec is one listener to open.
type listenSpec struct {
	network, addr string
	scheme        string // "http" or "https"; "" for a Unix socket
	tls           bool   // the listener does the TLS handshake
	// redirect: served by the plain-HTTP server beside HTTPS (the redirect
	// or the ACME hook), which has no lean path; else by the app's.
	redirect bool
}

// listenPlan is what Listen opens, in order (the first is Addr's), and
// what the plain-HTTP server beside HTTPS answers, if there is one.
type listenPlan struct {
	lns []listenSpec
	// redirectToTLS: that server redirects to the HTTPS listener
	// (--ssl-redirect); else it serves the app.
	redirectToTLS bool
	// challenge: that server answers the CA's HTTP-01 requests first
	// (Config.HTTPChallenge).
	challenge bool
}

// planListeners decides from the configuration alone which listeners the
// front opens. Addr serves HTTPS when TLS has no SSLAddr of its own;
// beside an SSLAddr it serves plain HTTP: the redirect to HTTPS, or the app
// through the ACME hook, on a server of its own, or the app itself.
func planListeners(c *Config) listenPlan {
	var p listenPlan
	tlsApart := c.TLS != nil && c.SSLAddr != ""
	if c.Addr != "" {
		switch {
		case c.TLS != nil && c.SSLAddr == "":
			p.lns = append(p.lns, listenSpec{network: "tcp", addr: c.Addr, scheme: "https", tls: true})
		case c.Redirect || (c.HTTPChallenge != nil && c.TLS != nil):
			p.lns = append(p.lns, listenSpec{network: "tcp", addr: c.Addr, scheme: "http", redirect: true})
			p.redirectToTLS = c.Redirect && tlsApart
			p.challenge = c.HTTPChallenge != nil && tlsApart
		default:
			p.lns = append(p.lns, listenSpec{network: "tcp", addr: c.Addr, scheme: "http"})
		}
	}
	if tlsApart {
		p.lns = append(p.lns, listenSpec{network: "tcp", addr: c.SSLAddr, scheme: "https", tls: true})
	}
	if c.Socket != "" {
		p.lns = append(p.lns, listenSpec{network: "unix", addr: c.Socket})
	}
	return p
}

// newHTTPServers makes net/http's servers: the app's, and the plain-HTTP
// one beside HTTPS when the plan has it (its handler is set once the HTTPS
// listener's port is known).
func (s *Server) newHTTPServers(c *Config, h *Handler, plan listenPlan) {
	errorLog := slog.NewLogLogger(s.log.Handler(), slog.LevelWarn)
	newServer := func() *http.Server {
		return &http.Server{Handler: h,
			ReadHeaderTimeout: c.HeaderTimeout, IdleTimeout: c.IdleTimeout, MaxHeaderBytes: c.MaxHeaderBytes,
			ConnState: s.t.connState, ConnContext: connContext, ErrorLog: errorLog,
		}
	}
	s.app = newServer()
	s.app.Protocols = new(http.Protocols)
	s.app.Protocols.SetHTTP1(true)
	s.app.Protocols.SetHTTP2(c.TLS != nil && c.TLS.HTTP2)
	s.app.HTTP2 = &http.HTTP2Config{WriteByteTimeout: c.WriteTimeout}
	for _, l := range plan.lns {
		if l.redirect {
			s.redirect = newServer()
		}
	}
}

// newLeanEngine is the lean HTTP/1.1 engine for the app's plain
// listeners, reporting to the front's access log and connection tracker.
func newLeanEngine(c *Config, h *Handler, log *slog.Logger) *lean.Engine {
	return lean.New(h, lean.Options{HeaderTimeout: c.HeaderTimeout, IdleTimeout: c.IdleTimeout, Log: log,
		Rejected: func(rj lean.Rejection) {
			h.logRejected(rejection{client: rj.Client, line: rj.Line, status: rj.Status, reason: rj.Reason})
		},
		FirstRequest: func(c net.Conn) {
			if sc, ok := c.(*slotConn); ok {
				sc.settle()
			}
		}})
}

// openListeners opens the plan's listeners in order, then gives the
// plain-HTTP server beside HTTPS its handler.
func (s *Server) openListeners(c *Config, h *Handler, plan listenPlan, tlsConf *tls.Config) error {
	tlsPort := ""
	for _, spec := range plan.lns {
		if spec.network == "unix" {
			if err := removeStaleSocket(spec.addr); err != nil {
				return err
			}
		}
		l, err := s.open(c, spec, tlsConf)
		if err != nil {
			return err
		}
		if spec.tls {
			_, tlsPort, _ = net.SplitHostPort(l.Addr().String())
		}
		if spec.network == "unix" {
			if err := socketAccess(c); err != nil {
				return err
			}
		}
	}
	if plan.redirectToTLS {
		s.redirect.Handler = h.redirectHandler(tlsPort)
	}
	if plan.challenge {
		s.redirect.Handler = c.HTTPChallenge(s.redirect.Handler)
	}
	return nil
}

// open opens one listener, with the backlog, the connection tracker, TLS
// and, for the app's plain listeners, the lean path.
func (s *Server) open(c *Config, spec listenSpec, tlsConf *tls.Config) (*listener, error) {
	ln, err := c.Listen(spec.network, spec.addr)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", spec.addr, err)
	}
	setBacklog(ln, c.Backlog)
	hs, le, conf := s.app, s.lean, (*tls.Config)(nil)
	if spec.tls {
		conf, le = tlsConf, nil
	}
	if spec.redirect {
		hs, le = s.redirect, nil
	}
	l := newListener(ln, s.t, conf, c.HeaderTimeout, le, s.log)
	url := spec.scheme + "://" + ln.Addr().String()
	if spec.network == "unix" {
		url = "unix:" + spec.addr
	}
	s.lns = append(s.lns, served{ln: l, hs: hs, url: url})
	return l, nil
}

// socketAccess gives the Unix socket its group (--socket-group) and mode.
func socketAccess(c *Config) error {
	if c.SocketGID != 0 {
		if err := os.Lchown(c.Socket, -1, c.SocketGID); err != nil {
			return fmt.Errorf("socket %s: give it to group %d: %w", c.Socket, c.SocketGID, err)
		}
	}
	if err := os.Chmod(c.Socket, c.SocketMode); err != nil {
		return fmt.Errorf("socket %s: %w", c.Socket, err)
	}
	return nil
}

// closeListeners closes the listeners opened so far (Listen failed).
func (s *Server) closeListeners() {
	for _, l := range s.lns {
		l.ln.Close()
	}
}

// setBacklog applies --socket-backlog: listen(2) again on a listening
// socket changes its backlog.
func setBacklog(ln net.Listener, backlog int) {
	sc, ok := ln.(syscall.Conn)
	if backlog <= 0 || !ok {
		return
	}
	if rc, err := sc.SyscallConn(); err == nil {
		rc.Control(func(fd uintptr) { syscall.Listen(int(fd), backlog) })
	}
}

// removeStaleSocket removes a socket file left by a Ferry that did not
// exit cleanly, and refuses one that something still listens on, or a
// path that is not a socket.
func removeStaleSocket(path string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("socket %s: %w", path, err)
	}
	if fi.Mode()&os.ModeSocket == 0 {
		return fmt.Errorf("socket %s: the path exists and is not a socket", path)
	}
	if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
		c.Close()
		return fmt.Errorf("socket %s: another process listens on it", path)
	}
	if err := os.Remove(path); err != nil {
		return fmt.Errorf("socket %s: remove the stale socket: %w", path, err)
	}
	return nil
}

// LeanStats are the lean HTTP/1.1 path's counters: requests it served, and
// connections it handed to net/http. Zero when it is off.
func (s *Server) LeanStats() (requests, handoffs uint64) {
	if s.lean == nil {
		return 0, 0
	}
	return s.lean.Stats()
}

// Addr is the first listener's address.
func (s *Server) Addr() net.Addr { return s.lns[0].ln.Addr() }

// URLs are the listeners: http://HOST:PORT, https://HOST:PORT, unix:PATH.
func (s *Server) URLs() []string {
	out := make([]string, len(s.lns))
	for i, l := range s.lns {
		out[i] = l.url
	}
	return out
}

// Serve answers requests on every listener until Shutdown, and returns the
// first error that is not Shutdown's.
func (s *Server) Serve() error {
	n := len(s.lns)
	errc := make(chan error, n+1)
	for _, l := range s.lns {
		go func() { errc <- l.hs.Serve(l.ln) }()
	}
	if s.h3 != nil {
		n++
		go func() { errc <- s.h3.serve() }()
	}
	for range n {
		if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
			return err
		}
	}
	return nil
}

// Shutdown stops accepting, closes hijacked connections (WebSockets and
// other tunnels cannot finish on their own; their clients reconnect), lets
// connections accepted just before deliver their first request (see
// awaitFirstRequests), and waits for in-flight requests until ctx ends,
// then closes what is left.
func (s *Server) Shutdown(ctx context.Context) error {
	if n := s.t.closeHijacked(); n > 0 {
		s.log.Info("closed upgraded (WebSocket) connections", "count", n)
	}
	for _, l := range s.lns {
		l.ln.stopAccepting()
	}
	servers := []*http.Server{s.app}
	if s.redirect != nil {
		servers = append(servers, s.redirect)
	}
	// From now on every response closes its connection; net/http closes
	// its idle kept-alive ones here.
	for _, hs := range servers {
		hs.SetKeepAlivesEnabled(false)
	}
	if s.lean != nil {
		s.lean.Drain()
	}
	s.awaitFirstRequests(ctx)
	if s.lean != nil {
		// First the lean engine's connections, while net/http still takes
		// the requests they hand over.
		s.lean.Shutdown(ctx)
	}
	errs := make([]error, len(servers), len(servers)+1)
	var wg sync.WaitGroup
	if s.h3 != nil {
		errs = append(errs, nil)
		wg.Go(func() { errs[len(servers)] = s.h3.shutdown(ctx) })
	}
	for i, hs := range servers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if errs[i] = hs.Shutdown(ctx); errs[i] != nil {
				hs.Close()
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// awaitFirstRequests waits, up to the grace and within ctx, until every
// connection accepted before Shutdown has had its first request head read,
// then closes those that still have not sent one. net/http's Shutdown
// drops unanswered a request it reads after it began, and the lean
// engine's closes a connection waiting for its first request: a client
// whose connection was accepted just before (in a binary upgrade, by the
// old Ferry) would get a reset instead of an answer, on a request it
// cannot know is safe to retry.
func (s *Server) awaitFirstRequests(ctx context.Context) {
	if s.t.freshCount() > 0 && s.grace > 0 {
		grace := time.NewTimer(s.grace)
		defer grace.Stop()
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
	wait:
		for s.t.freshCount() > 0 {
			select {
			case <-tick.C:
			case <-grace.C:
				break wait
			case <-ctx.Done():
				break wait
			}
		}
	}
	if n := s.t.closeFresh(); n > 0 {
		s.log.Info("closed connections that sent no request while shutting down", "count", n,
			"first_request_grace", s.grace)
	}
}

// newTLSConfig is Ferry's HTTPS: TLS 1.2 or later with Go's default
// (forward-secret, AEAD-only) cipher suites and curves, HTTP/2 and
// HTTP/1.1 by ALPN, the certificate reloaded when its files change.
func newTLSConfig(c *TLSConfig, log *slog.Logger) (*tls.Config, error) {
	get := c.GetCertificate
	if get == nil {
		certs, err := newCertReloader(c.CertFile, c.KeyFile, log)
		if err != nil {
			return nil, err
		}
		get = certs.get
	}
	conf := &tls.Config{
		MinVersion:     max(c.MinVersion, tls.VersionTLS12),
		GetCertificate: get,
		NextProtos:     []string{"http/1.1"},
	}
	if c.HTTP2 {
		conf.NextProtos = []string{"h2", "http/1.1"}
	}
	if c.GetCertificate != nil {
		conf.NextProtos = append(conf.NextProtos, acmeTLSALPN)
	}
	return conf, nil
}

// certReloader serves a certificate and loads it again when its files
// change (checked at most every certCheckInterval, on a handshake), so
// that a renewed certificate needs no restart. A failed reload keeps the
// old one and is logged.
type certReloader struct {
	certFile, keyFile string
	log               *slog.Logger
	cur               atomic.Pointer[loadedCert]
	next              atomic.Int64 // unix nanoseconds of the next check
	mu                sync.Mutex
}

type loadedCert struct {
	cert          *tls.Certificate
	certID, keyID fileID
}

type fileID struct {
	mod  time.Time
	size int64
}

const certCheckInterval = 10 * time.Second

func newCertReloader(certFile, keyFile string, log *slog.Logger) (*certReloader, error) {
	r := &certReloader{certFile: certFile, keyFile: keyFile, log: log}
	lc, err := r.load()
	if err != nil {
		return nil, err
	}
	r.cur.Store(lc)
	r.next.Store(time.Now().Add(certCheckInterval).UnixNano())
	if leaf := lc.cert.Leaf; leaf != nil {
		log.Info("certificate loaded", "file", certFile, "subject", leaf.Subject.String(), "names", leaf.DNSNames,
			"not_after", leaf.NotAfter.UTC().Format(time.RFC3339))
	}
	return r, nil
}

func (r *certReloader) load() (*loadedCert, error) {
	cid, err := statID(r.certFile)
	if err != nil {
		return nil, fmt.Errorf("certificate: %w", err)
	}
	kid, err := statID(r.keyFile)
	if err != nil {
		return nil, fmt.Errorf("certificate key: %w", err)
	}
	cert, err := tls.LoadX509KeyPair(r.certFile, r.keyFile)
	if err != nil {
		return nil, fmt.Errorf("certificate %s with key %s: %w", r.certFile, r.keyFile, err)
	}
	return &loadedCert{cert: &cert, certID: cid, keyID: kid}, nil
}

func statID(path string) (fileID, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return fileID{}, err
	}
	return fileID{fi.ModTime(), fi.Size()}, nil
}

func (r *certReloader) get(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	if now := time.Now(); now.UnixNano() >= r.next.Load() && r.mu.TryLock() {
		r.next.Store(now.Add(certCheckInterval).UnixNano())
		r.check()
		r.mu.Unlock()
	}
	return r.cur.Load().cert, nil
}

func (r *certReloader) check() {
	cur := r.cur.Load()
	cid, cerr := statID(r.certFile)
	kid, kerr := statID(r.keyFile)
	if cerr == nil && kerr == nil && cid == cur.certID && kid == cur.keyID {
		return
	}
	lc, err := r.load()
	if err != nil {
		r.log.Warn("certificate changed but cannot be loaded; serving the previous one", "error", err)
		return
	}
	r.cur.Store(lc)
	r.log.Info("certificate reloaded", "file", r.certFile, "not_after", notAfter(lc.cert))
}

func notAfter(c *tls.Certificate) string {
	if c.Leaf == nil {
		return ""
	}
	return c.Leaf.NotAfter.UTC().Format(time.RFC3339)
}

// redirectHandler answers a plain-HTTP request with a redirect to the same
// URL over HTTPS on port: 301 for GET and HEAD, 308 (which keeps the method
// and body) for the rest.
func (h *Handler) redirectHandler(port string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if c := connFrom(r); c != nil {
			c.served.Add(1)
		}
		start := time.Now()
		host := r.Host
		if hst, _, err := net.SplitHostPort(host); err == nil {
			host = hst
		}
		status := http.StatusMovedPermanently
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			status = http.StatusPermanentRedirect
		}
		if host == "" {
			status = http.StatusBadRequest
		} else {
			if ip := net.ParseIP(host); ip != nil && ip.To4() == nil {
				host = "[" + host + "]"
			}
			if port != "443" {
				host += ":" + port
			}
			target := r.RequestURI
			if target == "" || target[0] != '/' {
				target = r.URL.RequestURI()
			}
			w.Header().Set("Location", "https://"+host+target)
		}
		w.Header().Set("Content-Length", "0")
		w.WriteHeader(status)
		if h.opts.AccessLog != nil {
			h.opts.AccessLog.log(r, &accessEntry{status: status, start: start, dur: time.Since(start)})
		}
	})
}

// Files returns copies of the listening sockets, for handing them to a new
// Ferry (a binary upgrade). Unix sockets will not be unlinked when this
// server closes them: the new one keeps serving on the same path.
func (s *Server) Files() ([]*os.File, error) {
	var out []*os.File
	for _, l := range s.lns {
		if ul, ok := l.ln.Listener.(*net.UnixListener); ok {
			ul.SetUnlinkOnClose(false)
		}
		fl, ok := l.ln.Listener.(interface{ File() (*os.File, error) })
		if !ok {
			return nil, fmt.Errorf("listener %s cannot be handed over", l.url)
		}
		f, err := fl.File()
		if err != nil {
			for _, o := range out {
				o.Close()
			}
			return nil, fmt.Errorf("hand over %s: %w", l.url, err)
		}
		out = append(out, f)
	}
	if s.h3 != nil {
		udp, err := s.h3.files()
		if err != nil {
			for _, o := range out {
				o.Close()
			}
			return nil, err
		}
		out = append(out, udp...)
	}
	return out, nil
}
