package certs

import (
	"crypto/x509"
	"slices"
	"time"
)

// Status is one managed name's certificate, as `ferry status` and the
// metrics show it.
type Status struct {
	Domain string `json:"domain"`
	// State is one of the State* constants.
	State string `json:"state"`
	// NotBefore and NotAfter bound the certificate served (zero: none).
	NotBefore time.Time `json:"not_before,omitzero"`
	NotAfter  time.Time `json:"not_after,omitzero"`
	// DaysLeft is the time to NotAfter in days (negative: expired).
	DaysLeft float64 `json:"days_left"`
	Issuer   string  `json:"issuer,omitempty"`
	// OCSPStapled: the certificate is served with an OCSP response (only
	// CAs that run OCSP give one).
	OCSPStapled bool `json:"ocsp_stapled"`
	// Failures in a row, and the last one, since the last success.
	Failures    int       `json:"failures"`
	LastError   string    `json:"last_error,omitempty"`
	LastErrorAt time.Time `json:"last_error_at,omitzero"`
	// LastObtained is when this process last obtained or renewed it.
	LastObtained time.Time `json:"last_obtained,omitzero"`
	OnDemand     bool      `json:"on_demand,omitempty"`
}

// States of a certificate.
const (
	StateValid     = "valid"     // served, not being renewed
	StateObtaining = "obtaining" // none yet; the CA is being asked
	StateRenewing  = "renewing"  // served; a renewal is under way
	StateFailing   = "failing"   // the last attempt failed; retrying with back-off
	StateMissing   = "missing"   // none, nothing under way (e.g. waiting to retry)
	StateExpired   = "expired"   // the certificate served has expired
)

// Status reports every name managed so far (the listed ones, then those
// obtained on demand), sorted by name after the listed ones.
func (m *Manager) Status() []Status {
	now := time.Now()
	m.mu.Lock()
	names := slices.Clone(m.cfg.Domains)
	var extra []string
	for n := range m.state {
		if !m.listed[n] {
			extra = append(extra, n)
		}
	}
	slices.Sort(extra)
	names = append(names, extra...)
	states := make(map[string]nameState, len(names))
	for _, n := range names {
		if st := m.state[n]; st != nil {
			states[n] = *st
		}
	}
	m.mu.Unlock()

	out := make([]Status, 0, len(names))
	for _, n := range names {
		st := states[n]
		s := Status{Domain: n, Failures: st.failures, LastError: st.lastError, LastErrorAt: st.lastErrorAt,
			LastObtained: st.lastObtained, OnDemand: !m.listed[n]}
		leaf, stapled := m.served(n)
		if leaf != nil {
			s.NotBefore, s.NotAfter = leaf.NotBefore, leaf.NotAfter
			s.DaysLeft = leaf.NotAfter.Sub(now).Hours() / 24
			s.Issuer = leaf.Issuer.CommonName
			s.OCSPStapled = stapled
		}
		s.State = state(leaf != nil, leaf != nil && now.After(leaf.NotAfter), st)
		out = append(out, s)
	}
	return out
}

// state is the policy naming a certificate's state.
func state(have, expired bool, st nameState) string {
	switch {
	case st.obtaining && have && !expired:
		return StateRenewing
	case st.obtaining:
		return StateObtaining
	case have && expired:
		return StateExpired
	case st.failures > 0:
		return StateFailing
	case have:
		return StateValid
	}
	return StateMissing
}

// served is the leaf of the certificate a handshake for name gets: the
// cached one expiring last.
func (m *Manager) served(name string) (*x509.Certificate, bool) {
	var best *x509.Certificate
	stapled := false
	for _, c := range m.cache.AllMatchingCertificates(name) {
		if c.Leaf != nil && (best == nil || c.Leaf.NotAfter.After(best.NotAfter)) {
			best, stapled = c.Leaf, len(c.OCSPStaple) > 0
		}
	}
	return best, stapled
}
