package integration

// Automatic HTTPS against a real ACME CA: Let's Encrypt's Pebble, with its
// challenge test server as the DNS server that resolves every test name to
// 127.0.0.1, so that Pebble validates by connecting to Ferry's own ports.
// Both are built from the versions pinned in tools/go.mod.

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/ferry-server/ferry/internal/admin"
	"golang.org/x/crypto/ocsp"
)

var (
	pebbleOnce sync.Once
	pebbleDir  string
	pebbleErr  error
)

// buildPebble builds pebble and pebble-challtestsrv once, from tools/go.mod.
func buildPebble(t *testing.T) string {
	t.Helper()
	pebbleOnce.Do(func() {
		pebbleDir, pebbleErr = os.MkdirTemp("", "pebble-bin-")
		if pebbleErr != nil {
			return
		}
		cmd := exec.Command("go", "build", "-o", pebbleDir+"/",
			"github.com/letsencrypt/pebble/v2/cmd/pebble", "github.com/letsencrypt/pebble/v2/cmd/pebble-challtestsrv")
		cmd.Dir = "../tools"
		if out, err := cmd.CombinedOutput(); err != nil {
			pebbleErr = fmt.Errorf("build pebble: %v\n%s", err, out)
		}
	})
	if pebbleErr != nil {
		t.Fatal(pebbleErr)
	}
	return pebbleDir
}

// pebble is one running Pebble CA with its DNS server, reached through a
// relay that the test can cut (the CA unreachable) and restore.
type pebble struct {
	t         *testing.T
	dir       string
	caRoot    string // the PEM file Pebble's HTTPS certificate verifies with
	mgmt      string // 127.0.0.1:PORT of Pebble's management interface
	relay     *relay
	logs      *logBuffer
	httpPort  string // Ferry's ports, which Pebble validates on
	tlsPort   string
	tlsClient *http.Client // trusts caRoot, for the management interface
}

// Directory is the ACME directory URL Ferry is given (through the relay).
func (p *pebble) Directory() string { return "https://" + p.relay.addr + "/dir" }

// startPebble runs Pebble issuing certificates valid for validity, and
// validating challenges on Ferry's httpPort and tlsPort; refused.test is on
// its block list.
func startPebble(t *testing.T, validity time.Duration) *pebble {
	return startPebbleOCSP(t, validity, "")
}

