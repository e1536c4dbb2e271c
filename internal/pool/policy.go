package pool

import (
	"slices"
	"time"
)

// The pool's decisions, apart from its mechanism: every function here takes
// plain values (what the group knows of its processes, counts, limits, the
// time) and returns a decision; none locks, starts goroutines, reads a clock
// or draws a random number, and none changes its inputs. Group gathers the
// inputs under its lock and applies the outcome. policy_test.go holds each
// to a table.
//
// Processes are given as []*member, each the member of a Process (so the
// hot path copies nothing); a decision about them is an index into it.

// member is what the policy sees of one process.
type member struct {
	pid       int
	state     state
	sessions  int // open sessions
	unlimited int // open unlimited sessions (not counted in sessions)
	// capacity is how many sessions it may have at once; 0 means any number.
	capacity int
	lastUsed time.Time
	// oobPending: the app asked for out-of-band work after a response;
	// oobRunning: the work is under way.
	oobPending, oobRunning bool
	// exited: its process has exited, though the watcher may not have
	// removed it yet (Group notes it when a pick lands on it).
	exited bool
}

// capacityOf is how many sessions a process of the given concurrency (0:
// any number) may have at once under a cap (0: none).
func capacityOf(concurrency, cap int) int {
	if cap > 0 && (concurrency == 0 || concurrency > cap) {
		return cap
	}
	return concurrency
}

// hasRoom reports that m may take one more session now.
func (m *member) hasRoom() bool {
	return m.state == serving && !m.exited && (m.capacity == 0 || m.sessions < m.capacity)
}

// counts reports that a process in state s counts toward the group's
// minimum and maximum: serving, or coming back from out-of-band work; not
// on its way out.
func counts(s state) bool { return s == serving || s == oob }

// counted is how many of ms count toward the minimum and maximum.
func counted(ms []*member) int {
	n := 0
	for i := range ms {
		if counts(ms[i].state) {
			n++
		}
	}
	return n
}

// leastBusy is the index of the serving process with room that has the
// fewest sessions, skipping the one of pid skip (0: none); among equals the
// most recently used, so that under light load the others go idle and can
// be stopped. -1 if none has room.
func leastBusy(ms []*member, skip int) int {
	best := -1
	for i := range ms {
		m := ms[i]
		if (skip != 0 && m.pid == skip) || !m.hasRoom() {
			continue
		}
		if best < 0 || m.sessions < ms[best].sessions ||
			(m.sessions == ms[best].sessions && m.lastUsed.After(ms[best].lastUsed)) {
			best = i
		}
	}
	return best
}

// pick is where a checkout without a wanted (sticky) process goes: the
// least busy process with room, another than pid avoid (the one a retry
// just failed on) if one has room, else that one. -1: none has room.
func pick(ms []*member, avoid int) int {
	i := leastBusy(ms, avoid)
	if i < 0 && avoid != 0 {
		i = leastBusy(ms, 0)
	}
	return i
}

// fewestSessions is where an unlimited session goes without a wanted
// process: the serving process with the fewest sessions, busy or not; -1
// if none serves.
func fewestSessions(ms []*member) int {
	best := -1
	for i := range ms {
		if ms[i].state != serving {
			continue
		}
		if best < 0 || ms[i].sessions < ms[best].sessions {
			best = i
		}
	}
	return best
}

// pastTarget reports that every serving process of unbounded capacity has
// at least target sessions (and there is one), and none of bounded
// capacity serves: time for another process. target 0: never.
func pastTarget(ms []*member, target int) bool {
	if target <= 0 {
		return false
	}
	any := false
	for i := range ms {
		m := ms[i]
		if m.state != serving {
			continue
		}
		if m.capacity != 0 || m.sessions < target {
			return false
		}
		any = true
	}
	return any
}

// sizing is what decides whether the group grows.
type sizing struct {
	closed   bool
	spawning int // spawns under way (or held off by a restart)
	count    int // processes that count (see counts)
	min, max int
	waiting  int  // queued requests
	busy     bool // pastTarget
}

// needSpawn reports that the group should start a spawn: it is below its
// minimum, or requests wait (or every process is past the concurrency
// target) and it is below its maximum. One spawn at a time; none once
// closed. Whether a back-off allows it now is spawnDelay's answer.
func needSpawn(s sizing) bool {
	if s.closed || s.spawning > 0 {
		return false
	}
	return s.count < s.min || ((s.waiting > 0 || s.busy) && s.count < s.max)
}

