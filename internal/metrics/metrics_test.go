package metrics

import (
	"fmt"
	"maps"
	"math"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// scrape fetches m's handler over HTTP and parses the text exposition.
func scrape(t *testing.T, m *Metrics) map[string]*dto.MetricFamily {
	t.Helper()
	srv := httptest.NewServer(m.Handler())
	t.Cleanup(srv.Close)
	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("scrape: %s", resp.Status)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		t.Fatalf("scrape: Content-Type %q, want text/plain", ct)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parse scrape: %v", err)
	}
	return fams
}

// find returns the metric of family name with exactly labels (name=value
// pairs), failing the test when there is none.
func find(t *testing.T, fams map[string]*dto.MetricFamily, name string, labels ...string) *dto.Metric {
	t.Helper()
	f, ok := fams[name]
	if !ok {
		t.Fatalf("no metric family %s", name)
	}
	want := pairs(labels...)
	for _, m := range f.GetMetric() {
		got := map[string]string{}
		for _, l := range m.GetLabel() {
			got[l.GetName()] = l.GetValue()
		}
		if maps.Equal(got, want) {
			return m
		}
	}
	t.Fatalf("no %s%v among %d series", name, want, len(f.GetMetric()))
	return nil
}

func pairs(kv ...string) map[string]string {
	m := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return m
}

// value is the value of a counter or gauge.
func value(t *testing.T, fams map[string]*dto.MetricFamily, name string, labels ...string) float64 {
	t.Helper()
	m := find(t, fams, name, labels...)
	switch fams[name].GetType() {
	case dto.MetricType_COUNTER:
		return m.GetCounter().GetValue()
	case dto.MetricType_GAUGE:
		return m.GetGauge().GetValue()
	}
	t.Fatalf("%s is a %v, not a counter or gauge", name, fams[name].GetType())
	return 0
}

func TestRequest(t *testing.T) {
	m := New()
	a := m.App("blog")
	a.Request(200, 3*time.Millisecond, 0, 1000)
	a.Request(204, 7*time.Millisecond, 100, 0)
	a.Request(304, 20*time.Millisecond, 0, 0)
	a.Request(404, 200*time.Millisecond, 0, 300)
	a.Request(499, 2*time.Second, 50, 0)
	a.Request(503, 0, 0, 200)
	a.Request(503, -time.Second, 0, 200) // counts as 0
	a.Request(599, 45*time.Second, 0, 0)
	a.Request(700, time.Millisecond, 0, 0)
	m.App("shop").Request(200, time.Millisecond, 1, 1)

	fams := scrape(t, m)
	for class, want := range map[string]float64{"1xx": 0, "2xx": 2, "3xx": 1, "4xx": 2, "5xx": 3, "other": 1} {
		if got := value(t, fams, "ferry_http_requests_total", "app", "blog", "class", class); got != want {
			t.Errorf("requests{class=%q} = %v, want %v", class, got, want)
		}
	}
	for code, want := range map[string]float64{"500": 0, "502": 0, "503": 2, "504": 0, "599": 1} {
		if got := value(t, fams, "ferry_http_server_errors_total", "app", "blog", "code", code); got != want {
			t.Errorf("server_errors{code=%q} = %v, want %v", code, got, want)
		}
	}
	if n := len(fams["ferry_http_server_errors_total"].GetMetric()); n != 5+4 {
		t.Errorf("%d ferry_http_server_errors_total series, want 9: 500, 502, 503, 504, 599 of blog and the first four of shop", n)
	}
	if got := value(t, fams, "ferry_http_request_bytes_total", "app", "blog"); got != 150 {
		t.Errorf("request bytes = %v, want 150", got)
	}
	if got := value(t, fams, "ferry_http_response_bytes_total", "app", "blog"); got != 1700 {
		t.Errorf("response bytes = %v, want 1700", got)
	}
	if got := value(t, fams, "ferry_http_requests_total", "app", "shop", "class", "2xx"); got != 1 {
		t.Errorf("shop 2xx = %v, want 1", got)
	}

	h := find(t, fams, "ferry_http_request_duration_seconds", "app", "blog").GetHistogram()
	if h.GetSampleCount() != 9 {
		t.Errorf("duration count = %d, want 9", h.GetSampleCount())
	}
	if want := 0.003 + 0.007 + 0.020 + 0.2 + 2 + 45 + 0.001; math.Abs(h.GetSampleSum()-want) > 1e-9 {
		t.Errorf("duration sum = %v, want %v", h.GetSampleSum(), want)
	}
	gotBuckets := map[float64]uint64{}
	for _, b := range h.GetBucket() {
		gotBuckets[b.GetUpperBound()] = b.GetCumulativeCount()
	}
	wantBuckets := map[float64]uint64{
		.001: 3, .0025: 3, .005: 4, .01: 5, .025: 6, .05: 6, .1: 6, .25: 7, .5: 7,
		1: 7, 2.5: 8, 5: 8, 10: 8, 30: 8, 60: 9, math.Inf(1): 9,
	}
	if !maps.Equal(gotBuckets, wantBuckets) {
		t.Errorf("duration buckets (upper bound: cumulative count)\ngot  %v\nwant %v", gotBuckets, wantBuckets)
	}
}

