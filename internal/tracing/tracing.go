// Package tracing follows requests through Ferry with OpenTelemetry: a
// server span per request, with child spans for the cache lookup, the
// queue wait, the spawn the request waited for and the app, exported over
// OTLP. The trace context arrives in the W3C traceparent/tracestate
// headers (believed from trusted proxies only) and goes on to the app in
// them, so that the app's own instrumentation joins the trace.
//
// Off (a nil *Tracer, the zero Request and Span), every call is a nil
// check: the request path pays nothing for tracing it does not do.
package tracing

import (
	"context"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

// Tracer starts the spans of requests; nil: tracing is off.
type Tracer struct {
	tp   *sdktrace.TracerProvider
	tr   trace.Tracer
	prop propagation.TraceContext
}

// New returns the tracer c describes, exporting over OTLP; nil (and no
// error) when c sets no endpoint. c must have been resolved.
func New(ctx context.Context, c Config, version string) (*Tracer, error) {
	if !c.Enabled() {
		return nil, nil
	}
	if _, err := c.sampler(); err != nil {
		return nil, err
	}
	exp, err := exporter(ctx, c)
	if err != nil {
		return nil, fmt.Errorf("setting up the OTLP trace exporter: %w", err)
	}
	return NewWith(ctx, exp, c, version)
}

// NewWith returns a tracer sending its spans to exp rather than over OTLP
// (tests and benchmarks give an in-memory exporter); c gives the sampler
// and the service name.
func NewWith(ctx context.Context, exp sdktrace.SpanExporter, c Config, version string) (*Tracer, error) {
	sampler, err := c.sampler()
	if err != nil {
		return nil, err
	}
	if c.ServiceName == "" {
		c.ServiceName = "ferry"
	}
	res, err := resource.New(ctx, resource.WithFromEnv(), resource.WithHost(), resource.WithProcessPID(),
		resource.WithAttributes(attribute.String("service.name", c.ServiceName), attribute.String("service.version", version)))
	if err != nil && res == nil { // a partial resource (a bad OTEL_RESOURCE_ATTRIBUTES) is still used
		return nil, fmt.Errorf("describing the traced service: %w", err)
	}
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithSampler(sampler), sdktrace.WithResource(res))
	return &Tracer{tp: tp, tr: tp.Tracer("github.com/ferry-server/ferry", trace.WithInstrumentationVersion(version))}, nil
}

// exporter builds the OTLP exporter of c's protocol. What c does not say
// (headers, timeout, TLS certificates, compression) the exporter reads from
// the standard OTEL_EXPORTER_OTLP_* variables itself.
func exporter(ctx context.Context, c Config) (sdktrace.SpanExporter, error) {
	raw := c.TracesEndpoint
	if raw == "" {
		raw = c.Endpoint
	}
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		// The exporters would log a bad URL and quietly use localhost.
		return nil, fmt.Errorf("OTLP endpoint %q is not a URL such as http://collector:4318", raw)
	}
	if c.Protocol == ProtocolGRPC {
		// http: plaintext, https: TLS; the path is ignored.
		return otlptracegrpc.New(ctx, otlptracegrpc.WithEndpointURL(raw))
	}
	if c.TracesEndpoint == "" {
		// The base endpoint gets the signal's path, as the specification says.
		u.Path = strings.TrimSuffix(u.Path, "/") + "/v1/traces"
	}
	return otlptracehttp.New(ctx, otlptracehttp.WithEndpointURL(u.String()))
}

// Shutdown exports the spans still buffered and stops the exporter.
func (t *Tracer) Shutdown(ctx context.Context) error {
	if t == nil {
		return nil
	}
	return t.tp.Shutdown(ctx)
}

// Request is the trace of one request: its server span. The zero value
// (tracing off) records nothing.
type Request struct {
	ctx     context.Context
	span    trace.Span
	t       *Tracer
	traceID string // set when sampled, for exemplars
	// rec: the span records (is sampled); an unsampled request makes no
	// child spans, which nobody would see, and costs little more than off.
	rec bool
}

// Start starts the server span of r, which arrived at start. From a
// trusted peer the client's traceparent continues its trace; from any
// other the request starts a new one, and what the client sent of trace
// context is dropped so that the app sees Ferry's only.
func (t *Tracer) Start(r *http.Request, start time.Time, trusted bool) Request {
	if t == nil {
		return Request{}
	}
	ctx := r.Context()
	if trusted {
		ctx = t.prop.Extract(ctx, propagation.HeaderCarrier(r.Header))
	}
	delete(r.Header, "Traceparent")
	delete(r.Header, "Tracestate")
	method := knownMethod(r.Method)
	attrs := []attribute.KeyValue{
		attribute.String("http.request.method", method),
		attribute.String("url.path", r.URL.Path),
		attribute.String("server.address", hostOnly(r.Host)),
		attribute.String("network.protocol.version", protoVersion(r)),
		attribute.String("url.scheme", scheme(r)),
	}
	name := method
	if method == "_OTHER" {
		name = "HTTP"
	}
	ctx, span := t.tr.Start(ctx, name, trace.WithSpanKind(trace.SpanKindServer),
		trace.WithTimestamp(start), trace.WithAttributes(attrs...))
	q := Request{ctx: ctx, span: span, t: t, rec: span.IsRecording()}
	if sc := span.SpanContext(); sc.IsSampled() {
		id := sc.TraceID()
		q.traceID = hex.EncodeToString(id[:])
	}
	return q
}

