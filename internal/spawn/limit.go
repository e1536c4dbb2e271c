package spawn

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// Limit caps the processes of several spawners together
// (--max-processes-total), so that one app growing to its --max-pool-size
// cannot leave the others without processes. Each spawner has a reserve
// (its --min-instances) that it may always fill; past its reserve, a spawn
// is allowed only while the processes of all spawners, plus the reserves
// others have not filled yet, stay under the total. A spawn that is not
// allowed waits for a process to exit, up to the start timeout. Preloaders
// do not count: only the processes that serve requests do.
type Limit struct {
	mu      sync.Mutex
	total   int
	used    int
	members map[*Spawner]*member
	freed   chan struct{} // closed and replaced whenever a slot frees
}

type member struct {
	reserve, live int
	left          bool
}

// NewLimit returns a cap of total processes.
func NewLimit(total int) *Limit {
	return &Limit{total: total, members: map[*Spawner]*member{}, freed: make(chan struct{})}
}

var shared struct {
	sync.Mutex
	l *Limit
}

// SharedLimit is the one Limit of this core (there is one core per
// process, as there is one lifeline), created with total on first use; nil
// when total is 0, i.e. no cap.
func SharedLimit(total int) *Limit {
	if total <= 0 {
		return nil
	}
	shared.Lock()
	defer shared.Unlock()
	if shared.l == nil {
		shared.l = NewLimit(total)
	}
	return shared.l
}

func (l *Limit) join(s *Spawner, reserve int) {
	l.mu.Lock()
	l.members[s] = &member{reserve: reserve}
	l.mu.Unlock()
}

// leave stops counting s's reserve; its processes count until they exit.
func (l *Limit) leave(s *Spawner) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if m := l.members[s]; m != nil {
		m.left = true
		if m.live == 0 {
			delete(l.members, s)
		}
		l.wakeLocked()
	}
}

func (l *Limit) wakeLocked() {
	close(l.freed)
	l.freed = make(chan struct{})
}

// allowedLocked reports whether s may start one more process.
func (l *Limit) allowedLocked(s *Spawner) bool {
	m := l.members[s]
	if m.live < m.reserve {
		return true
	}
	owed := 0
	for o, om := range l.members {
		if o != s && !om.left && om.live < om.reserve {
			owed += om.reserve - om.live
		}
	}
	return l.used+owed < l.total
}

// acquire takes a slot for one process of s, waiting up to wait for one to
// free. release gives it back; call it once, when the process has exited
// (or failed to start).
func (l *Limit) acquire(ctx context.Context, s *Spawner, wait time.Duration) (release func(), err error) {
	timer := time.NewTimer(wait)
	defer timer.Stop()
	logged := false
	for {
		l.mu.Lock()
		if l.allowedLocked(s) {
			l.used++
			l.members[s].live++
			l.mu.Unlock()
			var once sync.Once
			return func() { once.Do(func() { l.release(s) }) }, nil
		}
		freed := l.freed
		l.mu.Unlock()
		if !logged {
			s.log.Warn("waiting for a process slot: --max-processes-total reached", "app", s.cfg.App, "max_processes_total", l.total)
			logged = true
		}
		select {
		case <-freed:
		case <-timer.C:
			return nil, &Error{App: s.cfg.App, Summary: fmt.Sprintf(
				"no process slot freed within %s: the apps together run --max-processes-total (%d) processes", wait, l.total)}
		case <-ctx.Done():
			return nil, &Error{App: s.cfg.App, Summary: "start-up cancelled", Err: ctx.Err()}
		}
	}
}

func (l *Limit) release(s *Spawner) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.used--
	if m := l.members[s]; m != nil {
		m.live--
		if m.left && m.live == 0 {
			delete(l.members, s)
		}
	}
	l.wakeLocked()
}
