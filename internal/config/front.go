package config

import (
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Front holds the HTTP front's settings: listeners, TLS, HTTP/2, limits and
// timeouts, compression, trusted proxies, the access log. It is embedded in
// Server; its options are registered in init below. Each field's default is
// applied by finish unless a source set it (see frontOpt), so after loading
// every field holds its effective value.
type Front struct {
	// SSL serves HTTPS (HTTP/2 and HTTP/1.1, TLS 1.2 or later): on SSLPort
	// when it is set, else on Port instead of plain HTTP (--ssl). Default
	// false.
	SSL bool
	// SSLCertificate and SSLCertificateKey are PEM files: the certificate
	// (chain) and its private key (--ssl-certificate, --ssl-certificate-key).
	// They are read again when they change on disk (checked at most every
	// 10 seconds), so renewing a certificate needs no restart.
	SSLCertificate    string
	SSLCertificateKey string
	// SSLPort is where HTTPS is served beside plain HTTP on Port
	// (--ssl-port). Default 0: with SSL, Port itself serves HTTPS.
	SSLPort int
	// SSLRedirect answers every plain-HTTP request on Port with a redirect
	// to the same URL on HTTPS (SSLPort) (--ssl-redirect). Default false.
	SSLRedirect bool
	// SSLMinVersion is the oldest TLS version accepted: "1.2" or "1.3"
	// (--ssl-min-version). Default "1.2".
	SSLMinVersion string
	// HTTP2 offers HTTP/2 to TLS clients (ALPN "h2") (--http2). Default
	// true. Requests reach apps as HTTP/1.1 either way.
	HTTP2 bool
	// LeanPath serves plain GET and HEAD requests on plain HTTP/1.1
	// connections (TCP and --socket) with Ferry's lean HTTP/1.1 engine
	// rather than net/http (--lean-path, or its old name --fast-path).
	// Default true.
	LeanPath bool
	// HTTP/3 (http3.go).
	HTTP3Settings

	// Socket listens on this Unix socket, instead of TCP unless
	// SocketAndTCP is set (--socket; Passenger's socket_file). Default "":
	// TCP only.
	Socket string
	// SocketMode is the socket's permission bits (--socket-mode). Default
	// 0660: its owner and group may connect.
	SocketMode os.FileMode
	// SocketAndTCP keeps the TCP listener(s) beside Socket
	// (--socket-and-tcp). Default false.
	SocketAndTCP bool
	// SocketBacklog is the listen backlog of every listener: connections
	// the kernel accepts before Ferry does (--socket-backlog). Default 2048.
	SocketBacklog int

	// ClientMaxBodySize is the largest request body accepted; larger ones
	// get 413 before the app sees anything (--client-max-body-size).
	// Default 1 GiB; 0 = unlimited.
	ClientMaxBodySize int64
	// ClientHeaderTimeout bounds receiving a request's line and headers
	// (--client-header-timeout). Default 30s; 0 = no limit.
	ClientHeaderTimeout time.Duration
	// ClientBodyTimeout drops a client that sends no request body byte for
	// this long (--client-body-timeout). Default 60s; 0 = no limit.
	ClientBodyTimeout time.Duration
	// ClientWriteTimeout drops a client that takes no response byte for
	// this long (--client-write-timeout). Default 60s; 0 = no limit.
	ClientWriteTimeout time.Duration
	// KeepaliveTimeout closes a kept-alive client connection idle this long
	// (--keepalive-timeout). Default 120s.
	KeepaliveTimeout time.Duration
	// MaxHeaderSize bounds a request's line and headers together; larger
	// ones get 431 (--max-header-size). Default 64 KiB.
	MaxHeaderSize int64
	// MaxURILength bounds the request target; longer ones get 414
	// (--max-uri-length). Default 8 KiB.
	MaxURILength int64
	// MaxConnections bounds the client connections open at once; past it,
	// new ones wait in the listen backlog (--max-connections). Default
	// 10000; 0 = unlimited.
	MaxConnections int

	// TrustedProxies are the peers whose X-Forwarded-For and
	// X-Forwarded-Proto (or Forwarded) are believed (--trusted-proxies):
	// CIDRs, addresses, "loopback", "private", or "unix" for the Unix
	// socket; "none" trusts no one. From any other peer those headers (and
	// X-Forwarded-Host, -Port, -Prefix, X-Real-IP) are dropped. Default:
	// loopback and unix, the local hop (a web server on the same machine),
	// as gunicorn's forwarded_allow_ips and Rails' trusted proxies do.
	TrustedProxies []string
	// TrustedNets and TrustUnix are TrustedProxies, parsed.
	TrustedNets []netip.Prefix `json:"-"`
	TrustUnix   bool           `json:"-"`

	// AccessLog is where the access log goes: a file, "-" (standard
	// error) or "off" (--access-log). Default "": Ferry's log.
	AccessLog string
	// AccessLogFormat is text (key=value in Ferry's log format), combined
	// (NCSA combined, plus the request id and time) or json
	// (--access-log-format). Default text.
	AccessLogFormat string

	// Gzip compresses responses of GzipTypes of at least GzipMinSize bytes
	// for clients that accept it (--gzip). Default true.
	Gzip bool
	// GzipLevel is the compression level, 1 (fastest) to 9 (smallest)
	// (--gzip-level). Default 5.
	GzipLevel int
	// GzipTypes are the media types compressed: "type/subtype" or
	// "type/*" (--gzip-types). Default: DefaultGzipTypes.
	GzipTypes []string
	// GzipMinSize: responses known to be smaller are sent as they are
	// (--gzip-min-size). Default 512.
	GzipMinSize int64
	// Compression: the codings besides gzip and their levels.
	Compression // compression.go

	// explicit names the options a source set; finish gives the others
	// their defaults.
	explicit map[string]bool
	// managedTLS: certificates come from ACME (acme.go), not files.
	managedTLS bool
}

// DefaultGzipTypes are the media types compressed unless --gzip-types says
// otherwise: text and the structured formats that compress well. Not
// text/event-stream (a stream some clients and proxies mishandle when
// compressed), nor images, audio, video or archives (compressed already).
var DefaultGzipTypes = []string{
	"text/html", "text/css", "text/plain", "text/xml", "text/javascript", "text/csv", "text/markdown",
	"application/javascript", "application/json", "application/xml", "application/xhtml+xml",
	"application/rss+xml", "application/atom+xml", "application/ld+json", "application/manifest+json",
	"application/wasm", "image/svg+xml", "font/ttf", "font/otf", "application/vnd.ms-fontobject",
}

// frontDefault is a front option's default, applied by finish when no
// source set it.
type frontDefault struct {
	name, value string
	bind        func(*Front) flag.Value
}

var frontDefaults []frontDefault

// frontOpt registers a server-wide option of the front whose default is
// def: the field keeps its zero value until finish, which sets def unless a
// source set the option. This lets a zero value mean something of its own
// (--client-max-body-size 0 = unlimited).
func frontOpt(name, def, usage string, bind func(*Front) flag.Value) *option {
	frontDefaults = append(frontDefaults, frontDefault{name, def, bind})
	return srv(name, usage, func(s *Server) flag.Value {
		d := &defaulted{Value: bind(&s.Front), f: &s.Front, name: name, def: def}
		switch d.Value.(type) {
		case multi:
			return defaultedList{d}
		case interface{ IsBoolFlag() bool }:
			return defaultedBool{d}
		}
		return d
	})
}

// defaulted marks its option as set on Set, and shows the default until
// then.
type defaulted struct {
	flag.Value
	f         *Front
	name, def string
}

func (d *defaulted) Set(s string) error {
	if err := d.Value.Set(s); err != nil {
		return err
	}
	if d.f.explicit == nil {
		d.f.explicit = map[string]bool{}
	}
	d.f.explicit[d.name] = true
	return nil
}

func (d *defaulted) String() string {
	if !d.f.explicit[d.name] {
		return d.def
	}
	return d.Value.String()
}

// defaultedList and defaultedBool keep what flag and the loaders ask of
// the value they wrap: repeatable, or a flag without a value.
type defaultedList struct{ *defaulted }

func (defaultedList) multi() {}

type defaultedBool struct{ *defaulted }

func (defaultedBool) IsBoolFlag() bool { return true }

func init() {
	register(
		frontOpt("ssl", "false", "serve HTTPS (HTTP/2 and HTTP/1.1) on --ssl-port, or else on --port", func(f *Front) flag.Value { return (*boolValue)(&f.SSL) }),
		frontOpt("ssl-certificate", "", "certificate (chain) PEM `FILE` for --ssl; reloaded when it changes", func(f *Front) flag.Value { return (*strValue)(&f.SSLCertificate) }),
		frontOpt("ssl-certificate-key", "", "private key PEM `FILE` for --ssl", func(f *Front) flag.Value { return (*strValue)(&f.SSLCertificateKey) }),
		frontOpt("ssl-port", "0", "serve HTTPS on this `PORT` and plain HTTP on --port (0: --ssl makes --port HTTPS)", func(f *Front) flag.Value { return (*intValue)(&f.SSLPort) }),
		frontOpt("ssl-redirect", "false", "answer plain HTTP on --port with a redirect to HTTPS on --ssl-port", func(f *Front) flag.Value { return (*boolValue)(&f.SSLRedirect) }),
		frontOpt("ssl-min-version", "1.2", "oldest TLS `VERSION` accepted: 1.2 or 1.3", func(f *Front) flag.Value { return (*strValue)(&f.SSLMinVersion) }),
		frontOpt("http2", "true", "offer HTTP/2 to HTTPS clients (--http2=false: HTTP/1.1 only)", func(f *Front) flag.Value { return (*boolValue)(&f.HTTP2) }),
		frontOpt("socket", "", "listen on this Unix socket `FILE` instead of TCP (with --socket-and-tcp: beside it)", func(f *Front) flag.Value { return (*strValue)(&f.Socket) }).withKey("socket_file").short("S"),
		frontOpt("socket-mode", "0660", "permission `MODE` of --socket (octal)", func(f *Front) flag.Value { return (*modeValue)(&f.SocketMode) }),
		frontOpt("socket-and-tcp", "false", "with --socket, listen on TCP (--address, --port) too", func(f *Front) flag.Value { return (*boolValue)(&f.SocketAndTCP) }),
		frontOpt("socket-backlog", "2048", "listen backlog of every listener (`N`)", func(f *Front) flag.Value { return (*intValue)(&f.SocketBacklog) }),
		frontOpt("client-max-body-size", "1g", "largest request body (`BYTES`; 0 = unlimited); larger ones get 413", func(f *Front) flag.Value { return (*bytesValue)(&f.ClientMaxBodySize) }),
		frontOpt("client-header-timeout", "30", "`SECONDS` a client may take to send its request line and headers (0 = no limit)", func(f *Front) flag.Value { return (*secondsValue)(&f.ClientHeaderTimeout) }),
		frontOpt("client-body-timeout", "60", "drop a client that sends no request body byte for `SECONDS` (0 = no limit)", func(f *Front) flag.Value { return (*secondsValue)(&f.ClientBodyTimeout) }),
		frontOpt("client-write-timeout", "60", "drop a client that takes no response byte for `SECONDS` (0 = no limit)", func(f *Front) flag.Value { return (*secondsValue)(&f.ClientWriteTimeout) }),
		frontOpt("keepalive-timeout", "120", "close kept-alive client connections idle for `SECONDS`", func(f *Front) flag.Value { return (*secondsValue)(&f.KeepaliveTimeout) }),
		frontOpt("max-header-size", "64k", "largest request line and headers together (`BYTES`); larger ones get 431", func(f *Front) flag.Value { return (*bytesValue)(&f.MaxHeaderSize) }),
		frontOpt("max-uri-length", "8k", "longest request target (`BYTES`); longer ones get 414", func(f *Front) flag.Value { return (*bytesValue)(&f.MaxURILength) }),
		frontOpt("max-connections", "10000", "most client connections open at once (`N`; 0 = unlimited); more wait in the backlog", func(f *Front) flag.Value { return (*intValue)(&f.MaxConnections) }),
		frontOpt("trusted-proxies", "", "believe X-Forwarded-For/-Proto/-Host and Forwarded from these peers (`CIDR`s, addresses, loopback, private, unix, or none; repeatable or comma-separated; default loopback,unix)", func(f *Front) flag.Value { return (*listValue)(&f.TrustedProxies) }),
		frontOpt("access-log", "", "write the access log to this `FILE`, - (standard error) or off (default: Ferry's log)", func(f *Front) flag.Value { return (*strValue)(&f.AccessLog) }),
		frontOpt("access-log-format", "text", "access log `FORMAT`: text, combined or json", func(f *Front) flag.Value { return (*strValue)(&f.AccessLogFormat) }),
		frontOpt("gzip", "true", "gzip responses of --gzip-types for clients that accept it (--gzip=false: never)", func(f *Front) flag.Value { return (*boolValue)(&f.Gzip) }),
		frontOpt("gzip-level", "5", "gzip compression `LEVEL`, 1 (fastest) to 9 (smallest)", func(f *Front) flag.Value { return (*intValue)(&f.GzipLevel) }),
		frontOpt("gzip-types", "", "media `TYPE`s to gzip: type/subtype or type/* (repeatable or comma-separated; default: text, JSON, XML, JavaScript, SVG, fonts)", func(f *Front) flag.Value { return (*listValue)(&f.GzipTypes) }),
		frontOpt("gzip-min-size", "512", "responses known to be smaller than `BYTES` are not compressed", func(f *Front) flag.Value { return (*bytesValue)(&f.GzipMinSize) }),
	)
}

// modeValue is a file mode in octal ("0660", "660").
type modeValue os.FileMode

func (v *modeValue) String() string { return fmt.Sprintf("%#o", uint32(*v)) }
func (v *modeValue) Set(s string) error {
	n, err := strconv.ParseUint(strings.TrimSpace(s), 8, 32)
	if err != nil || n > 0o777 {
		return errors.New("want permission bits in octal, such as 0660")
	}
	*v = modeValue(n)
	return nil
}

// finish applies the defaults of options no source set, validates the
// front's settings and derives the parsed forms.
func (f *Front) finish(p *problems) {
	f.applyDefaults()
	f.checkTLS(p)
	f.checkSocket(p)
	f.checkLimits(p)
	nets, unix, err := ParseTrustedProxies(f.TrustedProxies)
	if err != nil {
		p.bad("trusted-proxies", "%v", err)
	}
	f.TrustedNets, f.TrustUnix = nets, unix
	switch f.AccessLogFormat {
	case "text", "combined", "json":
	default:
		p.bad("access-log-format", "must be text, combined or json (got %q)", f.AccessLogFormat)
	}
	f.checkGzip(p)
	f.finishHTTP3(p)
}

// applyDefaults sets the options no source set to their defaults.
func (f *Front) applyDefaults() {
	for _, d := range frontDefaults {
		if d.value == "" || f.explicit[d.name] {
			continue // "" is the zero value the field has already
		}
		if err := d.bind(f).Set(d.value); err != nil {
			panic(fmt.Sprintf("config: the default of --%s does not parse: %v", d.name, err))
		}
	}
	if !f.explicit["gzip-types"] {
		f.GzipTypes = DefaultGzipTypes
	}
	f.acmeFrontDefaults()
}

// checkTLS checks the HTTPS options: a certificate that loads, and the
// listeners they need.
func (f *Front) checkTLS(p *problems) {
	if f.SSL && !f.managedTLS {
		switch {
		case f.SSLCertificate == "" || f.SSLCertificateKey == "":
			p.bad("ssl", "needs --ssl-certificate and --ssl-certificate-key")
		default:
			if _, err := tls.LoadX509KeyPair(f.SSLCertificate, f.SSLCertificateKey); err != nil {
				p.bad("ssl-certificate", "cannot use %s with key %s: %v", f.SSLCertificate, f.SSLCertificateKey, err)
			}
		}
	} else if !f.SSL {
		for _, name := range []string{"ssl-certificate", "ssl-certificate-key", "ssl-port", "ssl-redirect"} {
			if f.explicit[name] {
				p.bad(name, "has no effect without --ssl")
			}
		}
	}
	if f.SSLPort < 0 || f.SSLPort > 65535 {
		p.bad("ssl-port", "must be between 0 and 65535 (got %d)", f.SSLPort)
	}
	if f.SSLRedirect && f.SSL && f.SSLPort == 0 {
		p.bad("ssl-redirect", "needs --ssl-port: HTTPS on --ssl-port, the redirect on --port")
	}
	if f.SSL && f.SSLPort == 0 && f.Socket != "" && !f.SocketAndTCP {
		p.bad("ssl", "has no listener with --socket alone: give --ssl-port, or --socket-and-tcp for HTTPS on --port")
	}
	if f.SSLRedirect && f.Socket != "" && !f.SocketAndTCP {
		p.bad("ssl-redirect", "needs a TCP listener: with --socket, add --socket-and-tcp")
	}
	switch f.SSLMinVersion {
	case "1.2", "1.3":
	default:
		p.bad("ssl-min-version", "must be 1.2 or 1.3 (got %q)", f.SSLMinVersion)
	}
}

// checkSocket makes --socket absolute and checks it fits a Unix socket's
// path.
func (f *Front) checkSocket(p *problems) {
	if f.Socket != "" {
		if abs, err := filepath.Abs(f.Socket); err == nil {
			f.Socket = abs
		}
		// sun_path holds 108 bytes with the terminating NUL.
		if len(f.Socket) > 107 {
			p.bad("socket", "the path is %d bytes; a Unix socket path has at most 107", len(f.Socket))
		}
	} else if f.SocketAndTCP {
		p.bad("socket-and-tcp", "has no effect without --socket")
	}
}

// checkLimits checks the front's limits on connections, heads, bodies and
// time.
func (f *Front) checkLimits(p *problems) {
	if f.SocketBacklog < 1 {
		p.bad("socket-backlog", "must be at least 1 (got %d)", f.SocketBacklog)
	}
	if f.ClientMaxBodySize < 0 {
		p.bad("client-max-body-size", "must be 0 (unlimited) or more (got %d)", f.ClientMaxBodySize)
	}
	for name, d := range map[string]time.Duration{
		"client-header-timeout": f.ClientHeaderTimeout, "client-body-timeout": f.ClientBodyTimeout,
		"client-write-timeout": f.ClientWriteTimeout,
	} {
		if d < 0 {
			p.bad(name, "must be 0 (no limit) or more (got %s)", d)
		}
	}
	if f.KeepaliveTimeout <= 0 {
		p.bad("keepalive-timeout", "must be more than 0 (got %s)", f.KeepaliveTimeout)
	}
	if f.MaxHeaderSize < 1024 || f.MaxHeaderSize > 16<<20 {
		p.bad("max-header-size", "must be between 1k and 16m (got %d)", f.MaxHeaderSize)
	}
	if f.MaxURILength < 16 {
		p.bad("max-uri-length", "must be at least 16 (got %d)", f.MaxURILength)
	}
	if f.MaxConnections < 0 {
		p.bad("max-connections", "must be 0 (unlimited) or more (got %d)", f.MaxConnections)
	}
}

// checkGzip checks the compression options and parses --gzip-types.
func (f *Front) checkGzip(p *problems) {
	if f.GzipLevel < 1 || f.GzipLevel > 9 {
		p.bad("gzip-level", "must be between 1 and 9 (got %d)", f.GzipLevel)
	}
	if f.GzipMinSize < 0 {
		p.bad("gzip-min-size", "must be 0 or more (got %d)", f.GzipMinSize)
	}
	types, err := parseMediaTypes(f.GzipTypes)
	if err != nil {
		p.bad("gzip-types", "%v", err)
	}
	f.GzipTypes = types
	f.finishCompression(p)
}

// splitList splits repeated and comma- or space-separated values.
func splitList(vs []string) []string {
	var out []string
	for _, v := range vs {
		out = append(out, strings.FieldsFunc(v, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' })...)
	}
	return out
}

// Named groups of addresses --trusted-proxies accepts.
var namedNets = map[string][]netip.Prefix{
	"loopback": {netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")},
	"private": {netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("172.16.0.0/12"),
		netip.MustParsePrefix("192.168.0.0/16"), netip.MustParsePrefix("fc00::/7")},
}

// DefaultTrustedProxies are trusted when --trusted-proxies is not given:
// the local hop, which only this machine's own processes can be.
var DefaultTrustedProxies = []string{"loopback", "unix"}

// ParseTrustedProxies reads --trusted-proxies: CIDRs ("10.0.0.0/8"),
// addresses ("192.0.2.7", a /32 or /128), "loopback", "private" (RFC 1918
// and unique local addresses), "unix" (connections on --socket), or "none"
// alone. Nothing given means DefaultTrustedProxies.
func ParseTrustedProxies(vs []string) (nets []netip.Prefix, unix bool, err error) {
	toks := splitList(vs)
	if len(toks) == 0 {
		toks = DefaultTrustedProxies
	}
	if slices.ContainsFunc(toks, func(s string) bool { return strings.EqualFold(s, "none") }) {
		if len(toks) > 1 {
			return nil, false, fmt.Errorf("none trusts no one and cannot be combined with %q", slices.DeleteFunc(slices.Clone(toks), func(s string) bool { return strings.EqualFold(s, "none") }))
		}
		return nil, false, nil
	}
	var errs []error
	for _, tok := range toks {
		switch t := strings.ToLower(tok); {
		case t == "unix":
			unix = true
		case namedNets[t] != nil:
			nets = append(nets, namedNets[t]...)
		case strings.Contains(t, "/"):
			pfx, perr := netip.ParsePrefix(t)
			if perr != nil {
				errs = append(errs, fmt.Errorf("%q is not a CIDR such as 10.0.0.0/8", tok))
				continue
			}
			nets = append(nets, pfx.Masked())
		default:
			a, aerr := netip.ParseAddr(t)
			if aerr != nil || a.Zone() != "" {
				errs = append(errs, fmt.Errorf("%q is not an address, a CIDR, loopback, private, unix or none", tok))
				continue
			}
			a = a.Unmap()
			nets = append(nets, netip.PrefixFrom(a, a.BitLen()))
		}
	}
	return nets, unix, errors.Join(errs...)
}

// parseMediaTypes checks and normalises --gzip-types.
func parseMediaTypes(vs []string) ([]string, error) {
	var out []string
	var errs []error
	for _, tok := range splitList(vs) {
		t := strings.ToLower(tok)
		typ, sub, ok := strings.Cut(t, "/")
		if !ok || typ == "" || sub == "" || typ == "*" || strings.ContainsAny(t, ";\"") || strings.Contains(sub, "/") ||
			(strings.Contains(sub, "*") && sub != "*") {
			errs = append(errs, fmt.Errorf("%q is not a media type such as text/html or text/*", tok))
			continue
		}
		out = append(out, t)
	}
	return out, errors.Join(errs...)
}
