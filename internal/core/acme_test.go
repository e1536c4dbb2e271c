package core

import (
	"strings"
	"testing"
)

func TestChallengePorts(t *testing.T) {
	le := "https://acme-v02.api.letsencrypt.org/directory"
	for _, tc := range []struct {
		ca                string
		httpPort, tlsPort int
		warn              bool
	}{
		{le, 80, 443, false},
		{le, 3000, 443, false}, // TLS-ALPN-01 still works
		{le, 80, 8443, false},  // HTTP-01 still works
		{le, 3000, 8443, true},
		{le, 3000, 0, true},
		{"https://acme-staging-v02.api.letsencrypt.org/directory", 8080, 8443, true},
		{"https://ca.internal:9000/acme/acme/directory", 8080, 8443, false}, // a private CA may validate anywhere
	} {
		got := challengePorts(tc.ca, tc.httpPort, tc.tlsPort)
		if (got != "") != tc.warn || tc.warn && !strings.Contains(got, "--port 80") {
			t.Errorf("challengePorts(%s, %d, %d) = %q, want a warning: %v", tc.ca, tc.httpPort, tc.tlsPort, got, tc.warn)
		}
	}
}
