// Package pool owns an app's processes and who may use them: a Group per app
// holds its Processes, hands out Sessions to the least busy one, queues
// requests when all are busy, spawns more up to the maximum, stops idle ones
// down to the minimum, notices deaths at once and backs off after failed
// spawns. It knows nothing of HTTP; a Session carries an opaque slot for the
// proxy's kept-alive connections.
package pool

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"time"
)

// Proc is a running app process as the pool needs it. *spawn.Process
// implements it.
type Proc interface {
	PID() int
	Addr() net.Addr
	// Concurrency is how many requests the process serves at once; 0 means
	// any number.
	Concurrency() int
	Done() <-chan struct{}
	Stop(ctx context.Context)
	Reap()
}

// Spawner starts one process of the group's app.
type Spawner interface {
	Spawn(ctx context.Context) (Proc, error)
}

// SpawnFunc adapts a function to Spawner.
type SpawnFunc func(ctx context.Context) (Proc, error)

// Spawn calls f.
func (f SpawnFunc) Spawn(ctx context.Context) (Proc, error) { return f(ctx) }

// Config is a group's sizing and timing.
type Config struct {
	// Name of the app, for logs and status.
	Name string
	// Min processes kept running, including at boot. Default 0.
	Min int
	// Max processes. Must be ≥ 1.
	Max int
	// MaxQueue is how many requests may wait; more get ErrQueueFull.
	// 0 means unlimited.
	MaxQueue int
	// IdleTime after which an idle process above Min is stopped. 0 = never.
	IdleTime time.Duration
	// ConcurrencyCap caps the sessions of processes that take any number
	// (Concurrency 0) or more than the cap. 0 = no cap.
	ConcurrencyCap int
	// ConcurrencyTarget is the soft target of sessions per process for
	// processes without a fixed concurrency: when every process has at
	// least this many, another is spawned (up to Max). 0 = never.
	ConcurrencyTarget int
	// StopTimeout bounds a graceful process stop before it is killed.
	// Default 30s.
	StopTimeout time.Duration
	// BackoffBase and BackoffMax bound the wait after failed spawns, which
	// doubles from base to max. Defaults 1s and 60s.
	BackoffBase, BackoffMax time.Duration
}

// Errors a checkout can return besides a spawn error and the ctx's error.
var (
	ErrQueueFull    = errors.New("request queue is full")
	ErrShuttingDown = errors.New("app is shutting down")
)

// BackoffError is returned while the group waits before spawning again after
// a failure; it wraps the last spawn error.
type BackoffError struct {
	Err        error
	RetryAfter time.Duration
}

func (e *BackoffError) Error() string {
	return fmt.Sprintf("app failed to start; retrying in %s: %v", e.RetryAfter.Round(time.Second), e.Err)
}

func (e *BackoffError) Unwrap() error { return e.Err }

// Group is the set of processes of one app.
type Group struct {
	cfg     Config
	spawner Spawner
	log     *slog.Logger

	// ctx bounds spawns and stops started for the group; cancelled by Close.
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu       sync.Mutex
	procs    []*Process // serving or able to serve
	spawning int
	waiters  waitQueue
	closed   bool
	failures int       // consecutive failed spawns
	retryAt  time.Time // no spawn before this after failures
	lastErr  error
	retry    *time.Timer
	stats    Stats
}

// Stats are counters since the group started.
type Stats struct {
	Spawned      uint64 `json:"spawned"`
	SpawnFailed  uint64 `json:"spawn_failed"`
	Died         uint64 `json:"died"`
	QueueFull    uint64 `json:"queue_full"`
	IdleStopped  uint64 `json:"idle_stopped"`
	RequestsDone uint64 `json:"requests_done"`
}