// backoff is the wait before the next spawn after failures failed spawns
// in a row (≥ 1): base, doubling with each failure, at most max.
func backoff(failures int, base, max time.Duration) time.Duration {
	return min(base<<min(failures-1, 16), max)
}

// spawnDelay is how long a wanted spawn must still wait for the back-off
// that ends at retryAt (zero: none); 0 when it may start now.
func spawnDelay(now, retryAt time.Time) time.Duration {
	return max(retryAt.Sub(now), 0)
}

// backoffRefusal reports whether a checkout that found no process with room,
// after the last spawn failed, fails at once with that spawn's error rather
// than queueing, and the wait it tells the client: when nothing serves,
// nothing is being spawned and the back-off still runs. Queueing would
// only wait for a spawn that will not come before then.
func backoffRefusal(count, spawning int, now, retryAt time.Time) (time.Duration, bool) {
	if count > 0 || spawning > 0 {
		return 0, false
	}
	wait := spawnDelay(now, retryAt)
	return wait, wait > 0
}

// requestLimit is after how many served requests a process is recycled:
// max plus draw, a random 0..jitter drawn for it, so that processes do not
// all recycle at once. 0: never.
func requestLimit(max, draw uint64) uint64 {
	if max == 0 {
		return 0
	}
	return max + draw
}

// usedUp reports that a process that served served requests has reached
// its limit (0: none) and is to be recycled.
func usedUp(served, limit uint64) bool { return limit > 0 && served >= limit }

// mayRecycle reports that a process may be recycled for its health now:
// one per group at a time (recycling counts those under way), so recycling
// never takes the whole pool down; only a serving process not already
// chosen.
func mayRecycle(closed bool, recycling int, chosen bool, s state) bool {
	return !closed && recycling == 0 && !chosen && s == serving
}

// memoryVictim is which process to recycle for its memory: the largest one
// over limit. mem holds each candidate's own memory in bytes (0 when it
// could not be read). -1: none is over.
func memoryVictim(mem []int64, limit int64) int {
	worst := -1
	for i, m := range mem {
		if m > limit && (worst < 0 || m > mem[worst]) {
			worst = i
		}
	}
	return worst
}

// idleVictims are the processes to stop for idleness at now: serving with
// no session of any kind, unused for at least idle; the longest idle
// first, as many as keep the count above floor (the minimum).
func idleVictims(ms []*member, now time.Time, idle time.Duration, floor int) []int {
	n := counted(ms) - floor
	if n <= 0 {
		return nil
	}
	var idx []int
	for i := range ms {
		m := ms[i]
		if m.state == serving && m.sessions == 0 && m.unlimited == 0 && now.Sub(m.lastUsed) >= idle {
			idx = append(idx, i)
		}
	}
	slices.SortStableFunc(idx, func(a, b int) int { return ms[a].lastUsed.Compare(ms[b].lastUsed) })
	return idx[:min(n, len(idx))]
}

// oobNext is which process goes to out-of-band work next: -1 for none. One
// process of the group at a time: while one is in state oob (waiting for
// its sessions to end or working), it is the only answer, and only when it
// is idle and not yet working; otherwise the first serving one that asked.
func oobNext(ms []*member) int {
	next := -1
	for i := range ms {
		m := ms[i]
		if m.state == oob {
			if m.oobRunning || m.sessions > 0 {
				return -1
			}
			return i
		}
		if next < 0 && m.state == serving && m.oobPending {
			next = i
		}
	}
	return next
}

// failure is what a failed connection to a process means for it.
type failure int

const (
	// keep: it stays in rotation (its connection dropped, or a connect
	// failed fewer than the allowed times in a row).
	keep failure = iota
	// exited: the kernel shows it exiting; out of rotation at once.
	exited
	// unreachable: its connects keep failing; out of rotation, replaced.
	unreachable
)

// onFailure judges a connection to a process that failed before a byte of
// answer: dying is what the kernel shows, connect that connecting failed,
// and connectFailures how many connects in a row have failed counting this
// one, of maxConnectFailures allowed. A process is dead when it is, not
// when one connection misbehaves.
func onFailure(dying, connect bool, connectFailures, maxConnectFailures int) failure {
	switch {
	case dying:
		return exited
	case connect && connectFailures >= maxConnectFailures:
		return unreachable
	}
	return keep
}
