package integration

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	collectortrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
)

// otlpReceiver is an OTLP trace receiver: it decodes the official OTLP
// protobufs, over HTTP (POST /v1/traces) and gRPC (the collector's
// TraceService), and keeps every span it is sent.
type otlpReceiver struct {
	collectortrace.UnimplementedTraceServiceServer
	HTTP string // http://127.0.0.1:PORT
	GRPC string // http://127.0.0.1:PORT (plaintext)

	mu     sync.Mutex
	spans  []span
	notify chan struct{}
}

// span is a received span, flattened.
type span struct {
	Service  string
	Name     string
	Kind     tracepb.Span_SpanKind
	TraceID  string
	SpanID   string
	ParentID string
	Start    time.Time
	Attrs    map[string]string
	Via      string // "http" or "grpc"
}

func startOTLPReceiver(t *testing.T) *otlpReceiver {
	t.Helper()
	rc := &otlpReceiver{notify: make(chan struct{}, 1)}
	hl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: http.HandlerFunc(rc.serveHTTP)}
	go hs.Serve(hl)
	t.Cleanup(func() { hs.Close() })
	rc.HTTP = "http://" + hl.Addr().String()

	gl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer()
	collectortrace.RegisterTraceServiceServer(gs, rc)
	go gs.Serve(gl)
	t.Cleanup(gs.Stop)
	rc.GRPC = "http://" + gl.Addr().String()
	return rc
}

func (rc *otlpReceiver) serveHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost || r.URL.Path != "/v1/traces" {
		http.Error(w, "not an OTLP traces endpoint", http.StatusNotFound)
		return
	}
	var body io.Reader = r.Body
	if r.Header.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		body = zr
	}
	b, err := io.ReadAll(body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	var req collectortrace.ExportTraceServiceRequest
	if ct := r.Header.Get("Content-Type"); ct != "application/x-protobuf" {
		http.Error(w, "want application/x-protobuf, got "+ct, http.StatusUnsupportedMediaType)
		return
	}
	if err := proto.Unmarshal(b, &req); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	rc.add(&req, "http")
	out, _ := proto.Marshal(&collectortrace.ExportTraceServiceResponse{})
	w.Header().Set("Content-Type", "application/x-protobuf")
	w.Write(out)
}

// Export is the gRPC TraceService's method.
func (rc *otlpReceiver) Export(_ context.Context, req *collectortrace.ExportTraceServiceRequest) (*collectortrace.ExportTraceServiceResponse, error) {
	rc.add(req, "grpc")
	return &collectortrace.ExportTraceServiceResponse{}, nil
}

func (rc *otlpReceiver) add(req *collectortrace.ExportTraceServiceRequest, via string) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	for _, rs := range req.GetResourceSpans() {
		service := attrs(rs.GetResource().GetAttributes())["service.name"]
		for _, ss := range rs.GetScopeSpans() {
			for _, s := range ss.GetSpans() {
				rc.spans = append(rc.spans, span{
					Service: service, Name: s.GetName(), Kind: s.GetKind(),
					TraceID: hex.EncodeToString(s.GetTraceId()), SpanID: hex.EncodeToString(s.GetSpanId()),
					ParentID: hex.EncodeToString(s.GetParentSpanId()),
					Start:    time.Unix(0, int64(s.GetStartTimeUnixNano())),
					Attrs:    attrs(s.GetAttributes()), Via: via,
				})
			}
		}
	}
	select {
	case rc.notify <- struct{}{}:
	default:
	}
}

func attrs(kvs []*commonpb.KeyValue) map[string]string {
	m := make(map[string]string, len(kvs))
	for _, kv := range kvs {
		v := kv.GetValue()
		switch x := v.GetValue().(type) {
		case *commonpb.AnyValue_StringValue:
			m[kv.GetKey()] = x.StringValue
		case *commonpb.AnyValue_IntValue:
			m[kv.GetKey()] = fmt.Sprint(x.IntValue)
		case *commonpb.AnyValue_BoolValue:
			m[kv.GetKey()] = fmt.Sprint(x.BoolValue)
		default:
			m[kv.GetKey()] = v.String()
		}
	}
	return m
}

// wait returns the spans received once cond holds of them, or fails after
// a minute (the exporters batch for up to five seconds).
func (rc *otlpReceiver) wait(t *testing.T, what string, cond func([]span) bool) []span {
	t.Helper()
	deadline := time.After(time.Minute)
	for {
		rc.mu.Lock()
		got := append([]span(nil), rc.spans...)
		rc.mu.Unlock()
		if cond(got) {
			return got
		}
		select {
		case <-rc.notify:
		case <-time.After(200 * time.Millisecond):
		case <-deadline:
			t.Fatalf("OTLP receiver: %s: not seen in a minute; spans:\n%s", what, dumpSpans(got))
		}
	}
}