// NewGroup returns a group that will spawn with sp. Call Start to bring up
// the minimum and begin idle management, Close to stop everything.
func NewGroup(cfg Config, sp Spawner, log *slog.Logger) *Group {
	if cfg.Max < 1 {
		cfg.Max = 1
	}
	if cfg.StopTimeout <= 0 {
		cfg.StopTimeout = 30 * time.Second
	}
	if cfg.BackoffBase <= 0 {
		cfg.BackoffBase = time.Second
	}
	if cfg.BackoffMax <= 0 {
		cfg.BackoffMax = 60 * time.Second
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Group{cfg: cfg, spawner: sp, log: log.With("app", cfg.Name), ctx: ctx, cancel: cancel}
}

// Name is the app's name.
func (g *Group) Name() string { return g.cfg.Name }

// Start spawns the minimum number of processes (in the background) and starts
// stopping idle ones.
func (g *Group) Start() {
	g.mu.Lock()
	g.maybeSpawnLocked()
	g.mu.Unlock()
	if g.cfg.IdleTime > 0 {
		g.wg.Add(1)
		go g.reapIdle()
	}
}

// Checkout returns a session on the least busy process, waiting in the queue
// when all are busy. It fails with ErrQueueFull, ErrShuttingDown, a
// *BackoffError, a spawn error, or ctx's error.
func (g *Group) Checkout(ctx context.Context) (*Session, error) {
	g.mu.Lock()
	if g.closed {
		g.mu.Unlock()
		return nil, ErrShuttingDown
	}
	if p := g.leastBusyLocked(); p != nil {
		s := p.openLocked()
		g.maybeSpawnLocked()
		g.mu.Unlock()
		return s, nil
	}
	if len(g.procs) == 0 && g.spawning == 0 && g.lastErr != nil {
		if wait := time.Until(g.retryAt); wait > 0 {
			err := &BackoffError{Err: g.lastErr, RetryAfter: wait}
			g.mu.Unlock()
			return nil, err
		}
	}
	if g.cfg.MaxQueue > 0 && g.waiters.len() >= g.cfg.MaxQueue {
		g.stats.QueueFull++
		g.mu.Unlock()
		return nil, ErrQueueFull
	}
	w := &waiter{ready: make(chan checkout, 1)}
	g.waiters.push(w)
	g.maybeSpawnLocked()
	g.mu.Unlock()

	select {
	case c := <-w.ready:
		return c.s, c.err
	case <-ctx.Done():
		g.mu.Lock()
		queued := g.waiters.remove(w)
		g.mu.Unlock()
		if !queued {
			// Handed a session as we gave up: give it back.
			if c := <-w.ready; c.s != nil {
				c.s.Release(true)
			}
		}
		return nil, ctx.Err()
	}
}

// leastBusyLocked picks the serving process with the fewest sessions that
// has room for one more; among equals, the most recently used, so that under
// light load the others go idle and can be stopped.
func (g *Group) leastBusyLocked() *Process {
	var best *Process
	for _, p := range g.procs {
		if c := g.capacity(p); c > 0 && p.sessions >= c {
			continue
		}
		select {
		case <-p.proc.Done(): // exited; watch will remove it
			continue
		default:
		}
		if best == nil || p.sessions < best.sessions ||
			(p.sessions == best.sessions && p.lastUsed.After(best.lastUsed)) {
			best = p
		}
	}
	return best
}

// capacity is how many sessions p may have at once; 0 means any number.
func (g *Group) capacity(p *Process) int {
	c := p.proc.Concurrency()
	if cap := g.cfg.ConcurrencyCap; cap > 0 && (c == 0 || c > cap) {
		return cap
	}
	return c
}

// busyLocked reports that every process of unbounded capacity is at or past
// the concurrency target: time for another.
func (g *Group) busyLocked() bool {
	if g.cfg.ConcurrencyTarget <= 0 || len(g.procs) == 0 {
		return false
	}
	for _, p := range g.procs {
		if g.capacity(p) != 0 || p.sessions < g.cfg.ConcurrencyTarget {
			return false
		}
	}
	return true
}

// maybeSpawnLocked starts a spawn when the group is below its minimum, or
// requests wait (or all processes are past the concurrency target) and it is
// below its maximum; one spawn at a time, and none while backing off.
func (g *Group) maybeSpawnLocked() {
	if g.closed || g.spawning > 0 {
		return
	}
	n := len(g.procs)
	want := n < g.cfg.Min || ((g.waiters.len() > 0 || g.busyLocked()) && n < g.cfg.Max)
	if !want {
		return
	}
	if wait := time.Until(g.retryAt); wait > 0 {
		g.scheduleRetryLocked(wait)
		return
	}
	g.spawning++
	g.wg.Add(1)
	go g.spawn()
}

func (g *Group) scheduleRetryLocked(wait time.Duration) {
	if g.retry != nil {
		return
	}
	g.retry = time.AfterFunc(wait, func() {
		g.mu.Lock()
		g.retry = nil
		g.maybeSpawnLocked()
		g.mu.Unlock()
	})
}

func (g *Group) spawn() {
	defer g.wg.Done()
	proc, err := g.spawner.Spawn(g.ctx)

	g.mu.Lock()
	defer g.mu.Unlock()
	g.spawning--
	if err != nil {
		if g.closed {
			return
		}
		g.stats.SpawnFailed++
		g.failures++
		backoff := g.cfg.BackoffBase << min(g.failures-1, 16)
		backoff = min(backoff, g.cfg.BackoffMax)
		g.retryAt = time.Now().Add(backoff)
		g.lastErr = err
		g.log.Error("spawn failed, backing off", "error", err, "failures", g.failures, "retry_in", backoff)
		if len(g.procs) == 0 {
			// Nothing will serve the waiters soon: tell them why.
			for w := g.waiters.pop(); w != nil; w = g.waiters.pop() {
				w.ready <- checkout{err: err}
			}
		}
		g.maybeSpawnLocked()
		return
	}
	if g.closed {
		g.wg.Add(1)
		go func() {
			defer g.wg.Done()
			g.stopProc(proc)
		}()
		return
	}
	g.stats.Spawned++
	g.failures = 0
	g.lastErr = nil
	g.retryAt = time.Time{}
	p := &Process{group: g, proc: proc, lastUsed: time.Now(), started: time.Now()}
	g.procs = append(g.procs, p)
	g.wg.Add(1)
	go g.watch(p)
	g.dispatchLocked()
	g.maybeSpawnLocked()
}

// dispatchLocked hands free capacity to waiting requests, oldest first.
func (g *Group) dispatchLocked() {
	for g.waiters.len() > 0 {
		p := g.leastBusyLocked()
		if p == nil {
			return
		}
		w := g.waiters.pop()
		w.ready <- checkout{s: p.openLocked()}
	}
}

// watch notices the process's exit, expected or not.
func (g *Group) watch(p *Process) {
	defer g.wg.Done()
	<-p.proc.Done()
	g.mu.Lock()
	expected := p.stopping && !p.unreachable
	g.removeLocked(p)
	if !expected && !g.closed {
		g.stats.Died++
		g.log.Warn("process exited unexpectedly", "pid", p.proc.PID(), "sessions", p.sessions)
	}
	g.maybeSpawnLocked()
	g.mu.Unlock()
	p.proc.Reap()
}

func (g *Group) removeLocked(p *Process) {
	for i, q := range g.procs {
		if q == p {
			g.procs = append(g.procs[:i], g.procs[i+1:]...)
			break
		}
	}
	p.gone = true
	p.closeIdleLocked()
}

// reapIdle stops processes idle longer than IdleTime, down to Min.
func (g *Group) reapIdle() {
	defer g.wg.Done()
	every := min(max(g.cfg.IdleTime/4, 50*time.Millisecond), 10*time.Second)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-g.ctx.Done():
			return
		case now := <-t.C:
			g.mu.Lock()
			for len(g.procs) > g.cfg.Min {
				victim := g.oldestIdleLocked(now)
				if victim == nil {
					break
				}
				g.stats.IdleStopped++
				g.log.Info("stopping idle process", "pid", victim.proc.PID(), "idle", now.Sub(victim.lastUsed).Round(time.Second))
				victim.stopping = true
				g.removeLocked(victim)
				g.wg.Add(1)
				go func() {
					defer g.wg.Done()
					g.stopProc(victim.proc)
				}()
			}
			g.mu.Unlock()
		}
	}
}

