package server

import (
	"crypto/tls"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestACMEHooks: with automatic HTTPS, the certificate of each handshake
// comes from GetCertificate, an acme-tls/1 connection ends with its
// handshake, and plain HTTP beside HTTPS goes through the HTTP-01 hook
// first, then to the redirect or (without it) to the app.
func TestACMEHooks(t *testing.T) {
	certFile, keyFile, roots := writeCert(t)
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	for _, redirect := range []bool{true, false} {
		t.Run(map[bool]string{true: "redirect", false: "app"}[redirect], func(t *testing.T) {
			h, _ := benchHandler(t, helloResp, false, Options{})
			var mu sync.Mutex
			var asked []string
			hook := func(next http.Handler) http.Handler {
				return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					if strings.HasPrefix(r.URL.Path, "/.well-known/acme-challenge/") {
						io.WriteString(w, "key-authorization")
						return
					}
					next.ServeHTTP(w, r)
				})
			}
			c := Config{Addr: "127.0.0.1:0", SSLAddr: "127.0.0.1:0", Redirect: redirect, Lean: true,
				HeaderTimeout: 5 * time.Second, IdleTimeout: time.Minute, HTTPChallenge: hook,
				TLS: &TLSConfig{HTTP2: true, GetCertificate: func(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
					mu.Lock()
					asked = append(asked, hello.ServerName)
					mu.Unlock()
					return &cert, nil
				}}}
			s, err := Listen(c, h, slog.New(slog.NewTextHandler(io.Discard, nil)))
			if err != nil {
				t.Fatal(err)
			}
			go s.Serve()
			defer s.Shutdown(t.Context())
			plain, secure := s.URLs()[0], s.URLs()[1]

			get := func(url string) (int, string) {
				t.Helper()
				tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots, ServerName: "127.0.0.1"}}
				defer tr.CloseIdleConnections()
				cl := &http.Client{Transport: tr, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
				resp, err := cl.Get(url)
				if err != nil {
					t.Fatal(err)
				}
				defer resp.Body.Close()
				b, _ := io.ReadAll(resp.Body)
				return resp.StatusCode, string(b)
			}
			if st, body := get(plain + "/.well-known/acme-challenge/tok"); st != 200 || body != "key-authorization" {
				t.Errorf("HTTP-01 on plain HTTP: %d %q", st, body)
			}
			st, body := get(plain + "/x")
			if redirect && st != http.StatusMovedPermanently || !redirect && (st != 200 || body != "hello world") {
				t.Errorf("plain /x: %d %q (redirect %v)", st, body, redirect)
			}
			if st, body := get(secure + "/"); st != 200 || body != "hello world" {
				t.Errorf("HTTPS: %d %q", st, body)
			}
			// A TLS-ALPN-01 validation: the handshake, then the end.
			conn, err := tls.Dial("tcp", strings.TrimPrefix(secure, "https://"), &tls.Config{
				RootCAs: roots, ServerName: "app.test", InsecureSkipVerify: true, NextProtos: []string{"acme-tls/1"}})
			if err != nil {
				t.Fatal(err)
			}
			if p := conn.ConnectionState().NegotiatedProtocol; p != "acme-tls/1" {
				t.Errorf("negotiated %q, want acme-tls/1", p)
			}
			conn.SetReadDeadline(time.Now().Add(5 * time.Second))
			if n, err := conn.Read(make([]byte, 1)); err != io.EOF {
				t.Errorf("acme-tls/1 connection: read %d, %v; want it closed", n, err)
			}
			conn.Close()
			mu.Lock()
			defer mu.Unlock()
			if !strings.Contains(strings.Join(asked, ","), "app.test") {
				t.Errorf("GetCertificate was asked for %v", asked)
			}
		})
	}
}
