package integration

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/binary"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// testCert writes a self-signed certificate for 127.0.0.1 and localhost and
// returns the files and a pool that trusts it.
func testCert(t *testing.T) (certFile, keyFile string, roots *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: "ferry test"},
		DNSNames: []string{"localhost"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true, IsCA: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600)
	cert, _ := x509.ParseCertificate(der)
	roots = x509.NewCertPool()
	roots.AddCert(cert)
	return certFile, keyFile, roots
}

// freePort is a TCP port nothing listened on a moment ago.
func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	return port
}

func addrOf(f *ferry) string { return strings.TrimPrefix(f.URL, "http://") }

// tlsClient speaks only HTTP/1.1 (h2 false) or only HTTP/2 (h2 true).
func tlsClient(roots *x509.CertPool, h2 bool) *http.Client {
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}, Protocols: new(http.Protocols)}
	if h2 {
		tr.Protocols.SetHTTP2(true)
	} else {
		tr.Protocols.SetHTTP1(true)
	}
	return &http.Client{Transport: tr, Timeout: 60 * time.Second}
}

func readAll(t *testing.T, resp *http.Response) string {
	t.Helper()
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read body: %v", err)
	}
	return string(b)
}

func TestHTTPSAndHTTP2(t *testing.T) {
	cert, key, roots := testCert(t)
	// A short shutdown timeout: the streams below never end.
	f := startFerry(t, fixture(t, "wsgi/echo"), "--ssl", "--ssl-certificate", cert, "--ssl-certificate-key", key,
		"--shutdown-timeout", "2")
	base := "https://" + addrOf(f)

	for _, mode := range []struct {
		name  string
		h2    bool
		proto string
	}{{"https1", false, "HTTP/1.1"}, {"h2", true, "HTTP/2.0"}} {
		t.Run(mode.name, func(t *testing.T) {
			c := tlsClient(roots, mode.h2)
			resp, err := c.Get(base + "/echo/a%20b/c?x=1&y=%2F")
			if err != nil {
				t.Fatal(err)
			}
			body := readAll(t, resp)
			if resp.Proto != mode.proto || resp.StatusCode != 200 {
				t.Fatalf("%s %d, want %s 200", resp.Proto, resp.StatusCode, mode.proto)
			}
			if resp.TLS == nil || resp.TLS.Version < tls.VersionTLS12 {
				t.Errorf("TLS %+v", resp.TLS)
			}
			var e struct {
				echoed
				Protocol   string `json:"server_protocol"`
				ServerName string `json:"server_name"`
			}
			json.Unmarshal([]byte(body), &e)
			// The app gets HTTP/1.1 with the same target and host, and knows
			// the client came over HTTPS.
			if e.PathInfo != "/echo/a b/c" || e.QueryString != "x=1&y=%2F" || e.URLScheme != "https" ||
				e.Protocol != "HTTP/1.1" || e.Headers["HTTP_HOST"] != addrOf(f) || e.Method != "GET" {
				t.Errorf("the app saw %+v", e)
			}
			if resp.Header.Get("X-Request-Id") == "" {
				t.Error("no X-Request-Id")
			}

			// A request body over HTTP/2 (DATA frames, no length) arrives whole.
			data := strings.Repeat("0123456789", 100000)
			req, _ := http.NewRequest("POST", base+"/upload", io.NopCloser(strings.NewReader(data)))
			resp, err = c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			if out := readAll(t, resp); !strings.Contains(out, `"len": 1000000`) {
				t.Errorf("upload answered %s", out)
			}

			// Streaming reaches the client before the app is done.
			resp, err = c.Get(base + "/stream?n=2&delay=600")
			if err != nil {
				t.Fatal(err)
			}
			line, err := bufio.NewReader(resp.Body).ReadString('\n')
			resp.Body.Close()
			if line != "chunk 0\n" {
				t.Errorf("first chunk %q, %v", line, err)
			}
		})
	}

	t.Run("TLS 1.1 refused", func(t *testing.T) {
		c, err := tls.Dial("tcp", addrOf(f), &tls.Config{RootCAs: roots, MaxVersion: tls.VersionTLS11})
		if err == nil {
			c.Close()
			t.Fatal("a TLS 1.1 handshake succeeded")
		}
	})

	t.Run("plain HTTP to the HTTPS port", func(t *testing.T) {
		raw := rawExchange(t, addrOf(f), "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
		if !strings.HasPrefix(raw, "HTTP/1.0 400") {
			t.Errorf("answer %q", raw)
		}
		f.waitLog(`msg="request refused".*status=400 error="a plain-HTTP request to an HTTPS port"`)
	})

	t.Run("CONNECT over HTTP/2 fails cleanly", func(t *testing.T) {
		c := tlsClient(roots, true)
		req, _ := http.NewRequest("CONNECT", base, nil)
		req.Host = "example.com:443"
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		readAll(t, resp)
		if resp.StatusCode != 400 {
			t.Errorf("CONNECT over h2 = %d, want 400", resp.StatusCode)
		}
		// The connection serves on.
		resp, err = c.Get(base + "/")
		if err != nil || readAll(t, resp) != "hello world" {
			t.Fatalf("after CONNECT: %v", err)
		}
	})

	t.Run("Upgrade over HTTP/2 fails cleanly", func(t *testing.T) {
		h2UpgradeRefused(t, addrOf(f), roots)
	})
}

// h2UpgradeRefused sends, over raw HTTP/2 frames, a GET with Connection:
// Upgrade and Upgrade: websocket (which HTTP/2 forbids, RFC 9113 §8.2.2),
// then a plain GET on the same connection: the first must be refused (a
// 400, or a stream reset) without reaching the app, the second answered
// 200.
func h2UpgradeRefused(t *testing.T, addr string, roots *x509.CertPool) {
	t.Helper()
	c, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: roots, NextProtos: []string{"h2"}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if c.ConnectionState().NegotiatedProtocol != "h2" {
		t.Fatalf("ALPN chose %q", c.ConnectionState().NegotiatedProtocol)
	}
	c.SetDeadline(time.Now().Add(30 * time.Second))
	io.WriteString(c, "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
	writeFrame(c, 0x4, 0, 0, nil) // SETTINGS
	headers := func(extra ...string) []byte {
		var b []byte
		fields := append([]string{":method", "GET", ":scheme", "https", ":authority", addr, ":path", "/"}, extra...)
		for i := 0; i < len(fields); i += 2 {
			// Literal header field without indexing, new name (RFC 7541 §6.2.2).
			b = append(b, 0x00, byte(len(fields[i])))
			b = append(b, fields[i]...)
			b = append(b, byte(len(fields[i+1])))
			b = append(b, fields[i+1]...)
		}
		return b
	}
	const endStreamEndHeaders = 0x1 | 0x4
	writeFrame(c, 0x1, endStreamEndHeaders, 1, headers("connection", "Upgrade", "upgrade", "websocket"))
	writeFrame(c, 0x1, endStreamEndHeaders, 3, headers())
	refused, ok := false, false
	for !(refused && ok) {
		typ, flags, stream, payload, err := readFrame(c)
		if err != nil {
			t.Fatalf("reading frames (refused %v, ok %v): %v", refused, ok, err)
		}
		switch {
		case typ == 0x4 && flags&1 == 0: // SETTINGS: acknowledge
			writeFrame(c, 0x4, 1, 0, nil)
		case typ == 0x3 && stream == 1: // RST_STREAM
			refused = true
		case typ == 0x1 && stream == 1:
			// :status 400 is static table entry 12, sent indexed.
			if len(payload) == 0 || payload[0] != 0x8c {
				t.Fatalf("the Upgrade request got headers % x", payload)
			}
			refused = true
		case typ == 0x1 && stream == 3:
			// :status 200 is static table entry 8, sent indexed.
			if len(payload) == 0 || payload[0] != 0x88 {
				t.Fatalf("the second request got headers % x", payload)
			}
			ok = true
		case typ == 0x7: // GOAWAY
			t.Fatalf("the server gave up the connection: % x", payload)
		}
	}
}

func writeFrame(w io.Writer, typ, flags byte, stream uint32, payload []byte) {
	var h [9]byte
	h[0], h[1], h[2] = byte(len(payload)>>16), byte(len(payload)>>8), byte(len(payload))
	h[3], h[4] = typ, flags
	binary.BigEndian.PutUint32(h[5:], stream)
	w.Write(append(h[:], payload...))
}

func readFrame(r io.Reader) (typ, flags byte, stream uint32, payload []byte, err error) {
	var h [9]byte
	if _, err = io.ReadFull(r, h[:]); err != nil {
		return
	}
	n := int(h[0])<<16 | int(h[1])<<8 | int(h[2])
	payload = make([]byte, n)
	_, err = io.ReadFull(r, payload)
	return h[3], h[4], binary.BigEndian.Uint32(h[5:]) & 0x7fffffff, payload, err
}

// rawExchange sends raw bytes on a new connection and returns everything
// the server answers until it closes or goes quiet.
func rawExchange(t *testing.T, addr, raw string) string {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write([]byte(raw))
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	var b bytes.Buffer
	io.Copy(&b, c)
	return b.String()
}

func TestSSLRedirect(t *testing.T) {
	cert, key, roots := testCert(t)
	sslPort := freePort(t)
	f := startFerry(t, fixture(t, "wsgi/echo"), "--ssl", "--ssl-certificate", cert, "--ssl-certificate-key", key,
		"--ssl-port", sslPort, "--ssl-redirect")
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	for _, tc := range []struct {
		method string
		status int
	}{{"GET", 301}, {"HEAD", 301}, {"POST", 308}} {
		req, _ := http.NewRequest(tc.method, f.URL+"/echo/x?q=1", nil)
		resp, err := noFollow.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if want := "https://127.0.0.1:" + sslPort + "/echo/x?q=1"; resp.StatusCode != tc.status || resp.Header.Get("Location") != want {
			t.Errorf("%s = %d %q, want %d %q", tc.method, resp.StatusCode, resp.Header.Get("Location"), tc.status, want)
		}
	}
	resp, err := tlsClient(roots, true).Get("https://127.0.0.1:" + sslPort + "/")
	if err != nil {
		t.Fatal(err)
	}
	if body := readAll(t, resp); body != "hello world" || resp.ProtoMajor != 2 {
		t.Errorf("HTTPS on --ssl-port: %s %q", resp.Proto, body)
	}
}

// startFerrySocket runs ferry listening on a Unix socket only (the harness
// waits for a TCP port) and returns the socket path.
func startFerrySocket(t *testing.T, appDir string, args ...string) (*ferry, string) {
	t.Helper()
	needPython(t)
	dir := shortTempDir(t)
	sock := filepath.Join(dir, "ferry.sock")
	all := append([]string{"start", appDir, "--socket", sock, "--python", python, "--instance-registry-dir", dir}, args...)
	cmd := exec.Command(ferryBin, all...)
	f := &ferry{t: t, cmd: cmd, logs: newLogBuffer(), exited: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = f.logs, f.logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		f.exitErr = cmd.Wait()
		close(f.exited)
	}()
	t.Cleanup(func() {
		f.stop()
		if t.Failed() {
			t.Logf("ferry log:\n%s", f.logs.String())
		}
	})
	line := f.waitLog(`msg="ferry started"`)
	f.Instance = instanceRe.FindStringSubmatch(line)[1]
	return f, sock
}

func unixClient(sock string) *http.Client {
	return &http.Client{Timeout: 60 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", sock)
		}}}
}

