package integration

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net/http"
	"net/http/httptrace"
	"net/textproto"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/ferry-server/ferry/internal/testh3"
	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/http3"
)

// h3Get does one request over HTTP/3 with tr.
func h3Do(tr *http3.Transport, method, url string, body io.Reader) (*http.Response, string, error) {
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		return nil, "", err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	resp, err := tr.RoundTrip(req.WithContext(ctx))
	if err != nil {
		return nil, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp, string(b), err
}

func h3Transport(roots *x509.CertPool) *http3.Transport {
	return &http3.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}}
}

// TestHTTP3 drives the real binary over HTTP/3 with quic-go's client: the
// app, a static file, a turbocache hit and a POST body on the same request
// path as HTTP/1.1 and HTTP/2, the access log saying HTTP/3.0, Alt-Svc on
// the TCP side, 0-RTT refused, and a request in flight finished on
// SIGTERM.
func TestHTTP3(t *testing.T) {
	cert, key, roots := testCert(t)
	appDir := fixture(t, "wsgi/echo")
	f := startFerry(t, appDir, "--ssl", "--ssl-certificate", cert, "--ssl-certificate-key", key,
		"--access-log-format", "combined", "--shutdown-timeout", "30")
	f.waitLog(`msg="front listening".*http3=\[127\.0\.0\.1:\d+\]`)
	base := "https://" + addrOf(f)
	tr := h3Transport(roots)
	defer tr.Close()

	t.Run("app", func(t *testing.T) {
		resp, body, err := h3Do(tr, "GET", base+"/", nil)
		if err != nil || resp.ProtoMajor != 3 || body != "hello world" {
			t.Fatalf("GET / over HTTP/3: %v %v %q", err, resp, body)
		}
		f.waitLog(`"GET / HTTP/3.0" 200 11`)
	})
	t.Run("static file", func(t *testing.T) {
		want, _ := os.ReadFile(appDir + "/public/hello.txt")
		resp, body, err := h3Do(tr, "GET", base+"/hello.txt", nil)
		if err != nil || resp.StatusCode != 200 || body != string(want) {
			t.Fatalf("static file over HTTP/3: %v %v %q, want %q", err, resp, body, want)
		}
		f.waitLog(`"GET /hello.txt HTTP/3.0" 200`)
	})
	t.Run("cache hit", func(t *testing.T) {
		u := base + "/counted?cc=public%2C+max-age%3D60&t=h3"
		_, first, err := h3Do(tr, "GET", u, nil)
		if err != nil {
			t.Fatal(err)
		}
		resp, second, err := h3Do(tr, "GET", u, nil)
		if err != nil || !strings.HasPrefix(first, "served 1 times") || second != first || resp.Header.Get("Age") == "" {
			t.Fatalf("bodies %q then %q (Age %q, %v): want the second from the turbocache", first, second, resp.Header.Get("Age"), err)
		}
	})
	t.Run("POST body", func(t *testing.T) {
		data := strings.Repeat("0123456789", 100000)
		resp, body, err := h3Do(tr, "POST", base+"/upload", strings.NewReader(data))
		if err != nil || resp.StatusCode != 200 || !strings.Contains(body, `"len": 1000000`) {
			t.Fatalf("upload over HTTP/3: %v %v %q", err, resp, body)
		}
		f.waitLog(`"POST /upload HTTP/3.0" 200`)
	})
	t.Run("Alt-Svc on HTTP/1.1 and HTTP/2", func(t *testing.T) {
		_, port, _ := strings.Cut(addrOf(f), ":")
		for _, h2 := range []bool{false, true} {
			resp, err := tlsClient(roots, h2).Get(base + "/")
			if err != nil {
				t.Fatal(err)
			}
			readAll(t, resp)
			if want := `h3=":` + port + `"; ma=86400`; resp.Header.Get("Alt-Svc") != want {
				t.Fatalf("%s: Alt-Svc %q, want %q", resp.Proto, resp.Header.Get("Alt-Svc"), want)
			}
		}
	})
	t.Run("0-RTT refused", func(t *testing.T) {
		// The client is a process of its own, built without the race
		// detector: quic-go's client races on the 0-RTT path.
		r, err := testh3.Early(cert, base+"/")
		if err != nil {
			t.Fatal(err)
		}
		for i := range 2 {
			if r.Status[i] != 200 || r.Body[i] != "hello world" {
				t.Fatalf("request %d: %d %q", i+1, r.Status[i], r.Body[i])
			}
		}
		if !r.Resumed || r.Used0RTT {
			t.Fatalf("the second connection: resumed %v, 0-RTT accepted %v; want resumed, 0-RTT refused", r.Resumed, r.Used0RTT)
		}
	})
	t.Run("metrics", func(t *testing.T) {
		out, stderr, err := ferryCtx(t, time.Minute, "status", "--show=metrics", "--instance", f.Instance)
		if err != nil {
			t.Fatalf("ferry status --show=metrics: %v\n%s", err, stderr)
		}
		for _, name := range []string{"ferry_http3_connections ", "ferry_http3_relayed_packets_total 0"} {
			if !strings.Contains(out, "\n"+name) {
				t.Errorf("no %q in the metrics", name)
			}
		}
	})
	t.Run("drained on shutdown", func(t *testing.T) {
		type result struct {
			body string
			err  error
		}
		done := make(chan result, 1)
		go func() {
			_, body, err := h3Do(tr, "GET", base+"/sleep?s=2", nil)
			done <- result{body, err}
		}()
		eventually(t, "the request at the app", func() bool {
			for _, a := range f.poolRaw2(t) {
				if a > 0 {
					return true
				}
			}
			return false
		})
		f.cmd.Process.Signal(syscall.SIGTERM)
		r := <-done
		if _, err := strconv.Atoi(r.body); r.err != nil || err != nil {
			t.Fatalf("the request in flight at shutdown: %q %v", r.body, r.err)
		}
		<-f.exited
		f.waitLog(`msg="ferry stopped"`)
	})
}