// startPebbleOCSP is startPebble with certificates naming ocspURL as their
// OCSP responder.
func startPebbleOCSP(t *testing.T, validity time.Duration, ocspURL string) *pebble {
	t.Helper()
	bin := buildPebble(t)
	certFile, keyFile, roots := testCert(t)
	dir := t.TempDir()
	p := &pebble{t: t, dir: dir, caRoot: certFile, mgmt: "127.0.0.1:" + freePort(t), logs: newLogBuffer(),
		httpPort: freePort(t), tlsPort: freePort(t),
		tlsClient: &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}}}}
	dnsAddr := "127.0.0.1:" + freePort(t)
	listen := "127.0.0.1:" + freePort(t)
	conf := map[string]any{"pebble": map[string]any{
		"listenAddress": listen, "managementListenAddress": p.mgmt,
		"certificate": certFile, "privateKey": keyFile,
		"httpPort": atoi(p.httpPort), "tlsPort": atoi(p.tlsPort),
		"ocspResponderURL": ocspURL, "externalAccountBindingRequired": false,
		"domainBlocklist": []string{"refused.test"},
		"retryAfter":      map[string]any{"authz": 1, "order": 1},
		"keyAlgorithm":    "rsa", // its management interface hands out RSA keys only (for OCSP)
		"profiles": map[string]any{"default": map[string]any{
			"description": "test", "validityPeriod": int(validity.Seconds())}},
	}}
	b, _ := json.Marshal(conf)
	confFile := filepath.Join(dir, "pebble.json")
	if err := os.WriteFile(confFile, b, 0o600); err != nil {
		t.Fatal(err)
	}
	run := func(name string, env []string, args ...string) {
		cmd := exec.Command(filepath.Join(bin, name), args...)
		cmd.Env = append(os.Environ(), env...)
		cmd.Stdout, cmd.Stderr = p.logs, p.logs
		if err := cmd.Start(); err != nil {
			t.Fatalf("start %s: %v", name, err)
		}
		t.Cleanup(func() {
			cmd.Process.Kill()
			cmd.Wait()
		})
	}
	run("pebble-challtestsrv", nil, "-dnsserver", dnsAddr, "-management", "127.0.0.1:"+freePort(t),
		"-http01", "", "-https01", "", "-tlsalpn01", "", "-doh", "", "-defaultIPv4", "127.0.0.1", "-defaultIPv6", "")
	run("pebble", []string{"PEBBLE_VA_NOSLEEP=1", "PEBBLE_WFE_NONCEREJECT=0", "PEBBLE_AUTHZREUSE=0"},
		"-config", confFile, "-dnsserver", dnsAddr)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("pebble log:\n%s", p.logs.String())
		}
	})
	p.relay = newRelay(t, listen)
	waitFor(t, 30*time.Second, "Pebble's directory", func() bool {
		resp, err := p.tlsClient.Get(p.Directory())
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	return p
}

// roots are the roots Pebble issues under (new at each start of Pebble).
func (p *pebble) roots() *x509.CertPool {
	p.t.Helper()
	resp, err := p.tlsClient.Get("https://" + p.mgmt + "/roots/0")
	if err != nil {
		p.t.Fatalf("pebble roots: %v", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		p.t.Fatalf("pebble roots: no PEM in %q", b)
	}
	return pool
}

// ferryArgs are the flags that point Ferry at this Pebble, with its state
// in stateDir.
func (p *pebble) ferryArgs(stateDir string) []string {
	return []string{"--port", p.httpPort, "--ssl-port", p.tlsPort, "--acme-ca", p.Directory(),
		"--acme-ca-root", p.caRoot, "--acme-state-dir", stateDir, "--acme-renew-check-interval", "1",
		"--acme-email", "ops@example.org"}
}

// relay forwards TCP connections to a target; down refuses new ones and
// cuts those open, as an unreachable CA does; up listens again.
type relay struct {
	t      *testing.T
	addr   string
	target string
	mu     sync.Mutex
	ln     net.Listener
	conns  map[net.Conn]bool
}

func newRelay(t *testing.T, target string) *relay {
	r := &relay{t: t, addr: "127.0.0.1:" + freePort(t), target: target, conns: map[net.Conn]bool{}}
	r.up()
	t.Cleanup(r.down)
	return r
}

func (r *relay) up() {
	r.mu.Lock()
	defer r.mu.Unlock()
	ln, err := net.Listen("tcp", r.addr)
	if err != nil {
		r.t.Fatalf("relay: %v", err)
	}
	r.ln = ln
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go r.serve(c)
		}
	}()
}

func (r *relay) serve(c net.Conn) {
	u, err := net.Dial("tcp", r.target)
	if err != nil {
		c.Close()
		return
	}
	r.mu.Lock()
	r.conns[c], r.conns[u] = true, true
	r.mu.Unlock()
	go func() { io.Copy(u, c); u.Close() }()
	io.Copy(c, u)
	c.Close()
	r.mu.Lock()
	delete(r.conns, c)
	delete(r.conns, u)
	r.mu.Unlock()
}

func (r *relay) down() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.ln != nil {
		r.ln.Close()
		r.ln = nil
	}
	for c := range r.conns {
		c.Close()
	}
}

func atoi(s string) int {
	var n int
	fmt.Sscan(s, &n)
	return n
}

