package metrics

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// CertSnapshot is one managed certificate at scrape time (automatic HTTPS).
type CertSnapshot struct {
	Domain string
	State  string // valid, obtaining, renewing, failing, missing, expired
	// NotAfter is the served certificate's expiry; zero: none served.
	NotAfter time.Time
	// Failures are the failed attempts in a row since the last success.
	Failures int
}

var (
	certDaysDesc = prometheus.NewDesc("ferry_certificate_expiry_days",
		"Days until the certificate served for a domain expires (negative: expired); absent while none is served.", []string{"domain"}, nil)
	certNotAfterDesc = prometheus.NewDesc("ferry_certificate_not_after_timestamp_seconds",
		"Expiry of the certificate served for a domain, as a Unix time.", []string{"domain"}, nil)
	certStateDesc = prometheus.NewDesc("ferry_certificate_state",
		"1 for the state a managed domain's certificate is in (valid, obtaining, renewing, failing, missing, expired).", []string{"domain", "state"}, nil)
	certFailuresDesc = prometheus.NewDesc("ferry_acme_failures",
		"Failed attempts in a row to obtain or renew a domain's certificate since its last success.", []string{"domain"}, nil)
)

// RegisterCertificates makes every scrape report the managed
// certificates that f returns. Call it once.
func (m *Metrics) RegisterCertificates(f func() []CertSnapshot) {
	m.reg.MustRegister(certCollector(f))
}

type certCollector func() []CertSnapshot

func (c certCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- certDaysDesc
	ch <- certNotAfterDesc
	ch <- certStateDesc
	ch <- certFailuresDesc
}

func (c certCollector) Collect(ch chan<- prometheus.Metric) {
	now := time.Now()
	for _, s := range c() {
		if !s.NotAfter.IsZero() {
			ch <- prometheus.MustNewConstMetric(certDaysDesc, prometheus.GaugeValue, s.NotAfter.Sub(now).Hours()/24, s.Domain)
			ch <- prometheus.MustNewConstMetric(certNotAfterDesc, prometheus.GaugeValue, float64(s.NotAfter.Unix()), s.Domain)
		}
		ch <- prometheus.MustNewConstMetric(certStateDesc, prometheus.GaugeValue, 1, s.Domain, s.State)
		ch <- prometheus.MustNewConstMetric(certFailuresDesc, prometheus.GaugeValue, float64(s.Failures), s.Domain)
	}
}
