package pool

import (
	"context"
	"errors"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
)

// resettable counts spawner resets (a preloader being dropped).
type resettable struct {
	*fakeSpawner
	resets atomic.Int32
}

func (r *resettable) Reset(context.Context) { r.resets.Add(1) }

func gens(g *Group) map[int]int {
	out := map[int]int{}
	for _, p := range g.Status().Processes {
		out[p.Generation]++
	}
	return out
}

func TestBlockingRestartHoldsRequests(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sp := &resettable{fakeSpawner: &fakeSpawner{concurrency: 1, delay: 100 * time.Millisecond}}
		g := newTestGroup(t, Config{Min: 2, Max: 2}, sp)
		time.Sleep(time.Second)
		inflight, err := g.Checkout(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		r, err := g.Restart(false)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := g.Restart(false); !errors.Is(err, ErrRestarting) {
			t.Fatalf("second restart: %v, want ErrRestarting", err)
		}
		// A request during the restart waits for a new process, never an old one.
		w := checkoutAsync(t.Context(), g)
		c := <-w
		if c.err != nil {
			t.Fatal(c.err)
		}
		for _, p := range g.Status().Processes {
			if p.PID == c.s.PID() && p.Generation != 1 {
				t.Fatalf("request during a restart went to generation %d", p.Generation)
			}
		}
		c.s.Release(true)
		// The in-flight request finishes on its old process first.
		synctest.Wait()
		select {
		case <-r.Done():
			t.Fatal("restart finished while an old process still served a request")
		default:
		}
		inflight.Release(true)
		if err := r.Wait(t.Context()); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Second) // the minimum's second spawn
		synctest.Wait()
		if got := gens(g); got[0] != 0 || got[1] != 2 {
			t.Fatalf("generations after restart: %v, want 2 processes of generation 1", got)
		}
		if sp.resets.Load() != 1 {
			t.Fatalf("spawner reset %d times, want 1", sp.resets.Load())
		}
	})
}

func TestRollingRestartNeverShrinks(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sp := &fakeSpawner{concurrency: 1, delay: 100 * time.Millisecond}
		g := newTestGroup(t, Config{Min: 3, Max: 3}, sp)
		time.Sleep(time.Second)
		r, err := g.Restart(true)
		if err != nil {
			t.Fatal(err)
		}
		// Sample serving capacity throughout.
		least := 99
		for {
			n := 0
			for _, p := range g.Status().Processes {
				if p.State == "serving" {
					n++
				}
			}
			least = min(least, n)
			select {
			case <-r.Done():
			case <-time.After(10 * time.Millisecond):
				continue
			}
			break
		}
		if err := r.Wait(t.Context()); err != nil {
			t.Fatal(err)
		}
		if least < 3 {
			t.Fatalf("serving processes fell to %d during a rolling restart of 3", least)
		}
		synctest.Wait()
		if got := gens(g); got[1] != 3 || len(got) != 1 {
			t.Fatalf("generations after rolling restart: %v", got)
		}
	})
}

func TestRollingRestartFailureKeepsOldVersion(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sp := &fakeSpawner{concurrency: 1}
		g := newTestGroup(t, Config{Min: 2, Max: 2}, sp)
		synctest.Wait()
		before := g.Status().Processes
		sp.mu.Lock()
		sp.fail = errors.New("SyntaxError in the new version")
		sp.mu.Unlock()
		r, _ := g.Restart(true)
		err := r.Wait(t.Context())
		var de *DeployError
		if !errors.As(err, &de) {
			t.Fatalf("rolling restart of a broken version: %v, want a DeployError", err)
		}
		st := g.Status()
		if len(st.Processes) != 2 || st.Processes[0].PID != before[0].PID || st.Processes[1].PID != before[1].PID {
			t.Fatalf("old processes not kept: %+v", st.Processes)
		}
		if st.DeployError == "" {
			t.Fatal("deploy error not reported in status")
		}
		// Still serving, and no retry loop.
		s, err := g.Checkout(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		s.Release(true)
		time.Sleep(time.Minute)
		synctest.Wait()
		if n := g.Status().Stats.SpawnFailed; n != 1 {
			t.Fatalf("%d failed spawns after a failed deploy, want 1 (no retry loop)", n)
		}
	})
}

