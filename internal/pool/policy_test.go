package pool

import (
	"slices"
	"testing"
	"time"
)

// The pool's decisions, one table each: plain values in, a decision out; no
// goroutines, no clocks, no sleeps.

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// refs is the policy's input for the processes ms.
func refs(ms []member) []*member {
	r := make([]*member, len(ms))
	for i := range ms {
		r[i] = &ms[i]
	}
	return r
}

// at is t0 plus s seconds.
func at(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }

func TestCapacityOf(t *testing.T) {
	for _, tc := range []struct{ concurrency, cap, want int }{
		{1, 0, 1},
		{0, 0, 0},  // any number
		{0, 8, 8},  // any number, capped
		{16, 8, 8}, // more than the cap
		{4, 8, 4},  // under the cap
	} {
		if got := capacityOf(tc.concurrency, tc.cap); got != tc.want {
			t.Errorf("capacityOf(%d, %d) = %d, want %d", tc.concurrency, tc.cap, got, tc.want)
		}
	}
}

func TestHasRoom(t *testing.T) {
	for _, tc := range []struct {
		name string
		m    member
		want bool
	}{
		{"idle", member{capacity: 1}, true},
		{"full", member{capacity: 1, sessions: 1}, false},
		{"unbounded", member{sessions: 100}, true},
		{"exited", member{capacity: 1, exited: true}, false},
		{"out of band", member{state: oob}, false},
		{"retiring", member{state: retiring}, false},
		{"stopping", member{state: stopping}, false},
		{"unlimited sessions do not count", member{capacity: 1, unlimited: 3}, true},
	} {
		if got := tc.m.hasRoom(); got != tc.want {
			t.Errorf("%s: hasRoom = %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestPick(t *testing.T) {
	for _, tc := range []struct {
		name  string
		ms    []member
		avoid int
		want  int
	}{
		{"none", nil, 0, -1},
		{"least busy", []member{{pid: 1, sessions: 3}, {pid: 2, sessions: 1}, {pid: 3, sessions: 2}}, 0, 1},
		{"among equals the most recently used",
			[]member{{pid: 1, lastUsed: at(1)}, {pid: 2, lastUsed: at(3)}, {pid: 3, lastUsed: at(2)}}, 0, 1},
		{"equal times: the first",
			[]member{{pid: 1, lastUsed: at(1)}, {pid: 2, lastUsed: at(1)}}, 0, 0},
		{"fewer sessions beats more recent use",
			[]member{{pid: 1, sessions: 1, lastUsed: at(9)}, {pid: 2, lastUsed: at(1)}}, 0, 1},
		{"full ones skipped",
			[]member{{pid: 1, capacity: 1, sessions: 1}, {pid: 2, capacity: 4, sessions: 3}}, 0, 1},
		{"all full", []member{{pid: 1, capacity: 1, sessions: 1}, {pid: 2, capacity: 1, sessions: 1}}, 0, -1},
		{"exited skipped", []member{{pid: 1, exited: true}, {pid: 2, sessions: 5}}, 0, 1},
		{"not serving skipped",
			[]member{{pid: 1, state: oob}, {pid: 2, state: retiring}, {pid: 3, state: stopping}, {pid: 4, sessions: 9}}, 0, 3},
		{"avoid another with room",
			[]member{{pid: 1}, {pid: 2, sessions: 2}}, 1, 1},
		{"avoid: the only one with room is taken again",
			[]member{{pid: 1}, {pid: 2, capacity: 1, sessions: 1}}, 1, 0},
		{"avoid an absent pid", []member{{pid: 1, sessions: 1}, {pid: 2}}, 7, 1},
	} {
		if got := pick(refs(tc.ms), tc.avoid); got != tc.want {
			t.Errorf("%s: pick = %d, want %d", tc.name, got, tc.want)
		}
	}
}

func TestFewestSessions(t *testing.T) {
	for _, tc := range []struct {
		name string
		ms   []member
		want int
	}{
		{"none", nil, -1},
		{"busy ones too", []member{{capacity: 1, sessions: 2}, {capacity: 1, sessions: 1}}, 1},
		{"only serving", []member{{state: oob}, {state: retiring}, {sessions: 7}}, 2},
		{"none serving", []member{{state: stopping}}, -1},
		{"equals: the first", []member{{sessions: 1}, {sessions: 1}}, 0},
	} {
		if got := fewestSessions(refs(tc.ms)); got != tc.want {
			t.Errorf("%s: fewestSessions = %d, want %d", tc.name, got, tc.want)
		}
	}
}

func TestPastTarget(t *testing.T) {
	for _, tc := range []struct {
		name   string
		ms     []member
		target int
		want   bool
	}{
		{"no target", []member{{sessions: 100}}, 0, false},
		{"no process", nil, 4, false},
		{"all at it", []member{{sessions: 4}, {sessions: 5}}, 4, true},
		{"one under", []member{{sessions: 4}, {sessions: 3}}, 4, false},
		{"bounded capacity never", []member{{capacity: 8, sessions: 8}}, 4, false},
		{"leaving ones do not count", []member{{sessions: 4}, {state: retiring}, {state: oob}}, 4, true},
		{"only leaving ones", []member{{state: retiring, sessions: 9}}, 4, false},
	} {
		if got := pastTarget(refs(tc.ms), tc.target); got != tc.want {
			t.Errorf("%s: pastTarget = %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestCounted(t *testing.T) {
	ms := []member{{state: serving}, {state: oob}, {state: retiring}, {state: stopping}, {state: gone}}
	if got := counted(refs(ms)); got != 2 {
		t.Fatalf("counted = %d, want 2 (serving and out-of-band only)", got)
	}
}

func TestNeedSpawn(t *testing.T) {
	for _, tc := range []struct {
		name string
		s    sizing
		want bool
	}{
		{"below min", sizing{count: 0, min: 1, max: 2}, true},
		{"at min, nothing waits", sizing{count: 1, min: 1, max: 2}, false},
		{"requests wait", sizing{count: 1, min: 0, max: 2, waiting: 1}, true},
		{"requests wait at max", sizing{count: 2, max: 2, waiting: 5}, false},
		{"past the concurrency target", sizing{count: 1, max: 2, busy: true}, true},
		{"past the target at max", sizing{count: 2, max: 2, busy: true}, false},
		{"one spawn at a time", sizing{count: 0, min: 2, max: 2, spawning: 1}, false},
		{"closed", sizing{closed: true, count: 0, min: 1, max: 1, waiting: 1}, false},
		{"min above max still restores min", sizing{count: 1, min: 3, max: 1}, true},
	} {
		if got := needSpawn(tc.s); got != tc.want {
			t.Errorf("%s: needSpawn(%+v) = %v, want %v", tc.name, tc.s, got, tc.want)
		}
	}
}

func TestBackoff(t *testing.T) {
	s := time.Second
	for _, tc := range []struct {
		failures  int
		base, max time.Duration
		want      time.Duration
	}{
		{1, s, 60 * s, s},
		{2, s, 60 * s, 2 * s},
		{3, s, 60 * s, 4 * s},
		{6, s, 60 * s, 32 * s},
		{7, s, 60 * s, 60 * s}, // capped
		{3, s, 4 * s, 4 * s},
		{4, s, 4 * s, 4 * s},
		{1000, s, 60 * s, 60 * s}, // the shift is bounded: no overflow
		{1000, time.Millisecond, time.Hour, 65536 * time.Millisecond}, // base × 2^16 at most
	} {
		if got := backoff(tc.failures, tc.base, tc.max); got != tc.want {
			t.Errorf("backoff(%d, %s, %s) = %s, want %s", tc.failures, tc.base, tc.max, got, tc.want)
		}
	}
}

func TestSpawnDelay(t *testing.T) {
	for _, tc := range []struct {
		now, retryAt time.Time
		want         time.Duration
	}{
		{at(0), time.Time{}, 0}, // never failed
		{at(5), at(3), 0},       // back-off over
		{at(3), at(3), 0},
		{at(1), at(3), 2 * time.Second},
	} {
		if got := spawnDelay(tc.now, tc.retryAt); got != tc.want {
			t.Errorf("spawnDelay(%v, %v) = %s, want %s", tc.now, tc.retryAt, got, tc.want)
		}
	}
}

func TestBackoffRefusal(t *testing.T) {
	for _, tc := range []struct {
		name            string
		count, spawning int
		now, retryAt    time.Time
		want            time.Duration
		refuse          bool
	}{
		{"nothing serves, backing off", 0, 0, at(0), at(3), 3 * time.Second, true},
		{"back-off over: queue for the spawn", 0, 0, at(4), at(3), 0, false},
		{"a process serves: queue for it", 1, 0, at(0), at(3), 0, false},
		{"a spawn is under way: queue for it", 0, 1, at(0), at(3), 0, false},
	} {
		wait, refuse := backoffRefusal(tc.count, tc.spawning, tc.now, tc.retryAt)
		if wait != tc.want || refuse != tc.refuse {
			t.Errorf("%s: backoffRefusal = %s, %v; want %s, %v", tc.name, wait, refuse, tc.want, tc.refuse)
		}
	}
}

func TestRequestLimit(t *testing.T) {
	for _, tc := range []struct{ max, draw, want uint64 }{
		{0, 0, 0},
		{0, 5, 0}, // no limit: no jitter either
		{100, 0, 100},
		{100, 7, 107},
	} {
		if got := requestLimit(tc.max, tc.draw); got != tc.want {
			t.Errorf("requestLimit(%d, %d) = %d, want %d", tc.max, tc.draw, got, tc.want)
		}
	}
}

func TestUsedUp(t *testing.T) {
	for _, tc := range []struct {
		served, limit uint64
		want          bool
	}{
		{0, 0, false},
		{1 << 40, 0, false}, // no limit
		{99, 100, false},
		{100, 100, true},
		{101, 100, true},
	} {
		if got := usedUp(tc.served, tc.limit); got != tc.want {
			t.Errorf("usedUp(%d, %d) = %v, want %v", tc.served, tc.limit, got, tc.want)
		}
	}
}

func TestMayRecycle(t *testing.T) {
	for _, tc := range []struct {
		name      string
		closed    bool
		recycling int
		chosen    bool
		s         state
		want      bool
	}{
		{"serving", false, 0, false, serving, true},
		{"another recycles", false, 1, false, serving, false},
		{"already chosen", false, 0, true, serving, false},
		{"closed", true, 0, false, serving, false},
		{"out of band", false, 0, false, oob, false},
		{"retiring", false, 0, false, retiring, false},
	} {
		if got := mayRecycle(tc.closed, tc.recycling, tc.chosen, tc.s); got != tc.want {
			t.Errorf("%s: mayRecycle = %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestMemoryVictim(t *testing.T) {
	const mib = 1 << 20
	for _, tc := range []struct {
		name  string
		mem   []int64
		limit int64
		want  int
	}{
		{"none", nil, 100 * mib, -1},
		{"all under", []int64{50 * mib, 99 * mib}, 100 * mib, -1},
		{"at the limit is not over", []int64{100 * mib}, 100 * mib, -1},
		{"the one over", []int64{50 * mib, 101 * mib}, 100 * mib, 1},
		{"the largest over", []int64{150 * mib, 300 * mib, 200 * mib}, 100 * mib, 1},
		{"equals: the first", []int64{200 * mib, 200 * mib}, 100 * mib, 0},
		{"unreadable (0) never", []int64{0, 0}, 100 * mib, -1},
	} {
		if got := memoryVictim(tc.mem, tc.limit); got != tc.want {
			t.Errorf("%s: memoryVictim = %d, want %d", tc.name, got, tc.want)
		}
	}
}

func TestIdleVictims(t *testing.T) {
	idle := 10 * time.Second
	now := at(100)
	for _, tc := range []struct {
		name  string
		ms    []member
		floor int
		want  []int
	}{
		{"none", nil, 0, nil},
		{"the idle ones, longest idle first",
			[]member{{lastUsed: at(80)}, {lastUsed: at(50)}, {lastUsed: at(95)}}, 0, []int{1, 0}},
		{"exactly idle long enough", []member{{lastUsed: at(90)}}, 0, []int{0}},
		{"down to the minimum",
			[]member{{lastUsed: at(10)}, {lastUsed: at(20)}, {lastUsed: at(30)}}, 1, []int{0, 1}},
		{"at the minimum", []member{{lastUsed: at(10)}}, 1, nil},
		{"busy ones stay",
			[]member{{lastUsed: at(10), sessions: 1}, {lastUsed: at(10), unlimited: 1}}, 0, nil},
		{"only serving ones; others still count toward the minimum",
			[]member{{state: oob, lastUsed: at(10)}, {lastUsed: at(10)}, {state: retiring, lastUsed: at(10)}}, 1, []int{1}},
		{"equals: in order", []member{{lastUsed: at(10)}, {lastUsed: at(10)}}, 0, []int{0, 1}},
	} {
		if got := idleVictims(refs(tc.ms), now, idle, tc.floor); !slices.Equal(got, tc.want) {
			t.Errorf("%s: idleVictims = %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestOOBNext(t *testing.T) {
	for _, tc := range []struct {
		name string
		ms   []member
		want int
	}{
		{"none asked", []member{{}, {}}, -1},
		{"the first that asked", []member{{}, {oobPending: true}, {oobPending: true}}, 1},
		{"one waiting for its sessions: no other", []member{{oobPending: true}, {state: oob, sessions: 1}}, -1},
		{"one working: no other", []member{{oobPending: true}, {state: oob, oobRunning: true}}, -1},
		{"one idle in oob: its turn", []member{{oobPending: true}, {state: oob}}, 1},
		{"leaving ones do not ask", []member{{state: retiring, oobPending: true}}, -1},
	} {
		if got := oobNext(refs(tc.ms)); got != tc.want {
			t.Errorf("%s: oobNext = %d, want %d", tc.name, got, tc.want)
		}
	}
}

func TestOnFailure(t *testing.T) {
	for _, tc := range []struct {
		name          string
		dying         bool
		connect       bool
		failures, max int
		want          failure
	}{
		{"exiting", true, false, 0, 3, exited},
		{"exiting, connect failed", true, true, 1, 3, exited},
		{"dropped connection", false, false, 0, 3, keep},
		{"dropped: the connect count does not matter", false, false, 5, 3, keep},
		{"a connect failed", false, true, 1, 3, keep},
		{"connects keep failing", false, true, 3, 3, unreachable},
		{"one allowed", false, true, 1, 1, unreachable},
	} {
		if got := onFailure(tc.dying, tc.connect, tc.failures, tc.max); got != tc.want {
			t.Errorf("%s: onFailure = %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestEventKindString(t *testing.T) {
	for k, want := range map[EventKind]string{
		EventProcessAttached:        "process_attached",
		EventProcessDetached:        "process_detached",
		EventSpawnFailed:            "spawn_failed",
		EventQueueFull:              "queue_full",
		EventRestarted:              "restarted",
		EventRollingRestartFinished: "rolling_restart_finished",
		EventRollingRestartFailed:   "rolling_restart_failed",
		0:                           "unknown",
		99:                          "unknown",
	} {
		if got := k.String(); got != want {
			t.Errorf("EventKind(%d) = %q, want %q", int(k), got, want)
		}
	}
}