func (g *Group) oldestIdleLocked(now time.Time) *Process {
	var victim *Process
	for _, p := range g.procs {
		if p.sessions > 0 || now.Sub(p.lastUsed) < g.cfg.IdleTime {
			continue
		}
		if victim == nil || p.lastUsed.Before(victim.lastUsed) {
			victim = p
		}
	}
	return victim
}

func (g *Group) stopProc(p Proc) {
	ctx, cancel := context.WithTimeout(context.Background(), g.cfg.StopTimeout)
	defer cancel()
	p.Stop(ctx)
}

// Close stops accepting checkouts, fails queued requests, and stops every
// process (SIGTERM, then SIGKILL after ctx ends). Callers should let
// in-flight requests finish first.
func (g *Group) Close(ctx context.Context) {
	g.mu.Lock()
	if g.closed {
		g.mu.Unlock()
		return
	}
	g.closed = true
	for w := g.waiters.pop(); w != nil; w = g.waiters.pop() {
		w.ready <- checkout{err: ErrShuttingDown}
	}
	if g.retry != nil {
		g.retry.Stop()
	}
	procs := append([]*Process(nil), g.procs...)
	for _, p := range procs {
		p.stopping = true
		p.closeIdleLocked()
	}
	g.mu.Unlock()

	var wg sync.WaitGroup
	for _, p := range procs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p.proc.Stop(ctx)
		}()
	}
	wg.Wait()
	g.cancel() // ends spawns in progress and the idle reaper
	g.wg.Wait()
}