// waitFor polls cond until it holds or timeout passes. ACME retries follow
// certmagic's back-off (a first retry a minute after a failure), so some
// waits are long; they wait for a state, they assert no speed.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// handshake connects to Ferry's HTTPS port asking for name, verifying the
// chain against Pebble's roots, and returns the leaf and the protocol.
func handshake(addr, name string, roots *x509.CertPool) (*x509.Certificate, string, error) {
	d := &net.Dialer{Timeout: 10 * time.Second}
	c, err := tls.DialWithDialer(d, "tcp", addr, &tls.Config{ServerName: name, RootCAs: roots, NextProtos: []string{"h2", "http/1.1"}})
	if err != nil {
		return nil, "", err
	}
	defer c.Close()
	st := c.ConnectionState()
	return st.PeerCertificates[0], st.NegotiatedProtocol, nil
}

// httpsGet does GET / for name on a new connection (so each request sees
// the certificate served now) and returns its status and certificate.
func httpsGet(addr, name string, roots *x509.CertPool) (int, *x509.Certificate, error) {
	var leaf *x509.Certificate
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "tcp", addr)
		},
		TLSClientConfig:   &tls.Config{ServerName: name, RootCAs: roots},
		DisableKeepAlives: true,
		ForceAttemptHTTP2: true,
	}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr, Timeout: 30 * time.Second}).Get("https://" + name + "/")
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, resp.Body)
	if resp.TLS != nil && len(resp.TLS.PeerCertificates) > 0 {
		leaf = resp.TLS.PeerCertificates[0]
	}
	return resp.StatusCode, leaf, nil
}

type certState struct {
	Domain    string    `json:"domain"`
	State     string    `json:"state"`
	NotAfter  time.Time `json:"not_after"`
	DaysLeft  float64   `json:"days_left"`
	Failures  int       `json:"failures"`
	LastError string    `json:"last_error"`
	OnDemand  bool      `json:"on_demand"`
}

// certificates are what GET /server (ferry status) says of them.
func (f *ferry) certificates() map[string]certState {
	f.t.Helper()
	var info struct {
		Certificates []certState `json:"certificates"`
	}
	if err := admin.NewClient(f.Instance).Do(context.Background(), "GET", "/server", &info); err != nil {
		f.t.Fatalf("admin /server: %v", err)
	}
	out := map[string]certState{}
	for _, c := range info.Certificates {
		out[c.Domain] = c
	}
	return out
}

func (f *ferry) certState(name string) certState { return f.certificates()[name] }

