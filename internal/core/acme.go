package core

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/ferry-server/ferry/internal/certs"
	"github.com/ferry-server/ferry/internal/config"
	"github.com/ferry-server/ferry/internal/metrics"
	"github.com/ferry-server/ferry/internal/server"
)

// newCertManager prepares automatic HTTPS when the configuration asks for
// it (--domain, --acme-on-demand); nil otherwise.
func newCertManager(cfg *config.Config, log *slog.Logger) (*certs.Manager, error) {
	if !cfg.ACMEEnabled() {
		return nil, nil
	}
	a := cfg.ACME
	c := certs.Config{Log: log}
	c.Domains = a.ACMEDomains
	c.Email, c.CA, c.StateDir = a.ACMEEmail, a.ACMECA, a.ACMEStateDir
	roots, err := a.CARoots()
	if err != nil {
		return nil, fmt.Errorf("--acme-ca-root: %w", err)
	}
	c.CARoots = roots
	c.HTTP01 = slices.Contains(a.ACMEChallenges, config.ChallengeHTTP01)
	c.TLSALPN01 = slices.Contains(a.ACMEChallenges, config.ChallengeTLSALPN01)
	if a.ACMEOnDemand {
		c.Ask = a.ACMEAsk
	}
	c.RenewCheckInterval = a.ACMERenewCheckInterval
	return certs.New(c)
}

// useCertManager points the front's HTTPS at the manager's certificates,
// and its plain HTTP at the HTTP-01 answers.
func useCertManager(sc *server.Config, cm *certs.Manager, cfg *config.Config) {
	if cm == nil || sc.TLS == nil {
		return
	}
	sc.TLS.GetCertificate = cm.GetCertificate
	if slices.Contains(cfg.ACMEChallenges, config.ChallengeHTTP01) {
		sc.HTTPChallenge = cm.HTTPHandler
	}
}

// startCerts starts managing certificates once the front listens: the
// challenge ports are those it listens on.
func startCerts(ctx context.Context, cm *certs.Manager, front *server.Server, reg *metrics.Metrics, cfg *config.Config, log *slog.Logger) error {
	var host string
	var httpPort, tlsPort int
	for _, u := range front.URLs() {
		pu, err := url.Parse(u)
		if err != nil || pu.Host == "" {
			continue
		}
		h, p, err := net.SplitHostPort(pu.Host)
		if err != nil {
			continue
		}
		n, _ := strconv.Atoi(p)
		switch pu.Scheme {
		case "http":
			httpPort, host = n, h
		case "https":
			tlsPort, host = n, h
		}
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		host = ""
	}
	if msg := challengePorts(cfg.ACMECA, httpPort, tlsPort); msg != "" {
		log.Warn("acme: " + msg)
	}
	reg.RegisterCertificates(func() []metrics.CertSnapshot {
		var out []metrics.CertSnapshot
		for _, s := range cm.Status() {
			out = append(out, metrics.CertSnapshot{Domain: s.Domain, State: s.State, NotAfter: s.NotAfter, Failures: s.Failures})
		}
		return out
	})
	return cm.Start(ctx, host, httpPort, tlsPort)
}

// challengePorts says what is wrong when a public CA, which validates on
// ports 80 (HTTP-01) and 443 (TLS-ALPN-01), cannot reach Ferry on either;
// "" when it can, or when the CA is another (a private or test CA may
// validate elsewhere).
func challengePorts(ca string, httpPort, tlsPort int) string {
	if !strings.HasPrefix(ca, "https://acme-v02.api.letsencrypt.org/") &&
		!strings.HasPrefix(ca, "https://acme-staging-v02.api.letsencrypt.org/") &&
		!strings.HasPrefix(ca, "https://acme.zerossl.com/") {
		return ""
	}
	if httpPort == 80 || tlsPort == 443 {
		return ""
	}
	return fmt.Sprintf("the CA validates on ports 80 and 443, but Ferry listens on %d (HTTP) and %d (HTTPS): "+
		"no certificate can be obtained unless those ports are forwarded here; use --port 80 and --ssl-port 443", httpPort, tlsPort)
}
