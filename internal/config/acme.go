package config

import (
	"crypto/x509"
	"flag"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// ACME holds the settings of automatic HTTPS (ACME, RFC 8555): which CA
// issues certificates for the apps' --domain names, where they are kept,
// and on-demand issuance. It is embedded in Server; the names themselves
// are per app (AppACME). Their options are registered in init below.
type ACME struct {
	// ACMEEmail is the contact address of the ACME account, to which the
	// CA sends expiry warnings (--acme-email). Default "": no contact.
	ACMEEmail string
	// ACMECA is the directory URL of the CA (--acme-ca). Default: Let's
	// Encrypt's production directory (DefaultACMECA).
	ACMECA string
	// ACMECARoot is a PEM file of root certificates trusted for the CA's
	// own HTTPS endpoint, besides the system's (--acme-ca-root): for a
	// private or test CA. Default "": the system's roots only.
	ACMECARoot string
	// ACMEStateDir keeps the account, certificates and keys (0600, in
	// 0700 directories) and the locks that let several Ferry processes on
	// one host share them (--acme-state-dir). It outlives restarts and
	// upgrades. Default: /var/lib/ferry/acme as root, else
	// $XDG_DATA_HOME/ferry/acme (~/.local/share/ferry/acme).
	ACMEStateDir string
	// ACMEChallenges are the challenge types offered to the CA:
	// "http-01" (on --port) and "tls-alpn-01" (on the HTTPS port)
	// (--acme-challenges). Default: both.
	ACMEChallenges []string
	// ACMEOnDemand obtains a certificate during the first TLS handshake
	// for a name no app lists in --domain, if --acme-ask allows it
	// (--acme-on-demand). Default false.
	ACMEOnDemand bool
	// ACMEAsk is the URL asked before an on-demand certificate is
	// requested: GET URL?domain=NAME, and only a 200 answer allows it
	// (--acme-ask). Required with ACMEOnDemand.
	ACMEAsk string
	// ACMERenewCheckInterval is how often certificates are checked for
	// renewal and their OCSP staples refreshed
	// (--acme-renew-check-interval). Default 10m.
	ACMERenewCheckInterval time.Duration

	// ACMEDomains are every app's Domains, each once, in order: the names
	// Ferry obtains certificates for. Derived.
	ACMEDomains []string
}

// AppACME is the per-app part: the names the app is reached by over HTTPS.
type AppACME struct {
	// Domains are host names Ferry obtains and renews certificates for
	// (--domain, repeatable; "domains" in files). With several apps, an app
	// without server_names is routed by its domains.
	Domains []string
}

// DefaultACMECA is Let's Encrypt's production ACME directory.
const DefaultACMECA = "https://acme-v02.api.letsencrypt.org/directory"

// DefaultACMERenewCheckInterval is how often certificates are checked.
const DefaultACMERenewCheckInterval = 10 * time.Minute

// The challenge types --acme-challenges accepts.
const (
	ChallengeHTTP01    = "http-01"
	ChallengeTLSALPN01 = "tls-alpn-01"
)

func init() {
	register(
		app("domain", "obtain and renew a certificate for this host `NAME` by ACME, serve HTTPS with it (repeatable; implies --ssl, --ssl-port 443 and --ssl-redirect)", func(a *App) flag.Value { return (*listValue)(&a.Domains) }).withKey("domains"),
		srv("acme-email", "contact `ADDRESS` of the ACME account (expiry warnings)", func(s *Server) flag.Value { return (*strValue)(&s.ACMEEmail) }),
		srv("acme-ca", "ACME directory `URL` of the CA (default Let's Encrypt)", func(s *Server) flag.Value { return (*strValue)(&s.ACMECA) }),
		srv("acme-ca-root", "PEM `FILE` of roots trusted for the CA's own HTTPS (private or test CA)", func(s *Server) flag.Value { return (*strValue)(&s.ACMECARoot) }),
		srv("acme-state-dir", "`DIR` keeping ACME accounts, certificates and keys, shared by the Ferry processes of a host (default /var/lib/ferry/acme as root, else ~/.local/share/ferry/acme)", func(s *Server) flag.Value { return (*strValue)(&s.ACMEStateDir) }),
		srv("acme-challenges", "ACME challenge `TYPE`s offered: http-01, tls-alpn-01 (repeatable or comma-separated; default both)", func(s *Server) flag.Value { return (*listValue)(&s.ACMEChallenges) }),
		srv("acme-on-demand", "obtain certificates during the TLS handshake for names not in --domain, when --acme-ask allows them", func(s *Server) flag.Value { return (*boolValue)(&s.ACMEOnDemand) }),
		srv("acme-ask", "`URL` asked (GET URL?domain=NAME; 200 = yes) before an on-demand certificate is requested", func(s *Server) flag.Value { return (*strValue)(&s.ACMEAsk) }),
		srv("acme-renew-check-interval", "check certificates for renewal every `SECONDS` (default 600)", func(s *Server) flag.Value { return (*secondsValue)(&s.ACMERenewCheckInterval) }),
	)
}

// ACMEEnabled reports whether Ferry manages certificates by ACME.
func (s *Server) ACMEEnabled() bool { return len(s.ACMEDomains) > 0 || s.ACMEOnDemand }

// prepareACME runs before the server's settings are finished: it collects
// the apps' domains (checking each), routes apps of a multi-app file by
// their domains when they have no server names, and tells the front that
// its certificates are managed, so that it gives HTTPS its defaults.
func (c *Config) prepareACME(p *problems) {
	seen := map[string]bool{}
	c.ACMEDomains = nil
	for i := range c.Apps {
		a := &c.Apps[i]
		var names []string
		for _, d := range splitList(a.Domains) {
			n := strings.TrimSuffix(strings.ToLower(d), ".")
			if msg := badDomain(n); msg != "" {
				p.bad("domain", "%q %s", d, msg)
				continue
			}
			names = append(names, n)
			if !seen[n] {
				seen[n] = true
				c.ACMEDomains = append(c.ACMEDomains, n)
			}
		}
		a.Domains = names
		if len(c.Apps) > 1 && len(a.ServerNames) == 0 {
			a.ServerNames = slices.Clone(names)
		}
	}
	c.Front.managedTLS = c.ACMEEnabled()
}

// badDomain says what is wrong with a --domain name, or "".
func badDomain(n string) string {
	switch {
	case n == "":
		return "is empty"
	case strings.HasPrefix(n, "*"):
		return "is a wildcard: wildcard certificates need the DNS-01 challenge, which Ferry does not do; list each name"
	case strings.Contains(n, "://") || strings.ContainsAny(n, "/:@ \t"):
		return "is not a host name: give the name alone, without scheme, port or path"
	case net.ParseIP(n) != nil:
		return "is an IP address: give a host name"
	case len(n) > 253:
		return "is longer than 253 bytes"
	}
	for _, label := range strings.Split(n, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return "is not a host name (empty, overlong or hyphen-edged label)"
		}
		for _, r := range label {
			if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
				return "is not a host name (letters, digits, '-' and '.' only; IDNs in their xn-- form)"
			}
		}
	}
	return ""
}