// TestACMEIssuance: a first certificate through each challenge type, the
// state and metrics that show it, keys stored 0600, the plain port
// redirecting, the OCSP response stapled; a name the CA refuses; on-demand
// issuance behind the ask URL.
func TestACMEIssuance(t *testing.T) {
	needPython(t)
	t.Parallel()
	ocsp := newOCSPResponder(t)
	p := startPebbleOCSP(t, 90*24*time.Hour, ocsp.url)
	ocsp.pebble.Store(p)
	roots := p.roots()
	tlsAddr := "127.0.0.1:" + p.tlsPort
	app := fixture(t, "wsgi/echo")

	for _, ch := range []string{"http-01", "tls-alpn-01"} {
		t.Run(ch, func(t *testing.T) {
			state := filepath.Join(t.TempDir(), "acme") // Ferry creates it
			name := strings.TrimSuffix(ch, "-01") + ".test"
			f := startFerry(t, app, append(p.ferryArgs(state), "--domain", name, "--acme-challenges", ch)...)
			waitFor(t, 60*time.Second, "a valid certificate for "+name, func() bool { return f.certState(name).State == "valid" })
			f.waitLog(`challenge_type=` + ch)
			leaf, proto, err := handshake(tlsAddr, name, roots)
			if err != nil {
				t.Fatalf("handshake for %s: %v", name, err)
			}
			if proto != "h2" || leaf.DNSNames[0] != name {
				t.Errorf("protocol %q, names %v; want h2 and %s", proto, leaf.DNSNames, name)
			}
			checkStapled(t, tlsAddr, name, leaf)
			// A client that sends no server name (https://127.0.0.1/) gets
			// the first domain's certificate.
			if c, err := tls.Dial("tcp", tlsAddr, &tls.Config{InsecureSkipVerify: true}); err != nil {
				t.Errorf("handshake without SNI: %v", err)
			} else {
				if got := c.ConnectionState().PeerCertificates[0]; !got.Equal(leaf) {
					t.Errorf("without SNI: certificate for %v, want %s's", got.DNSNames, name)
				}
				c.Close()
			}
			if status, _, err := httpsGet(tlsAddr, name, roots); err != nil || status != http.StatusOK {
				t.Errorf("GET https://%s/: %d %v", name, status, err)
			}
			if cs := f.certState(name); cs.DaysLeft < 80 || cs.Failures != 0 {
				t.Errorf("state %+v: want about 90 days left, no failures", cs)
			}
			_, metrics := f.adminGet("/metrics")
			if !strings.Contains(metrics, `ferry_certificate_expiry_days{domain="`+name+`"} 89.`) ||
				!strings.Contains(metrics, `ferry_certificate_state{domain="`+name+`",state="valid"} 1`) {
				t.Errorf("metrics lack the certificate of %s:\n%s", name, grepLines(metrics, "certificate"))
			}
			// Plain HTTP redirects to HTTPS.
			req, _ := http.NewRequest("GET", f.URL+"/x?y", nil)
			req.Host = name
			resp, err := http.DefaultTransport.RoundTrip(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if want := "https://" + name + ":" + p.tlsPort + "/x?y"; resp.StatusCode != http.StatusMovedPermanently || resp.Header.Get("Location") != want {
				t.Errorf("plain HTTP: %d %q, want 301 to %s", resp.StatusCode, resp.Header.Get("Location"), want)
			}
			checkKeyModes(t, state)
			// ferry status shows it.
			out, err := exec.Command(ferryBin, "status", "--instance", f.Instance).CombinedOutput()
			if err != nil || !regexp.MustCompile(`(?m)^\s+`+name+`\s+valid\s+.*\sstapled\s`).MatchString(string(out)) {
				t.Errorf("ferry status (%v) does not show %s valid:\n%s", err, name, out)
			}
		})
	}

	t.Run("refused", func(t *testing.T) {
		f := startFerry(t, app, append(p.ferryArgs(t.TempDir()), "--domain", "ok.test", "--domain", "refused.test")...)
		waitFor(t, 60*time.Second, "ok.test valid, refused.test failing", func() bool {
			c := f.certificates()
			return c["ok.test"].State == "valid" && c["refused.test"].State == "failing"
		})
		if e := f.certState("refused.test").LastError; !strings.Contains(e, "rejectedIdentifier") && !strings.Contains(e, "blocked") {
			t.Errorf("refused.test's error %q does not say the CA refused it", e)
		}
		f.waitLog(`could not get a certificate.*domain=refused.test`)
		if status, _, err := httpsGet(tlsAddr, "ok.test", roots); err != nil || status != http.StatusOK {
			t.Errorf("ok.test beside a refused name: %d %v", status, err)
		}
		if _, _, err := handshake(tlsAddr, "refused.test", roots); err == nil {
			t.Errorf("a handshake for refused.test succeeded")
		}
	})

	t.Run("on-demand", func(t *testing.T) {
		var asked sync.Map
		ask := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			d := r.URL.Query().Get("domain")
			asked.Store(d, true)
			if d != "yes.test" {
				http.Error(w, "not ours", http.StatusForbidden)
			}
		})}
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		go ask.Serve(ln)
		defer ask.Close()
		f := startFerry(t, app, append(p.ferryArgs(t.TempDir()), "--acme-on-demand", "--acme-ask", "http://"+ln.Addr().String()+"/check")...)
		if _, _, err := handshake(tlsAddr, "no.test", roots); err == nil {
			t.Errorf("a handshake for no.test, which the ask URL refuses, succeeded")
		}
		if _, ok := asked.Load("no.test"); !ok {
			t.Errorf("the ask URL was not asked about no.test")
		}
		if status, leaf, err := httpsGet(tlsAddr, "yes.test", roots); err != nil || status != http.StatusOK || leaf.DNSNames[0] != "yes.test" {
			t.Fatalf("on-demand yes.test: %d %v", status, err)
		}
		if c := f.certificates(); c["yes.test"].State != "valid" || !c["yes.test"].OnDemand || c["no.test"].State != "" {
			t.Errorf("certificates %+v: want yes.test valid on demand, no no.test", c)
		}
	})
}

