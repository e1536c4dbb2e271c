package metrics

import (
	"net/http"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Buckets, in seconds.
var (
	// latencyBuckets suit a web request or its wait in the queue: from a
	// cache hit (1ms) to a request that waited for a slow spawn (60s).
	latencyBuckets = []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60}
	// spawnBuckets go from a smart-spawned fork (10ms) to the default
	// --start-timeout (90s) of an app that loads slowly.
	spawnBuckets = []float64{.01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 90}
)

// Metrics is Ferry's registry and the metrics in it. Its methods are safe
// for concurrent use. A nil *Metrics records nothing: App returns nil, whose
// methods do nothing.
type Metrics struct {
	reg     *prometheus.Registry
	handler http.Handler
	pool    poolCollector

	requests      *prometheus.CounterVec
	serverErrors  *prometheus.CounterVec
	duration      *prometheus.HistogramVec
	bytesIn       *prometheus.CounterVec
	bytesOut      *prometheus.CounterVec
	queueWait     *prometheus.HistogramVec
	spawns        *prometheus.CounterVec
	spawnFailures *prometheus.CounterVec
	spawnDuration *prometheus.HistogramVec
	restarts      *prometheus.CounterVec
	cacheHits     *prometheus.CounterVec
	cacheMisses   *prometheus.CounterVec
	cacheStores   *prometheus.CounterVec

	mu   sync.RWMutex
	apps map[string]*AppMetrics
}

// New returns a registry holding Ferry's metrics, the Go runtime's and the
// core process's (CPU, memory, file descriptors).
func New() *Metrics {
	app := []string{"app"}
	counter := func(name, help string, labels ...string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, append(app, labels...))
	}
	histogram := func(name, help string, buckets []float64) *prometheus.HistogramVec {
		return prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: name, Help: help, Buckets: buckets}, app)
	}
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		requests: counter("ferry_http_requests_total",
			"HTTP responses, by status class (1xx … 5xx; other for codes outside 100-599).", "class"),
		serverErrors: counter("ferry_http_server_errors_total",
			"HTTP responses with a 5xx status, by exact code; a breakdown of ferry_http_requests_total{class=\"5xx\"}.", "code"),
		duration: histogram("ferry_http_request_duration_seconds",
			"Time from receiving a request to finishing its response.", latencyBuckets),
		bytesIn: counter("ferry_http_request_bytes_total",
			"Request body bytes received from clients."),
		bytesOut: counter("ferry_http_response_bytes_total",
			"Response body bytes sent to clients."),
		queueWait: histogram("ferry_pool_queue_wait_seconds",
			"Time a request waited for a process to take it.", latencyBuckets),
		spawns: counter("ferry_spawns_total",
			"Process spawns attempted, successful or not."),
		spawnFailures: counter("ferry_spawn_failures_total",
			"Process spawns that failed."),
		spawnDuration: histogram("ferry_spawn_duration_seconds",
			"Time from starting a process to its being ready, for successful spawns.", spawnBuckets),
		restarts: counter("ferry_app_restarts_total",
			"Restarts of the app (restart.txt, admin API), each replacing all its processes."),
		cacheHits: counter("ferry_turbocache_hits_total",
			"Requests answered from the turbocache."),
		cacheMisses: counter("ferry_turbocache_misses_total",
			"Turbocache lookups that found nothing usable."),
		cacheStores: counter("ferry_turbocache_stores_total",
			"Responses stored in the turbocache."),
		apps: make(map[string]*AppMetrics),
	}
	m.reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.requests, m.serverErrors, m.duration, m.bytesIn, m.bytesOut,
		m.queueWait, m.spawns, m.spawnFailures, m.spawnDuration, m.restarts,
		m.cacheHits, m.cacheMisses, m.cacheStores,
		&m.pool,
	)
	// The handler is built once: HandlerFor registers its error counter in
	// reg. ContinueOnError serves the metrics that could be gathered when a
	// collector fails (a bad pool snapshot must not hide the rest); failures
	// are counted in promhttp_metric_handler_errors_total.
	m.handler = promhttp.InstrumentMetricHandler(m.reg, promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{
		ErrorHandling: promhttp.ContinueOnError,
		Registry:      m.reg,
		// OpenMetrics when the scraper asks for it: the only text format
		// that carries exemplars (trace ids on the latency histograms).
		EnableOpenMetrics: true,
		// Each scrape calls the pool's callback; a few at once is plenty.
		MaxRequestsInFlight: 4,
	}))
	return m
}

// Handler serves the registry in the Prometheus exposition formats
// (text, or protobuf/OpenMetrics when the scraper asks, gzip-compressed when
// it accepts it).
func (m *Metrics) Handler() http.Handler {
	return m.handler
}

// App returns the metrics of app name, creating them on first use. Keep the
// result (one per app) rather than calling App per request: it takes a lock.
func (m *Metrics) App(name string) *AppMetrics {
	if m == nil {
		return nil
	}
	m.mu.RLock()
	a := m.apps[name]
	m.mu.RUnlock()
	if a != nil {
		return a
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if a := m.apps[name]; a != nil {
		return a
	}
	a = newAppMetrics(m, name)
	m.apps[name] = a
	return a
}