func TestUnixSocket(t *testing.T) {
	t.Run("instead of TCP, trusted", func(t *testing.T) {
		f, sock := startFerrySocket(t, fixture(t, "wsgi/echo"), "--socket-mode", "0600", "--trusted-proxies", "unix")
		fi, err := os.Stat(sock)
		if err != nil || fi.Mode()&os.ModeSocket == 0 || fi.Mode().Perm() != 0o600 {
			t.Fatalf("socket %v, %v", fi, err)
		}
		if strings.Contains(f.logs.String(), `urls="[http://`) {
			t.Error("listening on TCP too")
		}
		c := unixClient(sock)
		req, _ := http.NewRequest("GET", "http://app.example/echo", nil)
		req.Header.Set("X-Forwarded-For", "203.0.113.50")
		req.Header.Set("X-Forwarded-Proto", "https")
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		e := decodeEcho(t, readAll(t, resp))
		if e.RemoteAddr != "203.0.113.50" || e.URLScheme != "https" {
			t.Errorf("behind a proxy on the socket, the app saw %q %q", e.RemoteAddr, e.URLScheme)
		}
		if _, ok := e.Headers["HTTP_X_FORWARDED_FOR"]; ok {
			t.Error("X-Forwarded-For reached the app after being consumed")
		}
		f.stop()
		if _, err := os.Stat(sock); !os.IsNotExist(err) {
			t.Errorf("socket left behind after exit: %v", err)
		}
	})
	t.Run("beside TCP, a stale socket replaced", func(t *testing.T) {
		dir := shortTempDir(t)
		sock := filepath.Join(dir, "s.sock")
		ln, err := net.Listen("unix", sock)
		if err != nil {
			t.Fatal(err)
		}
		ln.(*net.UnixListener).SetUnlinkOnClose(false)
		ln.Close() // a stale socket file, as a killed Ferry leaves
		f := startFerry(t, fixture(t, "wsgi/echo"), "--socket", sock, "--socket-and-tcp")
		resp, err := unixClient(sock).Get("http://x/")
		if err != nil {
			t.Fatal(err)
		}
		if body := readAll(t, resp); body != "hello world" {
			t.Errorf("over the socket: %q", body)
		}
		if code, body := f.get("/"); code != 200 || body != "hello world" {
			t.Errorf("over TCP: %d %q", code, body)
		}
	})
}