// checkKeyModes: every private key under the state directory is 0600, and
// every directory 0700.
func checkKeyModes(t *testing.T, dir string) {
	t.Helper()
	keys := 0
	filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, _ := d.Info()
		switch {
		case d.IsDir() && fi.Mode().Perm() != 0o700:
			t.Errorf("%s: mode %#o, want 0700", path, fi.Mode().Perm())
		case strings.HasSuffix(path, ".key"):
			keys++
			if fi.Mode().Perm() != 0o600 {
				t.Errorf("%s: mode %#o, want 0600", path, fi.Mode().Perm())
			}
			b, _ := os.ReadFile(path)
			if blk, _ := pem.Decode(b); blk == nil || !strings.Contains(blk.Type, "PRIVATE KEY") {
				t.Errorf("%s holds no private key", path)
			}
		}
		return nil
	})
	if keys < 2 { // the account's and the certificate's
		t.Errorf("%d private keys under %s, want at least 2", keys, dir)
	}
}

// TestACMERenewal: short-lived certificates are renewed while a client
// keeps requesting: no request fails and the new certificate is served.
// Then the CA becomes unreachable: the current certificate keeps serving,
// the failure shows in the status, and once the CA is back the renewal is
// retried and succeeds.
func TestACMERenewal(t *testing.T) {
	needPython(t)
	t.Parallel()
	p := startPebble(t, 30*time.Second)
	roots := p.roots()
	tlsAddr := "127.0.0.1:" + p.tlsPort
	f := startFerry(t, fixture(t, "wsgi/echo"), append(p.ferryArgs(t.TempDir()), "--domain", "renew.test")...)
	waitFor(t, 60*time.Second, "a first certificate", func() bool { return f.certState("renew.test").State == "valid" })

	var requests, failures atomic.Int64
	var mu sync.Mutex
	serials := map[string]bool{}
	var lastErr error
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			default:
			}
			status, leaf, err := httpsGet(tlsAddr, "renew.test", roots)
			requests.Add(1)
			mu.Lock()
			if err != nil || status != http.StatusOK {
				failures.Add(1)
				lastErr = fmt.Errorf("status %d: %v", status, err)
			} else {
				serials[leaf.SerialNumber.String()] = true
			}
			mu.Unlock()
		}
	}()
	waitFor(t, 90*time.Second, "a renewed certificate served", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(serials) >= 2
	})
	close(stop)
	<-done
	if failures.Load() > 0 {
		t.Fatalf("%d of %d requests failed during renewal; last: %v", failures.Load(), requests.Load(), lastErr)
	}
	t.Logf("%d requests, %d certificates served, none failed", requests.Load(), len(serials))

	// The CA goes away: a renewal fails, the certificate served stays.
	p.relay.down()
	before, _, err := handshake(tlsAddr, "renew.test", roots)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 60*time.Second, "a failed renewal", func() bool { return f.certState("renew.test").Failures > 0 })
	f.waitLog(`could not get a certificate.*domain=renew.test.*renewal=true`)
	served := servedSerial(t, tlsAddr, "renew.test")
	if served != before.SerialNumber.String() {
		t.Errorf("with the CA down, serial %s is served; want the current %s kept", served, before.SerialNumber)
	}
	if cs := f.certState("renew.test"); cs.LastError == "" {
		t.Errorf("state %+v: want the last error", cs)
	}
	// The CA comes back: the retry renews.
	p.relay.up()
	waitFor(t, 150*time.Second, "a renewal after the CA came back", func() bool {
		return servedSerial(t, tlsAddr, "renew.test") != before.SerialNumber.String()
	})
	if status, _, err := httpsGet(tlsAddr, "renew.test", roots); err != nil || status != http.StatusOK {
		t.Errorf("after the CA came back: %d %v", status, err)
	}
}

