package pool

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
)

// fakeProc is an in-memory process: the pool's decisions are tested here;
// real processes are exercised by the integration tests.
type fakeProc struct {
	pid         int
	concurrency int
	done        chan struct{}
	once        sync.Once
	stopped     chan struct{}
	exiting     atomic.Bool // what the kernel would say: on its way out
}

func (p *fakeProc) Exiting() bool { return p.exiting.Load() }

func (p *fakeProc) PID() int              { return p.pid }
func (p *fakeProc) Addr() net.Addr        { return &net.UnixAddr{Net: "unix"} }
func (p *fakeProc) Concurrency() int      { return p.concurrency }
func (p *fakeProc) Done() <-chan struct{} { return p.done }
func (p *fakeProc) Reap()                 {}
func (p *fakeProc) Kill()                 { p.die() }
func (p *fakeProc) Abort()                { p.die() }
func (p *fakeProc) Stop(context.Context) {
	p.die()
	close(p.stopped)
}
func (p *fakeProc) die() { p.once.Do(func() { close(p.done) }) }

// fakeSpawner hands out fakeProcs, or fails while fail is set.
type fakeSpawner struct {
	mu          sync.Mutex
	next        int
	concurrency int
	fail        error
	procs       []*fakeProc
	delay       time.Duration
}

func (s *fakeSpawner) Spawn(ctx context.Context) (Proc, error) {
	if s.delay > 0 {
		select {
		case <-time.After(s.delay):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail != nil {
		return nil, s.fail
	}
	s.next++
	c := s.concurrency
	p := &fakeProc{pid: 100 + s.next, concurrency: c, done: make(chan struct{}), stopped: make(chan struct{})}
	s.procs = append(s.procs, p)
	return p, nil
}

func (s *fakeSpawner) proc(i int) *fakeProc {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.procs[i]
}

func (s *fakeSpawner) spawned() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.next
}

func newTestGroup(t *testing.T, cfg Config, sp Spawner) *Group {
	t.Helper()
	if cfg.Name == "" {
		cfg.Name = "app"
	}
	g := NewGroup(cfg, sp, slog.New(slog.NewTextHandler(io.Discard, nil)))
	g.Start()
	t.Cleanup(func() { g.Close(context.Background()) })
	return g
}

// checkoutAsync starts a checkout and returns where its result lands.
func checkoutAsync(ctx context.Context, g *Group) chan checkout {
	ch := make(chan checkout, 1)
	go func() {
		s, err := g.Checkout(ctx)
		ch <- checkout{s: s, err: err}
	}()
	return ch
}

func TestCheckoutSpawnsThenReuses(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sp := &fakeSpawner{concurrency: 1}
		g := newTestGroup(t, Config{Max: 3}, sp)
		s, err := g.Checkout(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		first := s.PID()
		s.Release(true)
		for range 5 {
			s, err := g.Checkout(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			if s.PID() != first {
				t.Fatalf("sequential checkout went to %d, want the idle %d", s.PID(), first)
			}
			s.Release(true)
		}
		if n := sp.spawned(); n != 1 {
			t.Fatalf("spawned %d processes for sequential load, want 1", n)
		}
		if st := g.Status(); st.Processes[0].Processed != 6 || st.Stats.RequestsDone != 6 {
			t.Fatalf("processed %d, requests done %d, want 6", st.Processes[0].Processed, st.Stats.RequestsDone)
		}
	})
}

func TestMinAtStart(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sp := &fakeSpawner{concurrency: 1}
		g := newTestGroup(t, Config{Min: 3, Max: 5}, sp)
		synctest.Wait()
		if n := len(g.Status().Processes); n != 3 {
			t.Fatalf("%d processes after start, want min 3", n)
		}
	})
}