func TestTrustedProxies(t *testing.T) {
	spoof := http.Header{"X-Forwarded-For": {"198.51.100.1, 203.0.113.9"}, "X-Forwarded-Proto": {"https"},
		"X-Forwarded-Host": {"evil.example"}, "X-Real-Ip": {"6.6.6.6"}, "Forwarded": {"for=6.6.6.6"}}
	t.Run("untrusted peers are not believed", func(t *testing.T) {
		// Loopback is trusted by default (the local hop); none: no one.
		f := startFerry(t, fixture(t, "wsgi/echo"), "--trusted-proxies", "none")
		_, out := f.do("GET", "/echo", nil, spoof)
		e := decodeEcho(t, out)
		if e.RemoteAddr != "127.0.0.1" || e.URLScheme != "http" {
			t.Errorf("the app saw %q %q", e.RemoteAddr, e.URLScheme)
		}
		for _, k := range []string{"HTTP_X_FORWARDED_FOR", "HTTP_X_FORWARDED_PROTO", "HTTP_X_FORWARDED_HOST", "HTTP_X_REAL_IP", "HTTP_FORWARDED"} {
			if v, ok := e.Headers[k]; ok {
				t.Errorf("%s=%q reached the app", k, v)
			}
		}
	})
	t.Run("trusted peers are", func(t *testing.T) {
		f := startFerry(t, fixture(t, "wsgi/echo"), "--trusted-proxies", "127.0.0.1, 198.51.100.0/24")
		_, out := f.do("GET", "/echo", nil, spoof)
		e := decodeEcho(t, out)
		// The nearest untrusted hop is the client; the proxy's Host stays.
		if e.RemoteAddr != "203.0.113.9" || e.URLScheme != "https" || e.Headers["HTTP_X_FORWARDED_HOST"] != "evil.example" {
			t.Errorf("the app saw %q %q %v", e.RemoteAddr, e.URLScheme, e.Headers)
		}
		_, out = f.do("GET", "/echo", nil, http.Header{"X-Forwarded-For": {"203.0.113.9, 198.51.100.7"}})
		if e := decodeEcho(t, out); e.RemoteAddr != "203.0.113.9" {
			t.Errorf("behind two proxies the app saw %q", e.RemoteAddr)
		}
		_, out = f.do("GET", "/echo", nil, http.Header{"X-Forwarded-For": {"not-an-ip, 198.51.100.7"}})
		if e := decodeEcho(t, out); e.RemoteAddr != "198.51.100.7" {
			t.Errorf("past garbage the app saw %q", e.RemoteAddr)
		}
	})
}

