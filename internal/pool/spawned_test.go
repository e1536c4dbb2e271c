package pool

import (
	"testing"
	"testing/synctest"
	"time"
)

// TestSpawned: a session tells when its process was spawned, so that a
// request that waited for the spawn can show it (a trace's spawn span).
func TestSpawned(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sp := &fakeSpawner{concurrency: 1, delay: 2 * time.Second}
		g := newTestGroup(t, Config{Max: 2}, sp)
		queued := time.Now()
		s, err := g.Checkout(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		begin, ready := s.Spawned()
		if begin.Before(queued) || ready.Sub(begin) != 2*time.Second {
			t.Errorf("Spawned = %v, %v; want the 2s spawn this checkout waited for (queued %v)", begin, ready, queued)
		}
		s.Release(true)
		var none *Session
		if b, r := none.Spawned(); !b.IsZero() || !r.IsZero() {
			t.Error("a nil session (a failed checkout) has spawn times")
		}
	})
}
