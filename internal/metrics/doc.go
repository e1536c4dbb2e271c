// Package metrics owns Ferry's Prometheus metrics: one prometheus.Registry of
// its own (never the global one, so nothing a library registers leaks into
// Ferry's output, and tests can build as many as they like), the collectors
// in it, and the http.Handler that exposes it.
//
// Other packages do not touch client_golang: they call small methods. The
// request path gets an [AppMetrics] once per app and calls its methods, which
// do not allocate. Gauges of the pool's state are not pushed: the pool
// registers a callback with [Metrics.RegisterPoolCollector] that is called
// at scrape time.
//
// It does not serve HTTP itself (the caller mounts [Metrics.Handler] where it
// wants) and does not read /proc for app processes (the pool's snapshot
// carries their memory and CPU, read with package procstat).
//
// # Metrics
//
// Per app (label app), recorded as things happen:
//
//	ferry_http_requests_total{class}           counter    responses by status class: 1xx … 5xx
//	ferry_http_server_errors_total{code}       counter    5xx responses by exact code
//	ferry_http_request_duration_seconds        histogram  request handling time
//	ferry_http_request_bytes_total             counter    request body bytes received
//	ferry_http_response_bytes_total            counter    response body bytes sent
//	ferry_pool_queue_wait_seconds              histogram  time a request waited for a process
//	ferry_spawns_total                         counter    process spawns attempted
//	ferry_spawn_failures_total                 counter    process spawns that failed
//	ferry_spawn_duration_seconds               histogram  time to start a process (successful spawns)
//	ferry_app_restarts_total                   counter    restarts of the app
//	ferry_turbocache_{hits,misses,stores}_total counter   turbocache lookups and stores
//
// Per app, read from the pool at scrape time:
//
//	ferry_pool_queued_requests                 gauge      requests waiting for a process
//	ferry_pool_processes{state}                gauge      processes by state
//	ferry_pool_max_processes                   gauge      --max-pool-size
//	ferry_pool_max_queued_requests             gauge      --max-request-queue-size (absent when unlimited)
//	ferry_pool_busy_processes                  gauge      serving processes with no free session
//	ferry_pool_recycles_total{reason}          counter    processes recycled: max_requests, memory_limit
//	ferry_pool_process_deaths_total            counter    processes that exited without being asked
//	ferry_pool_queue_rejections_total{reason}  counter    requests refused by the queue: full, timeout
//	ferry_process_resident_memory_bytes{pid}   gauge      RSS of each process
//	ferry_process_proportional_memory_bytes{pid} gauge    PSS of each process
//	ferry_process_cpu_seconds_total{pid}       counter    CPU time of each process
//	ferry_process_sessions{pid}                gauge      sessions open on each process
//	ferry_process_requests_total{pid}          counter    requests each process has handled
//
// Of the core itself: the standard go_* and process_* metrics, and
// promhttp_metric_handler_* about the scrapes.
//
// # Status codes
//
// Requests are counted by class ("2xx"), not by code, to keep one series per
// class per app whatever the apps answer. 5xx responses are also counted by
// exact code, in a separate metric, because there the code tells the cause
// apart: 500 a failed spawn, 502 an app process that died, 503 a full queue
// or a spawn back-off, 504 a timeout. At most 100 codes are possible there,
// and the four Ferry itself produces are created at zero with the app so
// that alerts on them see a series from the start.
package metrics
