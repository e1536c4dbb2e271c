package metrics

import "github.com/prometheus/client_golang/prometheus"

// RegisterFront adds the front's counters, read at each scrape: requests
// served on the lean HTTP/1.1 path, and connections it handed to net/http.
// Call it once, when the front is listening.
func (m *Metrics) RegisterFront(lean func() (requests, handoffs uint64)) {
	m.reg.MustRegister(
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "ferry_http_lean_requests_total",
			Help: "Requests served on the lean HTTP/1.1 path of plain listeners (--lean-path); the rest of ferry_http_requests_total went through Go's net/http."},
			func() float64 { r, _ := lean(); return float64(r) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "ferry_http_lean_handoffs_total",
			Help: "Connections the lean HTTP/1.1 path handed to net/http, at a request it does not take (a body, HTTP/1.0, Upgrade, a malformed or long head, ...)."},
			func() float64 { _, h := lean(); return float64(h) }),
	)
}

// RegisterHTTP3 adds HTTP/3's figures, read at each scrape: QUIC
// connections open, and packets relayed to a new Ferry while this one
// drains after an upgrade. Call it once, when the front is listening with
// HTTP/3.
func (m *Metrics) RegisterHTTP3(stats func() (connections int, relayed uint64)) {
	m.reg.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "ferry_http3_connections",
			Help: "HTTP/3 (QUIC) connections open, handshakes under way included."},
			func() float64 { c, _ := stats(); return float64(c) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "ferry_http3_relayed_packets_total",
			Help: "QUIC packets this Ferry relayed to the new one after a binary upgrade, while it finished its own connections."},
			func() float64 { _, r := stats(); return float64(r) }),
	)
}