// poolRaw2 is the sessions open on each of the app's processes.
func (f *ferry) poolRaw2(t *testing.T) []int {
	var out []int
	for _, p := range f.pool().Apps[0].Processes {
		out = append(out, p.Sessions)
	}
	return out
}

// TestHTTP3Upgrade: ferry upgrade hands the UDP socket over with the TCP
// one; clients opening HTTP/3 connections throughout are all served, by
// the new ferry afterwards.
func TestHTTP3Upgrade(t *testing.T) {
	cert, key, roots := testCert(t)
	f := startFerry(t, fixture(t, "wsgi/echo"), "--ssl", "--ssl-certificate", cert, "--ssl-certificate-key", key,
		"--shutdown-timeout", "30")
	base := "https://" + addrOf(f)
	oldPID := f.cmd.Process.Pid

	var served, failed atomic.Int64
	var firstErr atomic.Value
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Go(func() {
			for n := 0; ; n++ {
				select {
				case <-stop:
					return
				default:
				}
				// A new connection each time: the listening side is what
				// an upgrade must keep.
				tr := h3Transport(roots)
				resp, body, err := h3Do(tr, "GET", fmt.Sprintf("%s/pid?c=%d&n=%d", base, i, n), nil)
				tr.Close()
				if _, perr := strconv.Atoi(body); err != nil || resp.StatusCode != 200 || perr != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, fmt.Sprintf("%v %v %q", err, resp, body))
					continue
				}
				served.Add(1)
			}
		})
	}
	eventually(t, "some load", func() bool { return served.Load() > 20 })
	// A request in flight on the old ferry keeps it draining for a while
	// after the handover: meanwhile it relays new connections to the new
	// one (internal/server/h3handover.go).
	slow := make(chan string, 1)
	slowTr := h3Transport(roots)
	defer slowTr.Close()
	if _, _, err := h3Do(slowTr, "GET", base+"/pid", nil); err != nil {
		t.Fatalf("a connection to the old ferry: %v", err)
	}
	go func() {
		resp, body, err := h3Do(slowTr, "GET", base+"/sleep?s=2", nil)
		slow <- fmt.Sprintf("%v %v %q", err, resp != nil && resp.StatusCode == 200, body)
	}()
	out, err := exec_(ferryBin, "upgrade", "--instance", f.Instance)
	if err != nil {
		t.Fatalf("ferry upgrade: %v\n%s", err, out)
	}
	line := f.waitLog(`upgrade: the new ferry serves; this one drains and exits.*new_pid=\d+`)
	newPID, _ := strconv.Atoi(regexp.MustCompile(`new_pid=(\d+)`).FindStringSubmatch(line)[1])
	t.Cleanup(func() {
		syscall.Kill(newPID, syscall.SIGTERM)
		eventually(t, "the new ferry to exit", func() bool { return !alive(newPID) })
	})
	eventually(t, "the old ferry to exit after handing over", func() bool { return !alive(oldPID) })
	if got := <-slow; !strings.HasPrefix(got, "<nil> true") {
		t.Fatalf("the request in flight on the old ferry: %s", got)
	}
	before := served.Load()
	eventually(t, "HTTP/3 served by the new ferry", func() bool { return served.Load() > before+20 })
	close(stop)
	wg.Wait()
	t.Logf("binary upgrade under 4 HTTP/3 clients (a connection per request): %d served, %d failed", served.Load(), failed.Load())
	if failed.Load() != 0 {
		t.Fatalf("%d HTTP/3 requests failed during the upgrade; the first: %v", failed.Load(), firstErr.Load())
	}
	if !alive(newPID) {
		t.Fatalf("new ferry %d not running", newPID)
	}
}