func TestMaxRequestsRecyclesOneAtATime(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sp := &fakeSpawner{concurrency: 1, delay: time.Second}
		g := newTestGroup(t, Config{Min: 2, Max: 2, MaxRequests: 3}, sp)
		time.Sleep(3 * time.Second)
		// Hold both, release both after 3 requests each: both reach the limit
		// together, but only one may be recycled at a time.
		for range 3 {
			a, _ := g.Checkout(t.Context())
			b, _ := g.Checkout(t.Context())
			a.Release(true)
			b.Release(true)
		}
		synctest.Wait()
		// One left at once and is being replaced; the other keeps serving
		// past its limit until the first is gone.
		if st := g.Status(); st.Stats.Recycled != 1 || st.Spawning != 1 || len(st.Processes) != 1 || st.Processes[0].State != "serving" {
			t.Fatalf("recycled %d spawning %d processes %+v; want 1, 1, one serving", st.Stats.Recycled, st.Spawning, st.Processes)
		}
		// Requests keep being served meanwhile.
		s, err := g.Checkout(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		s.Release(true)
		// Serving on goes on; the second recycles in its turn, at a release.
		for range 4 {
			time.Sleep(2 * time.Second)
			synctest.Wait()
			for _, p := range g.Status().Processes {
				if p.State == "serving" {
					a, _ := g.Checkout(t.Context())
					a.Release(true)
				}
			}
		}
		st := g.Status()
		if st.Stats.Recycled < 2 { // replacements may reach the limit too
			t.Fatalf("recycled %d, want both in turn", st.Stats.Recycled)
		}
		if len(st.Processes) != 2 {
			t.Fatalf("%d processes after recycling, want 2", len(st.Processes))
		}
	})
}

func TestMemoryLimitRecyclesTheBiggest(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sp := &fakeSpawner{concurrency: 1}
		var mu sync.Mutex
		mem := map[int]int64{}
		g := newTestGroup(t, Config{Min: 2, Max: 2, MemoryLimit: 100 << 20, MemoryCheckInterval: time.Second,
			Memory: func(pid int) (int64, error) {
				mu.Lock()
				defer mu.Unlock()
				return mem[pid], nil
			}}, sp)
		synctest.Wait()
		ps := g.Status().Processes
		mu.Lock()
		mem[ps[0].PID] = 150 << 20
		mem[ps[1].PID] = 50 << 20
		mu.Unlock()
		time.Sleep(1500 * time.Millisecond)
		synctest.Wait()
		st := g.Status()
		if st.Stats.Recycled != 1 || st.Stats.RecycledMem != 1 {
			t.Fatalf("recycled %d (%d for memory), want 1 (1)", st.Stats.Recycled, st.Stats.RecycledMem)
		}
		for _, p := range st.Processes {
			if p.PID == ps[1].PID && p.State != "serving" {
				t.Fatal("the process under the limit was recycled")
			}
			if p.PID == ps[0].PID {
				t.Fatal("the process over the limit is still there")
			}
		}
	})
}

func TestQueueTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sp := &fakeSpawner{concurrency: 1}
		g := newTestGroup(t, Config{Max: 1, MaxQueueTime: 5 * time.Second}, sp)
		s, _ := g.Checkout(t.Context())
		start := time.Now()
		if _, err := g.Checkout(t.Context()); !errors.Is(err, ErrQueueTimeout) {
			t.Fatalf("waiter: %v, want ErrQueueTimeout", err)
		}
		if waited := time.Since(start); waited != 5*time.Second {
			t.Fatalf("waited %s (fake clock), want the 5s queue time", waited)
		}
		if q := g.Status().Queued; q != 0 {
			t.Fatalf("queued = %d after the timeout", q)
		}
		s.Release(true)
	})
}

func TestOutOfBandWorkOneAtATime(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sp := &fakeSpawner{concurrency: 1}
		var running, most atomic.Int32
		release := make(chan struct{})
		g := newTestGroup(t, Config{Min: 2, Max: 2, OutOfBand: func(ctx context.Context, addr net.Addr) error {
			n := running.Add(1)
			for {
				m := most.Load()
				if n <= m || most.CompareAndSwap(m, n) {
					break
				}
			}
			<-release
			running.Add(-1)
			return nil
		}}, sp)
		synctest.Wait()
		a, _ := g.Checkout(t.Context())
		b, _ := g.Checkout(t.Context())
		a.OutOfBandWork()
		b.OutOfBandWork()
		a.Release(true)
		b.Release(true)
		synctest.Wait()
		if running.Load() != 1 {
			t.Fatalf("%d processes doing out-of-band work, want 1", running.Load())
		}
		// The one doing the work gets no requests; the other does.
		s, err := g.Checkout(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if st := g.Status(); st.Stats.OutOfBand != 1 {
			t.Fatalf("out_of_band_work = %d", st.Stats.OutOfBand)
		}
		s.Release(true)
		close(release)
		synctest.Wait()
		if most.Load() != 1 || g.Status().Stats.OutOfBand != 2 {
			t.Fatalf("most at once %d, total %d; want 1 and 2", most.Load(), g.Status().Stats.OutOfBand)
		}
		for _, p := range g.Status().Processes {
			if p.State != "serving" {
				t.Fatalf("process %d left in state %s", p.PID, p.State)
			}
		}
	})
}

