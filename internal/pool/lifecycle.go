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
// It returns at once; the returned Restart tells when it is done.
func (g *Group) Restart(rolling bool) (*Restart, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return nil, ErrShuttingDown
	}
	if g.restart != nil {
		return g.restart, ErrRestarting
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

	if !rolling {
		g.resetSpawnerLocked()
		for _, p := range old {
			g.retireLocked(p, "restart")
		}
		g.maybeSpawnLocked()
	}
	g.wg.Add(1)
	go func() {
		defer g.wg.Done()
		var err error
		if rolling {
			err = g.roll(r, old)
		} else {
			err = g.waitGone(old)
		}
		g.mu.Lock()
		r.err = err
		g.restart = nil
		g.mu.Unlock()
		close(r.done)
		kind := "restarted"
		switch {
		case rolling && err == nil:
			kind = "rolling_restart_finished"
		case rolling:
			kind = "rolling_restart_failed"
		}
		g.emit(Event{Kind: kind, Err: err})
	}()
	return r, nil
}

// resetSpawnerLocked makes the next spawn load the app afresh. The spawner's
// Reset runs without the lock (it may wait for a preloader to exit), but
// before any spawn of the new generation: spawns are one at a time and none
// is started until it returns.
func (g *Group) resetSpawnerLocked() {
	rs, ok := g.spawner.(Resetter)
	if !ok {
		return
	}
	g.spawning++ // holds off other spawns meanwhile
	g.mu.Unlock()
	ctx, cancel := context.WithTimeout(g.ctx, g.cfg.StopTimeout)
	rs.Reset(ctx)
	cancel()
	g.mu.Lock()
	g.spawning--
}

// roll replaces old processes one by one, new before old.
func (g *Group) roll(r *Restart, old []*Process) error {
	g.mu.Lock()
	g.resetSpawnerLocked()
	g.mu.Unlock()
	for _, p := range old {
		g.mu.Lock()
		if p.state >= stopping || g.closed {
			g.mu.Unlock()
			continue
		}
		// Wait for any other spawn to finish, then hold off others.
		for g.spawning > 0 {
			g.mu.Unlock()
			select {
			case <-time.After(10 * time.Millisecond):
			case <-g.ctx.Done():
				return ErrShuttingDown
			}
			g.mu.Lock()
		}
		g.spawning++
		g.mu.Unlock()

		proc, err := g.spawner.Spawn(g.ctx)

		g.mu.Lock()
		g.spawning--
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

// waitGone waits for processes to exit.
func (g *Group) waitGone(ps []*Process) error {
	for _, p := range ps {
		select {
		case <-p.proc.Done():
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
	var next *Process
	for _, p := range g.procs {
		if p.state == oob {
			if p.oobRunning || p.sessions > 0 {
				return // one at a time; this one is waiting or working
			}
			next = p
			break
		}
		if next == nil && p.state == serving && p.oobPending {
			next = p
		}
	}
	if next == nil {
		return
	}
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
		var pids []*Process
		for _, p := range g.procs {
			if p.state == serving {
				pids = append(pids, p)
			}
		}
		g.mu.Unlock()
		var worst *Process
		var worstMem int64
		for _, p := range pids {
			mem, err := g.cfg.Memory(p.proc.PID())
			if err != nil {
				continue
			}
			if mem > g.cfg.MemoryLimit && mem > worstMem {
				worst, worstMem = p, mem
			}
		}
		if worst == nil {
			continue
		}
		g.mu.Lock()
		if g.recycleLocked(worst, fmt.Sprintf("memory %d MiB over --memory-limit %d MiB (proportional set size)",
			worstMem>>20, g.cfg.MemoryLimit>>20)) {
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
