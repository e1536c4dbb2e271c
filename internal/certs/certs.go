// Package certs owns automatic HTTPS: obtaining, storing and renewing the
// certificates of the apps' --domain names from an ACME CA (RFC 8555),
// answering the CA's HTTP-01 and TLS-ALPN-01 challenges, OCSP stapling,
// optional on-demand issuance guarded by an "ask" URL, and the state of
// each certificate for status and metrics. The protocol, the renewal
// schedule (ACME Renewal Information, else the last third of the
// lifetime, with jitter), the retry back-off, the storage with its
// cross-process locks and the stapling are certmagic's; this package is the
// glue: configuration, logging into Ferry's log, the ask check, and state.
//
// A failure never takes a site down: a certificate that cannot be renewed
// keeps serving until it expires, and obtaining a missing one is retried in
// the background; the server starts whatever the CA does.
package certs

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/caddyserver/certmagic"
)

// Config is what the manager needs; core maps the configuration onto it.
type Config struct {
	// Domains are the names managed from the start.
	Domains []string
	// Email is the ACME account's contact ("": none).
	Email string
	// CA is the ACME directory URL.
	CA string
	// CARoots are trusted for the CA's HTTPS endpoint (nil: the system's).
	CARoots *x509.CertPool
	// StateDir keeps accounts, certificates, keys and locks.
	StateDir string
	// HTTP01 and TLSALPN01 enable each challenge type.
	HTTP01, TLSALPN01 bool
	// Ask, if set, enables on-demand issuance for names not in Domains,
	// each allowed by a 200 answer to GET Ask?domain=NAME.
	Ask string
	// AskTimeout bounds one ask request. Default 10s.
	AskTimeout time.Duration
	// RenewCheckInterval is how often certificates are checked for
	// renewal (and OCSP staples for refreshing, at most hourly).
	RenewCheckInterval time.Duration
	Log                *slog.Logger
}

// Manager manages the certificates of one core.
type Manager struct {
	cfg      Config
	log      *slog.Logger
	cache    *certmagic.Cache
	magic    *certmagic.Config // the listed domains
	onDemand *certmagic.Config // other names, when Ask is set; nil otherwise
	issuers  []*certmagic.ACMEIssuer
	listed   map[string]bool
	started  bool
	cancel   context.CancelFunc

	mu    sync.Mutex
	state map[string]*nameState
}

// nameState is what the events told about one name.
type nameState struct {
	obtaining, renewal bool
	failures           int
	lastError          string
	lastErrorAt        time.Time
	lastObtained       time.Time
}

// New prepares the manager: the state directory (created 0700), the
// certificate cache and its maintenance. Nothing talks to the CA before
// Start.
func New(c Config) (*Manager, error) {
	if c.Log == nil {
		c.Log = slog.New(slog.DiscardHandler)
	}
	if c.AskTimeout <= 0 {
		c.AskTimeout = 10 * time.Second
	}
	if err := prepareStateDir(c.StateDir); err != nil {
		return nil, err
	}
	m := &Manager{cfg: c, log: c.Log, state: map[string]*nameState{}, listed: map[string]bool{}}
	for _, d := range c.Domains {
		m.listed[d] = true
	}
	zl := zapToSlog(c.Log)
	ocspEvery := max(c.RenewCheckInterval, time.Hour)
	m.cache = certmagic.NewCache(certmagic.CacheOptions{
		GetConfigForCert: func(cert certmagic.Certificate) (*certmagic.Config, error) {
			return m.configFor(cert.Names), nil
		},
		RenewCheckInterval: c.RenewCheckInterval,
		OCSPCheckInterval:  ocspEvery,
		Logger:             zl,
	})
	storage := &certmagic.FileStorage{Path: c.StateDir}
	var defaultName string
	if len(c.Domains) > 0 {
		defaultName = c.Domains[0] // for clients that send no SNI (https://IP/)
	}
	newConfig := func(onDemand *certmagic.OnDemandConfig) *certmagic.Config {
		mc := certmagic.New(m.cache, certmagic.Config{
			Storage:           storage,
			OnEvent:           m.onEvent,
			OnDemand:          onDemand,
			DefaultServerName: defaultName,
			Logger:            zl,
		})
		iss := certmagic.NewACMEIssuer(mc, certmagic.ACMEIssuer{
			CA:                      c.CA,
			Email:                   c.Email,
			Agreed:                  true, // giving --domain is agreeing to the CA's terms
			DisableHTTPChallenge:    !c.HTTP01,
			DisableTLSALPNChallenge: !c.TLSALPN01,
			TrustedRoots:            c.CARoots,
			Logger:                  zl,
		})
		mc.Issuers = []certmagic.Issuer{iss}
		m.issuers = append(m.issuers, iss)
		return mc
	}
	m.magic = newConfig(nil)
	if c.Ask != "" {
		m.onDemand = newConfig(&certmagic.OnDemandConfig{DecisionFunc: m.ask})
	}
	return m, nil
}

// prepareStateDir creates the state directory 0700, and refuses one that
// others may write (they could plant a key or read ours).
func prepareStateDir(dir string) error {
	if dir == "" {
		return errors.New("acme: no state directory")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("acme state directory: %w", err)
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("acme state directory: %w", err)
	}
	if fi.Mode().Perm()&0o022 != 0 {
		return fmt.Errorf("acme state directory %s: others may write it (mode %#o); chmod 0700 it", dir, fi.Mode().Perm())
	}
	return nil
}

// configFor is the certmagic config that manages a certificate with these
// names: the listed one, unless none of them is listed.
func (m *Manager) configFor(names []string) *certmagic.Config {
	if m.onDemand == nil || slices.ContainsFunc(names, func(n string) bool { return m.listed[n] }) {
		return m.magic
	}
	return m.onDemand
}

