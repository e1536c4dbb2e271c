package pool

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// TestEventsInOrder: every event reaches Config.Events, in the order it
// happened, and the callback may call back into the group (it is never
// called under the group's lock).
func TestEventsInOrder(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var mu sync.Mutex
		var got []string
		var g *Group
		boom := errors.New("boom")
		sp := &fakeSpawner{concurrency: 1, fail: boom}
		g = NewGroup(Config{Name: "app", Min: 1, Max: 1, MaxQueue: 1, BackoffBase: time.Second, Events: func(e Event) {
			g.Status() // would deadlock if called under the lock
			mu.Lock()
			defer mu.Unlock()
			s := e.Kind.String()
			if e.PID != 0 {
				s += " " + string(rune('0'+e.PID-100))
			}
			if e.Err != nil {
				s += " " + e.Err.Error()
			}
			got = append(got, s)
		}}, sp, slog.New(slog.NewTextHandler(io.Discard, nil)))
		t.Cleanup(func() { g.Close(context.Background()) })
		g.Start()
		synctest.Wait()
		sp.mu.Lock()
		sp.fail = nil
		sp.mu.Unlock()
		time.Sleep(2 * time.Second) // the retry after the back-off
		synctest.Wait()
		s, err := g.Checkout(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		w := checkoutAsync(t.Context(), g) // waits: the queue's one place
		synctest.Wait()
		if _, err := g.Checkout(t.Context()); !errors.Is(err, ErrQueueFull) {
			t.Fatalf("third checkout: %v, want ErrQueueFull", err)
		}
		s.Release(true)
		(<-w).s.Release(true)
		sp.proc(0).die()
		synctest.Wait()
		r, err := g.Restart(false)
		if err != nil {
			t.Fatal(err)
		}
		if err := r.Wait(t.Context()); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		mu.Lock()
		defer mu.Unlock()
		want := []string{"spawn_failed boom", "process_attached 1", "queue_full", "process_detached 1", "process_attached 2"}
		if len(got) != len(want)+3 || !slices.Equal(got[:len(want)], want) {
			t.Fatalf("events:\n got %q\nwant %q and then the restart's three", got, want)
		}
		// The restart's three come from three goroutines (the spawn, the
		// old process's watcher, the restart): each once, in any order.
		rest := slices.Sorted(slices.Values(got[len(want):]))
		if !slices.Equal(rest, []string{"process_attached 3", "process_detached 2", "restarted"}) {
			t.Fatalf("the restart's events: %q", got[len(want):])
		}
	})
}
