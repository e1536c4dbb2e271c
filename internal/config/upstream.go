package config

import "flag"

// AppUpstream holds an app's settings of the wire between Ferry and its
// processes; embedded in App, its options registered in init below.
type AppUpstream struct {
	// MaxConnectFailures is how many connects in a row to one process may
	// fail (refused, timed out, backlog full) before the process leaves
	// rotation and is replaced (--max-connect-failures). A process whose
	// connection drops is not dead: only its exit is. A completed request
	// resets the count. Default 0 here means DefaultMaxConnectFailures.
	MaxConnectFailures int
}

// DefaultMaxConnectFailures forgives a momentary failure (a full accept
// backlog under a burst) while a process that stopped accepting for good
// is replaced after a handful of requests, each retried elsewhere.
const DefaultMaxConnectFailures = 3

func init() {
	register(
		app("max-connect-failures", "connects in a row to a process that may fail before it is replaced (`N`) (default 3)", func(a *App) flag.Value {
			return (*intValue)(&a.MaxConnectFailures)
		}),
	)
}

// finish validates an app's upstream settings and fills in defaults.
func (a *AppUpstream) finish(p *problems) {
	switch {
	case a.MaxConnectFailures == 0:
		a.MaxConnectFailures = DefaultMaxConnectFailures
	case a.MaxConnectFailures < 0:
		p.bad("max-connect-failures", "must be at least 1 (got %d)", a.MaxConnectFailures)
	}
}