// servedSerial is the serial of the certificate served for name, valid or
// not.
func servedSerial(t *testing.T, addr, name string) string {
	c, err := tls.Dial("tcp", addr, &tls.Config{ServerName: name, InsecureSkipVerify: true})
	if err != nil {
		return "none: " + err.Error()
	}
	defer c.Close()
	return c.ConnectionState().PeerCertificates[0].SerialNumber.String()
}

// TestACMECADownAtStart: with the CA unreachable, Ferry starts and serves
// what its state directory holds (stored by an earlier run), reports the
// name it could not get, and gets it once the CA is back.
func TestACMECADownAtStart(t *testing.T) {
	needPython(t)
	t.Parallel()
	p := startPebble(t, 90*24*time.Hour)
	roots := p.roots()
	tlsAddr := "127.0.0.1:" + p.tlsPort
	state := t.TempDir()
	app := fixture(t, "wsgi/echo")

	first := startFerry(t, app, append(p.ferryArgs(state), "--domain", "a.test")...)
	waitFor(t, 60*time.Second, "a.test valid", func() bool { return first.certState("a.test").State == "valid" })
	stored, _, err := handshake(tlsAddr, "a.test", roots)
	if err != nil {
		t.Fatal(err)
	}
	first.stop()

	p.relay.down()
	f := startFerry(t, app, append(p.ferryArgs(state), "--domain", "a.test", "--domain", "b.test")...)
	leaf, _, err := handshake(tlsAddr, "a.test", roots)
	if err != nil || !leaf.Equal(stored) {
		t.Fatalf("with the CA down, a.test: %v; want the stored certificate served", err)
	}
	waitFor(t, 60*time.Second, "b.test failing", func() bool { return f.certState("b.test").State == "failing" })
	f.waitLog(`could not get a certificate.*domain=b.test`)
	if _, _, err := handshake(tlsAddr, "b.test", roots); err == nil {
		t.Errorf("b.test has a certificate though the CA was never reachable")
	}
	if status, _, err := httpsGet(tlsAddr, "a.test", roots); err != nil || status != http.StatusOK {
		t.Errorf("a.test while b.test fails: %d %v", status, err)
	}

	p.relay.up()
	waitFor(t, 150*time.Second, "b.test obtained after the CA came back", func() bool { return f.certState("b.test").State == "valid" })
	if status, _, err := httpsGet(tlsAddr, "b.test", roots); err != nil || status != http.StatusOK {
		t.Errorf("b.test after the CA came back: %d %v", status, err)
	}
}

