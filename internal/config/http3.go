package config

import (
	"flag"
	"time"
)

// HTTP3Settings holds the settings of HTTP/3 (QUIC) beside HTTPS. It is embedded
// in Front; its options are registered in init below.
type HTTP3Settings struct {
	// HTTP3 serves HTTP/3 over QUIC on the UDP port of every HTTPS
	// listener, and advertises it to HTTP/1.1 and HTTP/2 clients with
	// Alt-Svc (--http3). Default true; without --ssl it does nothing.
	HTTP3 bool
	// HTTP3Allow0RTT accepts requests in QUIC 0-RTT early data, which an
	// attacker can replay; they reach apps with "Early-Data: 1"
	// (--http3-0rtt). Default false.
	HTTP3Allow0RTT bool
	// HTTP3MaxStreams bounds the requests one HTTP/3 connection may have
	// open at once (--http3-max-streams). Default 100.
	HTTP3MaxStreams int
	// HTTP3IdleTimeout closes an HTTP/3 connection idle this long
	// (--http3-idle-timeout). Default 0: --keepalive-timeout.
	HTTP3IdleTimeout time.Duration
}

func init() {
	register(
		frontOpt("http3", "true", "serve HTTP/3 (QUIC) on the UDP port of HTTPS, advertised by Alt-Svc (--http3=false: HTTP/1.1 and HTTP/2 only)", func(f *Front) flag.Value { return (*boolValue)(&f.HTTP3) }),
		frontOpt("http3-0rtt", "false", "accept HTTP/3 requests in 0-RTT early data (replayable; they reach the app with Early-Data: 1)", func(f *Front) flag.Value { return (*boolValue)(&f.HTTP3Allow0RTT) }),
		frontOpt("http3-max-streams", "100", "most requests open at once on one HTTP/3 connection (`N`)", func(f *Front) flag.Value { return (*intValue)(&f.HTTP3MaxStreams) }),
		frontOpt("http3-idle-timeout", "0", "close HTTP/3 connections idle for `SECONDS` (0: --keepalive-timeout)", func(f *Front) flag.Value { return (*secondsValue)(&f.HTTP3IdleTimeout) }),
	)
}

// finishHTTP3 validates the HTTP/3 settings; Front.finish applied their
// defaults.
func (f *Front) finishHTTP3(p *problems) {
	if !f.SSL || !f.HTTP3 {
		for _, name := range []string{"http3-0rtt", "http3-max-streams", "http3-idle-timeout"} {
			if f.explicit[name] {
				p.bad(name, "has no effect without --ssl and --http3")
			}
		}
	}
	if f.HTTP3MaxStreams < 1 || f.HTTP3MaxStreams > 1<<20 {
		p.bad("http3-max-streams", "must be between 1 and 1048576 (got %d)", f.HTTP3MaxStreams)
	}
	if f.HTTP3IdleTimeout < 0 {
		p.bad("http3-idle-timeout", "must be 0 (--keepalive-timeout) or more (got %s)", f.HTTP3IdleTimeout)
	}
}
