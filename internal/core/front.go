package core

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"

	"github.com/ferry-server/ferry/internal/certs"
	"github.com/ferry-server/ferry/internal/compress"
	"github.com/ferry-server/ferry/internal/config"
	"github.com/ferry-server/ferry/internal/inherit"
	"github.com/ferry-server/ferry/internal/logs"
	"github.com/ferry-server/ferry/internal/proxy"
	"github.com/ferry-server/ferry/internal/server"
	"github.com/ferry-server/ferry/internal/tracing"
)

// newFront builds the HTTP front from the configuration: the request path
// for apps and its listeners, opened now. close releases what the front
// holds besides its listeners: it writes out the access log's buffered
// lines and closes its file.
func newFront(cfg *config.Config, apps []*server.App, bufferDir string, out *logs.Outputs, cm *certs.Manager, tracer *tracing.Tracer) (h *server.Handler, s *server.Server, close func(), err error) {
	f := cfg.Front
	log := out.Core
	access, closeLog, err := accessLog(cfg, out)
	if err != nil {
		return nil, nil, nil, err
	}
	defer func() {
		if err != nil {
			closeLog()
		}
	}()
	h = server.NewHandler(apps, handlerOptions(cfg, bufferDir, access, tracer), log)
	sc := listenConfig(cfg)
	useCertManager(&sc, cm, cfg)
	// Sockets from systemd (socket activation) are used before opening any.
	inherited, err := inherit.FromEnv()
	if err != nil {
		return nil, nil, nil, err
	}
	defer inherited.Close() // the ones not taken
	if inherited.Len() > 0 {
		log.Info("using listening sockets passed by the supervisor", "count", inherited.Len())
		sc.Listen = inherited.Listen
		sc.ListenPacket = inherited.ListenPacket
	}
	s, err = server.Listen(sc, h, log)
	if h3err := (*server.HTTP3ListenError)(nil); errors.As(err, &h3err) {
		return nil, nil, nil, err
	}
	if err != nil {
		return nil, nil, nil, frontListenError(err, sc.Addr, sc.SSLAddr)
	}
	log.Info("front listening", "urls", s.URLs(), "http2", f.SSL && f.HTTP2, "http3", s.HTTP3Addrs(), "max_connections", f.MaxConnections,
		"client_max_body_size", f.ClientMaxBodySize, "gzip", f.Gzip, "access_log_format", f.AccessLogFormat)
	return h, s, closeLog, nil
}

// handlerOptions are the request path's settings: buffering, body and URI
// limits, timeouts, trusted proxies, compression, access log, tracing.
func handlerOptions(cfg *config.Config, bufferDir string, access *server.AccessLog, tracer *tracing.Tracer) server.Options {
	f := cfg.Front
	opts := server.Options{
		RequestBufferMemory: cfg.RequestBufferMemory,
		MaxBodySize:         f.ClientMaxBodySize,
		BufferDir:           bufferDir,
		Response: proxy.ResponseOptions{
			Memory:        cfg.ResponseBufferMemory,
			HighWatermark: cfg.ResponseBufferHighWatermark,
			Dir:           bufferDir,
		},
		BodyTimeout:  f.ClientBodyTimeout,
		WriteTimeout: f.ClientWriteTimeout,
		MaxURILength: int(f.MaxURILength),
		AccessLog:    access,
		Tracer:       tracer,
	}
	if len(f.TrustedNets) > 0 || f.TrustUnix {
		opts.Trusted = &server.Trusted{Nets: f.TrustedNets, Unix: f.TrustUnix}
	}
	if f.Gzip {
		opts.Compression = compress.New(f.CompressionConfig())
	}
	return opts
}

// listenConfig is where and how the front listens: the TCP address and
// Unix socket, TLS (HTTP/2, HTTP/3, the HTTPS port and its redirect),
// connection limits and timeouts.
func listenConfig(cfg *config.Config) server.Config {
	f := cfg.Front
	sc := server.Config{
		Socket:         f.Socket,
		SocketMode:     f.SocketMode,
		SocketGID:      max(cfg.SocketGID, 0),
		Backlog:        f.SocketBacklog,
		MaxConnections: f.MaxConnections,
		HeaderTimeout:  f.ClientHeaderTimeout,
		IdleTimeout:    f.KeepaliveTimeout,
		MaxHeaderBytes: int(f.MaxHeaderSize),
		WriteTimeout:   f.ClientWriteTimeout,
		Lean:           f.LeanPath,
	}
	sc.FirstRequestGrace = cfg.FirstRequestGrace
	if f.Socket == "" || f.SocketAndTCP {
		sc.Addr = cfg.ListenAddr()
	}
	if f.SSL {
		sc.TLS = &server.TLSConfig{CertFile: f.SSLCertificate, KeyFile: f.SSLCertificateKey, HTTP2: f.HTTP2,
			MinVersion: tls.VersionTLS12}
		if f.SSLMinVersion == "1.3" {
			sc.TLS.MinVersion = tls.VersionTLS13
		}
		if f.HTTP3 {
			sc.HTTP3 = &server.HTTP3Config{Allow0RTT: f.HTTP3Allow0RTT, MaxStreams: int64(f.HTTP3MaxStreams), IdleTimeout: f.HTTP3IdleTimeout}
		}
		if f.SSLPort != 0 {
			sc.SSLAddr = net.JoinHostPort(cfg.Address, strconv.Itoa(f.SSLPort))
			sc.Redirect = f.SSLRedirect
		}
	}
	return sc
}

// accessLog opens the access log --access-log and --access-log-format ask
// for: Ferry's own log by default, a file, standard error, or none. Its
// lines are buffered (logs.BufferSize, logs.FlushInterval); closeFn writes
// out what is pending.
func accessLog(cfg *config.Config, out *logs.Outputs) (_ *server.AccessLog, closeFn func(), _ error) {
	f := cfg.Front
	if f.AccessLog == "off" {
		return nil, func() {}, nil
	}
	path := f.AccessLog // "": Ferry's log (file or standard error)
	w, closeW, err := out.Access(path)
	if err != nil {
		return nil, nil, fmt.Errorf("--access-log: %w", err)
	}
	closeFn = func() { closeW() }
	switch {
	case f.AccessLogFormat != server.AccessText:
		return server.NewAccessLog(f.AccessLogFormat, w, nil), closeFn, nil
	case path == "":
		// Lines in Ferry's own log, in its format.
		o := out.Options()
		return server.NewTextAccessLog(w, server.Records{JSON: o.Format == "json", Level: o.Level,
			Attrs: []slog.Attr{slog.String("log", "access")}}), closeFn, nil
	default:
		return server.NewTextAccessLog(w, server.Records{}), closeFn, nil
	}
}