var hexID = regexp.MustCompile(`^[0-9a-f]{32}$`)

func TestRequestID(t *testing.T) {
	f := startFerry(t, fixture(t, "wsgi/echo"))
	resp := f.request("GET", "/echo", nil, nil)
	e := decodeEcho(t, readAll(t, resp))
	id := resp.Header.Get("X-Request-Id")
	if !hexID.MatchString(id) || e.Headers["HTTP_X_REQUEST_ID"] != id {
		t.Fatalf("generated id %q, the app saw %q", id, e.Headers["HTTP_X_REQUEST_ID"])
	}
	f.waitLog(`msg=request .*path=/echo .*request_id=` + id)

	resp = f.request("GET", "/echo", nil, http.Header{"X-Request-Id": {"trace-7f3a:01/x=="}})
	e = decodeEcho(t, readAll(t, resp))
	if resp.Header.Get("X-Request-Id") != "trace-7f3a:01/x==" || e.Headers["HTTP_X_REQUEST_ID"] != "trace-7f3a:01/x==" {
		t.Errorf("a valid id was not kept: %q, app %q", resp.Header.Get("X-Request-Id"), e.Headers["HTTP_X_REQUEST_ID"])
	}
	for _, bad := range []string{"has space", strings.Repeat("a", 129), "quote\"d", "ünï"} {
		resp = f.request("GET", "/echo", nil, http.Header{"X-Request-Id": {bad}})
		e = decodeEcho(t, readAll(t, resp))
		if got := resp.Header.Get("X-Request-Id"); !hexID.MatchString(got) || e.Headers["HTTP_X_REQUEST_ID"] != got {
			t.Errorf("id %q: answered %q, app saw %q", bad, got, e.Headers["HTTP_X_REQUEST_ID"])
		}
	}
	// Static files and cache hits carry one too.
	resp = f.request("GET", "/hello.txt", nil, nil)
	readAll(t, resp)
	if !hexID.MatchString(resp.Header.Get("X-Request-Id")) {
		t.Errorf("static file: X-Request-Id %q", resp.Header.Get("X-Request-Id"))
	}
}