// TraceID is the request's trace id in hex when it is sampled (for
// exemplars); "" when not, or when tracing is off.
func (q *Request) TraceID() string { return q.traceID }

// Child starts a child span of the request now.
func (q *Request) Child(name string) Span {
	if !q.rec {
		return Span{}
	}
	return q.child(name, time.Now(), trace.SpanKindInternal)
}

func (q *Request) child(name string, start time.Time, kind trace.SpanKind) Span {
	ctx, s := q.t.tr.Start(q.ctx, name, trace.WithTimestamp(start), trace.WithSpanKind(kind))
	return Span{s: s, ctx: ctx, start: start, t: q.t}
}

// Queue starts the span of the wait for a process, begun at start.
func (q *Request) Queue(start time.Time) Span {
	if !q.rec {
		return Span{}
	}
	return q.child("queue wait", start, trace.SpanKindInternal)
}

// App starts the span of the request's round trip to the app process pid,
// and puts its context in the request's traceparent (and tracestate) for
// the app to continue. Unsampled, the app is sent the request's own
// context, marked unsampled, so that it follows the decision.
func (q *Request) App(r *http.Request, pid int) Span {
	if q.span == nil {
		return Span{}
	}
	if !q.rec {
		q.t.prop.Inject(q.ctx, propagation.HeaderCarrier(r.Header))
		return Span{}
	}
	s := q.child("app", time.Now(), trace.SpanKindClient)
	s.s.SetAttributes(attribute.Int("process.pid", pid))
	q.t.prop.Inject(s.ctx, propagation.HeaderCarrier(r.Header))
	return s
}

// SetApp names the app the request was routed to (ferry.app).
func (q *Request) SetApp(name string) {
	if !q.rec {
		return
	}
	q.span.SetAttributes(attribute.String("ferry.app", name))
}

// Fail records on the request's span why it failed.
func (q *Request) Fail(err error) {
	if q.span == nil || err == nil {
		return
	}
	q.span.RecordError(err)
	q.span.SetStatus(codes.Error, err.Error())
}

// End ends the request's span with the response's status, at end.
func (q *Request) End(status int, end time.Time) {
	if q.span == nil {
		return
	}
	if status > 0 {
		q.span.SetAttributes(attribute.Int("http.response.status_code", status))
	}
	if status >= 500 {
		q.span.SetStatus(codes.Error, "")
	}
	q.span.End(trace.WithTimestamp(end))
}

// Span is one child span of a request; the zero value records nothing.
type Span struct {
	s     trace.Span
	ctx   context.Context
	start time.Time
	t     *Tracer
}

// Spawn records, as a child of the queue wait s, the spawn of the process
// that took the request if the request waited for it: if the process
// became ready (at ready, spawned from begin) after the wait began.
func (s Span) Spawn(begin, ready time.Time) {
	if s.s == nil || begin.IsZero() || !ready.After(s.start) {
		return
	}
	_, sp := s.t.tr.Start(s.ctx, "spawn", trace.WithTimestamp(begin))
	sp.End(trace.WithTimestamp(ready))
}

// Hit sets whether the cache answered the request, and ends the span.
func (s Span) Hit(hit bool) {
	if s.s == nil {
		return
	}
	s.s.SetAttributes(attribute.Bool("ferry.cache.hit", hit))
	s.s.End()
}

// Status sets the app's response status.
func (s Span) Status(code int) {
	if s.s == nil {
		return
	}
	s.s.SetAttributes(attribute.Int("http.response.status_code", code))
	if code >= 500 {
		s.s.SetStatus(codes.Error, "")
	}
}

// Fail records err as the span's failure.
func (s Span) Fail(err error) {
	if s.s == nil || err == nil {
		return
	}
	s.s.RecordError(err)
	s.s.SetStatus(codes.Error, err.Error())
}

// End ends the span; err, if not nil, is recorded as its failure.
func (s Span) End(err error) {
	if s.s == nil {
		return
	}
	if err != nil {
		s.s.RecordError(err)
		s.s.SetStatus(codes.Error, err.Error())
	}
	s.s.End()
}

// EndOK ends the span without error (for defer).
func (s Span) EndOK() { s.End(nil) }

// knownMethod is the method as the semantic conventions record it: any
// but the standard ones is "_OTHER", so that clients cannot make span
// names and attribute values up.
func knownMethod(m string) string {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodDelete,
		http.MethodConnect, http.MethodOptions, http.MethodTrace, http.MethodPatch:
		return m
	}
	return "_OTHER"
}

func hostOnly(hostport string) string {
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		return h
	}
	return hostport
}

func protoVersion(r *http.Request) string {
	switch {
	case r.ProtoMajor == 2:
		return "2"
	case r.ProtoMinor == 0:
		return "1.0"
	}
	return "1.1"
}

func scheme(r *http.Request) string {
	if r.TLS != nil {
		return "https"
	}
	return "http"
}