// TestHTTP3EarlyHints: the app's 103 reaches an HTTP/3 client before the
// final response.
func TestHTTP3EarlyHints(t *testing.T) {
	cert, key, roots := testCert(t)
	f := startFerry(t, fixture(t, "generic/rawwire"), "--app-start-command", python+" server.py",
		"--min-instances", "1", "--max-pool-size", "1", "--ssl", "--ssl-certificate", cert, "--ssl-certificate-key", key)
	tr := h3Transport(roots)
	defer tr.Close()
	var hints []string
	trace := &httptrace.ClientTrace{Got1xxResponse: func(code int, h textproto.MIMEHeader) error {
		hints = append(hints, fmt.Sprint(code, " ", h.Get("Link")))
		return nil
	}}
	req, _ := http.NewRequest("GET", "https://"+addrOf(f)+"/early", nil)
	resp, err := tr.RoundTrip(req.WithContext(httptrace.WithClientTrace(req.Context(), trace)))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if len(hints) != 1 || hints[0] != "103 </style.css>; rel=preload" {
		t.Errorf("interim responses %q, want the 103 with its Link", hints)
	}
	if resp.ProtoMajor != 3 || resp.StatusCode != 200 || strings.Join(resp.Header["Link"], ",") != "</final>" {
		t.Errorf("final %s %d, Link %q", resp.Proto, resp.StatusCode, resp.Header["Link"])
	}
}

// h3GetName does GET https://NAME/ over HTTP/3 to addr (UDP), checking the
// certificate for name: automatic HTTPS serves HTTP/3 too. It returns the
// status and the certificate served.
func h3GetName(addr, name string, roots *x509.CertPool) (int, *x509.Certificate, error) {
	tr := &http3.Transport{TLSClientConfig: &tls.Config{ServerName: name, RootCAs: roots},
		Dial: func(ctx context.Context, _ string, tc *tls.Config, qc *quic.Config) (*quic.Conn, error) {
			return quic.DialAddrEarly(ctx, addr, tc, qc)
		}}
	defer tr.Close()
	resp, _, err := h3Do(tr, "GET", "https://"+name+"/", nil)
	if err != nil {
		return 0, nil, err
	}
	if resp.ProtoMajor != 3 || resp.TLS == nil || len(resp.TLS.PeerCertificates) == 0 {
		return 0, nil, fmt.Errorf("not HTTP/3 over TLS: %s", resp.Proto)
	}
	return resp.StatusCode, resp.TLS.PeerCertificates[0], nil
}