func TestAccessLogFormats(t *testing.T) {
	for _, format := range []string{"combined", "json"} {
		t.Run(format, func(t *testing.T) {
			logFile := filepath.Join(t.TempDir(), "access.log")
			f := startFerry(t, fixture(t, "wsgi/echo"), "--access-log", logFile, "--access-log-format", format)
			resp := f.request("GET", "/echo?q=\"x\"", nil, http.Header{"User-Agent": {"tester/1.0"}, "Referer": {"http://ref.example/"}})
			readAll(t, resp)
			id := resp.Header.Get("X-Request-Id")
			rawExchange(t, addrOf(f), "GET / HTTP/1.1\r\nHost: x\r\nX-Bad: a\x00b\r\n\r\n")
			var lines []string
			eventually(t, "two access log lines", func() bool {
				b, _ := os.ReadFile(logFile)
				lines = strings.Split(strings.TrimSpace(string(b)), "\n")
				return len(lines) >= 2
			})
			if format == "combined" {
				re := regexp.MustCompile(`^127\.0\.0\.1 - - \[\d\d/\w{3}/\d{4}:\d\d:\d\d:\d\d [+-]\d{4}\] "GET /echo\?q=\\x22x\\x22 HTTP/1\.1" 200 \d+ "http://ref\.example/" "tester/1\.0" rt=\d+\.\d{3} id=` + id + ` app=echo pid=\d+$`)
				if !re.MatchString(lines[0]) {
					t.Errorf("combined line %q", lines[0])
				}
				if !strings.Contains(lines[1], `"GET / HTTP/1.1" 400 0 "-" "-"`) {
					t.Errorf("refused request line %q", lines[1])
				}
				return
			}
			var e map[string]any
			if err := json.Unmarshal([]byte(lines[0]), &e); err != nil {
				t.Fatalf("json line %q: %v", lines[0], err)
			}
			if e["method"] != "GET" || e["uri"] != `/echo?q="x"` || e["status"] != 200.0 || e["request_id"] != id ||
				e["user_agent"] != "tester/1.0" || e["app"] != "echo" || e["client"] != "127.0.0.1" {
				t.Errorf("json line %v", e)
			}
			if err := json.Unmarshal([]byte(lines[1]), &e); err != nil || e["status"] != 400.0 {
				t.Errorf("refused request line %q: %v", lines[1], err)
			}
		})
	}
	t.Run("off", func(t *testing.T) {
		f := startFerry(t, fixture(t, "wsgi/echo"), "--access-log", "off")
		f.get("/")
		f.stop()
		if strings.Contains(f.logs.String(), "msg=request ") {
			t.Error("an access line with --access-log off")
		}
	})
}

// gunzip decodes a gzip body.
func gunzip(t *testing.T, b []byte) string {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("not gzip: %v (%q)", err, b[:min(len(b), 40)])
	}
	out, err := io.ReadAll(zr)
	if err != nil {
		t.Fatalf("gunzip: %v", err)
	}
	return string(out)
}