func TestEvents(t *testing.T) {
	m := New()
	a := m.App("blog")
	a.QueueWait(0)
	a.QueueWait(1500 * time.Millisecond)
	a.Spawn(true, 800*time.Millisecond)
	a.Spawn(true, 20*time.Millisecond)
	a.Spawn(false, 90*time.Second)
	a.Restart()
	a.CacheHit()
	a.CacheHit()
	a.CacheHit()
	a.CacheMiss()
	a.CacheStore()

	fams := scrape(t, m)
	for name, want := range map[string]float64{
		"ferry_spawns_total":            3,
		"ferry_spawn_failures_total":    1,
		"ferry_app_restarts_total":      1,
		"ferry_turbocache_hits_total":   3,
		"ferry_turbocache_misses_total": 1,
		"ferry_turbocache_stores_total": 1,
	} {
		if got := value(t, fams, name, "app", "blog"); got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
	for _, tc := range []struct {
		name  string
		count uint64
		sum   float64
	}{
		{"ferry_pool_queue_wait_seconds", 2, 1.5},
		{"ferry_spawn_duration_seconds", 2, 0.82}, // successful spawns only
	} {
		h := find(t, fams, tc.name, "app", "blog").GetHistogram()
		if h.GetSampleCount() != tc.count || math.Abs(h.GetSampleSum()-tc.sum) > 1e-9 {
			t.Errorf("%s: count %d sum %v, want %d and %v", tc.name, h.GetSampleCount(), h.GetSampleSum(), tc.count, tc.sum)
		}
	}
}

func TestPoolCollector(t *testing.T) {
	m := New()
	if fams := scrape(t, m); fams["ferry_pool_processes"] != nil {
		t.Fatalf("pool metrics before a collector is registered")
	}

	m.RegisterPoolCollector(func() []AppSnapshot {
		return []AppSnapshot{{
			App:              "blog",
			Queued:           3,
			ProcessesByState: map[string]int{"spawning": 1, "serving": 2, "busy": 0},
			Processes: []ProcSnapshot{
				{PID: 101, RSS: 50 << 20, PSS: 30 << 20, CPUSeconds: 12.5, Sessions: 1, Processed: 1000},
				{PID: 102, RSS: 40 << 20, CPUSeconds: 0.25, Processed: 7}, // PSS unknown
			},
			MaxProcesses: 4, MaxQueued: 100, Busy: 1,
			RecycledMaxRequests: 5, RecycledMemory: 2, Died: 3, QueueFull: 8, QueueTimeout: 6,
		}, {
			App:              "shop",
			ProcessesByState: map[string]int{"serving": 0},
		}}
	})
	fams := scrape(t, m)
	checks := []struct {
		name   string
		labels []string
		want   float64
	}{
		{"ferry_pool_queued_requests", []string{"app", "blog"}, 3},
		{"ferry_pool_queued_requests", []string{"app", "shop"}, 0},
		{"ferry_pool_processes", []string{"app", "blog", "state", "spawning"}, 1},
		{"ferry_pool_processes", []string{"app", "blog", "state", "serving"}, 2},
		{"ferry_pool_processes", []string{"app", "blog", "state", "busy"}, 0},
		{"ferry_pool_processes", []string{"app", "shop", "state", "serving"}, 0},
		{"ferry_process_resident_memory_bytes", []string{"app", "blog", "pid", "101"}, 50 << 20},
		{"ferry_process_resident_memory_bytes", []string{"app", "blog", "pid", "102"}, 40 << 20},
		{"ferry_process_proportional_memory_bytes", []string{"app", "blog", "pid", "101"}, 30 << 20},
		{"ferry_process_cpu_seconds_total", []string{"app", "blog", "pid", "101"}, 12.5},
		{"ferry_process_cpu_seconds_total", []string{"app", "blog", "pid", "102"}, 0.25},
		{"ferry_process_sessions", []string{"app", "blog", "pid", "101"}, 1},
		{"ferry_process_sessions", []string{"app", "blog", "pid", "102"}, 0},
		{"ferry_process_requests_total", []string{"app", "blog", "pid", "101"}, 1000},
		{"ferry_process_requests_total", []string{"app", "blog", "pid", "102"}, 7},
		{"ferry_pool_max_processes", []string{"app", "blog"}, 4},
		{"ferry_pool_max_processes", []string{"app", "shop"}, 0},
		{"ferry_pool_max_queued_requests", []string{"app", "blog"}, 100},
		{"ferry_pool_busy_processes", []string{"app", "blog"}, 1},
		{"ferry_pool_busy_processes", []string{"app", "shop"}, 0},
		{"ferry_pool_recycles_total", []string{"app", "blog", "reason", "max_requests"}, 5},
		{"ferry_pool_recycles_total", []string{"app", "blog", "reason", "memory_limit"}, 2},
		{"ferry_pool_recycles_total", []string{"app", "shop", "reason", "memory_limit"}, 0},
		{"ferry_pool_process_deaths_total", []string{"app", "blog"}, 3},
		{"ferry_pool_queue_rejections_total", []string{"app", "blog", "reason", "full"}, 8},
		{"ferry_pool_queue_rejections_total", []string{"app", "blog", "reason", "timeout"}, 6},
		{"ferry_pool_queue_rejections_total", []string{"app", "shop", "reason", "timeout"}, 0},
	}
	for _, c := range checks {
		if got := value(t, fams, c.name, c.labels...); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	if n := len(fams["ferry_process_proportional_memory_bytes"].GetMetric()); n != 1 {
		t.Errorf("%d PSS series, want 1 (unknown PSS is left out)", n)
	}
	if n := len(fams["ferry_pool_max_queued_requests"].GetMetric()); n != 1 {
		t.Errorf("%d max queued series, want 1 (an unlimited queue is left out)", n)
	}

	// A later callback replaces the first; nil removes it.
	m.RegisterPoolCollector(func() []AppSnapshot { return []AppSnapshot{{App: "api", Queued: 9}} })
	fams = scrape(t, m)
	if got := len(fams["ferry_pool_queued_requests"].GetMetric()); got != 1 {
		t.Errorf("%d queued series after replacing the callback, want 1", got)
	}
	if got := value(t, fams, "ferry_pool_queued_requests", "app", "api"); got != 9 {
		t.Errorf("api queued = %v, want 9", got)
	}
	m.RegisterPoolCollector(nil)
	if fams := scrape(t, m); fams["ferry_pool_queued_requests"] != nil {
		t.Errorf("pool metrics after removing the callback")
	}
}

// A broken snapshot (the same app twice) loses its duplicate series, not
// the scrape, and is counted as a gathering error.
func TestPoolCollectorDuplicate(t *testing.T) {
	m := New()
	m.App("blog").Request(200, time.Millisecond, 0, 0)
	m.RegisterPoolCollector(func() []AppSnapshot {
		return []AppSnapshot{{App: "blog", Queued: 1}, {App: "blog", Queued: 2}}
	})
	fams := scrape(t, m)
	if got := value(t, fams, "ferry_http_requests_total", "app", "blog", "class", "2xx"); got != 1 {
		t.Errorf("requests = %v, want 1", got)
	}
	if n := len(fams["ferry_pool_queued_requests"].GetMetric()); n != 1 {
		t.Errorf("%d queued series, want 1", n)
	}
	// A scrape counts its error after gathering: the next one shows it.
	fams = scrape(t, m)
	if got := value(t, fams, "promhttp_metric_handler_errors_total", "cause", "gathering"); got != 1 {
		t.Errorf("gathering errors = %v, want 1", got)
	}
}

func TestStandardCollectors(t *testing.T) {
	fams := scrape(t, New())
	for _, name := range []string{
		"go_goroutines",
		"go_memstats_heap_alloc_bytes",
		"process_resident_memory_bytes",
		"process_cpu_seconds_total",
		"process_open_fds",
		"promhttp_metric_handler_requests_total",
	} {
		if fams[name] == nil {
			t.Errorf("no %s", name)
		}
	}
}

// TestConventions checks every ferry_ metric against Prometheus's linter and
// Ferry's own rules: known label names only, pid only on per-process metrics.
func TestConventions(t *testing.T) {
	m := New()
	a := m.App("blog")
	a.Request(200, time.Millisecond, 1, 1)
	a.Request(503, time.Millisecond, 1, 1)
	a.Request(700, time.Millisecond, 1, 1)
	a.QueueWait(time.Millisecond)
	a.Spawn(true, time.Second)
	a.Restart()
	a.CacheHit()
	a.CacheMiss()
	a.CacheStore()
	m.RegisterPoolCollector(func() []AppSnapshot {
		return []AppSnapshot{{App: "blog", ProcessesByState: map[string]int{"serving": 1},
			Processes: []ProcSnapshot{{PID: 1, RSS: 1, PSS: 1}}, MaxQueued: 1}}
	})
	fams := scrape(t, m)

	var ours []*dto.MetricFamily
	for _, name := range slices.Sorted(maps.Keys(fams)) {
		if strings.HasPrefix(name, "ferry_") {
			ours = append(ours, fams[name])
		}
	}
	if len(ours) != 26 {
		t.Errorf("%d ferry_ metric families, want 26", len(ours))
	}
	problems, err := promlint.NewWithMetricFamilies(ours).Lint()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("lint: %s: %s", p.Metric, p.Text)
	}

	allowed := map[string]bool{"app": true, "class": true, "code": true, "state": true, "pid": true, "reason": true}
	for _, f := range ours {
		name := f.GetName()
		for _, s := range f.GetMetric() {
			labels := map[string]bool{}
			for _, l := range s.GetLabel() {
				labels[l.GetName()] = true
				if !allowed[l.GetName()] {
					t.Errorf("%s has label %q", name, l.GetName())
				}
			}
			if !labels["app"] {
				t.Errorf("%s has no app label", name)
			}
			if labels["pid"] != strings.HasPrefix(name, "ferry_process_") {
				t.Errorf("%s: pid label %v, want it exactly on ferry_process_*", name, labels["pid"])
			}
		}
		if f.GetType() == dto.MetricType_HISTOGRAM && !strings.HasSuffix(name, "_seconds") {
			t.Errorf("histogram %s is not in seconds", name)
		}
	}
}

func TestNil(t *testing.T) {
	var m *Metrics
	a := m.App("blog")
	if a != nil {
		t.Fatalf("nil Metrics: App = %v, want nil", a)
	}
	a.Request(200, time.Second, 1, 1)
	a.QueueWait(time.Second)
	a.Spawn(false, time.Second)
	a.Restart()
	a.CacheHit()
	a.CacheMiss()
	a.CacheStore()
}

func TestAppConcurrent(t *testing.T) {
	m := New()
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			for j := range 100 {
				a := m.App(fmt.Sprintf("app%d", j%3))
				a.Request(500+(i+j)%100, time.Millisecond, 1, 1)
			}
		})
	}
	wg.Go(func() {
		for range 5 {
			m.Handler().ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/metrics", nil))
		}
	})
	wg.Wait()
	if m.App("app0") != m.App("app0") {
		t.Errorf("App returns different values for the same name")
	}
	fams := scrape(t, m)
	var total float64
	for _, s := range fams["ferry_http_server_errors_total"].GetMetric() {
		total += s.GetCounter().GetValue()
	}
	if total != 800 {
		t.Errorf("5xx total = %v, want 800", total)
	}
}