func dumpSpans(ss []span) string {
	var b strings.Builder
	for _, s := range ss {
		fmt.Fprintf(&b, "  %s/%s %q kind=%v trace=%s span=%s parent=%s %v\n", s.Via, s.Service, s.Name, s.Kind, s.TraceID, s.SpanID, s.ParentID, s.Attrs)
	}
	return b.String()
}

// ferryTrace finds Ferry's server span of the request to path and its
// children; nil if not all there yet.
func ferryTrace(ss []span, path string, children ...string) (server *span, kids map[string]*span) {
	for i := range ss {
		if ss[i].Service == "ferry" && ss[i].Kind == tracepb.Span_SPAN_KIND_SERVER && ss[i].Attrs["url.path"] == path {
			server = &ss[i]
		}
	}
	if server == nil {
		return nil, nil
	}
	kids = map[string]*span{}
	for i := range ss {
		if ss[i].ParentID == server.SpanID && ss[i].TraceID == server.TraceID {
			kids[ss[i].Name] = &ss[i]
		}
	}
	for _, c := range children {
		if kids[c] == nil {
			return nil, nil
		}
	}
	return server, kids
}

// echoTraceparent GETs /echo/NAME with header h and returns the traceparent
// the app received.
func echoTraceparent(t *testing.T, f *ferry, path string, h http.Header) string {
	t.Helper()
	code, body := f.do("GET", path, nil, h)
	if code != 200 {
		t.Fatalf("GET %s = %d %s", path, code, body)
	}
	var e struct {
		Headers map[string]string `json:"headers"`
	}
	if err := json.Unmarshal([]byte(body), &e); err != nil {
		t.Fatalf("GET %s: %v in %s", path, err, body)
	}
	return e.Headers["HTTP_TRACEPARENT"]
}

// The client's trace: 4bf92f3577b34da6a3ce929d0e0e4736, its span
// 00f067aa0ba902b7, sampled.
const (
	clientTraceID     = "4bf92f3577b34da6a3ce929d0e0e4736"
	clientSpanID      = "00f067aa0ba902b7"
	clientTraceparent = "00-" + clientTraceID + "-" + clientSpanID + "-01"
)