// rawGet does a GET with exactly the given headers and returns the
// response with its body undecoded.
func rawGetBody(t *testing.T, f *ferry, path string, h http.Header) (*http.Response, []byte) {
	t.Helper()
	req, _ := http.NewRequest("GET", f.URL+path, nil)
	for k, v := range h {
		req.Header[k] = v
	}
	resp, err := (&http.Client{Transport: &http.Transport{DisableCompression: true}, Timeout: 60 * time.Second}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, b
}

func TestCompression(t *testing.T) {
	dir := copyFixture(t, "wsgi/echo")
	css := strings.Repeat("body { color: #123456; margin: 0 auto; }\n", 200)
	os.WriteFile(filepath.Join(dir, "public", "site.css"), []byte(css), 0o644)
	js := strings.Repeat("console.log('plain');\n", 100)
	os.WriteFile(filepath.Join(dir, "public", "app.js"), []byte(js), 0o644)
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write([]byte("// the precompressed one\n" + js))
	zw.Close()
	os.WriteFile(filepath.Join(dir, "public", "app.js.gz"), gz.Bytes(), 0o644)
	f := startFerry(t, dir, "--gzip-min-size", "0", "--max-pool-size", "1", "--shutdown-timeout", "2")
	ae := http.Header{"Accept-Encoding": {"gzip"}} // the other codings: TestCompressionCodecs

	t.Run("static file", func(t *testing.T) {
		resp, b := rawGetBody(t, f, "/site.css", ae)
		if resp.Header.Get("Content-Encoding") != "gzip" || gunzip(t, b) != css || len(b) >= len(css)/4 {
			t.Fatalf("encoding %q, %d bytes for %d", resp.Header.Get("Content-Encoding"), len(b), len(css))
		}
		if resp.Header.Get("Vary") != "Accept-Encoding" || !strings.HasPrefix(resp.Header.Get("Etag"), `W/"`) ||
			(resp.Header.Get("Content-Length") != "" && resp.Header.Get("Content-Length") != strconv.Itoa(len(b))) ||
			resp.Header.Get("Accept-Ranges") != "" {
			t.Errorf("headers %v", resp.Header)
		}
		resp, b = rawGetBody(t, f, "/site.css", nil)
		if resp.Header.Get("Content-Encoding") != "" || string(b) != css || resp.Header.Get("Vary") != "Accept-Encoding" {
			t.Errorf("without Accept-Encoding: %q, Vary %q", resp.Header.Get("Content-Encoding"), resp.Header.Get("Vary"))
		}
		resp, b = rawGetBody(t, f, "/site.css", http.Header{"Accept-Encoding": {"gzip"}, "Range": {"bytes=0-3"}})
		if resp.StatusCode != 206 || string(b) != "body" || resp.Header.Get("Content-Encoding") != "" {
			t.Errorf("Range: %d %q %q", resp.StatusCode, b, resp.Header.Get("Content-Encoding"))
		}
		resp, b = rawGetBody(t, f, "/site.css", http.Header{"Accept-Encoding": {"gzip;q=0, br;q=0, zstd;q=0, deflate"}})
		if resp.Header.Get("Content-Encoding") != "" || string(b) != css {
			t.Errorf("gzip;q=0 got %q", resp.Header.Get("Content-Encoding"))
		}
	})
	t.Run("precompressed static file", func(t *testing.T) {
		resp, b := rawGetBody(t, f, "/app.js", ae)
		if !bytes.Equal(b, gz.Bytes()) || resp.Header.Get("Content-Encoding") != "gzip" || resp.Header.Get("Accept-Ranges") != "" ||
			!strings.HasPrefix(resp.Header.Get("Content-Type"), "text/javascript") || resp.Header.Get("Vary") != "Accept-Encoding" {
			t.Fatalf("got %d bytes, %v", len(b), resp.Header)
		}
		resp, b = rawGetBody(t, f, "/app.js", nil)
		if string(b) != js || resp.Header.Get("Content-Encoding") != "" {
			t.Errorf("without Accept-Encoding: %d bytes, %q", len(b), resp.Header.Get("Content-Encoding"))
		}
	})
	t.Run("app response", func(t *testing.T) {
		resp, b := rawGetBody(t, f, "/echo", ae)
		if resp.Header.Get("Content-Encoding") != "gzip" || !strings.Contains(gunzip(t, b), `"method": "GET"`) {
			t.Fatalf("json from the app: %q", resp.Header.Get("Content-Encoding"))
		}
		for _, tc := range []struct{ name, path string }{
			{"no-transform", "/counted?cc=no-transform&t=1"},
			{"204", "/status/204"},
			{"not a listed type", "/big?n=100000"},
		} {
			resp, _ := rawGetBody(t, f, tc.path, ae)
			if resp.Header.Get("Content-Encoding") != "" {
				t.Errorf("%s: compressed", tc.name)
			}
		}
		req, _ := http.NewRequest("HEAD", f.URL+"/echo", nil)
		req.Header.Set("Accept-Encoding", "gzip")
		hresp, err := (&http.Transport{DisableCompression: true}).RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		hresp.Body.Close()
		if hresp.Header.Get("Content-Encoding") != "" {
			t.Error("HEAD: compressed")
		}
	})
	t.Run("cache stores plain, hits are compressed", func(t *testing.T) {
		q := "/counted?cc=max-age%3D60&t=gz"
		resp1, b1 := rawGetBody(t, f, q, ae)
		resp2, b2 := rawGetBody(t, f, q, ae)
		if resp2.Header.Get("Age") == "" {
			t.Fatal("the second request was not a cache hit")
		}
		if resp1.Header.Get("Content-Encoding") != "gzip" || resp2.Header.Get("Content-Encoding") != "gzip" ||
			gunzip(t, b1) != gunzip(t, b2) || resp2.Header.Get("Vary") != "Accept-Encoding" {
			t.Errorf("miss %q, hit %q", resp1.Header.Get("Content-Encoding"), resp2.Header.Get("Content-Encoding"))
		}
		resp3, b3 := rawGetBody(t, f, q, nil)
		if resp3.Header.Get("Age") == "" || resp3.Header.Get("Content-Encoding") != "" || string(b3) != gunzip(t, b1) {
			t.Errorf("plain client from the cache: age %q, encoding %q, %q", resp3.Header.Get("Age"), resp3.Header.Get("Content-Encoding"), b3)
		}
	})
	// Last: the app never finishes this response, and holds the only process.
	t.Run("streaming still streams", func(t *testing.T) {
		req, _ := http.NewRequest("GET", f.URL+"/stream?n=2&delay=600", nil)
		req.Header.Set("Accept-Encoding", "gzip")
		resp, err := (&http.Transport{DisableCompression: true}).RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.Header.Get("Content-Encoding") != "gzip" {
			t.Fatalf("stream not compressed: %v", resp.Header)
		}
		zr, err := gzip.NewReader(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		line, err := bufio.NewReader(zr).ReadString('\n')
		if line != "chunk 0\n" {
			t.Fatalf("first chunk %q, %v", line, err)
		}
	})
}

func TestCompressionOff(t *testing.T) {
	f := startFerry(t, fixture(t, "wsgi/echo"), "--gzip=false", "--gzip-min-size", "0")
	resp, _ := rawGetBody(t, f, "/echo", http.Header{"Accept-Encoding": {"gzip"}})
	if resp.Header.Get("Content-Encoding") != "" || resp.Header.Get("Vary") != "" {
		t.Errorf("--gzip=false: %v", resp.Header)
	}
}

func TestLimits(t *testing.T) {
	f := startFerry(t, fixture(t, "wsgi/echo"), "--max-uri-length", "1k", "--max-header-size", "4k",
		"--client-max-body-size", "1m")
	addr := addrOf(f)
	for _, tc := range []struct {
		name, raw string
		status    string
	}{
		{"URI too long", "GET /" + strings.Repeat("a", 1100) + " HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", "414"},
		{"headers too large", "GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + strings.Repeat("b", 9000) + "\r\n\r\n", "431"},
		{"declared body too large", "POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 2000000\r\nConnection: close\r\n\r\n", "413"},
		{"declared body too large, expecting 100", "POST /upload HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 2000000\r\nConnection: close\r\n\r\n", "413"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := rawExchange(t, addr, tc.raw); !strings.HasPrefix(got, "HTTP/1.1 "+tc.status) {
				t.Errorf("answer %.60q, want %s", got, tc.status)
			}
		})
	}
	t.Run("chunked body too large", func(t *testing.T) {
		pr, pw := io.Pipe()
		go func() {
			chunk := bytes.Repeat([]byte("z"), 64<<10)
			for i := 0; i < 40; i++ {
				if _, err := pw.Write(chunk); err != nil {
					return
				}
			}
			pw.Close()
		}()
		req, _ := http.NewRequest("POST", f.URL+"/upload", pr)
		resp, err := http.DefaultTransport.RoundTrip(req)
		if err != nil {
			// The server may close while the client still sends.
			t.Logf("round trip: %v", err)
			return
		}
		resp.Body.Close()
		if resp.StatusCode != 413 {
			t.Errorf("chunked 2.5 MiB = %d, want 413", resp.StatusCode)
		}
	})
	f.waitLog(`status=413`)
	if code, body := f.get("/"); code != 200 || body != "hello world" {
		t.Errorf("afterwards: %d %q", code, body)
	}
}

func TestTimeouts(t *testing.T) {
	f := startFerry(t, fixture(t, "wsgi/echo"), "--client-header-timeout", "1", "--client-body-timeout", "1",
		"--client-write-timeout", "1", "--max-pool-size", "1", "--response-buffer-memory", "64k")
	addr := addrOf(f)
	t.Run("header", func(t *testing.T) {
		got := rawExchange(t, addr, "GET / HTTP/1.1\r\nHost: x\r\n")
		if got != "" {
			t.Errorf("answer %q, want a closed connection", got)
		}
		f.waitLog(`msg="request refused" .*request="GET / HTTP/1.1" status=408`)
	})
	t.Run("body", func(t *testing.T) {
		got := rawExchange(t, addr, "POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nonly ten..")
		if !strings.HasPrefix(got, "HTTP/1.1 408") {
			t.Errorf("answer %.60q, want 408", got)
		}
	})
	t.Run("write", func(t *testing.T) {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.(*net.TCPConn).SetReadBuffer(4096)
		fmt.Fprintf(c, "GET /big?n=%d HTTP/1.1\r\nHost: x\r\n\r\n", 64<<20)
		// Ferry drops the client that takes nothing, and the app's response
		// is read to its end anyway: the only process is free again.
		f.waitLog(`path="/big\?n=67108864" status=200 .*error="client gone or too slow`)
		eventually(t, "the session released", func() bool { return sessions(f) == 0 })
		if code, _ := f.get("/"); code != 200 {
			t.Errorf("afterwards GET / = %d", code)
		}
	})
}

func TestMaxConnections(t *testing.T) {
	f := startFerry(t, fixture(t, "wsgi/echo"), "--max-connections", "2")
	var held []net.Conn
	for range 2 {
		c, err := net.Dial("tcp", addrOf(f))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		held = append(held, c)
	}
	type result struct {
		code int
		err  error
	}
	done := make(chan result, 1)
	go func() {
		resp, err := http.Get(f.URL + "/")
		if err != nil {
			done <- result{0, err}
			return
		}
		resp.Body.Close()
		done <- result{resp.StatusCode, nil}
	}()
	f.waitLog(`connection limit reached`)
	select {
	case r := <-done:
		t.Fatalf("a third connection was served past --max-connections 2: %+v", r)
	default:
	}
	held[0].Close()
	if r := <-done; r.err != nil || r.code != 200 {
		t.Fatalf("after a slot freed: %+v", r)
	}
}

func TestWebSocketsClosedAtShutdown(t *testing.T) {
	needInterp(t, "/usr/bin/python3")
	f := startFerry(t, needFixture(t, "asgi/echo"), "--shutdown-timeout", "60")
	ws := dialWebSocket(t, f, "/ws")
	defer ws.Close()
	ws.send(t, 1, []byte("hi"))
	if _, got := ws.recv(t); string(got) != "hi" {
		t.Fatalf("echo %q", got)
	}
	f.cmd.Process.Signal(syscall.SIGTERM)
	ws.SetReadDeadline(time.Now().Add(30 * time.Second))
	if _, err := io.Copy(io.Discard, ws.br); err != nil {
		t.Fatalf("the WebSocket was not closed at shutdown: %v", err)
	}
	select {
	case <-f.exited:
	case <-time.After(50 * time.Second):
		t.Fatal("ferry did not exit with a WebSocket open")
	}
	if !strings.Contains(f.logs.String(), `msg="closed upgraded (WebSocket) connections" count=1`) {
		t.Error("no log line for the closed WebSocket")
	}
}

// TestHTTP2SlowReader: an HTTP/2 client that stops reading a large
// response loses the stream after --client-write-timeout, and the app's
// response is still drained: its only process is free again.
func TestHTTP2SlowReader(t *testing.T) {
	cert, key, roots := testCert(t)
	f := startFerry(t, fixture(t, "wsgi/echo"), "--ssl", "--ssl-certificate", cert, "--ssl-certificate-key", key,
		"--client-write-timeout", "1", "--max-pool-size", "1", "--response-buffer-memory", "64k")
	c := tlsClient(roots, true)
	resp, err := c.Get("https://" + addrOf(f) + "/big?n=" + strconv.Itoa(64<<20))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	// Read nothing: the flow-control windows fill, Ferry's writes stall.
	f.waitLog(`path="/big\?n=67108864" status=200 .*error="client gone or too slow`)
	eventually(t, "the session released", func() bool { return sessions(f) == 0 })
	resp2, err := c.Get("https://" + addrOf(f) + "/")
	if err != nil || readAll(t, resp2) != "hello world" {
		t.Fatalf("the same connection afterwards: %v", err)
	}
}
