package config

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestFrontDefaults(t *testing.T) {
	c := load(t, nil, wsgiApp(t))
	f := c.Front
	if f.SSL || f.SSLPort != 0 || f.SSLMinVersion != "1.2" || !f.HTTP2 || f.Socket != "" || f.SocketMode != 0o660 ||
		f.SocketBacklog != 2048 || f.ClientMaxBodySize != 1<<30 || f.ClientHeaderTimeout != 30*time.Second ||
		f.ClientBodyTimeout != 60*time.Second || f.ClientWriteTimeout != 60*time.Second || f.KeepaliveTimeout != 120*time.Second ||
		f.MaxHeaderSize != 64<<10 || f.MaxURILength != 8<<10 || f.MaxConnections != 10000 || !slices.Equal(f.TrustedNets, namedNets["loopback"]) || !f.TrustUnix ||
		f.AccessLog != "" || f.AccessLogFormat != "text" || !f.Gzip || f.GzipLevel != 5 || f.GzipMinSize != 512 ||
		!slices.Equal(f.GzipTypes, DefaultGzipTypes) {
		t.Fatalf("front defaults: %+v", f)
	}
	var b strings.Builder
	PrintStartUsage(&b)
	for _, want := range []string{
		"--client-max-body-size BYTES", "(default 1g)", "--socket FILE", "--ssl ", "--gzip-level LEVEL", "(default 5)",
		"--trusted-proxies CIDR", "--access-log-format FORMAT", "(default text)", "--socket-mode MODE", "(default 0660)",
	} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("usage lacks %q", want)
		}
	}
}

func TestFrontSources(t *testing.T) {
	dir := wsgiApp(t)
	write(t, filepath.Join(dir, "Passengerfile.json"), `{"socket_file": "/run/x.sock", "socket_backlog": 64, "gzip_types": ["text/*", "Application/JSON"], "client_max_body_size": "10m"}`)
	c := load(t, []string{"FERRY_TRUSTED_PROXIES=10.0.0.0/8 unix", "PASSENGER_ACCESS_LOG_FORMAT=json"},
		dir, "--client-max-body-size", "0", "--gzip=false", "--trusted-proxies", "192.0.2.7,loopback", "--socket-mode", "600")
	f := c.Front
	if f.Socket != "/run/x.sock" || f.SocketBacklog != 64 || f.ClientMaxBodySize != 0 || f.Gzip || f.SocketMode != 0o600 ||
		f.AccessLogFormat != "json" || !f.TrustUnix || !slices.Equal(f.GzipTypes, []string{"text/*", "application/json"}) {
		t.Fatalf("front: %+v", f)
	}
	want := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("192.0.2.7/32"),
		netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}
	if !slices.Equal(f.TrustedNets, want) {
		t.Errorf("trusted nets %v, want %v", f.TrustedNets, want)
	}
}

func TestFrontValidation(t *testing.T) {
	dir := wsgiApp(t)
	cert, key := selfSigned(t)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--ssl"}, "--ssl: needs --ssl-certificate and --ssl-certificate-key"},
		{[]string{"--ssl", "--ssl-certificate", key, "--ssl-certificate-key", key}, "--ssl-certificate: cannot use"},
		{[]string{"--ssl-port", "443"}, "--ssl-port: has no effect without --ssl"},
		{[]string{"--ssl", "--ssl-certificate", cert, "--ssl-certificate-key", key, "--ssl-redirect"}, "--ssl-redirect: needs --ssl-port"},
		{[]string{"--ssl", "--ssl-certificate", cert, "--ssl-certificate-key", key, "--ssl-min-version", "1.1"}, "--ssl-min-version: must be 1.2 or 1.3"},
		{[]string{"--socket-and-tcp"}, "--socket-and-tcp: has no effect without --socket"},
		{[]string{"--ssl", "--ssl-certificate", cert, "--ssl-certificate-key", key, "--socket", "/run/f.sock"}, "--ssl: has no listener with --socket alone"},
		{[]string{"--socket", "/" + strings.Repeat("s", 120)}, "--socket: the path is"},
		{[]string{"--socket-mode", "999"}, "want permission bits in octal"},
		{[]string{"--client-max-body-size", "-1"}, "want a byte count"},
		{[]string{"--client-body-timeout", "-1"}, "--client-body-timeout: must be 0 (no limit) or more"},
		{[]string{"--keepalive-timeout", "0"}, "--keepalive-timeout: must be more than 0"},
		{[]string{"--max-header-size", "100"}, "--max-header-size: must be between 1k and 16m"},
		{[]string{"--max-uri-length", "3"}, "--max-uri-length: must be at least 16"},
		{[]string{"--max-connections", "-1"}, "--max-connections: must be 0 (unlimited) or more"},
		{[]string{"--trusted-proxies", "10.0.0.0/33,nope"}, `--trusted-proxies: "10.0.0.0/33" is not a CIDR`},
		{[]string{"--trusted-proxies", "nope"}, `"nope" is not an address`},
		{[]string{"--access-log-format", "apache"}, "--access-log-format: must be text, combined or json"},
		{[]string{"--gzip-level", "0"}, "--gzip-level: must be between 1 and 9"},
		{[]string{"--gzip-types", "html"}, `--gzip-types: "html" is not a media type`},
		{[]string{"--gzip-types", "*/*"}, `"*/*" is not a media type`},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			_, err := Load(append([]string{dir}, tc.args...), nil)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error = %v, want %q", err, tc.want)
			}
		})
	}
	c := load(t, nil, dir, "--ssl", "--ssl-certificate", cert, "--ssl-certificate-key", key, "--ssl-port", "0", "--socket", "rel.sock", "--socket-and-tcp")
	if !c.SSL || !filepath.IsAbs(c.Socket) {
		t.Errorf("ssl %v, socket %q", c.SSL, c.Socket)
	}
}

// selfSigned writes a certificate and key for localhost and returns their
// paths.
func selfSigned(t *testing.T) (cert, key string) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "localhost"},
		DNSNames: []string{"localhost"}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	cert, key = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	os.WriteFile(cert, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(key, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600)
	return cert, key
}

// TestLeanPathOldName: --fast-path, the old name of --lean-path, still
// sets it, from every source; an explicit false is not undone by the
// default of the new name.
func TestLeanPathOldName(t *testing.T) {
	for _, tc := range []struct {
		env  []string
		args []string
		want bool
	}{
		{nil, nil, true},
		{nil, []string{"--lean-path=false"}, false},
		{nil, []string{"--fast-path=false"}, false},
		{nil, []string{"--fast-path=false", "--lean-path"}, true},
		{[]string{"FERRY_FAST_PATH=false"}, nil, false},
		{[]string{"FERRY_LEAN_PATH=false"}, nil, false},
	} {
		dir := wsgiApp(t)
		c := load(t, tc.env, append([]string{dir}, tc.args...)...)
		if c.Front.LeanPath != tc.want {
			t.Errorf("%v %v: lean path %v, want %v", tc.env, tc.args, c.Front.LeanPath, tc.want)
		}
	}
}