// TestTracing runs the real binary exporting to a real OTLP receiver: the
// span tree and its attributes, traceparent honoured from a trusted peer
// and ignored from another, the context the app receives, both protocols.
func TestTracing(t *testing.T) {
	rc := startOTLPReceiver(t)

	t.Run("http trusted", func(t *testing.T) {
		// The endpoint from the environment, as OpenTelemetry's SDKs take it;
		// no process at start, so the first request waits for a spawn.
		t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", rc.HTTP)
		metricsPort := freePort(t)
		f := startFerry(t, fixture(t, "wsgi/echo"), "--trusted-proxies", "loopback", "--min-instances", "0",
			"--metrics-address", "127.0.0.1:"+metricsPort)
		f.waitLog(`msg="tracing requests with OpenTelemetry"`)
		got := echoTraceparent(t, f, "/echo/trusted", http.Header{"Traceparent": {clientTraceparent}, "Tracestate": {"vendor=1"}})

		var server *span
		var kids map[string]*span
		rc.wait(t, "Ferry's spans of /echo/trusted", func(ss []span) bool {
			server, kids = ferryTrace(ss, "/echo/trusted", "queue wait", "app")
			return server != nil
		})
		if server.TraceID != clientTraceID || server.ParentID != clientSpanID {
			t.Errorf("server span trace %s parent %s; want the client's %s, %s", server.TraceID, server.ParentID, clientTraceID, clientSpanID)
		}
		for k, want := range map[string]string{"http.request.method": "GET", "url.path": "/echo/trusted",
			"http.response.status_code": "200", "server.address": "127.0.0.1", "ferry.app": "echo"} {
			if server.Attrs[k] != want {
				t.Errorf("server span %s = %q, want %q (attributes %v)", k, server.Attrs[k], want, server.Attrs)
			}
		}
		if server.Via != "http" {
			t.Errorf("received over %s, want http", server.Via)
		}
		app := kids["app"]
		if app.Kind != tracepb.Span_SPAN_KIND_CLIENT || app.Attrs["process.pid"] == "" || app.Attrs["http.response.status_code"] != "200" {
			t.Errorf("app span: kind %v, attributes %v", app.Kind, app.Attrs)
		}
		// The app continues Ferry's app span, not the client's span.
		if want := "00-" + clientTraceID + "-" + app.SpanID + "-01"; got != want {
			t.Errorf("the app received traceparent %q, want %q", got, want)
		}
		// The first request waited for the process to spawn.
		rc.wait(t, "the spawn span", func(ss []span) bool {
			for _, s := range ss {
				if s.Name == "spawn" && s.ParentID == kids["queue wait"].SpanID {
					return true
				}
			}
			return false
		})

		// The latency and queue-wait histograms carry the trace as exemplar,
		// over OpenMetrics.
		req, _ := http.NewRequest("GET", "http://127.0.0.1:"+metricsPort+"/metrics", nil)
		req.Header.Set("Accept", "application/openmetrics-text;version=1.0.0")
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		for _, fam := range []string{"ferry_http_request_duration_seconds_bucket", "ferry_pool_queue_wait_seconds_bucket"} {
			if !regexp.MustCompile(fam + `\{app="echo",le="[^"]+"\} \d+ # \{trace_id="` + clientTraceID + `"\}`).Match(b) {
				t.Errorf("%s: no exemplar of trace %s (Content-Type %s):\n%.3000s", fam, clientTraceID, resp.Header.Get("Content-Type"), b)
			}
		}
	})

	t.Run("http untrusted", func(t *testing.T) {
		t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", rc.HTTP)
		f := startFerry(t, fixture(t, "wsgi/echo"), "--trusted-proxies", "198.51.100.0/24")
		f.waitLog(`msg="tracing requests with OpenTelemetry"`)
		got := echoTraceparent(t, f, "/echo/untrusted", http.Header{"Traceparent": {clientTraceparent}})
		var server *span
		var kids map[string]*span
		rc.wait(t, "Ferry's spans of /echo/untrusted", func(ss []span) bool {
			server, kids = ferryTrace(ss, "/echo/untrusted", "queue wait", "app")
			return server != nil
		})
		if server.TraceID == clientTraceID || server.ParentID != "" {
			t.Errorf("an untrusted client's traceparent was believed: trace %s parent %q", server.TraceID, server.ParentID)
		}
		if want := "00-" + server.TraceID + "-" + kids["app"].SpanID + "-01"; got != want {
			t.Errorf("the app received traceparent %q, want %q", got, want)
		}
	})

	t.Run("grpc", func(t *testing.T) {
		f := startFerry(t, fixture(t, "wsgi/echo"), "--otel-exporter-otlp-endpoint", rc.GRPC,
			"--otel-exporter-otlp-protocol", "grpc", "--otel-service-name", "ferry")
		f.waitLog(`msg="tracing requests with OpenTelemetry"`)
		echoTraceparent(t, f, "/echo/grpc", nil)
		var server *span
		rc.wait(t, "Ferry's spans of /echo/grpc", func(ss []span) bool {
			server, _ = ferryTrace(ss, "/echo/grpc", "queue wait", "app")
			return server != nil
		})
		if server.Via != "grpc" {
			t.Errorf("received over %s, want grpc", server.Via)
		}
	})

	t.Run("off", func(t *testing.T) {
		// No endpoint: no tracing, and the client's traceparent goes to the
		// app untouched.
		f := startFerry(t, fixture(t, "wsgi/echo"))
		if got := echoTraceparent(t, f, "/echo/off", http.Header{"Traceparent": {clientTraceparent}}); got != clientTraceparent {
			t.Errorf("with tracing off the app received traceparent %q, want the client's", got)
		}
		if strings.Contains(f.logs.String(), "tracing requests") {
			t.Error("tracing is on without an endpoint")
		}
	})
}

// TestTracingExpressJoinsTrace is the done-criterion: a request through
// Ferry into an Express app instrumented with OpenTelemetry's Node SDK is
// one trace, with Ferry's queue span and the app's server span, the app's a
// child of Ferry's app span.
func TestTracingExpressJoinsTrace(t *testing.T) {
	needInterp(t, "/usr/bin/node")
	dir := needFixture(t, "node/otel-express")
	npmCI(t, dir)
	rc := startOTLPReceiver(t)
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", rc.HTTP)
	f := startFerry(t, dir)
	if code, body := f.get("/"); code != 200 || body != "hello from traced express" {
		t.Fatalf("GET / = %d %q", code, body)
	}
	var server *span
	var kids map[string]*span
	var appServer *span
	ss := rc.wait(t, "Ferry's and the app's spans", func(ss []span) bool {
		server, kids = ferryTrace(ss, "/", "queue wait", "app")
		if server == nil {
			return false
		}
		for i := range ss {
			if ss[i].Service == "otel-express-fixture" && ss[i].Kind == tracepb.Span_SPAN_KIND_SERVER {
				appServer = &ss[i]
				return true
			}
		}
		return false
	})
	if appServer.TraceID != server.TraceID {
		t.Fatalf("the app's span is in trace %s, Ferry's in %s: not one trace\n%s", appServer.TraceID, server.TraceID, dumpSpans(ss))
	}
	if appServer.ParentID != kids["app"].SpanID {
		t.Errorf("the app's server span's parent is %s, want Ferry's app span %s\n%s", appServer.ParentID, kids["app"].SpanID, dumpSpans(ss))
	}
	if kids["queue wait"].TraceID != appServer.TraceID {
		t.Errorf("Ferry's queue span is not in the app's trace")
	}
}

