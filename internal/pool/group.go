// Package pool owns an app's processes and who may use them: a Group per app
// holds its Processes, hands out Sessions to the least busy one, queues
// requests when all are busy, spawns more up to the maximum, stops idle ones
// down to the minimum, notices deaths at once, backs off after failed
// spawns, restarts (blocking or rolling), recycles processes that served too
// many requests or grew too big, and schedules out-of-band work. It knows
// nothing of HTTP; a Session carries an opaque slot for the proxy's
// kept-alive connections.
package pool

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
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
	// Stop asks the process to exit, killing it when ctx ends first.
	Stop(ctx context.Context)
	// Kill kills it at once.
	Kill()
	// Abort kills a stuck process, first asking it for a backtrace of what
	// it is stuck in (to its output) if it can give one.
	Abort()
	// Reap finishes bookkeeping after it exited on its own.
	Reap()
}

// Spawner starts one process of the group's app. A spawner that holds app
// state (a preloader) also implements Resetter.
type Spawner interface {
	Spawn(ctx context.Context) (Proc, error)
}

// Resetter drops what a spawner holds of the app's code, so that the next
// spawn loads it afresh (a restart).
type Resetter interface {
	Reset(ctx context.Context)
}

// SpawnFunc adapts a function to Spawner.
type SpawnFunc func(ctx context.Context) (Proc, error)

// Spawn calls f.
func (f SpawnFunc) Spawn(ctx context.Context) (Proc, error) { return f(ctx) }

// Config is a group's sizing, timing and health limits.
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
	// MaxQueueTime is how long a request may wait in the queue before it
	// gets ErrQueueTimeout. 0 = no limit.
	MaxQueueTime time.Duration
	// IdleTime after which an idle process above Min is stopped. 0 = never.
	IdleTime time.Duration
	// ConcurrencyCap caps the sessions of processes that take any number
	// (Concurrency 0) or more than the cap. 0 = no cap.
	ConcurrencyCap int
	// ConcurrencyTarget is the soft target of sessions per process for
	// processes without a fixed concurrency: when every process has at
	// least this many, another is spawned (up to Max). 0 = never.
	ConcurrencyTarget int
	// MaxRequests recycles a process after it served this many requests,
	// plus a random 0..MaxRequestsJitter per process so that processes do not
	// all recycle at once. 0 = never.
	MaxRequests, MaxRequestsJitter uint64
	// MemoryLimit recycles a process whose own memory (as Memory reports it)
	// exceeds this many bytes, checked every MemoryCheckInterval (default
	// 10s). 0 = no limit.
	MemoryLimit         int64
	MemoryCheckInterval time.Duration
	// Memory reports a process's own memory in bytes (e.g. PSS). Required
	// for MemoryLimit.
	Memory func(pid int) (int64, error)
	// OutOfBand does out-of-band work in a process (e.g. asks the loader to
	// collect garbage) and returns when done. Required for out-of-band work.
	OutOfBand func(ctx context.Context, addr net.Addr) error
	// MaxConnectFailures is how many connects in a row to a process may
	// fail (refused, timed out, its backlog full) before it leaves rotation
	// and is replaced; a completed request resets the count. A process
	// whose connection drops is not dead: only its exit (or the kernel
	// showing it exiting) is. Default 3.
	MaxConnectFailures int
	// StopTimeout bounds a graceful process stop before it is killed.
	// Default 30s.
	StopTimeout time.Duration
	// BackoffBase and BackoffMax bound the wait after failed spawns, which
	// doubles from base to max. Defaults 1s and 60s.
	BackoffBase, BackoffMax time.Duration
	// Events, if set, is told of lifecycle events (for hooks and metrics),
	// in order, on a goroutine of the pool's (see notifier).
	Events func(Event)
}

