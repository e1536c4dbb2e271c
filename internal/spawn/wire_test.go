package spawn

import (
	"context"
	"strings"
	"testing"
	"time"
)

// TestHandshakeWire: the loader wire a process chose is read from its
// handshake; none is HTTP/1.1, and one this Ferry does not speak fails the
// spawn with a message that says so.
func TestHandshakeWire(t *testing.T) {
	for _, tc := range []struct {
		line string
		wire int
		err  string
	}{
		{`{"status":"ready","socket":"s","concurrency":1}`, 0, ""},
		{`{"status":"ready","socket":"s","concurrency":1,"wire":0}`, 0, ""},
		{`{"status":"ready","socket":"s","concurrency":1,"wire":1}`, 1, ""},
		{`{"status":"ready","socket":"s","concurrency":1,"wire":2}`, 0, "chose loader wire version 2, but this Ferry speaks only HTTP/1.1 and versions 1"},
		{`{"status":"ready","socket":"s","concurrency":1,"wire":"1"}`, 0, "malformed status line"},
		{`{"status":"ready","socket":"s","concurrency":0,"wire":1,"head":"asgi"}`, 1, ""},
		{`{"status":"ready","socket":"s","concurrency":0,"wire":1,"head":"grpc"}`, 0, `layout "grpc", which this Ferry does not know`},
		{`{"status":"ready","socket":"s","concurrency":0,"head":"asgi"}`, 0, `layout "asgi"`},
	} {
		h, err := ParseHandshake([]byte(tc.line))
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%s: %v, want %q", tc.line, err, tc.err)
			}
			continue
		}
		if err != nil || h.Wire != tc.wire {
			t.Errorf("%s: wire %d, %v; want %d", tc.line, h.Wire, err, tc.wire)
		}
	}
}

// TestOfferedWire: a loader is offered the framed wire (FERRY_WIRE)
// unless Config.HTTPOnly (--app-wire http1), and the process has the wire
// it then chose.
func TestOfferedWire(t *testing.T) {
	for _, httpOnly := range []bool{false, true} {
		sp := spawner(t, `if [ -n "$FERRY_WIRE" ]; then w=1; else w=0; fi; `+
			`echo "{\"status\":\"ready\",\"socket\":\"x\",\"concurrency\":1,\"wire\":$w}" >&3; exec 3>&-; exec sleep 600`, 10*time.Second)
		sp.cfg.HTTPOnly = httpOnly
		p, err := sp.Spawn(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		want := 1
		if httpOnly {
			want = 0
		}
		if p.Wire() != want {
			t.Errorf("HTTPOnly %v: wire %d, want %d", httpOnly, p.Wire(), want)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		p.Stop(ctx)
		cancel()
	}
}