// npmCI installs a fixture's locked npm dependencies once (npm ci, from
// its package-lock.json), or skips when npm or the registry is unreachable.
func npmCI(t *testing.T, dir string) {
	t.Helper()
	if _, err := exec_("test", "-d", dir+"/node_modules"); err == nil {
		return
	}
	out, err := exec_("npm", "ci", "--prefix", dir, "--no-audit", "--no-fund")
	if err != nil {
		t.Skipf("npm ci in %s failed (npm or its registry unreachable?): %v\n%s", dir, err, bytes.TrimSpace([]byte(out)))
	}
}

// TestTracingBadConfig: a bad protocol, sampler or endpoint, by flag or by
// the standard variable, stops ferry start with one line naming it.
func TestTracingBadConfig(t *testing.T) {
	needPython(t)
	for _, tc := range []struct {
		name string
		args []string
		env  []string
		want string
	}{
		{name: "protocol flag", args: []string{"--otel-exporter-otlp-endpoint", "http://127.0.0.1:4318", "--otel-exporter-otlp-protocol", "udp"},
			want: `tracing: unknown OTLP protocol "udp"`},
		{name: "sampler variable", env: []string{"OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:4318", "OTEL_TRACES_SAMPLER=sometimes"},
			want: `tracing: unknown sampler "sometimes"`},
		{name: "endpoint", args: []string{"--otel-exporter-otlp-endpoint", "collector:4318"},
			want: `is not a URL`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
			defer cancel()
			cmd := exec.CommandContext(ctx, ferryBin, append([]string{"start", fixture(t, "wsgi/echo"), "--port", "0", "--address", "127.0.0.1",
				"--python", python, "--instance-registry-dir", shortTempDir(t)}, tc.args...)...)
			cmd.Env = append(os.Environ(), tc.env...)
			out, err := cmd.CombinedOutput()
			if err == nil || ctx.Err() != nil {
				t.Fatalf("ferry start did not fail (%v):\n%s", err, out)
			}
			if !strings.Contains(string(out), tc.want) {
				t.Errorf("output does not say %q:\n%s", tc.want, out)
			}
			if strings.Contains(string(out), "panic") {
				t.Errorf("panicked:\n%s", out)
			}
		})
	}
}

// TestTracingExemplarsInPrometheus: a real Prometheus with exemplar
// storage, scraping a traced Ferry, holds the request's trace id as the
// exemplar of the latency and queue-wait histograms: what Grafana follows
// from a slow bucket to the trace.
func TestTracingExemplarsInPrometheus(t *testing.T) {
	promBin := needPrometheus(t)
	rc := startOTLPReceiver(t)
	metricsAddr := "127.0.0.1:" + freePort(t)
	f := startFerry(t, fixture(t, "wsgi/echo"), "--metrics-address", metricsAddr,
		"--otel-exporter-otlp-endpoint", rc.HTTP, "--trusted-proxies", "loopback")
	prom := startPrometheus(t, promBin, metricsAddr, "--enable-feature=exemplar-storage")
	echoTraceparent(t, f, "/echo/exemplar", http.Header{"Traceparent": {clientTraceparent}})
	for _, series := range []string{"ferry_http_request_duration_seconds_bucket", "ferry_pool_queue_wait_seconds_bucket"} {
		q := url.Values{"query": {series + `{app="echo"}`}, "start": {fmt.Sprint(time.Now().Add(-time.Hour).Unix())},
			"end": {fmt.Sprint(time.Now().Add(time.Hour).Unix())}}
		eventuallyFor(t, 120*time.Second, series+" exemplar with trace "+clientTraceID, func() bool {
			var out struct {
				Data []struct {
					Exemplars []struct {
						Labels map[string]string `json:"labels"`
					} `json:"exemplars"`
				} `json:"data"`
			}
			prom.get(t, "/api/v1/query_exemplars?"+q.Encode(), &out)
			for _, s := range out.Data {
				for _, e := range s.Exemplars {
					if e.Labels["trace_id"] == clientTraceID {
						return true
					}
				}
			}
			return false
		})
	}
}
