package tracing

import (
	"strings"
	"testing"
)

func TestResolve(t *testing.T) {
	env := func(kv ...string) func(string) string {
		m := map[string]string{}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return func(k string) string { return m[k] }
	}
	for _, tc := range []struct {
		name    string
		flags   Config
		env     func(string) string
		want    Config
		enabled bool
		err     string
	}{
		{name: "nothing: off, defaults", env: env(),
			want: Config{Protocol: ProtocolHTTP, ServiceName: "ferry"}},
		{name: "endpoint from the environment", env: env("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318", "OTEL_SERVICE_NAME", "edge"),
			want: Config{Endpoint: "http://c:4318", Protocol: ProtocolHTTP, ServiceName: "edge"}, enabled: true},
		{name: "traces endpoint alone enables", env: env("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://c:4318/v1/traces"),
			want: Config{TracesEndpoint: "http://c:4318/v1/traces", Protocol: ProtocolHTTP, ServiceName: "ferry"}, enabled: true},
		{name: "flags win over the environment",
			flags: Config{Endpoint: "http://flag:4317", Protocol: "grpc", Sampler: "traceidratio", SamplerArg: "0.25"},
			env:   env("OTEL_EXPORTER_OTLP_ENDPOINT", "http://env:4318", "OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf", "OTEL_TRACES_SAMPLER", "always_off"),
			want:  Config{Endpoint: "http://flag:4317", Protocol: ProtocolGRPC, Sampler: "traceidratio", SamplerArg: "0.25", ServiceName: "ferry"}, enabled: true},
		{name: "the traces protocol wins over the general one",
			env:  env("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "grpc", "OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
			want: Config{Protocol: ProtocolGRPC, ServiceName: "ferry"}},
		{name: "http/json refused", env: env("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json"), err: "not supported"},
		{name: "unknown protocol", flags: Config{Protocol: "udp"}, env: env(), err: `unknown OTLP protocol "udp"`},
		{name: "unknown sampler", env: env("OTEL_TRACES_SAMPLER", "sometimes"), err: `unknown sampler "sometimes"`},
		{name: "ratio out of range", env: env("OTEL_TRACES_SAMPLER", "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG", "2"), err: "between 0 and 1"},
		{name: "ratio not a number", flags: Config{Sampler: "traceidratio", SamplerArg: "half"}, env: env(), err: "between 0 and 1"},
		{name: "every named sampler", flags: Config{Sampler: "parentbased_always_off"}, env: env(),
			want: Config{Sampler: "parentbased_always_off", Protocol: ProtocolHTTP, ServiceName: "ferry"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.flags.Resolve(tc.env)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want one saying %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
			if got.Enabled() != tc.enabled {
				t.Errorf("Enabled = %v, want %v", got.Enabled(), tc.enabled)
			}
		})
	}
}

func TestSamplers(t *testing.T) {
	for _, name := range []string{"", "always_on", "always_off", "traceidratio", "parentbased_always_on", "parentbased_always_off", "parentbased_traceidratio"} {
		if _, err := (Config{Sampler: name, SamplerArg: "0.5"}).sampler(); err != nil {
			t.Errorf("sampler %q: %v", name, err)
		}
	}
}

func TestBadEndpoint(t *testing.T) {
	if _, err := New(t.Context(), Config{Endpoint: "not a url", Protocol: ProtocolHTTP}, "test"); err == nil || !strings.Contains(err.Error(), "not a URL") {
		t.Errorf("err = %v, want one saying the endpoint is not a URL", err)
	}
	tr, err := New(t.Context(), Config{}, "test")
	if tr != nil || err != nil {
		t.Errorf("no endpoint: New = %v, %v; want nil, nil (off)", tr, err)
	}
}

func TestEndpointMustBeURL(t *testing.T) {
	for _, proto := range []string{ProtocolHTTP, ProtocolGRPC} {
		for _, ep := range []string{"collector:4317", "127.0.0.1:4317", "ftp://c:21", "http://"} {
			if _, err := New(t.Context(), Config{Endpoint: ep, Protocol: proto}, "test"); err == nil || !strings.Contains(err.Error(), "not a URL") {
				t.Errorf("%s %q: err = %v, want one saying it is not a URL", proto, ep, err)
			}
		}
		tr, err := New(t.Context(), Config{Endpoint: "http://127.0.0.1:1", Protocol: proto}, "test")
		if err != nil {
			t.Errorf("%s: %v", proto, err)
		}
		tr.Shutdown(t.Context())
	}
}
