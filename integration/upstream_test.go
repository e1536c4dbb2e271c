package integration

import (
	"net/http"
	"net/http/httptrace"
	"net/textproto"
	"strings"
	"sync"
	"testing"
)

// rawWire starts the app of testdata/generic/rawwire, which breaks HTTP
// on its connections to Ferry in the ways buggy apps do, as one process.
func rawWire(t *testing.T) *ferry {
	t.Helper()
	return startFerry(t, fixture(t, "generic/rawwire"), "--app-start-command", python+" server.py",
		"--min-instances", "1", "--max-pool-size", "1")
}

// TestUpstreamDesync: an app that sends more than its response (a whole
// second response past Content-Length, a body after HEAD) on a kept-alive
// connection: that never reaches the next request, another client's.
// The framing error is logged once, with the app and the pid.
func TestUpstreamDesync(t *testing.T) {
	f := rawWire(t)
	for i := range 10 {
		if code, body := f.get("/desync"); code != 200 || body != "ok" {
			t.Fatalf("round %d: GET /desync = %d %q", i, code, body)
		}
		if code, body := f.get("/"); code != 200 || !strings.HasPrefix(body, "pid=") {
			t.Fatalf("round %d: the request after a desync got %d %q", i, code, body)
		}
		if code, _ := f.do("HEAD", "/head", nil, nil); code != 200 {
			t.Fatalf("round %d: HEAD /head = %d", i, code)
		}
		if code, body := f.get("/"); code != 200 || !strings.HasPrefix(body, "pid=") {
			t.Fatalf("round %d: the request after a HEAD with a body got %d %q", i, code, body)
		}
	}
	// A Transfer-Encoding other than chunked: the close ends the body.
	if code, body := f.get("/te"); code != 200 || body != "to the close" {
		t.Fatalf("GET /te = %d %q", code, body)
	}
	line := f.waitLog(`app broke HTTP framing`)
	if !strings.Contains(line, "app=") || !strings.Contains(line, "pid=") {
		t.Errorf("the framing error is logged without app and pid: %s", line)
	}
	if n := strings.Count(f.logs.String(), "app broke HTTP framing"); n != 1 {
		t.Errorf("the framing error is logged %d times, want once", n)
	}
	if st := f.pool().Apps[0]; st.Stats.Spawned != 1 || st.Stats.Died != 0 {
		t.Errorf("a misframing app's process was replaced: %+v", st.Stats)
	}
}

// TestUpstreamDroppedConnection: an app that closes one connection
// without answering gets that request a 502 (a GET after one retry), and
// keeps its process: a request in flight on it finishes, and it serves on.
func TestUpstreamDroppedConnection(t *testing.T) {
	f := rawWire(t)
	_, before := f.get("/")
	var wg sync.WaitGroup
	var slowCode int
	var slowBody string
	wg.Add(1)
	go func() {
		defer wg.Done()
		slowCode, slowBody = f.do("GET", "/slow", nil, nil)
	}()
	eventually(t, "the slow request at the app", func() bool {
		ps := f.pool().Apps[0].Processes
		return len(ps) == 1 && ps[0].Sessions == 1
	})
	for _, method := range []string{"GET", "POST"} {
		if code, _ := f.do(method, "/drop", strings.NewReader("data"), nil); code != http.StatusBadGateway {
			t.Fatalf("%s /drop = %d, want 502", method, code)
		}
	}
	if code, body := f.get("/release"); code != 200 || body != "released" {
		t.Fatalf("GET /release = %d %q", code, body)
	}
	wg.Wait()
	if slowCode != 200 || slowBody != "slow" {
		t.Fatalf("the request in flight during the drops got %d %q", slowCode, slowBody)
	}
	if _, after := f.get("/"); after != before {
		t.Fatalf("served by %q after the drops, %q before: the process was replaced", after, before)
	}
	if st := f.pool().Apps[0]; st.Stats.Spawned != 1 || st.Stats.Died != 0 {
		t.Fatalf("processes spawned %d, died %d; want 1 and 0", st.Stats.Spawned, st.Stats.Died)
	}
}

// TestUpstreamEarlyHints: the app's 103 reaches the client before the
// final response (net/http's path: a POST; the lean path's GET gets the
// final response, its fields its own).
func TestUpstreamEarlyHints(t *testing.T) {
	f := rawWire(t)
	for _, method := range []string{"POST", "GET"} {
		var hints []string
		trace := &httptrace.ClientTrace{Got1xxResponse: func(code int, h textproto.MIMEHeader) error {
			hints = append(hints, h.Get("Link"))
			return nil
		}}
		req, _ := http.NewRequest(method, f.URL+"/early", strings.NewReader("x"))
		req = req.WithContext(httptrace.WithClientTrace(req.Context(), trace))
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if method == "POST" && (len(hints) != 1 || hints[0] != "</style.css>; rel=preload") {
			t.Errorf("POST: interim Link fields %q, want the 103's", hints)
		}
		if resp.StatusCode != 200 || strings.Join(resp.Header["Link"], ",") != "</final>" {
			t.Errorf("%s: final %d, Link %q", method, resp.StatusCode, resp.Header["Link"])
		}
	}
}
