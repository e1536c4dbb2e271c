package integration

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
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