func (f *ferry) adminGet(path string) (int, string) {
	f.t.Helper()
	var raw []byte
	if err := admin.NewClient(f.Instance).Do(context.Background(), "GET", path, &raw); err != nil {
		f.t.Fatalf("admin %s: %v", path, err)
	}
	return 200, string(raw)
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// TestACMESharedState: two Ferry processes on one host share a state
// directory, as an old and a new Ferry do during a binary upgrade. Started
// together for the same name, they obtain one certificate between them (the
// lock) and both serve it. A name only the second manages is obtained
// though only the first listens where the CA validates: the first answers
// the challenge from what the shared storage holds (the challenge itself,
// or the account it was made with).
func TestACMESharedState(t *testing.T) {
	needPython(t)
	t.Parallel()
	p := startPebble(t, 90*24*time.Hour)
	roots := p.roots()
	state := t.TempDir()
	app := fixture(t, "wsgi/echo")
	otherTLS := freePort(t)
	var fs [2]*ferry
	var wg sync.WaitGroup
	for i := range fs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			args := append(p.ferryArgs(state), "--domain", "shared.test")
			if i == 1 { // ports the CA never connects to
				args = append(args, "--port", freePort(t), "--ssl-port", otherTLS)
			}
			fs[i] = startFerry(t, app, args...)
		}()
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	for _, f := range fs {
		waitFor(t, 60*time.Second, "shared.test valid in both", func() bool { return f.certState("shared.test").State == "valid" })
	}
	a, _, err := handshake("127.0.0.1:"+p.tlsPort, "shared.test", roots)
	if err != nil {
		t.Fatal(err)
	}
	b, _, err := handshake("127.0.0.1:"+otherTLS, "shared.test", roots)
	if err != nil {
		t.Fatal(err)
	}
	if !a.Equal(b) {
		t.Errorf("the two Ferrys serve different certificates (serials %s, %s)", a.SerialNumber, b.SerialNumber)
	}
	if n := strings.Count(p.logs.String(), "Issued certificate serial"); n != 1 {
		t.Errorf("Pebble issued %d certificates for two Ferrys sharing their state, want 1", n)
	}

	fs[1].stop()
	second := startFerry(t, app, append(p.ferryArgs(state), "--port", freePort(t), "--ssl-port", otherTLS,
		"--domain", "shared.test", "--domain", "only-b.test")...)
	waitFor(t, 60*time.Second, "only-b.test valid", func() bool { return second.certState("only-b.test").State == "valid" })
	if _, _, err := handshake("127.0.0.1:"+otherTLS, "only-b.test", roots); err != nil {
		t.Errorf("only-b.test: %v", err)
	}
	if n := strings.Count(p.logs.String(), "Issued certificate serial"); n != 2 {
		t.Errorf("Pebble issued %d certificates, want 2 (shared.test once, only-b.test)", n)
	}
}

// ocspResponder is an OCSP responder for Pebble's certificates (Pebble
// names one in them but runs none): it signs "good" with Pebble's
// intermediate key, which Pebble's management interface hands out.
type ocspResponder struct {
	url    string
	pebble atomic.Pointer[pebble]
}

func newOCSPResponder(t *testing.T) *ocspResponder {
	o := &ocspResponder{}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	o.url = "http://" + ln.Addr().String() + "/"
	srv := &http.Server{Handler: http.HandlerFunc(o.serve)}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return o
}

func (o *ocspResponder) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	req, err := ocsp.ParseRequest(body)
	p := o.pebble.Load()
	if err != nil || p == nil {
		http.Error(w, "bad request", http.StatusBadRequest)
		return
	}
	get := func(path string) []byte {
		resp, err := p.tlsClient.Get("https://" + p.mgmt + path)
		if err != nil {
			return nil
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return b
	}
	cb, _ := pem.Decode(get("/intermediates/0"))
	kb, _ := pem.Decode(get("/intermediate-keys/0"))
	if cb == nil || kb == nil {
		http.Error(w, "no issuer", http.StatusInternalServerError)
		return
	}
	issuer, err := x509.ParseCertificate(cb.Bytes)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	key, err := x509.ParsePKCS1PrivateKey(kb.Bytes)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	now := time.Now().Truncate(time.Minute)
	der, err := ocsp.CreateResponse(issuer, issuer, ocsp.Response{Status: ocsp.Good, SerialNumber: req.SerialNumber,
		ThisUpdate: now, NextUpdate: now.Add(48 * time.Hour)}, key)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/ocsp-response")
	w.Write(der)
}

