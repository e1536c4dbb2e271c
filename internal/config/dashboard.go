package config

import (
	"flag"
	"time"
)

// Dashboard holds the settings of the web dashboard, served at /dashboard/
// on --metrics-address (never on the public port); embedded in Server.
// Viewers and actions are authorised with the admin API's tokens
// (read.token, admin.token in the instance directory).
type Dashboard struct {
	// DashboardOff leaves /dashboard/ out of the metrics listener
	// (--dashboard false). Default false: served whenever
	// --metrics-address is set.
	DashboardOff bool
	// DashboardRefresh is how often the dashboard's live view is sent to
	// its viewers (--dashboard-refresh). Default 1s.
	DashboardRefresh time.Duration
	// DashboardMaxViewers caps the live views open at once; past it a new
	// one gets 503 (--dashboard-max-viewers). Default 16.
	DashboardMaxViewers int
}

// Dashboard defaults.
const (
	DefaultDashboardRefresh    = time.Second
	DefaultDashboardMaxViewers = 16
)

func init() {
	register(
		srv("dashboard", "serve the web dashboard at /dashboard/ on --metrics-address (true or false)", func(s *Server) flag.Value {
			return (*onOffValue)(&s.DashboardOff)
		}),
		srv("dashboard-refresh", "`SECONDS` between the dashboard's live updates, at least 0.1 (default 1)", func(s *Server) flag.Value {
			return (*secondsValue)(&s.DashboardRefresh)
		}),
		srv("dashboard-max-viewers", "most dashboard live views open at once (`N`); past it 503 (default 16)", func(s *Server) flag.Value {
			return (*intValue)(&s.DashboardMaxViewers)
		}),
	)
}

// finish validates the dashboard settings and fills in their defaults.
func (d *Dashboard) finish(p *problems) {
	switch {
	case d.DashboardRefresh == 0:
		d.DashboardRefresh = DefaultDashboardRefresh
	case d.DashboardRefresh < 100*time.Millisecond:
		p.bad("dashboard-refresh", "must be at least 0.1 seconds (got %v)", d.DashboardRefresh)
	}
	switch {
	case d.DashboardMaxViewers == 0:
		d.DashboardMaxViewers = DefaultDashboardMaxViewers
	case d.DashboardMaxViewers < 0:
		p.bad("dashboard-max-viewers", "must be at least 1 (got %d)", d.DashboardMaxViewers)
	}
}