func TestAbortKillsAndReplaces(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sp := &fakeSpawner{concurrency: 1}
		g := newTestGroup(t, Config{Min: 1, Max: 1}, sp)
		synctest.Wait()
		s, _ := g.Checkout(t.Context())
		s.Abort("request ran too long")
		synctest.Wait()
		s.Release(false)
		st := g.Status()
		if st.Stats.Died != 1 || len(st.Processes) != 1 || st.Processes[0].PID == sp.proc(0).pid {
			t.Fatalf("after abort: %+v", st)
		}
	})
}

func TestDetachAndKill(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sp := &fakeSpawner{concurrency: 1}
		g := newTestGroup(t, Config{Min: 2, Max: 2}, sp)
		synctest.Wait()
		a, b := sp.proc(0), sp.proc(1)
		if !g.Detach(a.pid) || g.Detach(999) {
			t.Fatal("Detach: want true for a member, false otherwise")
		}
		if !g.Kill(b.pid) || g.Kill(999) {
			t.Fatal("Kill: want true for a member, false otherwise")
		}
		synctest.Wait()
		st := g.Status()
		for _, p := range st.Processes {
			if p.PID == a.pid || p.PID == b.pid {
				t.Fatalf("process %d still in the pool", p.PID)
			}
		}
		if len(st.Processes) != 2 {
			t.Fatalf("%d processes after detach and kill, want the minimum 2 again", len(st.Processes))
		}
	})
}

// oneAtATime fails the test if two spawns ever run at once, and counts
// resets; each spawn takes a second.
type oneAtATime struct {
	*fakeSpawner
	t        *testing.T
	running  atomic.Int32
	resetRan atomic.Int32 // resets under way
}

func (s *oneAtATime) Spawn(ctx context.Context) (Proc, error) {
	if s.running.Add(1) > 1 || s.resetRan.Load() > 0 {
		s.t.Error("a spawn started while another spawn or the reset ran")
	}
	defer s.running.Add(-1)
	return s.fakeSpawner.Spawn(ctx)
}

func (s *oneAtATime) Reset(context.Context) {
	// A spawn of the old code under way may go on (its process is retired
	// on arrival); none may start until the reset is done.
	s.resetRan.Add(1)
	time.Sleep(100 * time.Millisecond) // a preloader taking its time to exit
	s.resetRan.Add(-1)
}

// TestRollingRestartTakesItsTurn: a rolling restart begun while a spawn is
// under way waits for it (and for the spawner's reset) before spawning
// its own, and spawns stay one at a time throughout.
func TestRollingRestartTakesItsTurn(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sp := &oneAtATime{fakeSpawner: &fakeSpawner{concurrency: 1, delay: time.Second}, t: t}
		g := newTestGroup(t, Config{Min: 2, Max: 3}, sp)
		time.Sleep(5 * time.Second)
		var held []*Session
		for range 2 {
			s, err := g.Checkout(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			held = append(held, s)
		}
		w := checkoutAsync(t.Context(), g) // both busy: a third is spawned
		synctest.Wait()
		if st := g.Status(); st.Spawning != 1 {
			t.Fatalf("spawning %d, want the third process under way", st.Spawning)
		}
		r, err := g.Restart(true)
		if err != nil {
			t.Fatal(err)
		}
		c := <-w
		if c.err != nil {
			t.Fatal(c.err)
		}
		for _, s := range append(held, c.s) {
			s.Release(true)
		}
		if err := r.Wait(t.Context()); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		if got := gens(g); got[0] != 0 || got[1] < 2 {
			t.Fatalf("generations after a rolling restart: %v, want only generation 1", got)
		}
	})
}

// TestRestartLeavesNoOldProcess: once a restart has finished, the group
// lists none of the processes it replaced: the restart waits for them to
// leave the list, not only to exit (the admin API's answer to a restart
// is followed by reads of the pool). Blocking and rolling, many times
// over, since the two used to race.
func TestRestartLeavesNoOldProcess(t *testing.T) {
	for _, rolling := range []bool{false, true} {
		sp := &fakeSpawner{concurrency: 1}
		g := newTestGroup(t, Config{Min: 1, Max: 1}, sp)
		for i := range 100 {
			for deadline := time.Now().Add(10 * time.Second); len(g.PIDs()) != 1; {
				if time.Now().After(deadline) {
					t.Fatalf("rolling=%v, restart %d: never back to one process: %v", rolling, i, g.PIDs())
				}
				time.Sleep(time.Millisecond)
			}
			old := g.PIDs()
			r, err := g.Restart(rolling)
			if err != nil {
				t.Fatal(err)
			}
			if err := r.Wait(t.Context()); err != nil {
				t.Fatal(err)
			}
			for _, pid := range g.PIDs() {
				if slices.Contains(old, pid) {
					t.Fatalf("rolling=%v, restart %d: the replaced process %d is still listed", rolling, i, pid)
				}
			}
		}
	}
}
