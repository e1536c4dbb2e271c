package server

import (
	"io"
	"log/slog"
	"testing"
)

// TestAccessLogAllocations: a line costs no allocation in any format the
// core writes itself (combined, json, and text through NewTextAccessLog),
// for a TCP client and for one on a Unix socket (no port to split off).
func TestAccessLogAllocations(t *testing.T) {
	logs := map[string]*AccessLog{
		AccessText:     NewTextAccessLog(io.Discard, Records{Attrs: []slog.Attr{slog.String("log", "access")}}),
		AccessCombined: NewAccessLog(AccessCombined, io.Discard, nil),
		AccessJSON:     NewAccessLog(AccessJSON, io.Discard, nil),
	}
	for name, l := range logs {
		for _, client := range []string{"192.0.2.1:4711", "[2001:db8::1]:4711", "@"} {
			r, e := benchAccessRequest()
			r.RemoteAddr = client
			l.log(r, e) // the pool's first buffer, the second's cached stamp
			if n := testing.AllocsPerRun(200, func() { l.log(r, e) }); n != 0 {
				t.Errorf("%s, client %q: %v allocations per line", name, client, n)
			}
		}
	}
}