func TestQueueIsFIFOAndBounded(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sp := &fakeSpawner{concurrency: 1}
		g := newTestGroup(t, Config{Max: 1, MaxQueue: 2}, sp)
		s, err := g.Checkout(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		w1 := checkoutAsync(t.Context(), g)
		synctest.Wait()
		w2 := checkoutAsync(t.Context(), g)
		synctest.Wait()
		if q := g.Status().Queued; q != 2 {
			t.Fatalf("queued = %d, want 2", q)
		}
		if _, err := g.Checkout(t.Context()); !errors.Is(err, ErrQueueFull) {
			t.Fatalf("third waiter: %v, want ErrQueueFull", err)
		}
		s.Release(true)
		synctest.Wait()
		select {
		case c := <-w1:
			if c.err != nil {
				t.Fatal(c.err)
			}
			select {
			case <-w2:
				t.Fatal("second waiter served while the only process is busy")
			default:
			}
			c.s.Release(true)
		default:
			t.Fatal("first waiter not served first")
		}
		c := <-w2
		if c.err != nil {
			t.Fatal(c.err)
		}
		c.s.Release(true)
		if g.Status().Stats.QueueFull != 1 {
			t.Errorf("queue_full = %d, want 1", g.Status().Stats.QueueFull)
		}
	})
}

func TestGrowsToMaxThenQueues(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sp := &fakeSpawner{concurrency: 1, delay: 50 * time.Millisecond}
		g := newTestGroup(t, Config{Max: 3}, sp)
		var held []chan checkout
		for range 5 {
			held = append(held, checkoutAsync(t.Context(), g))
		}
		synctest.Wait()
		time.Sleep(time.Second)
		synctest.Wait()
		st := g.Status()
		if len(st.Processes) != 3 || st.Queued != 2 || sp.spawned() != 3 {
			t.Fatalf("processes %d, queued %d, spawned %d; want 3, 2, 3", len(st.Processes), st.Queued, sp.spawned())
		}
		// Release as they are served; all five get served by the three.
		pids := map[int]int{}
		for served := 0; served < 5; {
			synctest.Wait()
			progressed := false
			for i := 0; i < len(held); i++ {
				select {
				case c := <-held[i]:
					if c.err != nil {
						t.Fatal(c.err)
					}
					pids[c.s.PID()]++
					c.s.Release(true)
					held = append(held[:i], held[i+1:]...)
					i--
					served++
					progressed = true
				default:
				}
			}
			if !progressed {
				t.Fatalf("no waiter served after releases; %d left", len(held))
			}
		}
		if len(pids) != 3 {
			t.Fatalf("served by %v, want 3 processes", pids)
		}
	})
}

func TestLeastBusyWithConcurrency(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sp := &fakeSpawner{concurrency: 4}
		g := newTestGroup(t, Config{Min: 2, Max: 2}, sp)
		synctest.Wait()
		counts := map[int]int{}
		var sessions []*Session
		for range 8 {
			s, err := g.Checkout(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			counts[s.PID()]++
			sessions = append(sessions, s)
		}
		for pid, n := range counts {
			if n != 4 {
				t.Fatalf("process %d has %d sessions, want 4 each (least busy): %v", pid, n, counts)
			}
		}
		// Both full: the ninth waits.
		w := checkoutAsync(t.Context(), g)
		synctest.Wait()
		if g.Status().Queued != 1 {
			t.Fatal("ninth session not queued with both processes at concurrency 4")
		}
		sessions[0].Release(true)
		c := <-w
		if c.err != nil || c.s.PID() != sessions[0].PID() {
			t.Fatalf("ninth got %v %v, want the process that freed a slot", c.s, c.err)
		}
	})
}

