package tracing

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
)

const clientTP = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

func newTest(t *testing.T, sampler string) (*Tracer, *tracetest.InMemoryExporter) {
	t.Helper()
	exp := tracetest.NewInMemoryExporter()
	tr, err := NewWith(t.Context(), exp, Config{Sampler: sampler}, "test")
	if err != nil {
		t.Fatal(err)
	}
	return tr, exp
}

// spans flushes tr and returns its spans by name.
func spans(t *testing.T, tr *Tracer, exp *tracetest.InMemoryExporter) map[string]tracetest.SpanStub {
	t.Helper()
	if err := tr.tp.ForceFlush(t.Context()); err != nil { // Shutdown would empty exp
		t.Fatal(err)
	}
	m := map[string]tracetest.SpanStub{}
	for _, s := range exp.GetSpans() {
		m[s.Name] = s
	}
	return m
}

// request runs what the handler does for one proxied request.
func request(tr *Tracer, r *http.Request, trusted bool) (q Request, appHeader http.Header) {
	start := time.Now()
	q = tr.Start(r, start, trusted)
	c := q.Child("cache lookup")
	c.Hit(false)
	queue := q.Queue(time.Now())
	queue.Spawn(start.Add(-time.Second), time.Now()) // ready after the wait began: waited for it
	queue.End(nil)
	app := q.App(r, 4242)
	app.Status(201)
	app.EndOK()
	q.End(201, time.Now())
	return q, r.Header
}

func TestSpanTree(t *testing.T) {
	tr, exp := newTest(t, "")
	r := httptest.NewRequest("GET", "http://example.com:8080/a/b?x=1", nil)
	r.Header.Set("Traceparent", clientTP)
	r.Header.Set("Tracestate", "vendor=1")
	q, h := request(tr, r, true)
	if q.TraceID() != "4bf92f3577b34da6a3ce929d0e0e4736" {
		t.Errorf("TraceID = %q, want the client's", q.TraceID())
	}
	ss := spans(t, tr, exp)
	server, app := ss["GET"], ss["app"]
	if server.Parent.SpanID().String() != "00f067aa0ba902b7" || !server.Parent.IsRemote() {
		t.Errorf("server span's parent = %v, want the client's span", server.Parent.SpanID())
	}
	if server.SpanKind != trace.SpanKindServer || app.SpanKind != trace.SpanKindClient {
		t.Errorf("kinds: server %v, app %v", server.SpanKind, app.SpanKind)
	}
	for _, name := range []string{"cache lookup", "queue wait", "app"} {
		if ss[name].Parent.SpanID() != server.SpanContext.SpanID() {
			t.Errorf("%s is not a child of the server span", name)
		}
	}
	if ss["spawn"].Parent.SpanID() != ss["queue wait"].SpanContext.SpanID() {
		t.Error("spawn is not a child of the queue wait")
	}
	attrs := map[string]string{}
	for _, kv := range server.Attributes {
		attrs[string(kv.Key)] = kv.Value.Emit()
	}
	for k, want := range map[string]string{"http.request.method": "GET", "url.path": "/a/b", "server.address": "example.com",
		"http.response.status_code": "201"} {
		if attrs[k] != want {
			t.Errorf("%s = %q, want %q", k, attrs[k], want)
		}
	}
	// The app gets the app span's context, and the trusted client's state.
	want := "00-4bf92f3577b34da6a3ce929d0e0e4736-" + app.SpanContext.SpanID().String() + "-01"
	if got := h.Get("Traceparent"); got != want {
		t.Errorf("app's traceparent = %q, want %q", got, want)
	}
	if got := h.Get("Tracestate"); got != "vendor=1" {
		t.Errorf("app's tracestate = %q, want the trusted client's", got)
	}
}

