package metrics

import (
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestExemplars: the latency and queue-wait histograms carry the trace id
// of a sampled trace as an exemplar, served when the scraper negotiates
// OpenMetrics (as Prometheus does with exemplar storage on); an untraced
// observation carries none.
func TestExemplars(t *testing.T) {
	m := New()
	a := m.App("web")
	const id = "4bf92f3577b34da6a3ce929d0e0e4736"
	a.RequestTraced(200, 30*time.Millisecond, 0, 10, id)
	a.QueueWaitTraced(2*time.Millisecond, id)
	a.Request(200, 3*time.Second, 0, 10) // untraced: no exemplar in its bucket

	srv := httptest.NewServer(m.Handler())
	t.Cleanup(srv.Close)
	req, _ := http.NewRequest("GET", srv.URL, nil)
	req.Header.Set("Accept", "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/openmetrics-text") {
		t.Fatalf("Content-Type %q: OpenMetrics not negotiated", ct)
	}
	b, _ := io.ReadAll(resp.Body)
	body := string(b)
	for _, fam := range []string{"ferry_http_request_duration_seconds", "ferry_pool_queue_wait_seconds"} {
		re := regexp.MustCompile(`(?m)^` + fam + `_bucket\{app="web",le="[^"]+"\} \d+ # \{trace_id="` + id + `"\} [0-9.e-]+`)
		if !re.MatchString(body) {
			t.Errorf("%s: no bucket with the trace id as exemplar in:\n%s", fam, grepLines(body, fam+"_bucket"))
		}
	}
	if n := strings.Count(body, `trace_id="`); n != 2 {
		t.Errorf("%d exemplars, want 2 (the untraced request has none)", n)
	}
	// The plain text format, which has no exemplars, is still the default.
	if fams := scrape(t, m); fams["ferry_http_request_duration_seconds"] == nil {
		t.Error("text scrape lost the latency histogram")
	}
}

func grepLines(s, sub string) string {
	var out []string
	for l := range strings.SplitSeq(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