func TestSpawnFailureBacksOff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		boom := errors.New("boom")
		sp := &fakeSpawner{concurrency: 1, fail: boom}
		g := newTestGroup(t, Config{Max: 2, BackoffBase: time.Second, BackoffMax: 4 * time.Second}, sp)

		if _, err := g.Checkout(t.Context()); !errors.Is(err, boom) {
			t.Fatalf("first checkout: %v, want the spawn error", err)
		}
		var be *BackoffError
		for range 20 {
			if _, err := g.Checkout(t.Context()); !errors.As(err, &be) || !errors.Is(err, boom) {
				t.Fatalf("checkout while backing off: %v, want a BackoffError wrapping the spawn error", err)
			}
		}
		if be.RetryAfter <= 0 || be.RetryAfter > time.Second {
			t.Fatalf("retry after %s, want within the 1s back-off", be.RetryAfter)
		}
		if n := g.Status().Stats.SpawnFailed; n != 1 {
			t.Fatalf("%d spawn attempts during back-off, want 1", n)
		}

		// Back-off doubles, capped.
		for _, want := range []time.Duration{2 * time.Second, 4 * time.Second, 4 * time.Second} {
			time.Sleep(time.Until(retryAt(t, g)) + time.Millisecond)
			if _, err := g.Checkout(t.Context()); !errors.Is(err, boom) {
				t.Fatalf("checkout after back-off: %v", err)
			}
			if got := time.Until(retryAt(t, g)); got != want {
				t.Fatalf("next back-off %s, want %s", got, want)
			}
		}

		// Fixed: the next attempt after the back-off succeeds.
		sp.mu.Lock()
		sp.fail = nil
		sp.mu.Unlock()
		time.Sleep(5 * time.Second)
		s, err := g.Checkout(t.Context())
		if err != nil {
			t.Fatalf("after the app is fixed: %v", err)
		}
		s.Release(true)
		if st := g.Status(); st.LastError != "" {
			t.Fatalf("last error %q kept after a good spawn", st.LastError)
		}
	})
}

// retryAt is when the group's back-off ends, as its status tells.
func retryAt(t *testing.T, g *Group) time.Time {
	t.Helper()
	st := g.Status()
	if st.RetryAt == nil {
		t.Fatalf("no back-off in the status: %+v", st)
	}
	return *st.RetryAt
}

func TestMinIsRestoredAfterFailure(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sp := &fakeSpawner{concurrency: 1, fail: errors.New("boom")}
		g := newTestGroup(t, Config{Min: 1, Max: 2, BackoffBase: time.Second}, sp)
		synctest.Wait()
		sp.mu.Lock()
		sp.fail = nil
		sp.mu.Unlock()
		// No request comes: the retry timer alone brings up the minimum.
		time.Sleep(2 * time.Second)
		synctest.Wait()
		if n := len(g.Status().Processes); n != 1 {
			t.Fatalf("%d processes after the back-off, want min 1", n)
		}
	})
}

func TestDeathIsNoticedAndReplaced(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sp := &fakeSpawner{concurrency: 1}
		g := newTestGroup(t, Config{Min: 1, Max: 1}, sp)
		synctest.Wait()
		s, err := g.Checkout(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		sp.proc(0).die()
		synctest.Wait()
		s.Release(false) // the in-flight request failed
		st := g.Status()
		if st.Stats.Died != 1 || len(st.Processes) != 1 || st.Processes[0].PID == sp.proc(0).pid {
			t.Fatalf("after a death: died %d, processes %+v", st.Stats.Died, st.Processes)
		}
	})
}

func TestDeadProcessIsNotHandedOut(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sp := &fakeSpawner{concurrency: 1}
		g := newTestGroup(t, Config{Min: 1, Max: 1}, sp)
		synctest.Wait()
		// Dead, but the watcher has not run yet: hold the lock so it cannot.
		g.mu.Lock()
		sp.proc(0).die()
		p := g.pickLocked(nil, 0)
		g.mu.Unlock()
		if p != nil {
			t.Fatal("an exited process was picked")
		}
	})
}

// TestExitingProcessIsReplaced: a connection failure on a process the
// kernel shows exiting (its watcher has not seen the exit yet) takes it out
// of rotation at once, and it is replaced.
func TestExitingProcessIsReplaced(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sp := &fakeSpawner{concurrency: 1}
		g := newTestGroup(t, Config{Min: 1, Max: 1}, sp)
		synctest.Wait()
		s, _ := g.Checkout(t.Context())
		sp.proc(0).exiting.Store(true)
		s.Failed(false, errors.New("EOF"))
		<-sp.proc(0).stopped
		synctest.Wait()
		st := g.Status()
		if len(st.Processes) != 1 || st.Processes[0].PID == sp.proc(0).pid || st.Stats.Died != 1 {
			t.Fatalf("after a failure on an exiting process: %+v", st)
		}
	})
}