// checkStapled: the handshake for name carries a good OCSP response for
// leaf, and the status says so.
func checkStapled(t *testing.T, addr, name string, leaf *x509.Certificate) {
	t.Helper()
	c, err := tls.Dial("tcp", addr, &tls.Config{ServerName: name, InsecureSkipVerify: true})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	st := c.ConnectionState()
	if len(st.OCSPResponse) == 0 {
		t.Errorf("no OCSP response stapled for %s", name)
		return
	}
	if len(st.PeerCertificates) < 2 {
		t.Fatalf("no intermediate served for %s", name)
	}
	resp, err := ocsp.ParseResponseForCert(st.OCSPResponse, leaf, st.PeerCertificates[1])
	if err != nil || resp.Status != ocsp.Good {
		t.Errorf("stapled OCSP response for %s: %v (status %d)", name, err, resp.Status)
	}
}

// TestACMEUpgrade: a binary upgrade keeps serving the certificate (no
// handshake fails for want of it: the new Ferry loads it from the state
// directory before it accepts), and the new Ferry orders no other.
func TestACMEUpgrade(t *testing.T) {
	needPython(t)
	t.Parallel()
	p := startPebble(t, 90*24*time.Hour)
	roots := p.roots()
	tlsAddr := "127.0.0.1:" + p.tlsPort
	f := startFerry(t, fixture(t, "wsgi/echo"), append(p.ferryArgs(t.TempDir()), "--domain", "up.test")...)
	waitFor(t, 60*time.Second, "up.test valid", func() bool { return f.certState("up.test").State == "valid" })
	first, _, err := handshake(tlsAddr, "up.test", roots)
	if err != nil {
		t.Fatal(err)
	}

	// failed: a handshake or a response that went wrong; closed: a new
	// connection the draining old Ferry closed before its request arrived,
	// which happens with any listener (not a matter of certificates; see
	// TestBinaryUpgradeUnderLoad).
	var served, failed, closed atomic.Int64
	var lastErr atomic.Value
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			default:
			}
			status, leaf, err := httpsGet(tlsAddr, "up.test", roots)
			switch {
			case err != nil && droppedByDrain(err):
				closed.Add(1)
			case err != nil || status != http.StatusOK || !leaf.Equal(first):
				failed.Add(1)
				lastErr.Store(fmt.Sprintf("status %d: %v", status, err))
			default:
				served.Add(1)
			}
		}
	}()
	out, err := exec.Command(ferryBin, "upgrade", "--instance", f.Instance).CombinedOutput()
	if err != nil {
		t.Fatalf("ferry upgrade: %v\n%s", err, out)
	}
	line := f.waitLog(`upgrade: the new ferry serves; this one drains and exits.*new_pid=\d+`)
	newPID := atoi(regexp.MustCompile(`new_pid=(\d+)`).FindStringSubmatch(line)[1])
	t.Cleanup(func() {
		syscall.Kill(newPID, syscall.SIGTERM)
		waitFor(t, 60*time.Second, "the new ferry to exit", func() bool { return !alive(newPID) })
	})
	f.waitLog(`msg="ferry stopped"`)
	before := served.Load()
	waitFor(t, 60*time.Second, "HTTPS served by the new ferry", func() bool { return served.Load() > before+20 })
	close(stop)
	<-done
	t.Logf("across the upgrade: %d served, %d failed, %d new connections closed by the draining Ferry", served.Load(), failed.Load(), closed.Load())
	if failed.Load() > 0 {
		t.Errorf("%d HTTPS requests failed across the upgrade; last: %v", failed.Load(), lastErr.Load())
	}
	if n := strings.Count(p.logs.String(), "Issued certificate serial"); n != 1 {
		t.Errorf("Pebble issued %d certificates across an upgrade, want 1", n)
	}
}

// droppedByDrain tells a connection the draining old Ferry closed without
// an answer (net/http drops a request read after its Shutdown began) from
// a failure of the certificate or of the request.
func droppedByDrain(err error) bool {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET) {
		return true
	}
	for _, s := range []string{"server closed idle connection", "client conn could not be established", "connection reset by peer"} {
		if strings.Contains(err.Error(), s) {
			return true
		}
	}
	return false
}
