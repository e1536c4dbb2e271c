package server

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func writeCert(t *testing.T) (certFile, keyFile string, roots *x509.CertPool) {
	t.Helper()
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test"},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		BasicConstraintsValid: true, IsCA: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := x509.MarshalECPrivateKey(k)
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "c.pem"), filepath.Join(dir, "k.pem")
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600)
	c, _ := x509.ParseCertificate(der)
	roots = x509.NewCertPool()
	roots.AddCert(c)
	return certFile, keyFile, roots
}

// TestFrontModes serves the same request path in the front's modes: plain
// HTTP/1.1, HTTPS with HTTP/1.1, HTTPS with HTTP/2, and a Unix socket.
func TestFrontModes(t *testing.T) {
	cert, key, roots := writeCert(t)
	for _, mode := range []string{"h1", "https1", "h2", "unix"} {
		t.Run(mode, func(t *testing.T) {
			h, _ := benchHandler(t, helloResp, false, Options{})
			c := Config{Addr: "127.0.0.1:0", HeaderTimeout: 5 * time.Second, IdleTimeout: time.Minute, MaxConnections: 10}
			if mode != "h1" && mode != "unix" {
				c.TLS = &TLSConfig{CertFile: cert, KeyFile: key, HTTP2: true}
			}
			if mode == "unix" {
				c.Addr, c.Socket, c.SocketMode = "", filepath.Join(t.TempDir(), "s"), 0o600
			}
			s, err := Listen(c, h, slog.New(slog.NewTextHandler(io.Discard, nil)))
			if err != nil {
				t.Fatal(err)
			}
			go s.Serve()
			defer s.Shutdown(t.Context())

			tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}, Protocols: new(http.Protocols)}
			tr.Protocols.SetHTTP1(mode != "h2")
			tr.Protocols.SetHTTP2(mode == "h2")
			url := strings.Replace(s.URLs()[0], "unix:"+c.Socket, "http://x", 1)
			if mode == "unix" {
				tr.Dial = func(string, string) (net.Conn, error) { return net.Dial("unix", c.Socket) }
			}
			defer tr.CloseIdleConnections()
			for range 3 {
				resp, err := (&http.Client{Transport: tr}).Get(url + "/")
				if err != nil {
					t.Fatal(err)
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if string(b) != "hello world" || resp.Header.Get("X-Request-Id") == "" ||
					(mode == "h2") != (resp.ProtoMajor == 2) || (mode != "h1" && mode != "unix") != (resp.TLS != nil) {
					t.Fatalf("%s %d %q %v", resp.Proto, resp.StatusCode, b, resp.Header)
				}
			}
		})
	}
}
