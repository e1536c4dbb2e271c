package integration

import (
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// localTLSNginx starts a real nginx terminating TLS on 127.0.0.1 in front of
// a Ferry on TCP, configured as a new user would (the usual forwarding
// headers), and returns its URL and a client that connects from 127.0.0.2,
// so the app can tell the client from nginx (127.0.0.1).
func localTLSNginx(t *testing.T, ferryURL string) (string, *http.Client) {
	t.Helper()
	nginx, err := exec.LookPath("nginx")
	if err != nil {
		t.Skip("nginx not installed")
	}
	certFile, keyFile, roots := testCert(t)
	port := freePort(t)
	dir := shortTempDir(t)
	conf := "pid " + dir + "/nginx.pid;\nerror_log " + dir + "/error.log;\nuser root;\nevents {}\nhttp {\n" +
		"access_log " + dir + "/access.log;\nclient_body_temp_path " + dir + "/body;\nproxy_temp_path " + dir + "/proxy;\n" +
		"server {\n  listen 127.0.0.1:" + port + " ssl;\n  ssl_certificate " + certFile + ";\n  ssl_certificate_key " + keyFile + ";\n" +
		"  location / {\n    proxy_pass " + ferryURL + ";\n    proxy_http_version 1.1;\n    proxy_set_header Connection \"\";\n" +
		"    proxy_set_header Host $host;\n    proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;\n" +
		"    proxy_set_header X-Forwarded-Proto $scheme;\n    proxy_set_header X-Forwarded-Host $host;\n  }\n}\n}\n"
	confPath := filepath.Join(dir, "nginx.conf")
	os.WriteFile(confPath, []byte(conf), 0o644)
	if out, err := exec.Command(nginx, "-c", confPath, "-p", dir, "-g", "daemon on;").CombinedOutput(); err != nil {
		t.Fatalf("nginx: %v\n%s", err, out)
	}
	t.Cleanup(func() { exec.Command(nginx, "-c", confPath, "-p", dir, "-s", "quit").Run() })
	dialer := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}, Timeout: 10 * time.Second}
	c := &http.Client{Timeout: 60 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			return dialer.DialContext(ctx, network, addr)
		},
		TLSClientConfig: &tls.Config{RootCAs: roots},
	}}
	return "https://127.0.0.1:" + port, c
}

// A Rack and a WSGI app behind a local nginx that terminates TLS see the
// real client's address and the https scheme with no Ferry flag: the local
// hop is trusted by default. A Forwarded header the client sends, which
// nginx passes through untouched, is not believed. With --trusted-proxies
// none, they see nginx and http again.
func TestLocalHopTrustedByDefault(t *testing.T) {
	for _, app := range []struct{ name, fixture, interp string }{
		{"wsgi", "wsgi/echo", python},
		{"rack", "rack/echo", "/usr/bin/ruby"},
	} {
		for _, mode := range []struct {
			name           string
			args           []string
			addr, scheme   string
			forwardedHost  string
			forwardedProto string
		}{
			{"default", nil, "127.0.0.2", "https", "127.0.0.1", ""},
			{"none", []string{"--trusted-proxies", "none"}, "127.0.0.1", "http", "", ""},
		} {
			t.Run(app.name+"/"+mode.name, func(t *testing.T) {
				needInterp(t, app.interp)
				f := startFerry(t, fixture(t, app.fixture), mode.args...)
				base, c := localTLSNginx(t, f.URL)
				req, _ := http.NewRequest("GET", base+"/echo", nil)
				req.Header.Set("Forwarded", "for=6.6.6.6;proto=http")
				resp, err := c.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					t.Fatalf("GET /echo through nginx = %d %s", resp.StatusCode, b)
				}
				e := decodeEcho(t, string(b))
				if e.RemoteAddr != mode.addr || e.URLScheme != mode.scheme {
					t.Errorf("the app saw client %q scheme %q, want %q %q", e.RemoteAddr, e.URLScheme, mode.addr, mode.scheme)
				}
				if got := e.Headers["HTTP_X_FORWARDED_HOST"]; !strings.HasPrefix(got, mode.forwardedHost) || (mode.forwardedHost == "" && got != "") {
					t.Errorf("X-Forwarded-Host %q", got)
				}
				if v, ok := e.Headers["HTTP_FORWARDED"]; ok {
					t.Errorf("the client's Forwarded reached the app: %q", v)
				}
			})
		}
	}
}
