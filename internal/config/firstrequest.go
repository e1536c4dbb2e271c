package config

import (
	"flag"
	"time"
)

// DefaultFirstRequestGrace is Drain.FirstRequestGrace's default.
//
// Drain.FirstRequestGrace (--shutdown-first-request-grace) is how long the
// front, once it stops accepting, waits for connections it accepted just
// before to send their first request, which is then answered with
// Connection: close; those that send none are closed after it. It counts
// within --shutdown-timeout, so the drain arithmetic is unchanged.
const DefaultFirstRequestGrace = 2 * time.Second

func init() {
	register(srv("shutdown-first-request-grace", "`SECONDS` a connection accepted just before Ferry stops accepting has to send its first request, which is still answered (default 2; 0 = close them at once; within --shutdown-timeout)", func(s *Server) flag.Value {
		return (*secondsValue)(&s.FirstRequestGrace)
	}))
}

func (d *Drain) finishFirstRequestGrace(p *problems) {
	if d.FirstRequestGrace < 0 {
		p.bad("shutdown-first-request-grace", "must be 0 or more (got %s)", d.FirstRequestGrace)
	}
}
