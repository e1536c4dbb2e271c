package config

import "flag"

// Tracing holds the OpenTelemetry tracing settings; embedded in Server.
// Each option has the meaning of the standard OpenTelemetry variable of the
// same name (--otel-exporter-otlp-endpoint is OTEL_EXPORTER_OTLP_ENDPOINT),
// and what an option leaves empty is taken from that variable when the
// tracer is built (tracing.Config.Resolve): the flag wins. Tracing is off
// unless an endpoint is set.
type Tracing struct {
	OTLPEndpoint       string // OTEL_EXPORTER_OTLP_ENDPOINT
	OTLPTracesEndpoint string // OTEL_EXPORTER_OTLP_TRACES_ENDPOINT
	OTLPProtocol       string // OTEL_EXPORTER_OTLP_PROTOCOL: http/protobuf or grpc
	TracesSampler      string // OTEL_TRACES_SAMPLER
	TracesSamplerArg   string // OTEL_TRACES_SAMPLER_ARG
	ServiceName        string // OTEL_SERVICE_NAME
}

func init() {
	str := func(name, usage string, f func(*Tracing) *string) *option {
		return srv(name, usage, func(s *Server) flag.Value { return (*strValue)(f(&s.Tracing)) })
	}
	register(
		str("otel-exporter-otlp-endpoint", "send OpenTelemetry traces over OTLP to this base `URL` (as OTEL_EXPORTER_OTLP_ENDPOINT; tracing is off without an endpoint)",
			func(t *Tracing) *string { return &t.OTLPEndpoint }),
		str("otel-exporter-otlp-traces-endpoint", "full `URL` of the OTLP traces endpoint (as OTEL_EXPORTER_OTLP_TRACES_ENDPOINT)",
			func(t *Tracing) *string { return &t.OTLPTracesEndpoint }),
		str("otel-exporter-otlp-protocol", "OTLP `PROTOCOL`: http/protobuf (default) or grpc (as OTEL_EXPORTER_OTLP_PROTOCOL)",
			func(t *Tracing) *string { return &t.OTLPProtocol }),
		str("otel-traces-sampler", "trace `SAMPLER`: parentbased_always_on (default), always_on, always_off, traceidratio, parentbased_always_off, parentbased_traceidratio (as OTEL_TRACES_SAMPLER)",
			func(t *Tracing) *string { return &t.TracesSampler }),
		str("otel-traces-sampler-arg", "the sampler's `RATIO` (0 to 1) for the traceidratio samplers (as OTEL_TRACES_SAMPLER_ARG)",
			func(t *Tracing) *string { return &t.TracesSamplerArg }),
		str("otel-service-name", "service.name of Ferry's spans (`NAME`, default ferry; as OTEL_SERVICE_NAME)",
			func(t *Tracing) *string { return &t.ServiceName }),
	)
}