// Start begins managing the listed names in the background: each is
// loaded from storage if there, else obtained (retried with back-off
// while the CA fails); renewals follow. host, httpPort and tlsPort are
// where Ferry listens, so that certmagic knows the challenge ports are
// served by Ferry (0: not served). It returns at once.
func (m *Manager) Start(ctx context.Context, host string, httpPort, tlsPort int) error {
	ctx, m.cancel = context.WithCancel(ctx)
	for _, iss := range m.issuers {
		iss.ListenHost = host
		iss.AltHTTPPort = httpPort
		iss.AltTLSALPNPort = tlsPort
		if httpPort == 0 {
			iss.DisableHTTPChallenge = true
		}
		if tlsPort == 0 {
			iss.DisableTLSALPNChallenge = true
		}
		if iss.DisableHTTPChallenge && iss.DisableTLSALPNChallenge {
			return errors.New("acme: no challenge type can be answered (http-01 needs plain HTTP, tls-alpn-01 HTTPS)")
		}
	}
	m.mu.Lock()
	m.started = true
	for _, d := range m.cfg.Domains {
		m.stateOf(d)
	}
	m.mu.Unlock()
	if len(m.cfg.Domains) == 0 {
		return nil
	}
	if err := m.magic.ManageAsync(ctx, m.cfg.Domains); err != nil {
		return fmt.Errorf("acme: manage %s: %w", strings.Join(m.cfg.Domains, ", "), err)
	}
	m.log.Info("acme: managing certificates", "domains", m.cfg.Domains, "ca", m.cfg.CA, "state_dir", m.cfg.StateDir,
		"on_demand", m.onDemand != nil)
	return nil
}

// LoadStored puts the certificates the state directory holds into the
// cache. Call it before the TLS listener accepts, so that the first
// handshakes (after a restart, or in the new Ferry of an upgrade, which
// accepts on the same sockets at once) find them. Reading local storage is
// quick; the OCSP staple is fetched here only if the stored one is stale,
// within loadTimeout in all.
func (m *Manager) LoadStored(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, loadTimeout)
	defer cancel()
	for _, d := range m.cfg.Domains {
		if _, err := m.magic.CacheManagedCertificate(ctx, d); err != nil && !errors.Is(err, fs.ErrNotExist) {
			m.log.Warn("acme: cannot load the stored certificate; getting one", "domain", d, "error", err)
		}
	}
}

// loadTimeout bounds loading the stored certificates at start.
const loadTimeout = 10 * time.Second

// Stop ends maintenance and pending retries; locks this process holds are
// released.
func (m *Manager) Stop() {
	if m.cancel != nil {
		m.cancel()
	}
	m.cache.Stop()
}

// GetCertificate is the TLS listener's: the certificate for the SNI name
// (obtained on demand if allowed), or the TLS-ALPN-01 challenge
// certificate when the CA validates.
func (m *Manager) GetCertificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	name := strings.ToLower(strings.TrimSuffix(hello.ServerName, "."))
	if m.onDemand != nil && !m.listed[name] {
		return m.onDemand.GetCertificate(hello)
	}
	return m.magic.GetCertificate(hello)
}

// HTTPHandler answers the CA's HTTP-01 requests
// (/.well-known/acme-challenge/…) for challenges this process or another
// sharing the state directory started, and passes everything else to next.
func (m *Manager) HTTPHandler(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for _, iss := range m.issuers {
			if iss.HandleHTTPChallenge(w, r) {
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

// ask is on-demand issuance's decision: the ask URL must answer 200 for
// the name. Listed names need no asking.
func (m *Manager) ask(ctx context.Context, name string) error {
	if m.listed[name] {
		return nil
	}
	m.mu.Lock()
	started := m.started
	m.mu.Unlock()
	if !started { // the challenge ports are not known yet
		return errors.New("acme: not started yet")
	}
	ctx, cancel := context.WithTimeout(ctx, m.cfg.AskTimeout)
	defer cancel()
	if err := Ask(ctx, http.DefaultClient, m.cfg.Ask, name); err != nil {
		m.log.Warn("acme: on-demand certificate refused", "domain", name, "reason", err)
		return err
	}
	m.mu.Lock()
	m.stateOf(name)
	m.mu.Unlock()
	return nil
}

// onEvent records certmagic's events per name, and says in Ferry's log
// what an operator must know about a failure.
func (m *Manager) onEvent(_ context.Context, event string, data map[string]any) error {
	name, _ := data["identifier"].(string)
	if name == "" {
		return nil
	}
	renewal, _ := data["renewal"].(bool)
	m.mu.Lock()
	defer m.mu.Unlock()
	st := m.stateOf(name)
	switch event {
	case "cert_obtaining":
		st.obtaining, st.renewal = true, renewal
	case "cert_obtained":
		st.obtaining, st.failures, st.lastError = false, 0, ""
		st.lastObtained = time.Now()
		m.log.Info("acme: certificate obtained", "domain", name, "renewal", renewal)
	case "cert_failed":
		st.obtaining = false
		st.failures++
		st.lastErrorAt = time.Now()
		if err, ok := data["error"].(error); ok {
			st.lastError = err.Error()
		}
		what := "no certificate yet: HTTPS for this name fails until one is obtained"
		if renewal {
			what = "the current certificate keeps serving until it expires"
		}
		m.log.Warn("acme: could not get a certificate; retrying with back-off", "domain", name, "renewal", renewal,
			"failures", st.failures, "error", st.lastError, "meanwhile", what)
	}
	return nil
}

func (m *Manager) stateOf(name string) *nameState {
	st := m.state[name]
	if st == nil {
		st = &nameState{}
		m.state[name] = st
	}
	return st
}
