package health

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/ferry-server/ferry/internal/pool"
)

func procs(states ...string) []pool.ProcessStatus {
	var out []pool.ProcessStatus
	for _, s := range states {
		out = append(out, pool.ProcessStatus{State: s})
	}
	return out
}

func TestAppReady(t *testing.T) {
	tests := []struct {
		name   string
		st     pool.GroupStatus
		ready  bool
		reason string
	}{
		{"a serving process", pool.GroupStatus{Min: 1, Processes: procs("serving"), Stats: pool.Stats{Spawned: 1}}, true, ReasonServing},
		{"out-of-band work still counts", pool.GroupStatus{Min: 1, Processes: procs("out_of_band"), Stats: pool.Stats{Spawned: 1}}, true, ReasonServing},
		{"serving despite an earlier failed spawn", pool.GroupStatus{Min: 2, Processes: procs("serving"), LastError: "boom", Stats: pool.Stats{Spawned: 1}}, true, ReasonServing},
		{"only retiring processes, respawning", pool.GroupStatus{Min: 1, Processes: procs("retiring", "stopping"), Spawning: 1, Stats: pool.Stats{Spawned: 2}}, true, ReasonSpawning},
		{"first process not up yet", pool.GroupStatus{Min: 1, Spawning: 1}, false, ReasonStarting},
		{"spawn failing, nothing serves", pool.GroupStatus{Min: 1, LastError: "SyntaxError", Stats: pool.Stats{Spawned: 1}}, false, ReasonFailing},
		{"spawn failing from the start", pool.GroupStatus{Min: 1, LastError: "SyntaxError"}, false, ReasonFailing},
		{"idle with min 0: spawns on demand", pool.GroupStatus{Min: 0}, true, ReasonIdle},
		{"idle after shrinking", pool.GroupStatus{Min: 0, Stats: pool.Stats{Spawned: 3}}, true, ReasonIdle},
		{"closed pool", pool.GroupStatus{Min: 1, Processes: procs("serving"), ShuttingOff: true}, false, ReasonClosing},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := AppReady(tc.st)
			if got.Ready != tc.ready || got.Reason != tc.reason {
				t.Errorf("AppReady = %v %q, want %v %q", got.Ready, got.Reason, tc.ready, tc.reason)
			}
		})
	}
}

func TestReady(t *testing.T) {
	ok, no := AppState{Ready: true}, AppState{}
	tests := []struct {
		name                string
		listening, draining bool
		apps                []AppState
		want                bool
	}{
		{"listening, apps ready", true, false, []AppState{ok, ok}, true},
		{"not listening yet", false, false, []AppState{ok}, false},
		{"draining", true, true, []AppState{ok}, false},
		{"one app cannot serve", true, false, []AppState{ok, no}, false},
		{"no apps", true, false, nil, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := Ready(tc.listening, tc.draining, tc.apps); got != tc.want {
				t.Errorf("Ready = %v, want %v", got, tc.want)
			}
		})
	}
}

// failingGroup is a real pool whose spawns fail, as an app with a syntax
// error does.
func failingGroup(t *testing.T) (*pool.Group, <-chan struct{}) {
	failed := make(chan struct{})
	var once sync.Once
	events := func(e pool.Event) {
		if e.Kind == pool.EventSpawnFailed {
			once.Do(func() { close(failed) })
		}
	}
	g := pool.NewGroup(pool.Config{Name: "broken", Min: 1, Max: 1, BackoffBase: time.Hour, Events: events},
		pool.SpawnFunc(func(context.Context) (pool.Proc, error) { return nil, errors.New("SyntaxError") }),
		slog.New(slog.DiscardHandler))
	t.Cleanup(func() { g.Close(context.Background()) })
	return g, failed
}

func get(t *testing.T, h http.Handler, path string, v any) int {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
	body, _ := io.ReadAll(rec.Body)
	if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
		t.Errorf("%s: Content-Type %q", path, ct)
	}
	if err := json.Unmarshal(body, v); err != nil {
		t.Fatalf("%s: %v in %q", path, err, body)
	}
	return rec.Code
}

func TestProbes(t *testing.T) {
	g, failed := failingGroup(t)
	var groups []*pool.Group
	c := New(func() []*pool.Group { return groups }, "1.2.3", 0)
	defer c.Close()
	h := c.Handler()

	var rd Readiness
	if code := get(t, h, "/ready", &rd); code != 503 || rd.Listening {
		t.Errorf("before listening: /ready = %d %+v, want 503", code, rd)
	}
	c.SetListening()
	if code := get(t, h, "/ready", &rd); code != 200 || !rd.Ready {
		t.Errorf("listening, no apps: /ready = %d %+v, want 200", code, rd)
	}
	var l Liveness
	if code := get(t, h, "/health", &l); code != 200 || !l.Live || l.Version != "1.2.3" {
		t.Errorf("/health = %d %+v", code, l)
	}

	// An app whose spawns fail: not ready, but alive.
	groups = []*pool.Group{g}
	g.Start()
	<-failed
	rd = Readiness{}
	if code := get(t, h, "/ready", &rd); code != 503 || len(rd.Apps) != 1 || rd.Apps[0].Reason != ReasonFailing || rd.Apps[0].Error != "SyntaxError" {
		t.Errorf("failing app: /ready = %d %+v", code, rd)
	}
	if code := get(t, h, "/health", &l); code != 200 || !l.Live || l.Ready {
		t.Errorf("failing app: /health = %d %+v, want live and not ready", code, l)
	}

	// Draining: readiness off at once, liveness stays.
	groups = nil
	c.StartDrain()
	rd = Readiness{}
	if code := get(t, h, "/ready", &rd); code != 503 || !rd.Draining {
		t.Errorf("draining: /ready = %d %+v", code, rd)
	}
	if code := get(t, h, "/health", &l); code != 200 || !l.Live || !l.Draining {
		t.Errorf("draining: /health = %d %+v", code, l)
	}
}

// A core whose pools do not answer (a lock never released) is not live;
// every probe then answers 503 in bounded time.
func TestStuckIsNotLive(t *testing.T) {
	stuck := make(chan struct{})
	defer close(stuck)
	c := New(func() []*pool.Group { <-stuck; return nil }, "x", 50*time.Millisecond)
	defer c.Close()
	c.SetListening()
	h := c.Handler()
	for range 3 {
		var l Liveness
		if code := get(t, h, "/health", &l); code != 503 || l.Live || l.Error == "" {
			t.Errorf("/health = %d %+v, want 503", code, l)
		}
		var rd Readiness
		if code := get(t, h, "/ready", &rd); code != 503 || rd.Ready {
			t.Errorf("/ready = %d %+v, want 503", code, rd)
		}
	}
}
