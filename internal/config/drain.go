package config

import (
	"flag"
	"time"
)

// Drain holds how the core leaves on SIGTERM, in three bounded steps:
// readiness off and still serving (DrainDelay), then no new connections
// while requests in flight finish (Server.ShutdownTimeout), then the apps
// get SIGTERM and, after AppStopTimeout, SIGKILL. With the defaults
// (5 + 20 + 3 s) the core is gone within 28 s of SIGTERM, inside the 30 s
// Kubernetes and most supervisors give before their own SIGKILL, even with
// a request that never ends. Embedded in Server.
type Drain struct {
	// DrainDelay is how long the core keeps serving, and accepting, after
	// SIGTERM with /ready already answering 503, so that load balancers
	// and Kubernetes endpoints stop sending before it stops accepting
	// (--drain-delay). Default 5 s; 0: stop accepting at once. SIGINT
	// (Ctrl-C) and a second signal skip it; an upgrade has none.
	DrainDelay time.Duration
	// AppStopTimeout is how long app processes have between SIGTERM and
	// SIGKILL when the core stops (--app-stop-timeout). Default 3 s.
	AppStopTimeout time.Duration
	// FirstRequestGrace: see firstrequest.go.
	FirstRequestGrace time.Duration
}

// Drain defaults; DefaultShutdownTimeout is Server.ShutdownTimeout's.
const (
	DefaultDrainDelay      = 5 * time.Second
	DefaultShutdownTimeout = 20 * time.Second
	DefaultAppStopTimeout  = 3 * time.Second
)

func init() {
	register(
		srv("drain-delay", "`SECONDS` to keep serving after SIGTERM with /ready at 503, before accepting stops (default 5; 0 = none)", func(s *Server) flag.Value {
			return (*secondsValue)(&s.DrainDelay)
		}),
		srv("app-stop-timeout", "`SECONDS` app processes get between SIGTERM and SIGKILL when Ferry stops (default 3)", func(s *Server) flag.Value {
			return (*secondsValue)(&s.AppStopTimeout)
		}),
	)
}

func (d *Drain) finish(p *problems) {
	if d.DrainDelay < 0 {
		p.bad("drain-delay", "must be 0 or more (got %s)", d.DrainDelay)
	}
	if d.AppStopTimeout <= 0 {
		p.bad("app-stop-timeout", "must be more than 0 (got %s)", d.AppStopTimeout)
	}
	d.finishFirstRequestGrace(p)
}
