package integration

import (
	"encoding/json"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// probe is one answer of /health or /ready on the --metrics-address.
type probe struct {
	Code int
	Body map[string]any
	Raw  string
}

func getProbe(t *testing.T, url string) probe {
	t.Helper()
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	p := probe{Code: resp.StatusCode, Raw: string(b)}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("GET %s: Content-Type %q", url, ct)
	}
	if err := json.Unmarshal(b, &p.Body); err != nil {
		t.Fatalf("GET %s: %v in %q", url, err, b)
	}
	return p
}

// waitProbe asks url until ok says yes (it waits for a process to boot or a
// spawn to fail, not for a time), and fails the test after a minute.
func waitProbe(t *testing.T, url string, ok func(probe) bool) probe {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		p := getProbe(t, url)
		if ok(p) {
			return p
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET %s: still %d %s", url, p.Code, p.Raw)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func appReason(p probe) string {
	apps, _ := p.Body["apps"].([]any)
	if len(apps) != 1 {
		return ""
	}
	r, _ := apps[0].(map[string]any)["reason"].(string)
	return r
}

// /health and /ready answer on the --metrics-address, where load balancers
// and Kubernetes probes reach them, in JSON, 200 or 503.
func TestProbesOnMetricsAddress(t *testing.T) {
	port := freePort(t)
	base := "http://127.0.0.1:" + port
	f := startFerry(t, fixture(t, "wsgi/echo"), "--metrics-address", "127.0.0.1:"+port)
	ready := waitProbe(t, base+"/ready", func(p probe) bool { return p.Code == 200 })
	if ready.Body["ready"] != true || appReason(ready) != "serving" {
		t.Errorf("/ready = %d %s", ready.Code, ready.Raw)
	}
	if code, _ := f.get("/"); code != 200 {
		t.Errorf("GET / = %d once ready", code)
	}
	h := getProbe(t, base+"/health")
	if h.Code != 200 || h.Body["live"] != true || h.Body["draining"] != false {
		t.Errorf("/health = %d %s", h.Code, h.Raw)
	}
	// The same answers on the admin socket.
	out, err := exec_("curl", "-sS", "--unix-socket", f.Instance+"/admin.sock", "http://ferry/ready")
	if err != nil || !strings.Contains(out, `"reason": "serving"`) {
		t.Errorf("/ready on the admin socket: %v %s", err, out)
	}
}

// An app that cannot start makes the host not ready (a balancer sends its
// traffic elsewhere) while the core is alive (nothing should restart it).
func TestProbesAppFailing(t *testing.T) {
	port := freePort(t)
	base := "http://127.0.0.1:" + port
	startFerry(t, fixture(t, "wsgi/broken"), "--metrics-address", "127.0.0.1:"+port)
	ready := waitProbe(t, base+"/ready", func(p probe) bool { return appReason(p) == "spawn_failing" })
	if ready.Code != 503 || ready.Body["ready"] != false || !strings.Contains(ready.Raw, "frobnicate") {
		t.Errorf("/ready = %d %s", ready.Code, ready.Raw)
	}
	if h := getProbe(t, base+"/health"); h.Code != 200 || h.Body["live"] != true || h.Body["ready"] != false {
		t.Errorf("/health = %d %s", h.Code, h.Raw)
	}
}

// SIGTERM drains as platforms expect: /ready answers 503 at once while the
// front still serves, and accepts, for --drain-delay (each response closing
// its connection, so kept-alive clients come back through the balancer);
// then accepting stops, a request stuck forever is cut after
// --shutdown-timeout, its app process gets SIGTERM and, ignoring it, SIGKILL
// after --app-stop-timeout, and the core exits.
func TestDrainOnSIGTERM(t *testing.T) {
	port := freePort(t)
	base := "http://127.0.0.1:" + port
	// A drain delay longer than the test: a second SIGTERM ends it, so
	// nothing below races a timer.
	f := startFerry(t, fixture(t, "wsgi/echo"), "--metrics-address", "127.0.0.1:"+port,
		"--drain-delay", "600", "--shutdown-timeout", "2", "--app-stop-timeout", "1",
		"--min-instances", "2", "--max-pool-size", "2", "--spawn-method", "direct")
	waitProbe(t, base+"/ready", func(p probe) bool {
		apps, _ := p.Body["apps"].([]any)
		return p.Code == 200 && len(apps) == 1 && apps[0].(map[string]any)["serving_processes"] == float64(2)
	})

	// A kept-alive connection, and a request that never ends.
	kept := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1}, Timeout: 30 * time.Second}
	resp, err := kept.Get(f.URL + "/pid")
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	stuck := make(chan error, 1)
	go func() {
		c := &http.Client{Timeout: 120 * time.Second}
		resp, err := c.Get(f.URL + "/sleep?s=3600")
		if err == nil {
			resp.Body.Close()
		}
		stuck <- err
	}()
	var stuckPID int
	for deadline := time.Now().Add(30 * time.Second); stuckPID == 0; {
		for _, p := range f.pool().Apps[0].Processes {
			if p.Sessions == 1 {
				stuckPID = p.PID
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("the stuck request never reached a process")
		}
		time.Sleep(10 * time.Millisecond)
	}

	f.cmd.Process.Signal(syscall.SIGTERM)
	f.waitLog(`msg="draining: /ready answers 503`)
	if p := getProbe(t, base+"/ready"); p.Code != 503 || p.Body["draining"] != true {
		t.Errorf("draining: /ready = %d %s", p.Code, p.Raw)
	}
	if p := getProbe(t, base+"/health"); p.Code != 200 || p.Body["live"] != true {
		t.Errorf("draining: /health = %d %s", p.Code, p.Raw)
	}
	// Still serving, on a new connection and on the kept-alive one; each
	// response closes its connection.
	for _, c := range []*http.Client{{Timeout: 30 * time.Second}, kept} {
		resp, err := c.Get(f.URL + "/")
		if err != nil {
			t.Fatalf("GET / while draining: %v", err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !resp.Close {
			t.Errorf("GET / while draining = %d, Connection: close %v", resp.StatusCode, resp.Close)
		}
	}
	if strings.Contains(f.logs.String(), `msg="stopping: no new connections`) {
		t.Fatal("stopped accepting before the drain delay ended")
	}

	// A second signal ends the delay; the stuck request then has 2 s.
	f.cmd.Process.Signal(syscall.SIGTERM)
	f.waitLog(`msg="stopping: no new connections`)
	if _, err := (&http.Client{Timeout: 5 * time.Second}).Get(f.URL + "/"); err == nil {
		t.Error("a new connection was served after accepting stopped")
	}
	select {
	case <-f.exited:
	case <-time.After(30 * time.Second):
		t.Fatal("ferry did not exit with a request stuck forever")
	}
	if err := <-stuck; err == nil {
		t.Error("the stuck request got an answer")
	}
	f.waitLog(`in-flight requests did not finish in time`)
	if err := syscall.Kill(stuckPID, 0); err == nil {
		t.Errorf("the stuck app process %d outlived ferry", stuckPID)
	}
	if f.exitErr != nil {
		t.Errorf("ferry exited with %v", f.exitErr)
	}
}

// A binary upgrade hands the --metrics-address socket over too, and the new
// ferry says it serves only once its app can: probes asked all through the
// upgrade are never refused and never answered "not ready".
func TestUpgradeKeepsProbes(t *testing.T) {
	port := freePort(t)
	base := "http://127.0.0.1:" + port
	f := startFerry(t, fixture(t, "wsgi/echo"), "--metrics-address", "127.0.0.1:"+port,
		"--min-instances", "2", "--max-pool-size", "2")
	waitProbe(t, base+"/ready", func(p probe) bool { return p.Code == 200 })

	stop := make(chan struct{})
	done := make(chan struct{})
	var asked, failed int
	var failures []string
	go func() {
		defer close(done)
		c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
		for {
			select {
			case <-stop:
				return
			default:
			}
			asked++
			resp, err := c.Get(base + "/ready")
			if err != nil {
				failed++
				failures = append(failures, err.Error())
				continue
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				failed++
				failures = append(failures, resp.Status)
			}
		}
	}()
	var once sync.Once
	halt := func() { once.Do(func() { close(stop); <-done }) }
	defer halt()
	// The new ferry outlives the test's handle on the old one.
	if out, err := exec_(ferryBin, "upgrade", "--instance", f.Instance); err != nil {
		t.Fatalf("ferry upgrade: %v %s", err, out)
	}
	line := f.waitLog(`msg="upgrade: the new ferry serves.*new_pid=\d+`)
	newPID, _ := strconv.Atoi(regexp.MustCompile(`new_pid=(\d+)`).FindStringSubmatch(line)[1])
	t.Cleanup(func() {
		syscall.Kill(newPID, syscall.SIGTERM)
		eventually(t, "the new ferry to exit", func() bool { return !alive(newPID) })
	})
	// (Not f.exited: the new ferry writes to the same output pipe.)
	eventually(t, "the old ferry to exit", func() bool { return !alive(f.cmd.Process.Pid) })
	halt()
	if failed > 0 || asked < 10 {
		t.Errorf("%d of %d probes during the upgrade failed: %q", failed, asked, failures)
	}
	// The new ferry answers on the same port.
	if p := getProbe(t, base+"/ready"); p.Code != 200 {
		t.Errorf("after the upgrade /ready = %d %s", p.Code, p.Raw)
	}
}