// acmeFrontDefaults gives HTTPS its defaults when certificates are
// managed: HTTPS on, on port 443 beside plain HTTP on --port (where HTTP-01
// is answered), and plain HTTP redirected, unless a source said otherwise.
func (f *Front) acmeFrontDefaults() {
	if !f.managedTLS {
		return
	}
	if !f.explicit["ssl"] {
		f.SSL = true
		if !f.explicit["ssl-port"] {
			f.SSLPort = 443
		}
	}
	if !f.explicit["ssl-redirect"] && f.SSLPort != 0 {
		f.SSLRedirect = true
	}
}

// finish validates the ACME settings and applies their defaults.
func (s *Server) finishACME(p *problems) {
	a := &s.ACME
	if !s.ACMEEnabled() {
		for name, set := range map[string]bool{
			"acme-email": a.ACMEEmail != "", "acme-ca": a.ACMECA != "", "acme-ca-root": a.ACMECARoot != "",
			"acme-state-dir": a.ACMEStateDir != "", "acme-challenges": len(a.ACMEChallenges) > 0, "acme-ask": a.ACMEAsk != "",
			"acme-renew-check-interval": a.ACMERenewCheckInterval != 0,
		} {
			if set {
				p.bad(name, "has no effect without --domain (or --acme-on-demand)")
			}
		}
		return
	}
	f := &s.Front
	if !f.SSL {
		p.bad("domain", "needs HTTPS: drop --ssl=false")
	}
	if f.explicit["ssl-certificate"] || f.explicit["ssl-certificate-key"] {
		p.bad("ssl-certificate", "cannot be used with --domain, whose certificates Ferry obtains itself; drop one of them")
	}
	if f.Socket != "" && !f.SocketAndTCP {
		p.bad("domain", "needs TCP listeners for the CA to reach: with --socket, add --socket-and-tcp")
	}
	if a.ACMECA == "" {
		a.ACMECA = DefaultACMECA
	}
	if u, err := url.Parse(a.ACMECA); err != nil || u.Scheme != "https" || u.Host == "" {
		p.bad("acme-ca", "must be an https:// URL of an ACME directory (got %q)", a.ACMECA)
	}
	if _, err := a.CARoots(); err != nil {
		p.bad("acme-ca-root", "%v", err)
	}
	if a.ACMEStateDir == "" {
		a.ACMEStateDir = DefaultACMEStateDir()
	}
	if abs, err := filepath.Abs(a.ACMEStateDir); err == nil {
		a.ACMEStateDir = abs
	}
	a.ACMEChallenges = splitList(a.ACMEChallenges)
	if len(a.ACMEChallenges) == 0 {
		a.ACMEChallenges = []string{ChallengeHTTP01, ChallengeTLSALPN01}
	}
	for i, ch := range a.ACMEChallenges {
		ch = strings.ToLower(ch)
		a.ACMEChallenges[i] = ch
		if ch != ChallengeHTTP01 && ch != ChallengeTLSALPN01 {
			p.bad("acme-challenges", "%q is not http-01 or tls-alpn-01", ch)
		}
	}
	if slices.Equal(a.ACMEChallenges, []string{ChallengeHTTP01}) && f.SSL && f.SSLPort == 0 {
		p.bad("acme-challenges", "http-01 needs plain HTTP on --port: give --ssl-port for HTTPS, or allow tls-alpn-01")
	}
	if a.ACMEOnDemand && a.ACMEAsk == "" {
		p.bad("acme-on-demand", "needs --acme-ask URL, so that nobody can make Ferry request certificates for any name")
	}
	if a.ACMEAsk != "" {
		if u, err := url.Parse(a.ACMEAsk); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			p.bad("acme-ask", "must be an http:// or https:// URL (got %q)", a.ACMEAsk)
		}
		if !a.ACMEOnDemand {
			p.bad("acme-ask", "has no effect without --acme-on-demand")
		}
	}
	switch {
	case a.ACMERenewCheckInterval == 0:
		a.ACMERenewCheckInterval = DefaultACMERenewCheckInterval
	case a.ACMERenewCheckInterval < time.Second:
		p.bad("acme-renew-check-interval", "must be at least 1 second (got %s)", a.ACMERenewCheckInterval)
	}
}

// CARoots are the roots trusted for the CA's HTTPS endpoint: the system's
// plus ACMECARoot's; nil (the system's) without ACMECARoot.
func (a *ACME) CARoots() (*x509.CertPool, error) {
	if a.ACMECARoot == "" {
		return nil, nil
	}
	pem, err := os.ReadFile(a.ACMECARoot)
	if err != nil {
		return nil, err
	}
	pool, err := x509.SystemCertPool()
	if err != nil || pool == nil {
		pool = x509.NewCertPool()
	}
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%s holds no PEM certificate", a.ACMECARoot)
	}
	return pool, nil
}

// DefaultACMEStateDir is where ACME state is kept unless
// --acme-state-dir says otherwise: outside the instance directory, so that
// it survives restarts and upgrades.
func DefaultACMEStateDir() string {
	if os.Geteuid() == 0 {
		return "/var/lib/ferry/acme"
	}
	if d := os.Getenv("XDG_DATA_HOME"); d != "" {
		return filepath.Join(d, "ferry", "acme")
	}
	if h, err := os.UserHomeDir(); err == nil {
		return filepath.Join(h, ".local", "share", "ferry", "acme")
	}
	return filepath.Join(os.TempDir(), "ferry-acme")
}
