package integration

import (
	"net/http"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// stickyCookie is the sticky cookie a response set, or "".
func stickyCookie(resp *http.Response, name string) *http.Cookie {
	for _, c := range resp.Cookies() {
		if c.Name == name {
			return c
		}
	}
	return nil
}

// TestStickySessions: a client carrying the cookie stays on its process;
// when the process dies it goes elsewhere and gets a new cookie, and the
// cookie never reveals the pid.
func TestStickySessions(t *testing.T) {
	f := startFerry(t, "../testdata/wsgi/echo", "--sticky-sessions", "--max-pool-size", "3", "--min-instances", "3",
		"--sticky-sessions-cookie-attributes", "SameSite=Strict;")
	eventually(t, "3 processes", func() bool { return len(f.pids()) == 3 })

	get := func(cookie string) (pid string, c *http.Cookie, setCookie string) {
		t.Helper()
		h := http.Header{}
		if cookie != "" {
			h.Set("Cookie", "_passenger_route="+cookie)
		}
		resp := f.request("GET", "/pid", nil, h)
		defer resp.Body.Close()
		var b strings.Builder
		buf := make([]byte, 64)
		for {
			n, err := resp.Body.Read(buf)
			b.Write(buf[:n])
			if err != nil {
				break
			}
		}
		return b.String(), stickyCookie(resp, "_passenger_route"), resp.Header.Get("Set-Cookie")
	}
	pid, c, raw := get("")
	if c == nil || c.Value == "" {
		t.Fatalf("no sticky cookie in %q", raw)
	}
	if strings.Contains(c.Value, pid) {
		t.Fatalf("cookie %q reveals pid %s", c.Value, pid)
	}
	if !strings.Contains(raw, "SameSite=Strict") {
		t.Fatalf("cookie attributes missing: %q", raw)
	}
	route := c.Value
	for range 20 {
		p, c2, _ := get(route)
		if p != pid {
			t.Fatalf("sticky request went to %s, want %s", p, pid)
		}
		if c2 == nil || c2.Value != route {
			t.Fatalf("cookie changed to %v, want %q", c2, route)
		}
	}
	n, _ := strconv.Atoi(pid)
	syscall.Kill(n, syscall.SIGKILL)
	eventually(t, "the killed process gone from the pool", func() bool {
		for _, p := range f.pids() {
			if p == n {
				return false
			}
		}
		return true
	})
	p, c3, _ := get(route)
	if p == pid {
		t.Fatalf("request went to the dead process %s", pid)
	}
	if c3 == nil || c3.Value == route || c3.Value == "" {
		t.Fatalf("no new cookie after fallback: %v", c3)
	}
}
