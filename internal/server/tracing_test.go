package server

import (
	"context"
	"net/http"
	"sync"
	"testing"

	"github.com/ferry-server/ferry/internal/tracing"
	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// recorder keeps the spans exported to it (tests), or only counts them
// (benchmarks, discard set).
type recorder struct {
	mu      sync.Mutex
	discard bool
	n       int
	spans   []sdktrace.ReadOnlySpan
}

func (r *recorder) ExportSpans(_ context.Context, s []sdktrace.ReadOnlySpan) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.n += len(s)
	if !r.discard {
		r.spans = append(r.spans, s...)
	}
	return nil
}

func (r *recorder) Shutdown(context.Context) error { return nil }

func newTracer(tb testing.TB, sampler string, rec *recorder) *tracing.Tracer {
	tb.Helper()
	tr, err := tracing.NewWith(context.Background(), rec, tracing.Config{Sampler: sampler}, "test")
	if err != nil {
		tb.Fatal(err)
	}
	return tr
}

// TestTracingSpans: the request path's spans, through a cache miss (the
// app's round trip) and a hit (the cache answers: no queue, no app).
func TestTracingSpans(t *testing.T) {
	rec := &recorder{}
	tr := newTracer(t, "", rec)
	h, _ := benchHandler(t, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nCache-Control: max-age=600\r\nContent-Length: 5\r\n\r\nhello", true, Options{Tracer: tr})
	r := benchRequest("/cached")
	hdr := r.Header.Clone()
	w := &benchWriter{h: http.Header{}}
	serve(h, w, r, hdr) // miss, filled
	serve(h, w, r, hdr) // hit
	if w.status != 200 {
		t.Fatalf("status %d", w.status)
	}
	if err := tr.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	// Per trace: span name → parent span name, and the cache span's hit.
	type tree struct {
		parent map[string]string
		hit    string
		status string
	}
	traces := map[string]*tree{}
	byID := map[string]string{}
	for _, s := range rec.spans {
		byID[s.SpanContext().SpanID().String()] = s.Name()
	}
	var order []string
	for _, s := range rec.spans {
		id := s.SpanContext().TraceID().String()
		tt := traces[id]
		if tt == nil {
			tt = &tree{parent: map[string]string{}}
			traces[id] = tt
			order = append(order, id)
		}
		tt.parent[s.Name()] = byID[s.Parent().SpanID().String()]
		for _, kv := range s.Attributes() {
			switch {
			case s.Name() == "cache lookup" && kv.Key == "ferry.cache.hit":
				tt.hit = kv.Value.Emit()
			case s.Name() == "GET" && kv.Key == attribute.Key("http.response.status_code"):
				tt.status = kv.Value.Emit()
			}
		}
	}
	if len(traces) != 2 {
		t.Fatalf("%d traces, want 2 (one per request)", len(traces))
	}
	var miss, hit *tree
	for _, tt := range traces {
		if tt.hit == "true" {
			hit = tt
		} else {
			miss = tt
		}
	}
	if miss == nil || hit == nil {
		t.Fatalf("want one miss and one hit")
	}
	for _, child := range []string{"cache lookup", "queue wait", "app"} {
		if miss.parent[child] != "GET" {
			t.Errorf("miss: %q's parent is %q, want the server span", child, miss.parent[child])
		}
	}
	if _, ok := hit.parent["app"]; ok || hit.parent["cache lookup"] != "GET" {
		t.Errorf("hit: spans %v; want the cache lookup and no app", hit.parent)
	}
	if miss.status != "200" || hit.status != "200" {
		t.Errorf("status attributes %q, %q", miss.status, hit.status)
	}
}

// BenchmarkProxyHelloTracing is BenchmarkProxyHello with tracing off, on
// and sampled (every span made and exported to an exporter that drops
// them), and on but not sampled (always_off: spans not recorded, the
// context still sent to the app).
func BenchmarkProxyHelloTracing(b *testing.B) {
	for _, mode := range []string{"off", "sampled", "unsampled"} {
		b.Run(mode, func(b *testing.B) {
			var opts Options
			switch mode {
			case "sampled":
				opts.Tracer = newTracer(b, "always_on", &recorder{discard: true})
			case "unsampled":
				opts.Tracer = newTracer(b, "always_off", &recorder{discard: true})
			}
			h, _ := benchHandler(b, helloResp, false, opts)
			r := benchRequest("/")
			hdr := r.Header.Clone()
			w := &benchWriter{h: http.Header{}}
			serve(h, w, r, hdr)
			if w.status != 200 || w.n != 11 {
				b.Fatalf("status %d, %d bytes", w.status, w.n)
			}
			b.ReportAllocs()
			for b.Loop() {
				serve(h, w, r, hdr)
			}
			b.StopTimer()
			opts.Tracer.Shutdown(context.Background())
		})
	}
}