func TestRequestDoesNotAllocate(t *testing.T) {
	a := New().App("blog")
	a.Request(599, 0, 0, 0) // create the lazily created series first
	a.Request(700, 0, 0, 0)
	for _, status := range []int{200, 404, 503, 599, 700} {
		if n := testing.AllocsPerRun(100, func() {
			a.Request(status, 3*time.Millisecond, 512, 4096)
			a.QueueWait(time.Millisecond)
		}); n != 0 {
			t.Errorf("Request(%d): %v allocations, want 0", status, n)
		}
	}
}

func BenchmarkRequest(b *testing.B) {
	a := New().App("blog")
	b.Run("2xx", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			a.Request(200, 3*time.Millisecond, 512, 4096)
		}
	})
	b.Run("503", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			a.Request(503, 3*time.Millisecond, 512, 4096)
		}
	})
	b.Run("parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				a.Request(200, 3*time.Millisecond, 512, 4096)
			}
		})
	})
}

func BenchmarkApp(b *testing.B) {
	m := New()
	m.App("blog")
	b.ReportAllocs()
	for b.Loop() {
		m.App("blog")
	}
}

// TestFrontCounters: the lean path's counters are read at each scrape.
func TestFrontCounters(t *testing.T) {
	m := New()
	var requests, handoffs uint64 = 7, 2
	m.RegisterFront(func() (uint64, uint64) { return requests, handoffs })
	for _, want := range []uint64{7, 9} {
		requests = want
		fams := scrape(t, m)
		got := fams["ferry_http_lean_requests_total"].GetMetric()[0].GetCounter().GetValue()
		h := fams["ferry_http_lean_handoffs_total"].GetMetric()[0].GetCounter().GetValue()
		if got != float64(want) || h != 2 {
			t.Fatalf("lean requests %v, handoffs %v; want %d and 2", got, h, want)
		}
	}
}

// TestHTTP3Figures: HTTP/3's connections and relayed packets are read at
// each scrape.
func TestHTTP3Figures(t *testing.T) {
	m := New()
	var conns int
	var relayed uint64
	m.RegisterHTTP3(func() (int, uint64) { return conns, relayed })
	for _, tc := range []struct {
		conns   int
		relayed uint64
	}{{0, 0}, {3, 0}, {1, 42}} {
		conns, relayed = tc.conns, tc.relayed
		fams := scrape(t, m)
		c := fams["ferry_http3_connections"].GetMetric()[0].GetGauge().GetValue()
		r := fams["ferry_http3_relayed_packets_total"].GetMetric()[0].GetCounter().GetValue()
		if c != float64(tc.conns) || r != float64(tc.relayed) {
			t.Fatalf("connections %v, relayed %v; want %d and %d", c, r, tc.conns, tc.relayed)
		}
	}
}
