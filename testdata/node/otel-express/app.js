'use strict';
// Test fixture: an Express app instrumented with OpenTelemetry's Node SDK
// (its HTTP instrumentation), exporting spans over OTLP (HTTP/protobuf) to
// OTEL_EXPORTER_OTLP_ENDPOINT, which it inherits from Ferry. Ferry sends
// the traceparent of its "app" span, so the app's server span joins
// Ferry's trace as that span's child. Run `npm ci` here first (the tests
// do it when node_modules is missing).
//
//   GET /   hello from traced express

// The SDK must patch http before express loads it.
process.env.OTEL_SERVICE_NAME = 'otel-express-fixture';
process.env.OTEL_TRACES_SAMPLER = 'parentbased_always_on';
process.env.OTEL_BSP_SCHEDULE_DELAY = '200'; // export soon: the test waits for the spans
const { NodeSDK } = require('@opentelemetry/sdk-node');
const { HttpInstrumentation } = require('@opentelemetry/instrumentation-http');
const { OTLPTraceExporter } = require('@opentelemetry/exporter-trace-otlp-proto');

const sdk = new NodeSDK({
  traceExporter: new OTLPTraceExporter(),
  instrumentations: [new HttpInstrumentation()],
});
sdk.start();

const express = require('express');
const app = express();

app.get('/', (req, res) => {
  res.type('text/plain').send('hello from traced express');
});

const port = process.env.PORT || 3000;
app.listen(port);
process.on('SIGTERM', () => sdk.shutdown().finally(() => process.exit(0)));
