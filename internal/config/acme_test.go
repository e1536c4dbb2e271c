package config

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestACMEDefaults(t *testing.T) {
	dir := wsgiApp(t)
	c := load(t, []string{"XDG_DATA_HOME=/data"}, dir, "--domain", "Example.COM.", "--domain", "www.example.com")
	f := c.Front
	if !c.ACMEEnabled() || !f.SSL || f.SSLPort != 443 || !f.SSLRedirect || f.SSLCertificate != "" {
		t.Fatalf("front with --domain: ssl %v port %d redirect %v", f.SSL, f.SSLPort, f.SSLRedirect)
	}
	a := c.ACME
	if !slices.Equal(a.ACMEDomains, []string{"example.com", "www.example.com"}) || a.ACMECA != DefaultACMECA ||
		!slices.Equal(a.ACMEChallenges, []string{"http-01", "tls-alpn-01"}) || a.ACMERenewCheckInterval != 10*time.Minute ||
		a.ACMEOnDemand || a.ACMEStateDir == "" {
		t.Fatalf("acme defaults: %+v", a)
	}
	if c.Apps[0].ServerNames != nil {
		t.Errorf("one app: domains must not restrict routing (server names %v)", c.Apps[0].ServerNames)
	}
	// Explicit choices win over the defaults --domain brings.
	c = load(t, nil, dir, "--domain", "example.com", "--ssl-port", "8443", "--ssl-redirect=false", "--acme-challenges", "TLS-ALPN-01")
	if c.SSLPort != 8443 || c.SSLRedirect || !slices.Equal(c.ACMEChallenges, []string{"tls-alpn-01"}) {
		t.Errorf("explicit: port %d redirect %v challenges %v", c.SSLPort, c.SSLRedirect, c.ACMEChallenges)
	}
	c = load(t, nil, dir, "--domain", "example.com", "--ssl")
	if c.SSLPort != 0 || c.SSLRedirect {
		t.Errorf("--ssl with --domain: HTTPS on --port alone, got ssl-port %d redirect %v", c.SSLPort, c.SSLRedirect)
	}
	// From Passengerfile.json.
	write(t, filepath.Join(dir, "Passengerfile.json"), `{"domains": ["pf.example.org"], "acme_email": "ops@example.org", "acme_on_demand": true, "acme_ask": "http://127.0.0.1:9/ask"}`)
	c = load(t, nil, dir)
	if !slices.Equal(c.ACMEDomains, []string{"pf.example.org"}) || c.ACMEEmail != "ops@example.org" || !c.ACMEOnDemand {
		t.Errorf("from Passengerfile.json: %+v", c.ACME)
	}
}

// A multi-app file's apps each have their domains, by which they are routed
// unless they name server_names.
func TestACMEMultiApp(t *testing.T) {
	a, b := wsgiApp(t), wsgiApp(t)
	file := filepath.Join(t.TempDir(), "ferry.toml")
	write(t, file, `acme_email = "ops@example.org"
[[app]]
root = "`+a+`"
name = "a"
domains = ["a.example.org", "www.a.example.org"]
[[app]]
root = "`+b+`"
name = "b"
domains = "b.example.org"
server_names = ["b.example.org", "alias.example.org"]
`)
	c := load(t, nil, "--config", file)
	if !slices.Equal(c.ACMEDomains, []string{"a.example.org", "www.a.example.org", "b.example.org"}) {
		t.Errorf("domains %v", c.ACMEDomains)
	}
	if !slices.Equal(c.Apps[0].ServerNames, []string{"a.example.org", "www.a.example.org"}) ||
		!slices.Equal(c.Apps[1].ServerNames, []string{"b.example.org", "alias.example.org"}) {
		t.Errorf("server names %v / %v", c.Apps[0].ServerNames, c.Apps[1].ServerNames)
	}
}

func TestACMEValidation(t *testing.T) {
	dir := wsgiApp(t)
	cert, key := selfSigned(t)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--acme-email", "a@b.c"}, "--acme-email: has no effect without --domain"},
		{[]string{"--acme-ca", "https://ca/dir"}, "--acme-ca: has no effect without --domain"},
		{[]string{"--domain", "*.example.com"}, "wildcard certificates need the DNS-01 challenge"},
		{[]string{"--domain", "https://example.com/"}, "is not a host name: give the name alone"},
		{[]string{"--domain", "192.0.2.1"}, "is an IP address"},
		{[]string{"--domain", "exa$mple.com"}, "letters, digits"},
		{[]string{"--domain", "-a.example.com"}, "hyphen-edged label"},
		{[]string{"--domain", "a..example.com"}, "is not a host name"},
		{[]string{"--domain", "example.com", "--ssl-certificate", cert, "--ssl-certificate-key", key}, "--ssl-certificate: cannot be used with --domain"},
		{[]string{"--domain", "example.com", "--ssl=false"}, "--domain: needs HTTPS"},
		{[]string{"--domain", "example.com", "--acme-ca", "http://ca/dir"}, "--acme-ca: must be an https:// URL"},
		{[]string{"--domain", "example.com", "--acme-ca-root", "/nonexistent.pem"}, "--acme-ca-root: open /nonexistent.pem"},
		{[]string{"--domain", "example.com", "--acme-ca-root", key}, "holds no PEM certificate"},
		{[]string{"--domain", "example.com", "--acme-challenges", "dns-01"}, `--acme-challenges: "dns-01" is not http-01 or tls-alpn-01`},
		{[]string{"--domain", "example.com", "--ssl", "--acme-challenges", "http-01"}, "http-01 needs plain HTTP on --port"},
		{[]string{"--acme-on-demand"}, "--acme-on-demand: needs --acme-ask URL"},
		{[]string{"--acme-on-demand", "--acme-ask", "ftp://x/"}, "--acme-ask: must be an http:// or https:// URL"},
		{[]string{"--domain", "example.com", "--acme-ask", "http://x/"}, "--acme-ask: has no effect without --acme-on-demand"},
		{[]string{"--domain", "example.com", "--acme-renew-check-interval", "0.5"}, "--acme-renew-check-interval: must be at least 1 second"},
		{[]string{"--domain", "example.com", "--socket", "/run/f.sock"}, "--domain: needs TCP listeners"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			_, err := Load(append([]string{dir}, tc.args...), nil)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error = %v, want %q", err, tc.want)
			}
		})
	}
}
