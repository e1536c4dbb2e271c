package tracing

import (
	"fmt"
	"os"
	"strconv"
	"strings"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// Config says where spans go and which are kept. The fields have the
// meaning of the OpenTelemetry environment variables of the same name
// (OTEL_EXPORTER_OTLP_ENDPOINT, …); what a flag leaves empty is taken from
// the environment by Resolve.
type Config struct {
	// Endpoint is the OTLP base URL (OTEL_EXPORTER_OTLP_ENDPOINT); over
	// HTTP, spans go to its /v1/traces.
	Endpoint string
	// TracesEndpoint is the full URL of the traces endpoint
	// (OTEL_EXPORTER_OTLP_TRACES_ENDPOINT); it wins over Endpoint.
	TracesEndpoint string
	// Protocol is "http/protobuf" (default) or "grpc"
	// (OTEL_EXPORTER_OTLP_TRACES_PROTOCOL, OTEL_EXPORTER_OTLP_PROTOCOL).
	Protocol string
	// Sampler is OTEL_TRACES_SAMPLER's name: always_on, always_off,
	// traceidratio, parentbased_always_on (default),
	// parentbased_always_off, parentbased_traceidratio.
	Sampler string
	// SamplerArg is OTEL_TRACES_SAMPLER_ARG: the ratio of the
	// traceidratio samplers (default 1).
	SamplerArg string
	// ServiceName is the service.name of Ferry's spans
	// (OTEL_SERVICE_NAME); default "ferry".
	ServiceName string
}

// Protocols.
const (
	ProtocolHTTP = "http/protobuf"
	ProtocolGRPC = "grpc"
)

// Resolve fills what c leaves empty from the environment (getenv, usually
// os.Getenv), then the defaults, and checks the result. Flags win over the
// environment, as they do for every Ferry option.
func (c Config) Resolve(getenv func(string) string) (Config, error) {
	if getenv == nil {
		getenv = os.Getenv
	}
	fill := func(v *string, names ...string) {
		for _, n := range names {
			if *v != "" {
				return
			}
			*v = strings.TrimSpace(getenv(n))
		}
	}
	fill(&c.Endpoint, "OTEL_EXPORTER_OTLP_ENDPOINT")
	fill(&c.TracesEndpoint, "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
	fill(&c.Protocol, "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL")
	fill(&c.Sampler, "OTEL_TRACES_SAMPLER")
	fill(&c.SamplerArg, "OTEL_TRACES_SAMPLER_ARG")
	fill(&c.ServiceName, "OTEL_SERVICE_NAME")
	if c.Protocol == "" {
		c.Protocol = ProtocolHTTP
	}
	if c.ServiceName == "" {
		c.ServiceName = "ferry"
	}
	switch c.Protocol {
	case ProtocolHTTP, ProtocolGRPC:
	case "http/json":
		return c, fmt.Errorf("OTLP protocol %q is not supported: use http/protobuf or grpc", c.Protocol)
	default:
		return c, fmt.Errorf("unknown OTLP protocol %q: use http/protobuf or grpc", c.Protocol)
	}
	if _, err := c.sampler(); err != nil {
		return c, err
	}
	return c, nil
}

// Enabled reports whether spans are exported at all: only when an
// endpoint is set.
func (c Config) Enabled() bool { return c.Endpoint != "" || c.TracesEndpoint != "" }

// sampler builds the sampler named by c.Sampler with c.SamplerArg.
func (c Config) sampler() (sdktrace.Sampler, error) {
	ratio := func() (float64, error) {
		if c.SamplerArg == "" {
			return 1, nil
		}
		f, err := strconv.ParseFloat(c.SamplerArg, 64)
		if err != nil || f < 0 || f > 1 {
			return 0, fmt.Errorf("sampler argument %q is not a ratio between 0 and 1", c.SamplerArg)
		}
		return f, nil
	}
	switch c.Sampler {
	case "", "parentbased_always_on":
		return sdktrace.ParentBased(sdktrace.AlwaysSample()), nil
	case "always_on":
		return sdktrace.AlwaysSample(), nil
	case "always_off":
		return sdktrace.NeverSample(), nil
	case "parentbased_always_off":
		return sdktrace.ParentBased(sdktrace.NeverSample()), nil
	case "traceidratio":
		f, err := ratio()
		if err != nil {
			return nil, err
		}
		return sdktrace.TraceIDRatioBased(f), nil
	case "parentbased_traceidratio":
		f, err := ratio()
		if err != nil {
			return nil, err
		}
		return sdktrace.ParentBased(sdktrace.TraceIDRatioBased(f)), nil
	}
	return nil, fmt.Errorf("unknown sampler %q: use always_on, always_off, traceidratio, parentbased_always_on, parentbased_always_off or parentbased_traceidratio", c.Sampler)
}
