package metrics

import (
	"strconv"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

// AppSnapshot is the state of one app's processes at one moment, as the
// pool's callback reports it.
type AppSnapshot struct {
	App string
	// Queued is the number of requests waiting for a process.
	Queued int
	// ProcessesByState counts processes by state name. List every state,
	// with zeros, so that a series drops to 0 rather than vanishing.
	ProcessesByState map[string]int
	Processes        []ProcSnapshot

	// MaxProcesses is the app's --max-pool-size; MaxQueued its
	// --max-request-queue-size, 0 for no limit (the series is then left
	// out, so that a ratio to it is empty rather than infinite).
	MaxProcesses, MaxQueued int
	// Busy is the number of processes that can take no more requests now:
	// serving, with every session they may have in use. Processes that take
	// any number of requests are never busy.
	Busy int
	// Counters since the app's pool started (a reload starts them anew,
	// which rate() takes as a counter reset): processes recycled for
	// --max-requests and for --memory-limit, processes that died (exited
	// without being asked), requests refused because the queue was full or
	// that waited past --max-request-queue-time.
	RecycledMaxRequests, RecycledMemory uint64
	Died                                uint64
	QueueFull, QueueTimeout             uint64
}

// ProcSnapshot is one process of an app.
type ProcSnapshot struct {
	PID int
	// RSS and PSS are in bytes; 0 means unknown (not read yet, or not
	// readable), and the series is then left out rather than shown as 0.
	RSS, PSS int64
	// CPUSeconds is the CPU time the process has used since it started.
	CPUSeconds float64
	// Sessions is the number of requests the process is handling now.
	Sessions int
	// Processed is the number of requests the process has handled.
	Processed uint64
}

// RegisterPoolCollector makes every scrape call f for the gauges of the
// pool. f is called on the scraping goroutine, possibly by several scrapes
// at once, and should be quick: take a snapshot under the pool's lock and
// return. A later call replaces f; nil removes it.
func (m *Metrics) RegisterPoolCollector(f func() []AppSnapshot) {
	if f == nil {
		m.pool.f.Store(nil)
		return
	}
	m.pool.f.Store(&f)
}

// poolCollector turns the pool callback's snapshots into const metrics. It
// is registered once, in New, with descriptors that do not depend on the
// callback, so that the callback can be set and replaced at any time.
type poolCollector struct {
	f atomic.Pointer[func() []AppSnapshot]
}

var (
	queuedDesc = prometheus.NewDesc("ferry_pool_queued_requests",
		"Requests waiting for a process.", []string{"app"}, nil)
	processesDesc = prometheus.NewDesc("ferry_pool_processes",
		"App processes, by state.", []string{"app", "state"}, nil)
	rssDesc = prometheus.NewDesc("ferry_process_resident_memory_bytes",
		"Resident set size (RSS) of an app process: all its resident pages, shared ones included.", []string{"app", "pid"}, nil)
	pssDesc = prometheus.NewDesc("ferry_process_proportional_memory_bytes",
		"Proportional set size (PSS) of an app process: shared pages divided among the processes sharing them; sums to the true total.", []string{"app", "pid"}, nil)
	cpuDesc = prometheus.NewDesc("ferry_process_cpu_seconds_total",
		"CPU time (user and system) an app process has used.", []string{"app", "pid"}, nil)
	sessionsDesc = prometheus.NewDesc("ferry_process_sessions",
		"Requests an app process is handling now.", []string{"app", "pid"}, nil)
	processedDesc = prometheus.NewDesc("ferry_process_requests_total",
		"Requests an app process has handled.", []string{"app", "pid"}, nil)
	maxProcsDesc = prometheus.NewDesc("ferry_pool_max_processes",
		"Most processes the app may have (--max-pool-size).", []string{"app"}, nil)
	maxQueuedDesc = prometheus.NewDesc("ferry_pool_max_queued_requests",
		"Most requests that may wait for a process (--max-request-queue-size); absent when unlimited.", []string{"app"}, nil)
	busyDesc = prometheus.NewDesc("ferry_pool_busy_processes",
		"Serving processes that can take no more requests now: all their sessions are in use.", []string{"app"}, nil)
	recyclesDesc = prometheus.NewDesc("ferry_pool_recycles_total",
		"Processes replaced for their health, by reason: max_requests (--max-requests) or memory_limit (--memory-limit).", []string{"app", "reason"}, nil)
	diedDesc = prometheus.NewDesc("ferry_pool_process_deaths_total",
		"App processes that exited without being asked (crash, kill, OOM killer).", []string{"app"}, nil)
	rejectedDesc = prometheus.NewDesc("ferry_pool_queue_rejections_total",
		"Requests the queue refused, by reason: full (--max-request-queue-size, 503) or timeout (--max-request-queue-time, 504).", []string{"app", "reason"}, nil)
)

var poolDescs = []*prometheus.Desc{queuedDesc, processesDesc, rssDesc, pssDesc, cpuDesc, sessionsDesc, processedDesc,
	maxProcsDesc, maxQueuedDesc, busyDesc, recyclesDesc, diedDesc, rejectedDesc}

func (c *poolCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range poolDescs {
		ch <- d
	}
}

func (c *poolCollector) Collect(ch chan<- prometheus.Metric) {
	f := c.f.Load()
	if f == nil {
		return
	}
	// NewConstMetric fails only on label values that are not valid UTF-8;
	// the error then travels to the handler as an invalid metric.
	send := func(d *prometheus.Desc, t prometheus.ValueType, v float64, labels ...string) {
		m, err := prometheus.NewConstMetric(d, t, v, labels...)
		if err != nil {
			m = prometheus.NewInvalidMetric(d, err)
		}
		ch <- m
	}
	for _, a := range (*f)() {
		send(queuedDesc, prometheus.GaugeValue, float64(a.Queued), a.App)
		send(maxProcsDesc, prometheus.GaugeValue, float64(a.MaxProcesses), a.App)
		if a.MaxQueued > 0 {
			send(maxQueuedDesc, prometheus.GaugeValue, float64(a.MaxQueued), a.App)
		}
		send(busyDesc, prometheus.GaugeValue, float64(a.Busy), a.App)
		send(recyclesDesc, prometheus.CounterValue, float64(a.RecycledMaxRequests), a.App, "max_requests")
		send(recyclesDesc, prometheus.CounterValue, float64(a.RecycledMemory), a.App, "memory_limit")
		send(diedDesc, prometheus.CounterValue, float64(a.Died), a.App)
		send(rejectedDesc, prometheus.CounterValue, float64(a.QueueFull), a.App, "full")
		send(rejectedDesc, prometheus.CounterValue, float64(a.QueueTimeout), a.App, "timeout")
		for state, n := range a.ProcessesByState {
			send(processesDesc, prometheus.GaugeValue, float64(n), a.App, state)
		}
		for _, p := range a.Processes {
			pid := strconv.Itoa(p.PID)
			if p.RSS > 0 {
				send(rssDesc, prometheus.GaugeValue, float64(p.RSS), a.App, pid)
			}
			if p.PSS > 0 {
				send(pssDesc, prometheus.GaugeValue, float64(p.PSS), a.App, pid)
			}
			send(cpuDesc, prometheus.CounterValue, p.CPUSeconds, a.App, pid)
			send(sessionsDesc, prometheus.GaugeValue, float64(p.Sessions), a.App, pid)
			send(processedDesc, prometheus.CounterValue, float64(p.Processed), a.App, pid)
		}
	}
}