// Process is a pool member: a running process and its use.
type Process struct {
	group    *Group
	proc     Proc
	started  time.Time
	sessions int // open sessions
	served   uint64
	lastUsed time.Time
	stopping bool
	// unreachable: its socket refused a connection, so it was taken out of
	// rotation; its exit counts as a death.
	unreachable bool
	gone        bool
	idle        []io.Closer // kept-alive connections, owned by the proxy
}

func (p *Process) openLocked() *Session {
	p.sessions++
	p.lastUsed = time.Now()
	return &Session{p: p}
}

func (p *Process) closeIdleLocked() {
	for _, c := range p.idle {
		c.Close()
	}
	p.idle = nil
}

// Session is the right to send one request to one process.
type Session struct {
	p        *Process
	released bool
}

// PID of the session's process.
func (s *Session) PID() int { return s.p.proc.PID() }

// Addr of the session's process.
func (s *Session) Addr() net.Addr { return s.p.proc.Addr() }

// TakeConn returns a kept-alive connection to the process, or nil.
func (s *Session) TakeConn() io.Closer {
	g := s.p.group
	g.mu.Lock()
	defer g.mu.Unlock()
	n := len(s.p.idle)
	if n == 0 {
		return nil
	}
	c := s.p.idle[n-1]
	s.p.idle = s.p.idle[:n-1]
	return c
}

// Release ends the session. If conn is non-nil it is kept for the next
// session on this process (unless the process is gone); ok reports whether
// the request completed (it counts as served).
func (s *Session) Release(ok bool) { s.ReleaseConn(nil, ok) }

// ReleaseConn is Release that also returns a reusable connection.
func (s *Session) ReleaseConn(conn io.Closer, ok bool) {
	g := s.p.group
	g.mu.Lock()
	if s.released {
		g.mu.Unlock()
		if conn != nil {
			conn.Close()
		}
		return
	}
	s.released = true
	p := s.p
	p.sessions--
	p.lastUsed = time.Now()
	if ok {
		p.served++
		g.stats.RequestsDone++
	}
	if conn != nil {
		if p.gone || p.stopping {
			conn.Close()
		} else {
			p.idle = append(p.idle, conn)
		}
	}
	if !p.gone {
		g.dispatchLocked()
	}
	g.mu.Unlock()
}

// Unreachable ends the session and takes its process out of rotation: its
// socket could not be connected to, so it is dead or broken. It is stopped
// and, if needed, replaced.
func (s *Session) Unreachable() {
	g := s.p.group
	g.mu.Lock()
	defer g.mu.Unlock()
	if s.released {
		return
	}
	s.released = true
	p := s.p
	p.sessions--
	if p.gone || p.stopping {
		return
	}
	g.log.Warn("process unreachable, replacing it", "pid", p.proc.PID())
	p.stopping, p.unreachable = true, true
	g.removeLocked(p)
	g.wg.Add(1)
	go func() {
		defer g.wg.Done()
		g.stopProc(p.proc)
	}()
	g.dispatchLocked()
	g.maybeSpawnLocked()
}

// checkout is what a waiting request is handed.
type checkout struct {
	s   *Session
	err error
}

type waiter struct {
	ready chan checkout
}

// waitQueue is a FIFO of waiting requests.
type waitQueue struct {
	items []*waiter
	head  int
}

func (q *waitQueue) len() int { return len(q.items) - q.head }

func (q *waitQueue) push(w *waiter) { q.items = append(q.items, w) }

func (q *waitQueue) pop() *waiter {
	if q.len() == 0 {
		return nil
	}
	w := q.items[q.head]
	q.items[q.head] = nil
	q.head++
	if q.head == len(q.items) {
		q.items, q.head = q.items[:0], 0
	}
	return w
}

// remove takes w out of the queue; false if it was no longer there.
func (q *waitQueue) remove(w *waiter) bool {
	for i := q.head; i < len(q.items); i++ {
		if q.items[i] == w {
			copy(q.items[i:], q.items[i+1:])
			q.items[len(q.items)-1] = nil
			q.items = q.items[:len(q.items)-1]
			return true
		}
	}
	return false
}