// TestFailedConnectionsKeepProcess: a live process whose connections drop
// stays in rotation, as does one whose connects fail fewer than
// MaxConnectFailures times in a row (a completed request resets the
// count); at the limit it is replaced.
func TestFailedConnectionsKeepProcess(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sp := &fakeSpawner{concurrency: 1}
		g := newTestGroup(t, Config{Min: 1, Max: 1, MaxConnectFailures: 2}, sp)
		synctest.Wait()
		fail := func(connect bool) {
			s, err := g.Checkout(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			s.Failed(connect, errors.New("boom"))
			synctest.Wait()
		}
		for range 5 {
			fail(false) // dropped connections
		}
		fail(true)
		s, _ := g.Checkout(t.Context())
		s.Release(true) // a completed request
		fail(true)
		st := g.Status()
		if len(st.Processes) != 1 || st.Processes[0].PID != sp.proc(0).pid || st.Processes[0].State != "serving" ||
			st.Stats.DroppedConnections != 5 || st.Stats.ConnectFailures != 2 {
			t.Fatalf("after dropped connections and connect failures below the limit: %+v", st)
		}
		fail(true) // the second in a row
		<-sp.proc(0).stopped
		synctest.Wait()
		st = g.Status()
		if len(st.Processes) != 1 || st.Processes[0].PID == sp.proc(0).pid || st.Stats.Died != 1 {
			t.Fatalf("after %d connect failures in a row: %+v", 2, st)
		}
	})
}

// TestCheckoutAvoids: a retry avoids the process that just failed when
// another has room, and takes it when none has.
func TestCheckoutAvoids(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sp := &fakeSpawner{concurrency: 1}
		g := newTestGroup(t, Config{Min: 2, Max: 2}, sp)
		synctest.Wait()
		a, _ := g.Checkout(t.Context())
		first := a.PID()
		a.Release(true) // the most recently used: picked first among equals
		b, _ := g.CheckoutWith(t.Context(), CheckoutOptions{Avoid: first})
		if b.PID() == first {
			t.Fatalf("handed the avoided process %d", first)
		}
		c, _ := g.CheckoutWith(t.Context(), CheckoutOptions{Avoid: first})
		if c.PID() != first {
			t.Fatalf("with no other room, got %d, want the avoided %d", c.PID(), first)
		}
	})
}

func TestIdleProcessesStopDownToMin(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sp := &fakeSpawner{concurrency: 1}
		g := newTestGroup(t, Config{Min: 1, Max: 3, IdleTime: time.Minute}, sp)
		var sessions []*Session
		for range 3 {
			w := checkoutAsync(t.Context(), g)
			synctest.Wait()
			c := <-w
			sessions = append(sessions, c.s)
		}
		for _, s := range sessions {
			s.Release(true)
		}
		time.Sleep(30 * time.Second)
		synctest.Wait()
		if n := len(g.Status().Processes); n != 3 {
			t.Fatalf("%d processes before the idle time, want 3", n)
		}
		time.Sleep(time.Minute)
		synctest.Wait()
		st := g.Status()
		if len(st.Processes) != 1 || st.Stats.IdleStopped != 2 {
			t.Fatalf("after the idle time: %d processes, %d idle-stopped; want 1, 2", len(st.Processes), st.Stats.IdleStopped)
		}
	})
}

func TestBusyProcessIsNotIdleStopped(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sp := &fakeSpawner{concurrency: 1}
		g := newTestGroup(t, Config{Min: 0, Max: 1, IdleTime: time.Second}, sp)
		s, err := g.Checkout(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Minute)
		synctest.Wait()
		if n := len(g.Status().Processes); n != 1 {
			t.Fatal("a process with a session was stopped as idle")
		}
		s.Release(true)
	})
}

func TestCancelledWaiterLeavesQueue(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sp := &fakeSpawner{concurrency: 1}
		g := newTestGroup(t, Config{Max: 1}, sp)
		s, _ := g.Checkout(t.Context())
		ctx, cancel := context.WithCancel(t.Context())
		w := checkoutAsync(ctx, g)
		synctest.Wait()
		cancel()
		c := <-w
		if !errors.Is(c.err, context.Canceled) {
			t.Fatalf("cancelled waiter: %v", c.err)
		}
		if q := g.Status().Queued; q != 0 {
			t.Fatalf("queued = %d after cancel", q)
		}
		s.Release(true)
		// The process is free again, not held by the gone waiter.
		s2, err := g.Checkout(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		s2.Release(true)
	})
}

