package server

import (
	"bufio"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ferry-server/ferry/internal/pool"
	"github.com/ferry-server/ferry/internal/proxy"
	"github.com/ferry-server/ferry/internal/testsock"
	"github.com/ferry-server/ferry/internal/turbocache"
)

// clock is a turbocache clock the test moves.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// staleHandler is a handler whose app answers resp once, then cannot be
// reached: its socket is gone and no new process starts.
func staleHandler(t *testing.T, resp string, grace time.Duration) (*Handler, *clock, func()) {
	var broken atomic.Bool
	path := testsock.Serve(t, func(c net.Conn) {
		if broken.Load() {
			return // closes the connection without a byte of answer
		}
		br := bufio.NewReader(c)
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				return
			}
			if line == "\r\n" {
				break
			}
		}
		io.WriteString(c, resp) // with Connection: close
	})
	p := &benchProc{addr: &net.UnixAddr{Name: path, Net: "unix"}, done: make(chan struct{})}
	var spawns atomic.Int32
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	g := pool.NewGroup(pool.Config{Name: "stale", Min: 1, Max: 1}, pool.SpawnFunc(func(context.Context) (pool.Proc, error) {
		if spawns.Add(1) == 1 {
			return p, nil
		}
		return nil, errors.New("the app does not start")
	}), log)
	g.Start()
	t.Cleanup(func() { g.Close(context.Background()) })
	clk := &clock{t: time.Now()}
	app := &App{Name: "stale", Group: g, Transport: &proxy.Transport{},
		Cache: turbocache.New(turbocache.Options{StaleIfUnreachable: grace, Now: clk.now})}
	h := NewHandler([]*App{app}, Options{Response: proxy.ResponseOptions{Memory: 1 << 20, HighWatermark: 128 << 20, Dir: t.TempDir()}}, log)
	down := func() { broken.Store(true) }
	return h, clk, down
}

func get(h http.Handler) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "http://example.com/page", nil))
	return rec
}

// When the app cannot be reached, a stale entry answers in place of the
// error page: within stale-if-error, or the cache's grace; never for
// must-revalidate.
func TestCacheStaleWhenAppUnreachable(t *testing.T) {
	for _, tc := range []struct {
		name  string
		cc    string
		grace time.Duration
		stale bool
	}{
		{"stale-if-error", "max-age=1, stale-if-error=60", 0, true},
		{"grace", "max-age=1", 30 * time.Second, true},
		{"neither", "max-age=1", 0, false},
		{"must-revalidate", "max-age=1, must-revalidate, stale-if-error=60", 30 * time.Second, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp := "HTTP/1.1 200 OK\r\nCache-Control: " + tc.cc + "\r\nConnection: close\r\nContent-Length: 5\r\n\r\nfirst"
			h, clk, down := staleHandler(t, resp, tc.grace)
			if rec := get(h); rec.Code != 200 || rec.Body.String() != "first" {
				t.Fatalf("first: %d %q", rec.Code, rec.Body.String())
			}
			down()
			clk.advance(10 * time.Second)
			rec := get(h)
			if tc.stale && (rec.Code != 200 || rec.Body.String() != "first" || rec.Header().Get("Age") == "") {
				t.Fatalf("app unreachable: %d %q (Age %q), want the stale entry", rec.Code, rec.Body.String(), rec.Header().Get("Age"))
			}
			if !tc.stale && rec.Code < 500 {
				t.Fatalf("app unreachable: %d %q, want an error, not the stale entry", rec.Code, rec.Body.String())
			}
		})
	}
}

// A stale entry within stale-while-revalidate is served at once, and one
// background request refreshes it.
func TestCacheStaleWhileRevalidateBackground(t *testing.T) {
	resp := "HTTP/1.1 200 OK\r\nCache-Control: max-age=1, stale-while-revalidate=60\r\nConnection: close\r\nContent-Length: 5\r\n\r\nfirst"
	h, clk, _ := staleHandler(t, resp, 0)
	get(h)
	clk.advance(10 * time.Second)
	rec := get(h)
	if rec.Code != 200 || rec.Body.String() != "first" || rec.Header().Get("Age") != "10" {
		t.Fatalf("within stale-while-revalidate: %d %q Age %q", rec.Code, rec.Body.String(), rec.Header().Get("Age"))
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		rec = get(h)
		if rec.Header().Get("Age") == "0" {
			break // the background revalidation stored a new response
		}
		if time.Now().After(deadline) {
			t.Fatalf("no background revalidation: Age %q", rec.Header().Get("Age"))
		}
		time.Sleep(10 * time.Millisecond)
	}
}
