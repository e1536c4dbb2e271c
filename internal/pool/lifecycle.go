package pool

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// ErrRestarting is returned when a restart is asked for while one runs.
var ErrRestarting = errors.New("a restart is already in progress")

// DeployError is a rolling restart that could not start the new version:
// the old processes keep serving.
type DeployError struct {
	Err error
}

func (e *DeployError) Error() string {
	return "rolling restart failed, the previous version keeps serving: " + e.Err.Error()
}

func (e *DeployError) Unwrap() error { return e.Err }

// Restart is a restart under way.
type Restart struct {
	Rolling bool
	Gen     int
	done    chan struct{}
	err     error
}

// Wait waits for the restart to finish and returns its outcome.
func (r *Restart) Wait(ctx context.Context) error {
	select {
	case <-r.done:
		return r.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Done is closed when the restart has finished.
func (r *Restart) Done() <-chan struct{} { return r.done }

// Restart replaces every process with one running the app's current code.
//
// Blocking: every current process leaves rotation at once (requests in
// flight finish; new ones wait in the queue), and new processes are spawned
// for the waiting requests and the minimum. Requests are held, not failed.
//
// Rolling: one process at a time, a new one is spawned before an old one
// leaves rotation, so the app never has fewer processes serving. If the new
// version fails to start, the rest of the old processes keep serving and
// the restart ends with a *DeployError; it is not retried.
//
// It returns at once (after resetting the spawner, for a blocking
// restart); the returned Restart tells when it is done.
func (g *Group) Restart(rolling bool) (*Restart, error) {
	g.mu.Lock()
	r, old, err := g.beginRestartLocked(rolling)
	g.mu.Unlock()
	if err != nil {
		return r, err
	}
	if !rolling {
		g.resetSpawner()
		g.mu.Lock()
		g.endResetLocked()
		for _, p := range old {
			g.retireLocked(p, "restart")
		}
		g.maybeSpawnLocked()
		g.mu.Unlock()
	}
	go g.finishRestart(r, old) // g.wg counted it in beginRestartLocked
	return r, nil
}

// beginRestartLocked starts a new generation and returns the processes of
// the old ones. If the spawner resets, it takes the spawn slot meanwhile
// (resetSpawner gives it back), in the same critical section as the new
// generation: no spawn can start before the reset.
func (g *Group) beginRestartLocked(rolling bool) (*Restart, []*Process, error) {
	if g.closed {
		return nil, nil, ErrShuttingDown
	}
	if g.restart != nil {
		return g.restart, nil, ErrRestarting
	}
	g.gen++
	r := &Restart{Rolling: rolling, Gen: g.gen, done: make(chan struct{})}
	g.restart = r
	g.stats.Restarts++
	var old []*Process
	for _, p := range g.procs {
		if p.state < stopping && p.gen < g.gen {
			old = append(old, p)
		}
	}
	// New code deserves a fresh start: forget past failures.
	g.failures, g.lastErr, g.retryAt = 0, nil, time.Time{}
	g.log.Info("restarting", "rolling", rolling, "generation", g.gen, "processes", len(old))
	if _, ok := g.spawner.(Resetter); ok {
		g.spawning++
	}
	g.wg.Add(1)
	return r, old, nil
}

// resetSpawner makes the next spawn load the app afresh. It runs without
// the lock (it may wait for a preloader to exit), holding the spawn slot
// beginRestartLocked took; endResetLocked gives it back.
func (g *Group) resetSpawner() {
	if rs, ok := g.spawner.(Resetter); ok {
		ctx, cancel := context.WithTimeout(g.ctx, g.cfg.StopTimeout)
		rs.Reset(ctx)
		cancel()
	}
}

// endResetLocked gives back the spawn slot held for the spawner's reset.
func (g *Group) endResetLocked() {
	if _, ok := g.spawner.(Resetter); ok {
		g.spawnEndedLocked()
	}
}

// finishRestart waits for the restart to end (a rolling one does its work
// here), records its outcome and tells of it.
func (g *Group) finishRestart(r *Restart, old []*Process) {
	defer g.wg.Done()
	var err error
	if r.Rolling {
		g.resetSpawner()
		g.mu.Lock()
		g.endResetLocked()
		g.mu.Unlock()
		err = g.roll(r, old)
	} else {
		err = g.waitGone(old)
	}
	g.mu.Lock()
	r.err = err
	g.restart = nil
	g.mu.Unlock()
	close(r.done)
	kind := EventRestarted
	switch {
	case r.Rolling && err == nil:
		kind = EventRollingRestartFinished
	case r.Rolling:
		kind = EventRollingRestartFailed
	}
	g.emit(Event{Kind: kind, Err: err})
}

// roll replaces old processes one by one, new before old.
func (g *Group) roll(r *Restart, old []*Process) error {
	for _, p := range old {
		turn, err := g.awaitSpawnTurn(p)
		if err != nil {
			return err
		}
		if !turn {
			continue
		}
		proc, err := g.spawner.Spawn(g.ctx)

		g.mu.Lock()
		g.spawnEndedLocked()
		if err != nil {
			g.stats.SpawnFailed++
			g.deployErr = err
			g.log.Error("rolling restart failed: the new version did not start; the previous version keeps serving", "error", err)
			g.mu.Unlock()
			return &DeployError{Err: err}
		}
		g.deployErr = nil
		g.attachLocked(proc, r.Gen)
		g.retireLocked(p, "rolling restart")
		g.dispatchLocked()
		g.mu.Unlock()
		if err := g.waitGone([]*Process{p}); err != nil {
			return err
		}
	}
	g.mu.Lock()
	g.maybeSpawnLocked()
	g.mu.Unlock()
	g.log.Info("rolling restart finished", "generation", r.Gen)
	return nil
}

// awaitSpawnTurn waits until no other spawn is under way, then takes the
// spawn slot to replace p (spawnEndedLocked gives it back). false: p needs
// no replacing (on its way out already, or the group closed). It fails
// with ErrShuttingDown if the group shuts down while it waits.
func (g *Group) awaitSpawnTurn(p *Process) (bool, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if p.state >= stopping || g.closed {
		return false, nil
	}
	for g.spawning > 0 {
		if g.spawnIdle == nil {
			g.spawnIdle = make(chan struct{})
		}
		idle := g.spawnIdle
		g.mu.Unlock()
		select {
		case <-idle:
		case <-g.ctx.Done():
			g.mu.Lock()
			return false, ErrShuttingDown
		}
		g.mu.Lock()
	}
	g.spawning++
	return true, nil
}

// waitGone waits for processes to exit and leave the group's list.
func (g *Group) waitGone(ps []*Process) error {
	for _, p := range ps {
		select {
		case <-p.detached:
		case <-g.ctx.Done():
			return ErrShuttingDown
		}
	}
	return nil
}

// startOOBLocked starts out-of-band work for the next process that asked,
// if no other process of the group is doing it: the process leaves
// rotation, and once its sessions have ended the work runs, then it serves
// again.
func (g *Group) startOOBLocked() {
	if g.cfg.OutOfBand == nil || g.closed {
		return
	}
	i := oobNext(g.membersLocked())
	if i < 0 {
		return
	}
	next := g.procs[i]
	next.state, next.oobPending = oob, false
	if next.sessions > 0 {
		return // runs when they end (releaseLocked)
	}
	next.oobRunning = true
	// A loader serving one connection at a time would otherwise have to
	// drop our idle one to take the out-of-band request.
	next.closeIdleLocked()
	g.stats.OutOfBand++
	g.wg.Add(1)
	go func() {
		defer g.wg.Done()
		ctx, cancel := context.WithTimeout(g.ctx, 5*time.Minute)
		err := g.cfg.OutOfBand(ctx, next.proc.Addr())
		cancel()
		g.mu.Lock()
		defer g.mu.Unlock()
		next.oobRunning = false
		if err != nil {
			g.log.Warn("out-of-band work failed", "pid", next.proc.PID(), "error", err)
		}
		if next.state == oob {
			next.state = serving
		}
		g.dispatchLocked()
		g.startOOBLocked()
	}()
}

// checkMemory recycles the process whose own memory is over the limit
// (the largest first), one at a time.
func (g *Group) checkMemory() {
	defer g.wg.Done()
	t := time.NewTicker(g.cfg.MemoryCheckInterval)
	defer t.Stop()
	for {
		select {
		case <-g.ctx.Done():
			return
		case <-t.C:
		}
		g.mu.Lock()
		var candidates []*Process
		for _, p := range g.procs {
			if p.state == serving {
				candidates = append(candidates, p)
			}
		}
		g.mu.Unlock()
		mem := make([]int64, len(candidates)) // read from /proc: outside the lock
		for i, p := range candidates {
			if m, err := g.cfg.Memory(p.proc.PID()); err == nil {
				mem[i] = m
			}
		}
		i := memoryVictim(mem, g.cfg.MemoryLimit)
		if i < 0 {
			continue
		}
		g.mu.Lock()
		if g.recycleLocked(candidates[i], fmt.Sprintf("memory %d MiB over --memory-limit %d MiB (proportional set size)",
			mem[i]>>20, g.cfg.MemoryLimit>>20)) {
			g.stats.RecycledMem++
		}
		g.mu.Unlock()
	}
}

// Detach takes the process with pid out of rotation; it stops after its
// current requests and is replaced as the minimum or waiting requests need.
// It reports whether the group has such a process.
func (g *Group) Detach(pid int) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, p := range g.procs {
		if p.proc.PID() == pid && p.state < stopping {
			g.retireLocked(p, "detached by the admin API")
			g.maybeSpawnLocked()
			return true
		}
	}
	return false
}

// Kill kills the process with pid at once: its requests in flight fail.
// It reports whether the group has such a process.
func (g *Group) Kill(pid int) bool {
	g.mu.Lock()
	var victim *Process
	for _, p := range g.procs {
		if p.proc.PID() == pid && p.state != gone {
			victim = p
			p.state, p.reason = stopping, "killed by the admin API"
			p.closeIdleLocked()
		}
	}
	if victim == nil {
		g.mu.Unlock()
		return false
	}
	g.wg.Add(1)
	g.mu.Unlock()
	go func() {
		defer g.wg.Done()
		victim.proc.Kill()
	}()
	return true
}