// Errors a checkout can return besides a spawn error and the ctx's error.
var (
	ErrQueueFull    = errors.New("request queue is full")
	ErrQueueTimeout = errors.New("request waited too long in the queue")
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

	events notifier

	mu    sync.Mutex
	procs []*Process // every process not yet gone, in any state
	// members is the policy's view of procs, index for index: each
	// process's own member (no copy on the hot path).
	members []*member
	// spawning counts spawns under way, and a restart holding spawns off
	// while the spawner resets; spawnIdle, when not nil, is closed when it
	// drops to 0 (a rolling restart waits on it for its turn).
	spawning  int
	spawnIdle chan struct{}
	waiters   waitQueue
	closed    bool
	failures  int       // consecutive failed spawns
	retryAt   time.Time // no spawn before this after failures
	lastErr   error
	retry     *time.Timer
	gen       int // current restart generation
	recycling int // processes retiring for their health, not yet gone
	restart   *Restart
	deployErr error // the last rolling restart's failure
	stats     Stats
}

// Stats are counters since the group started.
type Stats struct {
	Spawned      uint64 `json:"spawned"`
	SpawnFailed  uint64 `json:"spawn_failed"`
	Died         uint64 `json:"died"`
	QueueFull    uint64 `json:"queue_full"`
	QueueTimeout uint64 `json:"queue_timeout"`
	IdleStopped  uint64 `json:"idle_stopped"`
	Recycled     uint64 `json:"recycled"`
	Restarts     uint64 `json:"restarts"`
	OutOfBand    uint64 `json:"out_of_band_work"`
	RequestsDone uint64 `json:"requests_done"`
	// Connections to processes that failed (see Session.Failed), and
	// responses whose framing the app broke (Session.FramingError).
	ConnectFailures    uint64 `json:"connect_failures"`
	DroppedConnections uint64 `json:"dropped_connections"`
	FramingErrors      uint64 `json:"framing_errors"`
	RecycledMem        uint64 `json:"recycled_memory"` // of Recycled, those over --memory-limit
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
	if cfg.MaxConnectFailures <= 0 {
		cfg.MaxConnectFailures = 3
	}
	if cfg.BackoffBase <= 0 {
		cfg.BackoffBase = time.Second
	}
	if cfg.BackoffMax <= 0 {
		cfg.BackoffMax = 60 * time.Second
	}
	if cfg.MemoryCheckInterval <= 0 {
		cfg.MemoryCheckInterval = 10 * time.Second
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Group{cfg: cfg, spawner: sp, log: log.With("app", cfg.Name), ctx: ctx, cancel: cancel,
		events: notifier{deliver: cfg.Events}}
}

// Name is the app's name.
func (g *Group) Name() string { return g.cfg.Name }

// Start spawns the minimum number of processes (in the background) and starts
// the periodic work: stopping idle processes, checking memory.
func (g *Group) Start() {
	g.mu.Lock()
	g.maybeSpawnLocked()
	g.mu.Unlock()
	if g.cfg.IdleTime > 0 {
		g.wg.Add(1)
		go g.reapIdle()
	}
	if g.cfg.MemoryLimit > 0 && g.cfg.Memory != nil {
		g.wg.Add(1)
		go g.checkMemory()
	}
}

// emit queues e for Config.Events; safe under the lock.
func (g *Group) emit(e Event) { g.events.emit(e) }

// CheckoutOptions refine a checkout.
type CheckoutOptions struct {
	// Route asks for the process with this route id (a sticky session): the
	// request waits for it when it is busy, and goes to the least busy
	// process when it is gone.
	Route string
	// Unlimited takes a session that ignores the process's concurrency
	// limit and never queues (long-lived WebSocket or SSE requests of apps
	// that can serve them alongside normal ones).
	Unlimited bool
	// Avoid is the pid of a process a retry should not go to if another
	// has room now (the one whose connection just failed); 0: none.
	Avoid int
}

// Checkout returns a session on the least busy process, waiting in the queue
// when all are busy. It fails with ErrQueueFull, ErrQueueTimeout,
// ErrShuttingDown, a *BackoffError, a spawn error, or ctx's error.
func (g *Group) Checkout(ctx context.Context) (*Session, error) {
	return g.CheckoutWith(ctx, CheckoutOptions{})
}

// CheckoutWith is Checkout with options.
func (g *Group) CheckoutWith(ctx context.Context, o CheckoutOptions) (*Session, error) {
	g.mu.Lock()
	if g.closed {
		g.mu.Unlock()
		return nil, ErrShuttingDown
	}
	want := g.routeLocked(o.Route)
	if o.Unlimited {
		if p := g.anyServingLocked(want); p != nil {
			s := p.openUnlimitedLocked()
			g.mu.Unlock()
			return s, nil
		}
	} else if p := g.pickLocked(want, o.Avoid); p != nil {
		s := p.openLocked()
		g.maybeSpawnLocked()
		g.mu.Unlock()
		return s, nil
	}
	if g.lastErr != nil { // only after a failed spawn: spares the clock
		if wait, refuse := backoffRefusal(g.countLocked(), g.spawning, time.Now(), g.retryAt); refuse {
			err := &BackoffError{Err: g.lastErr, RetryAfter: wait}
			g.mu.Unlock()
			return nil, err
		}
	}
	if g.cfg.MaxQueue > 0 && g.waiters.len() >= g.cfg.MaxQueue {
		g.stats.QueueFull++
		g.emit(Event{Kind: EventQueueFull})
		g.mu.Unlock()
		return nil, ErrQueueFull
	}
	w := &waiter{ready: make(chan checkout, 1), want: want, unlimited: o.Unlimited}
	g.waiters.push(w)
	g.maybeSpawnLocked()
	g.mu.Unlock()

	var timeout <-chan time.Time
	if g.cfg.MaxQueueTime > 0 {
		t := time.NewTimer(g.cfg.MaxQueueTime)
		defer t.Stop()
		timeout = t.C
	}
	giveUp := func(err error) (*Session, error) {
		g.mu.Lock()
		queued := g.waiters.remove(w)
		if queued && err == ErrQueueTimeout {
			g.stats.QueueTimeout++
		}
		g.mu.Unlock()
		if !queued {
			// Handed a session as we gave up: give it back.
			if c := <-w.ready; c.s != nil {
				c.s.Release(true)
			}
		}
		return nil, err
	}
	select {
	case c := <-w.ready:
		return c.s, c.err
	case <-ctx.Done():
		return giveUp(ctx.Err())
	case <-timeout:
		return giveUp(ErrQueueTimeout)
	}
}

// membersLocked is the policy's view of the processes, index for index
// with g.procs.
func (g *Group) membersLocked() []*member { return g.members }

// noteExit reports that p's process has exited, which the watcher may not
// have seen yet, and records it in p's member for the policy.
func (p *Process) noteExit() bool {
	if !p.exited {
		select {
		case <-p.done:
			p.exited = true
		default:
		}
	}
	return p.exited
}

// routeLocked finds the serving process with a route id; nil if none.
func (g *Group) routeLocked(route string) *Process {
	if route == "" {
		return nil
	}
	for _, p := range g.procs {
		if p.route == route && p.state == serving {
			return p
		}
	}
	return nil
}

// pickLocked is the wanted process if it has room, else (without a wish)
// the policy's pick; nil if none has room.
func (g *Group) pickLocked(want *Process, avoid int) *Process {
	if want != nil {
		if !want.noteExit() && want.hasRoom() {
			return want
		}
		return nil
	}
	// Exits are noted for the pick only: a process picked that has exited
	// is marked so and the pick is made again without it, which is the
	// pick among the live ones, at one look at a channel per checkout.
	for {
		i := pick(g.membersLocked(), avoid)
		if i < 0 {
			return nil
		}
		if p := g.procs[i]; !p.noteExit() {
			return p
		}
	}
}

// anyServingLocked is a serving process for an unlimited session: the
// wanted one, or the one with the fewest sessions, busy or not.
func (g *Group) anyServingLocked(want *Process) *Process {
	if want != nil {
		return want
	}
	if i := fewestSessions(g.membersLocked()); i >= 0 {
		return g.procs[i]
	}
	return nil
}

// countLocked is how many processes count toward Min and Max.
func (g *Group) countLocked() int {
	n := 0
	for _, p := range g.procs {
		if counts(p.state) {
			n++
		}
	}
	return n
}

// maybeSpawnLocked starts a spawn when the group is below its minimum, or
// requests wait (or all processes are past the concurrency target) and it is
// below its maximum; one spawn at a time, and none while backing off.
func (g *Group) maybeSpawnLocked() {
	if g.closed || g.spawning > 0 { // needSpawn's answer, without the counting
		return
	}
	s := sizing{count: g.countLocked(), min: g.cfg.Min, max: g.cfg.Max, waiting: g.waiters.len()}
	if s.waiting == 0 && s.count < s.max && g.cfg.ConcurrencyTarget > 0 {
		s.busy = pastTarget(g.membersLocked(), g.cfg.ConcurrencyTarget)
	}
	if !needSpawn(s) {
		return
	}
	if wait := spawnDelay(time.Now(), g.retryAt); wait > 0 {
		g.scheduleRetryLocked(wait)
		return
	}
	g.spawning++
	g.wg.Add(1)
	go g.spawn(g.gen)
}

// spawnEndedLocked gives back the spawn slot taken by spawning++, and wakes
// a rolling restart waiting for its turn.
func (g *Group) spawnEndedLocked() {
	g.spawning--
	if g.spawning == 0 && g.spawnIdle != nil {
		close(g.spawnIdle)
		g.spawnIdle = nil
	}
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

// spawn starts one process of generation gen and adds it.
func (g *Group) spawn(gen int) {
	defer g.wg.Done()
	begin := time.Now()
	proc, err := g.spawner.Spawn(g.ctx)

	g.mu.Lock()
	defer g.mu.Unlock()
	g.spawnEndedLocked()
	if err != nil {
		g.spawnFailedLocked(err)
		g.maybeSpawnLocked()
		return
	}
	if p := g.attachLocked(proc, gen); p != nil {
		p.spawnBegin = begin // for the spawn span of the requests it takes first
	}
	g.dispatchLocked()
	g.maybeSpawnLocked()
}

func (g *Group) spawnFailedLocked(err error) {
	if g.closed {
		return
	}
	g.stats.SpawnFailed++
	g.failures++
	wait := backoff(g.failures, g.cfg.BackoffBase, g.cfg.BackoffMax)
	g.retryAt = time.Now().Add(wait)
	g.lastErr = err
	g.log.Error("spawn failed, backing off", "error", err, "failures", g.failures, "retry_in", wait)
	g.emit(Event{Kind: EventSpawnFailed, Err: err})
	if g.countLocked() == 0 {
		// Nothing will serve the waiters soon: tell them why.
		for w := g.waiters.pop(); w != nil; w = g.waiters.pop() {
			w.ready <- checkout{err: err}
		}
	}
}

// attachLocked adds a freshly spawned process to the group.
func (g *Group) attachLocked(proc Proc, gen int) *Process {
	if g.closed {
		g.wg.Add(1)
		go func() {
			defer g.wg.Done()
			g.stopProc(proc)
		}()
		return nil
	}
	g.stats.Spawned++
	g.failures = 0
	g.lastErr = nil
	g.retryAt = time.Time{}
	now := time.Now()
	p := &Process{group: g, proc: proc, done: proc.Done(), gen: gen, started: now, route: newRoute(),
		closing: make(chan struct{}), detached: make(chan struct{})}
	p.member = member{pid: proc.PID(), capacity: capacityOf(proc.Concurrency(), g.cfg.ConcurrencyCap), lastUsed: now}
	var draw uint64
	if j := g.cfg.MaxRequestsJitter; j > 0 && g.cfg.MaxRequests > 0 {
		draw = rand.Uint64N(j + 1)
	}
	p.limit = requestLimit(g.cfg.MaxRequests, draw)
	g.procs = append(g.procs, p)
	g.members = append(g.members, &p.member)
	g.wg.Add(1)
	go g.watch(p)
	g.emit(Event{Kind: EventProcessAttached, PID: proc.PID()})
	if gen < g.gen {
		// Spawned before a restart began: old code must not linger.
		g.retireLocked(p, "started before a restart")
		g.maybeSpawnLocked()
	}
	return p
}

// dispatchLocked hands free capacity to waiting requests, oldest first; a
// request waiting for its sticky process lets later ones pass meanwhile.
func (g *Group) dispatchLocked() {
	if g.waiters.unlimited > 0 {
		g.dispatchUnlimitedLocked()
	}
	if g.waiters.sticky == 0 {
		for g.waiters.len() > 0 {
			p := g.pickLocked(nil, 0)
			if p == nil {
				return
			}
			w := g.waiters.pop()
			w.ready <- checkout{s: p.openLocked()}
		}
		return
	}
	for i := g.waiters.head; i < len(g.waiters.items); {
		w := g.waiters.items[i]
		if w.want != nil && w.want.state != serving {
			w.want = nil // its process is going: any will do
			g.waiters.sticky--
		}
		p := g.pickLocked(w.want, 0)
		if p == nil {
			if w.want == nil {
				return // nothing has room
			}
			i++
			continue
		}
		g.waiters.removeAt(i)
		w.ready <- checkout{s: p.openLocked()}
	}
}

// dispatchUnlimitedLocked hands every waiting unlimited request a session
// on a serving process, whatever its load.
func (g *Group) dispatchUnlimitedLocked() {
	for i := g.waiters.head; i < len(g.waiters.items); {
		w := g.waiters.items[i]
		if !w.unlimited {
			i++
			continue
		}
		if w.want != nil && w.want.state != serving {
			w.want = nil
			g.waiters.sticky--
		}
		p := g.anyServingLocked(w.want)
		if p == nil {
			return
		}
		g.waiters.removeAt(i)
		w.ready <- checkout{s: p.openUnlimitedLocked()}
	}
}

// releaseLocked ends a session and decides what the process does next.
func (g *Group) releaseLocked(p *Process, conn io.Closer, ok bool) {
	p.sessions--
	p.lastUsed = time.Now()
	if ok {
		p.served++
		p.connectFailures = 0
		g.stats.RequestsDone++
	}
	if conn != nil {
		if p.state == serving || p.state == oob {
			p.idle = append(p.idle, conn)
		} else {
			conn.Close()
		}
	}
	switch p.state {
	case serving:
		if usedUp(p.served, p.limit) {
			g.recycleLocked(p, fmt.Sprintf("served %d requests (--max-requests)", p.served))
		}
		if p.oobPending {
			g.startOOBLocked()
		}
	case oob:
		g.startOOBLocked()
	case retiring:
		if p.sessions == 0 {
			g.stopLocked(p, p.reason)
		}
	}
	g.dispatchLocked()
}

// retireLocked takes p out of rotation; it stops once its sessions end.
func (g *Group) retireLocked(p *Process, reason string) {
	if p.state >= retiring {
		return
	}
	p.state, p.reason = retiring, reason
	p.signalClosing()
	p.closeIdleLocked()
	if p.sessions == 0 {
		g.stopLocked(p, reason)
	}
}

// stopLocked asks p to exit; watch removes it when it has.
func (g *Group) stopLocked(p *Process, reason string) {
	if p.state >= stopping {
		return
	}
	p.state, p.reason = stopping, reason
	p.signalClosing()
	p.closeIdleLocked()
	g.log.Info("stopping process", "pid", p.proc.PID(), "reason", reason)
	g.wg.Add(1)
	go func() {
		defer g.wg.Done()
		g.stopProc(p.proc)
	}()
}

// recycleLocked replaces p for its health (max requests, memory): it leaves
// rotation at once and stops after its current requests; a replacement comes
// as the minimum or waiting requests need it. One process per group at a
// time, so recycling never takes the whole pool down: it returns false while
// another recycle is under way (callers try again later).
func (g *Group) recycleLocked(p *Process, reason string) bool {
	if !mayRecycle(g.closed, g.recycling, p.recycled, p.state) {
		return false
	}
	g.recycling++
	p.recycled = true
	g.stats.Recycled++
	g.log.Info("recycling process", "pid", p.proc.PID(), "reason", reason)
	g.retireLocked(p, reason)
	g.maybeSpawnLocked()
	return true
}

// watch notices the process's exit, expected or not.
func (g *Group) watch(p *Process) {
	defer g.wg.Done()
	<-p.proc.Done()
	g.mu.Lock()
	died := p.state < stopping || p.unreachable
	if died && !g.closed {
		g.stats.Died++
		g.log.Warn("process exited unexpectedly", "pid", p.proc.PID(), "sessions", p.sessions)
	}
	if p.recycled {
		g.recycling--
	}
	if p.oobRunning {
		p.oobRunning = false
	}
	p.state = gone
	for i, q := range g.procs {
		if q == p {
			g.procs = append(g.procs[:i], g.procs[i+1:]...)
			g.members = append(g.members[:i], g.members[i+1:]...)
			break
		}
	}
	p.closeIdleLocked()
	// Queued before the replacement can be: its spawn may attach and emit
	// before this goroutine would have, after the unlock.
	g.emit(Event{Kind: EventProcessDetached, PID: p.proc.PID()})
	close(p.detached)
	g.maybeSpawnLocked()
	g.startOOBLocked()
	g.mu.Unlock()
	p.proc.Reap()
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
			// stopLocked leaves g.procs as it is: the indexes hold.
			for _, i := range idleVictims(g.membersLocked(), now, g.cfg.IdleTime, g.cfg.Min) {
				victim := g.procs[i]
				g.stats.IdleStopped++
				g.stopLocked(victim, fmt.Sprintf("idle for %s", now.Sub(victim.lastUsed).Round(time.Second)))
			}
			g.mu.Unlock()
		}
	}
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
	var procs []*Process
	for _, p := range g.procs {
		if p.state < stopping {
			p.state, p.reason = stopping, "shutdown"
			procs = append(procs, p)
		}
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
	g.cancel() // ends spawns in progress and the periodic work
	g.wg.Wait()
	g.events.wait()
}

// checkout is what a waiting request is handed.
type checkout struct {
	s   *Session
	err error
}

type waiter struct {
	ready chan checkout
	want  *Process // sticky: only this process will do while it serves
	// unlimited: any serving process will do, busy or not (a request that
	// came before any process was up).
	unlimited bool
}

// waitQueue is a FIFO of waiting requests.
type waitQueue struct {
	items     []*waiter
	head      int
	sticky    int // waiters with a wanted process
	unlimited int // unlimited waiters
}

func (q *waitQueue) len() int { return len(q.items) - q.head }

func (q *waitQueue) push(w *waiter) {
	// Under a load that never lets the queue drain, head only moves on and
	// append would grow the array by every request since the queue was last
	// empty. When the array is full and at least half of it is popped slots,
	// move the waiters to the front instead: its size follows the queue's
	// length, at an amortised O(1) per push.
	if len(q.items) == cap(q.items) && q.head > 0 && q.head >= len(q.items)/2 {
		n := copy(q.items, q.items[q.head:])
		clear(q.items[n:])
		q.items, q.head = q.items[:n], 0
	}
	q.items = append(q.items, w)
	if w.want != nil {
		q.sticky++
	}
	if w.unlimited {
		q.unlimited++
	}
}

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
	if w.want != nil {
		q.sticky--
	}
	if w.unlimited {
		q.unlimited--
	}
	return w
}

// remove takes w out of the queue; false if it was no longer there.
func (q *waitQueue) remove(w *waiter) bool {
	for i := q.head; i < len(q.items); i++ {
		if q.items[i] == w {
			q.removeAt(i)
			return true
		}
	}
	return false
}

func (q *waitQueue) removeAt(i int) {
	if q.items[i].want != nil {
		q.sticky--
	}
	if q.items[i].unlimited {
		q.unlimited--
	}
	copy(q.items[i:], q.items[i+1:])
	q.items[len(q.items)-1] = nil
	q.items = q.items[:len(q.items)-1]
	if q.head == len(q.items) {
		q.items, q.head = q.items[:0], 0
	}
}
