package core

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/ferry-server/ferry/internal/config"
	"github.com/ferry-server/ferry/internal/tracing"
)

// tracerFlushTimeout bounds the export of the last spans at shutdown.
const tracerFlushTimeout = 5 * time.Second

// newTracer builds the OpenTelemetry tracer the configuration asks for
// (flags, then the OTEL_* environment); nil when no endpoint is set. stop
// exports the spans still buffered.
func newTracer(ctx context.Context, cfg *config.Config, version string, log *slog.Logger) (t *tracing.Tracer, stop func(), err error) {
	tc := cfg.Tracing
	c, err := tracing.Config{
		Endpoint: tc.OTLPEndpoint, TracesEndpoint: tc.OTLPTracesEndpoint, Protocol: tc.OTLPProtocol,
		Sampler: tc.TracesSampler, SamplerArg: tc.TracesSamplerArg, ServiceName: tc.ServiceName,
	}.Resolve(nil)
	if err != nil {
		return nil, nil, fmt.Errorf("tracing: %w", err)
	}
	t, err = tracing.New(ctx, c, version)
	if err != nil {
		return nil, nil, fmt.Errorf("tracing: %w", err)
	}
	if t == nil {
		return nil, func() {}, nil
	}
	endpoint := c.TracesEndpoint
	if endpoint == "" {
		endpoint = c.Endpoint
	}
	log.Info("tracing requests with OpenTelemetry", "endpoint", endpoint, "protocol", c.Protocol, "service", c.ServiceName)
	return t, func() {
		ctx, cancel := context.WithTimeout(context.Background(), tracerFlushTimeout)
		defer cancel()
		if err := t.Shutdown(ctx); err != nil {
			log.Warn("tracing: the last spans could not be exported", "error", err)
		}
	}, nil
}