func TestCloseFailsWaitersAndStopsProcesses(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sp := &fakeSpawner{concurrency: 1}
		g := NewGroup(Config{Name: "app", Max: 1}, sp, slog.New(slog.NewTextHandler(io.Discard, nil)))
		g.Start()
		s, _ := g.Checkout(t.Context())
		w := checkoutAsync(t.Context(), g)
		synctest.Wait()
		s.Release(true)
		c := <-w
		w2 := checkoutAsync(t.Context(), g)
		synctest.Wait()
		go g.Close(context.Background())
		if r := <-w2; !errors.Is(r.err, ErrShuttingDown) {
			t.Fatalf("waiter at close: %v", r.err)
		}
		c.s.Release(true)
		<-sp.proc(0).stopped
		if _, err := g.Checkout(t.Context()); !errors.Is(err, ErrShuttingDown) {
			t.Fatalf("checkout after close: %v", err)
		}
	})
}

func TestWaitQueue(t *testing.T) {
	var q waitQueue
	ws := []*waiter{{}, {}, {}}
	for _, w := range ws {
		q.push(w)
	}
	if !q.remove(ws[1]) || q.remove(ws[1]) {
		t.Fatal("remove: want true once, then false")
	}
	if q.pop() != ws[0] || q.pop() != ws[2] || q.pop() != nil || q.len() != 0 {
		t.Fatal("pop order wrong")
	}
}

// A queue that never drains (a saturating load: a new waiter arrives before
// the last one leaves) must not keep every waiter it ever held: its array
// follows the queue's length, not the number of requests since it was last
// empty (bench/soak-mem.sh found it holding 0.7 MB after 20 s).
func TestWaitQueueNeverDrainingStaysSmall(t *testing.T) {
	var q waitQueue
	const depth = 30 // waiters queued at any time
	var want []*waiter
	for range depth {
		w := &waiter{}
		q.push(w)
		want = append(want, w)
	}
	for i := range 100000 {
		w := &waiter{unlimited: i%3 == 0}
		q.push(w)
		want = append(want, w)
		if got := q.pop(); got != want[0] {
			t.Fatalf("after %d pushes: pop gave the wrong waiter (FIFO broken)", i)
		}
		want = want[1:]
		if q.len() != depth {
			t.Fatalf("len %d, want %d", q.len(), depth)
		}
	}
	if c := cap(q.items); c > 8*depth {
		t.Fatalf("after 100000 waiters through a queue of %d, its array holds %d slots", depth, c)
	}
	for _, w := range want {
		if q.pop() != w {
			t.Fatal("pop order wrong while draining")
		}
	}
	if q.len() != 0 || q.unlimited != 0 || q.sticky != 0 {
		t.Fatalf("drained queue: len %d, unlimited %d, sticky %d", q.len(), q.unlimited, q.sticky)
	}
}

func TestUnboundedProcessesGrowPastTarget(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sp := &fakeSpawner{concurrency: 0} // like Node: any number at once
		g := newTestGroup(t, Config{Min: 1, Max: 3, ConcurrencyTarget: 4}, sp)
		synctest.Wait()
		var sessions []*Session
		open := func(n int) {
			for range n {
				s, err := g.Checkout(t.Context())
				if err != nil {
					t.Fatal(err)
				}
				sessions = append(sessions, s)
				synctest.Wait()
			}
		}
		open(3)
		if n := len(g.Status().Processes); n != 1 {
			t.Fatalf("%d processes below the target, want 1", n)
		}
		open(1) // the only process reaches the target of 4
		if n := len(g.Status().Processes); n != 2 {
			t.Fatalf("%d processes at the target, want 2", n)
		}
		open(4) // balanced: 4 + 4, both at the target
		if n := len(g.Status().Processes); n != 3 {
			t.Fatalf("%d processes with both at the target, want 3", n)
		}
		open(20) // never past Max, never queued
		st := g.Status()
		if len(st.Processes) != 3 || st.Queued != 0 {
			t.Fatalf("processes %d queued %d, want 3 and 0", len(st.Processes), st.Queued)
		}
		for _, s := range sessions {
			s.Release(true)
		}
	})
}

