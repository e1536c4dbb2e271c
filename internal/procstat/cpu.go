package procstat

import (
	"errors"
	"os"
	"sync"
	"time"
)

// CPUPercent returns the CPU the process used between prev and cur, taken
// elapsed apart, as a percentage of one CPU: a process keeping four cores
// busy shows 400, as in top.
//
// It is 0 when elapsed is not positive, when the samples are not of the same
// process (another PID, or the same PID with another StartTime: reused), or
// when CPU time went backwards. CPU time advances in 10ms ticks, so over
// intervals much shorter than a second the result is coarse.
func CPUPercent(prev, cur Sample, elapsed time.Duration) float64 {
	if elapsed <= 0 || prev.PID != cur.PID || !prev.StartTime.Equal(cur.StartTime) {
		return 0
	}
	used := cur.CPUTime - prev.CPUTime
	if used <= 0 {
		return 0
	}
	return 100 * used.Seconds() / elapsed.Seconds()
}

// Tracker remembers the last sample it read of each pid, so that Read can
// return the CPU percentage since then. The zero value is ready to use, and
// it is safe for concurrent use.
//
// Entries live until Read finds the pid gone or the caller calls Forget;
// a caller tracking processes that leave its view without Read noticing
// (the pool removing a process it reaped) must Forget them.
type Tracker struct {
	mu   sync.Mutex
	last map[int]reading

	// Test seams: nil means the package's Read and time.Now.
	read func(pid int) (Sample, error)
	now  func() time.Time
}

type reading struct {
	sample Sample
	at     time.Time
}

// Read reads process pid and returns its CPU percentage (see [CPUPercent])
// since the previous Read of the same pid. The first Read of a pid, or of a
// pid since reused by another process, returns 0: there is no interval yet.
// An error wrapping os.ErrNotExist means the process is gone; the tracker
// has then forgotten it.
func (t *Tracker) Read(pid int) (Sample, float64, error) {
	read, now := Read, time.Now
	if t.read != nil {
		read = t.read
	}
	if t.now != nil {
		now = t.now
	}

	// /proc is read outside the lock: smaps_rollup walks the page tables of
	// the process, which takes milliseconds for a large one.
	s, err := read(pid)
	at := now()
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			t.Forget(pid)
		}
		return Sample{}, 0, err
	}

	t.mu.Lock()
	defer t.mu.Unlock()
	prev, ok := t.last[pid]
	if ok && !at.After(prev.at) {
		// A concurrent Read of the same pid finished after us and stored a
		// newer sample: keep it, ours gives no interval.
		return s, 0, nil
	}
	if t.last == nil {
		t.last = make(map[int]reading)
	}
	t.last[pid] = reading{sample: s, at: at}
	if !ok {
		return s, 0, nil
	}
	return s, CPUPercent(prev.sample, s, at.Sub(prev.at)), nil
}

// Forget drops what the tracker remembers of pid.
func (t *Tracker) Forget(pid int) {
	t.mu.Lock()
	delete(t.last, pid)
	t.mu.Unlock()
}
