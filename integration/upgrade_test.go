package integration

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptrace"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// TestBinaryUpgradeUnderLoad hands a running Ferry over to a new one (the
// binary on disk) while clients keep sending requests, on kept-alive
// connections and on a new connection each (GET on the lean path, POST
// through net/http): none fails, and the new one serves afterwards.
func TestBinaryUpgradeUnderLoad(t *testing.T) {
	f := startFerry(t, fixture(t, "wsgi/echo"), "--min-instances", "2", "--max-pool-size", "2")
	upgradeUnderLoad(t, f, f.URL, func(keepAlive bool) *http.Client {
		return &http.Client{Transport: &http.Transport{DisableKeepAlives: !keepAlive}, Timeout: 60 * time.Second}
	})
}

// TestBinaryUpgradeUnderLoadTLS is TestBinaryUpgradeUnderLoad over HTTPS
// (HTTP/1.1): connections are handed to net/http after their handshake.
func TestBinaryUpgradeUnderLoadTLS(t *testing.T) {
	cert, key, roots := testCert(t)
	f := startFerry(t, fixture(t, "wsgi/echo"), "--min-instances", "2", "--max-pool-size", "2",
		"--ssl", "--ssl-certificate", cert, "--ssl-certificate-key", key)
	upgradeUnderLoad(t, f, "https://"+addrOf(f), func(keepAlive bool) *http.Client {
		tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}, Protocols: new(http.Protocols), DisableKeepAlives: !keepAlive}
		tr.Protocols.SetHTTP1(true)
		return &http.Client{Transport: tr, Timeout: 60 * time.Second}
	})
}

// upgradeUnderLoad runs `ferry upgrade` on f while clients send requests
// to base, and fails the test if any request on a new connection was not
// answered 200.
func upgradeUnderLoad(t *testing.T, f *ferry, base string, newClient func(keepAlive bool) *http.Client) {
	eventually(t, "two processes", func() bool { return len(f.pids()) == 2 })
	oldPID := f.cmd.Process.Pid

	// refused: a connection the sockets did not accept (what an upgrade must
	// never cause); failed: an answer other than 200, or none to the first
	// request of a new connection (which a client cannot know it may
	// retry); raced: a kept-alive connection closed by the draining old
	// ferry just as the client reused it, which HTTP lets clients retry
	// (RFC 9112 §9.3.1) and browsers do.
	var served, failed, refused, raced atomic.Int64
	var firstErr atomic.Value
	stop := make(chan struct{})
	var wg sync.WaitGroup
	// 8 clients on kept-alive connections (GET), 16 on a new connection
	// per request: 8 GET (the lean path on plain HTTP), 8 POST (net/http).
	for i := range 24 {
		keepAlive, method := i < 8, http.MethodGet
		if i >= 16 {
			method = http.MethodPost
		}
		c := newClient(keepAlive)
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer c.CloseIdleConnections()
			for n := 0; ; n++ {
				select {
				case <-stop:
					return
				default:
				}
				var reused bool
				trace := &httptrace.ClientTrace{GotConn: func(i httptrace.GotConnInfo) { reused = i.Reused }}
				req, _ := http.NewRequest(method, fmt.Sprintf("%s/pid?c=%d&n=%d", base, i, n), nil)
				if method == http.MethodPost {
					req, _ = http.NewRequest(method, fmt.Sprintf("%s/pid?c=%d&n=%d", base, i, n), strings.NewReader("body"))
				}
				resp, err := c.Do(req.WithContext(httptrace.WithClientTrace(req.Context(), trace)))
				switch {
				case errors.Is(err, syscall.ECONNREFUSED):
					refused.Add(1)
					continue
				case err != nil && reused:
					raced.Add(1)
					continue
				case err != nil:
					firstErr.CompareAndSwap(nil, fmt.Sprintf("%s on a new connection: %v", method, err))
					failed.Add(1)
					continue
				case resp.StatusCode != 200:
					firstErr.CompareAndSwap(nil, fmt.Sprintf("%s: %s", method, resp.Status))
					failed.Add(1)
					resp.Body.Close()
					continue
				}
				resp.Body.Close()
				served.Add(1)
			}
		}()
	}
	eventually(t, "some load", func() bool { return served.Load() > 50 })

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
	// (Not f.exited: the new ferry writes to the same output pipe, which
	// the harness reads to its end.)
	eventually(t, "the old ferry to exit after handing over", func() bool { return !alive(oldPID) })
	f.waitLog(`msg="handing over to the new ferry"`)
	f.waitLog(`msg="ferry stopped"`)
	// Load goes on against the new one for a while.
	before := served.Load()
	eventually(t, "load served by the new ferry", func() bool { return served.Load() > before+50 })
	close(stop)
	wg.Wait()
	t.Logf("binary upgrade under 24 concurrent clients (16 on a new connection per request): %d served, %d failed, %d refused, %d kept-alive connections closed as they were reused",
		served.Load(), failed.Load(), refused.Load(), raced.Load())
	if refused.Load() != 0 || failed.Load() != 0 {
		t.Fatalf("during the upgrade %d connections were refused and %d requests failed (first: %v)", refused.Load(), failed.Load(), firstErr.Load())
	}
	if newPID == oldPID || !alive(newPID) {
		t.Fatalf("new ferry pid %d (old %d) not running", newPID, oldPID)
	}
}