func TestConcurrencyCap(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sp := &fakeSpawner{concurrency: 0}
		g := newTestGroup(t, Config{Min: 1, Max: 1, ConcurrencyCap: 2}, sp)
		synctest.Wait()
		a, _ := g.Checkout(t.Context())
		b, _ := g.Checkout(t.Context())
		w := checkoutAsync(t.Context(), g)
		synctest.Wait()
		if q := g.Status().Queued; q != 1 {
			t.Fatalf("queued %d: the cap of 2 was not applied", q)
		}
		a.Release(true)
		c := <-w
		c.s.Release(true)
		b.Release(true)
	})
}

func TestStickyRoutes(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sp := &fakeSpawner{concurrency: 1}
		g := newTestGroup(t, Config{Min: 2, Max: 2}, sp)
		synctest.Wait()
		a, _ := g.Checkout(t.Context())
		route := a.Route()
		if route == "" || strings.Contains(route, strconv.Itoa(a.PID())) {
			t.Fatalf("route %q reveals or lacks: pid %d", route, a.PID())
		}
		a.Release(true)
		// The routed process, every time, even when another is idle too.
		for range 5 {
			s, err := g.CheckoutWith(t.Context(), CheckoutOptions{Route: route})
			if err != nil || s.PID() != a.PID() {
				t.Fatalf("sticky checkout went to %d, want %d (%v)", s.PID(), a.PID(), err)
			}
			s.Release(true)
		}
		// Busy: a sticky request waits for it, while a plain one behind it
		// gets the other process at once.
		held, _ := g.CheckoutWith(t.Context(), CheckoutOptions{Route: route})
		sticky := make(chan checkout, 1)
		go func() {
			s, err := g.CheckoutWith(t.Context(), CheckoutOptions{Route: route})
			sticky <- checkout{s, err}
		}()
		synctest.Wait()
		plain, err := g.Checkout(t.Context())
		if err != nil || plain.PID() == a.PID() {
			t.Fatalf("plain checkout behind a sticky one: %v %v", plain, err)
		}
		select {
		case <-sticky:
			t.Fatal("the sticky request did not wait for its process")
		default:
		}
		held.Release(true)
		c := <-sticky
		if c.err != nil || c.s.PID() != a.PID() {
			t.Fatalf("sticky waiter got %v %v", c.s, c.err)
		}
		c.s.Release(true)
		plain.Release(true)
		// Its process gone: fall back to another.
		sp.proc(0).die()
		synctest.Wait()
		s, err := g.CheckoutWith(t.Context(), CheckoutOptions{Route: route})
		if err != nil || s.PID() == a.PID() {
			t.Fatalf("after its process died: %v %v", s, err)
		}
		s.Release(true)
	})
}

func TestUnlimitedSessions(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sp := &fakeSpawner{concurrency: 1}
		g := newTestGroup(t, Config{Min: 1, Max: 1}, sp)
		synctest.Wait()
		var ws []*Session
		for range 3 { // three long-lived WebSockets
			s, err := g.CheckoutWith(t.Context(), CheckoutOptions{Unlimited: true})
			if err != nil {
				t.Fatal(err)
			}
			ws = append(ws, s)
		}
		// A normal request still gets the process at once.
		s, err := g.Checkout(t.Context())
		if err != nil || g.Status().Queued != 0 {
			t.Fatalf("normal request with unlimited sessions open: %v", err)
		}
		s.Release(true)
		if st := g.Status().Processes[0]; st.Unlimited != 3 || st.Sessions != 0 {
			t.Fatalf("status: %+v", st)
		}
		// A restart tells the tunnels to close.
		closing := ws[0].Closing()
		g.Restart(false)
		select {
		case <-closing:
		default:
			t.Fatal("Closing not signalled when the process retires")
		}
		for _, w := range ws {
			w.Release(true)
		}
	})
}
