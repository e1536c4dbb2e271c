package metrics

import (
	"strconv"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// AppMetrics records the events of one app. Every label is resolved when it
// is created (or, for a rare 5xx code, on first use), so recording is a few
// atomic operations and allocates nothing. A nil *AppMetrics records
// nothing, so a caller without metrics needs no checks.
type AppMetrics struct {
	m    *Metrics
	name string

	// classes[i] counts status class i: 1xx at 1 … 5xx at 5.
	classes [6]prometheus.Counter
	// other counts statuses outside 100-599; created on first use.
	other atomic.Pointer[counter]
	// serverErrors[c-500] counts status c; created on first use, except
	// for the codes in precreated.
	serverErrors [100]atomic.Pointer[counter]

	duration      observer
	bytesIn       prometheus.Counter
	bytesOut      prometheus.Counter
	queueWait     observer
	spawns        prometheus.Counter
	spawnFailures prometheus.Counter
	spawnDuration prometheus.Observer
	restarts      prometheus.Counter
	cacheHits     prometheus.Counter
	cacheMisses   prometheus.Counter
	cacheStores   prometheus.Counter
}

// observer is a histogram that takes exemplars (client_golang's
// histograms do).
type observer interface {
	prometheus.Observer
	prometheus.ExemplarObserver
}

// counter boxes an interface value for atomic.Pointer.
type counter struct{ prometheus.Counter }

// precreated are the 5xx codes Ferry itself answers with: spawn failure,
// app process died, queue full or spawn back-off, timeout.
var precreated = []int{500, 502, 503, 504}

func newAppMetrics(m *Metrics, name string) *AppMetrics {
	a := &AppMetrics{
		m:             m,
		name:          name,
		duration:      m.duration.WithLabelValues(name).(observer),
		bytesIn:       m.bytesIn.WithLabelValues(name),
		bytesOut:      m.bytesOut.WithLabelValues(name),
		queueWait:     m.queueWait.WithLabelValues(name).(observer),
		spawns:        m.spawns.WithLabelValues(name),
		spawnFailures: m.spawnFailures.WithLabelValues(name),
		spawnDuration: m.spawnDuration.WithLabelValues(name),
		restarts:      m.restarts.WithLabelValues(name),
		cacheHits:     m.cacheHits.WithLabelValues(name),
		cacheMisses:   m.cacheMisses.WithLabelValues(name),
		cacheStores:   m.cacheStores.WithLabelValues(name),
	}
	for i := 1; i <= 5; i++ {
		a.classes[i] = m.requests.WithLabelValues(name, strconv.Itoa(i)+"xx")
	}
	for _, code := range precreated {
		a.serverError(code)
	}
	return a
}

// Request records one response: its status, the time it took from receipt
// to the end of the response, and the body bytes received and sent.
func (a *AppMetrics) Request(status int, dur time.Duration, bytesIn, bytesOut int64) {
	a.RequestTraced(status, dur, bytesIn, bytesOut, "")
}

// RequestTraced is Request for a request of a sampled trace: its duration
// carries traceID as an exemplar (OpenMetrics), so that a dashboard can go
// from a slow bucket to the trace. traceID "" records no exemplar.
func (a *AppMetrics) RequestTraced(status int, dur time.Duration, bytesIn, bytesOut int64, traceID string) {
	if a == nil {
		return
	}
	if status >= 100 && status <= 599 {
		a.classes[status/100].Inc()
		if status >= 500 {
			a.serverError(status).Inc()
		}
	} else {
		a.otherStatus().Inc()
	}
	observe(a.duration, seconds(dur), traceID)
	if bytesIn > 0 {
		a.bytesIn.Add(float64(bytesIn))
	}
	if bytesOut > 0 {
		a.bytesOut.Add(float64(bytesOut))
	}
}

// serverError returns the counter of 5xx status code, creating it on first
// use. Two goroutines creating it at once get the same child from the vec.
func (a *AppMetrics) serverError(code int) prometheus.Counter {
	slot := &a.serverErrors[code-500]
	if c := slot.Load(); c != nil {
		return c.Counter
	}
	c := &counter{a.m.serverErrors.WithLabelValues(a.name, strconv.Itoa(code))}
	slot.Store(c)
	return c.Counter
}

func (a *AppMetrics) otherStatus() prometheus.Counter {
	if c := a.other.Load(); c != nil {
		return c.Counter
	}
	c := &counter{a.m.requests.WithLabelValues(a.name, "other")}
	a.other.Store(c)
	return c.Counter
}

// QueueWait records how long a request waited for a process to take it
// (zero when one was free at once: record it too, or the histogram shows
// only the unlucky requests).
func (a *AppMetrics) QueueWait(d time.Duration) { a.QueueWaitTraced(d, "") }

// QueueWaitTraced is QueueWait with the trace id of a sampled trace as the
// observation's exemplar; "" records none.
func (a *AppMetrics) QueueWaitTraced(d time.Duration, traceID string) {
	if a == nil {
		return
	}
	observe(a.queueWait, seconds(d), traceID)
}

// observe records v in h, with traceID as its exemplar if set. The label
// name is the one Grafana and the OpenTelemetry specification use.
func observe(h observer, v float64, traceID string) {
	if traceID == "" {
		h.Observe(v)
		return
	}
	h.ObserveWithExemplar(v, prometheus.Labels{"trace_id": traceID})
}

// Spawn records a spawn attempt; d is the time it took to be ready, and is
// recorded for successful spawns only (a failure's time is mostly the start
// timeout, which would drown the real start-up times).
func (a *AppMetrics) Spawn(ok bool, d time.Duration) {
	if a == nil {
		return
	}
	a.spawns.Inc()
	if !ok {
		a.spawnFailures.Inc()
		return
	}
	a.spawnDuration.Observe(seconds(d))
}

// Restart records a restart of the app.
func (a *AppMetrics) Restart() {
	if a == nil {
		return
	}
	a.restarts.Inc()
}

// CacheHit records a request answered from the turbocache.
func (a *AppMetrics) CacheHit() {
	if a == nil {
		return
	}
	a.cacheHits.Inc()
}

// CacheMiss records a turbocache lookup that found nothing usable.
func (a *AppMetrics) CacheMiss() {
	if a == nil {
		return
	}
	a.cacheMisses.Inc()
}

// CacheStore records a response stored in the turbocache.
func (a *AppMetrics) CacheStore() {
	if a == nil {
		return
	}
	a.cacheStores.Inc()
}

// seconds converts d for a histogram; a negative duration (a caller's clock
// mix-up) counts as zero rather than lowering the sum.
func seconds(d time.Duration) float64 {
	return max(d, 0).Seconds()
}