func TestUnknownMethod(t *testing.T) {
	tr, exp := newTest(t, "")
	r := httptest.NewRequest("BREW", "/pot", nil)
	q := tr.Start(r, time.Now(), false)
	q.SetApp("coffee")
	q.End(418, time.Now())
	s, ok := spans(t, tr, exp)["HTTP"]
	if !ok {
		t.Fatalf("no span named HTTP for method BREW: %v", exp.GetSpans())
	}
	attrs := map[string]string{}
	for _, kv := range s.Attributes {
		attrs[string(kv.Key)] = kv.Value.Emit()
	}
	if attrs["http.request.method"] != "_OTHER" || attrs["ferry.app"] != "coffee" {
		t.Errorf("attributes %v", attrs)
	}
}

func TestUntrustedStartsNewTrace(t *testing.T) {
	tr, exp := newTest(t, "")
	r := httptest.NewRequest("GET", "/", nil)
	r.Header.Set("Traceparent", clientTP)
	r.Header.Set("Tracestate", "vendor=1")
	_, h := request(tr, r, false)
	ss := spans(t, tr, exp)
	server := ss["GET"]
	if server.Parent.IsValid() || strings.Contains(clientTP, server.SpanContext.TraceID().String()) {
		t.Errorf("an untrusted traceparent was believed: parent %v, trace %v", server.Parent, server.SpanContext.TraceID())
	}
	if h.Get("Tracestate") != "" {
		t.Errorf("an untrusted client's tracestate went to the app: %q", h.Get("Tracestate"))
	}
	if !strings.Contains(h.Get("Traceparent"), server.SpanContext.TraceID().String()) {
		t.Errorf("app's traceparent %q is not Ferry's trace", h.Get("Traceparent"))
	}
}

func TestUnsampledHasNoTraceID(t *testing.T) {
	tr, exp := newTest(t, "always_off")
	r := httptest.NewRequest("GET", "/", nil)
	q, h := request(tr, r, false)
	if q.TraceID() != "" {
		t.Errorf("TraceID of an unsampled trace = %q, want none (no exemplar)", q.TraceID())
	}
	if !strings.HasSuffix(h.Get("Traceparent"), "-00") {
		t.Errorf("the app is not told the trace is unsampled: %q", h.Get("Traceparent"))
	}
	if n := len(spans(t, tr, exp)); n != 0 {
		t.Errorf("%d spans exported with always_off", n)
	}
}

// TestOffIsInert: a nil tracer's request and spans do nothing, touch no
// header and allocate nothing.
func TestOffIsInert(t *testing.T) {
	var tr *Tracer
	r := httptest.NewRequest("GET", "/", nil)
	r.Header.Set("Traceparent", clientTP)
	allocs := testing.AllocsPerRun(100, func() { request(tr, r, true) })
	if allocs != 0 {
		t.Errorf("tracing off allocates %v per request", allocs)
	}
	if r.Header.Get("Traceparent") != clientTP {
		t.Error("tracing off changed the request's traceparent")
	}
	if err := tr.Shutdown(t.Context()); err != nil {
		t.Error(err)
	}
}

type discard struct{}

func (discard) ExportSpans(context.Context, []sdktrace.ReadOnlySpan) error { return nil }
func (discard) Shutdown(context.Context) error                             { return nil }

// BenchmarkRequestSpans is what tracing adds to one proxied request: the
// server span, cache lookup, queue wait and app spans, the traceparent
// sent on (no sockets, so the figure is tracing's alone).
func BenchmarkRequestSpans(b *testing.B) {
	for _, mode := range []string{"off", "unsampled", "sampled"} {
		b.Run(mode, func(b *testing.B) {
			var tr *Tracer
			if mode != "off" {
				s := "always_on"
				if mode == "unsampled" {
					s = "always_off"
				}
				var err error
				if tr, err = NewWith(context.Background(), discard{}, Config{Sampler: s}, "bench"); err != nil {
					b.Fatal(err)
				}
				defer tr.Shutdown(context.Background())
			}
			r := httptest.NewRequest("GET", "http://example.com/a/b", nil)
			b.ReportAllocs()
			for b.Loop() {
				clear(r.Header)
				request(tr, r, false)
			}
		})
	}
}
