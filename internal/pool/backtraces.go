package pool

import (
	"context"
	"errors"
)

// Backtracer is a Proc that can ask its process for the stack of every
// thread without stopping it (*spawn.Process for the loaders' processes).
type Backtracer interface {
	Backtraces(ctx context.Context) (string, error)
}

// ErrNoBacktraces is returned for a process whose Proc cannot give
// backtraces.
var ErrNoBacktraces = errors.New("this process cannot report backtraces")

// Backtraces asks process pid of the group for the stack of every thread.
// found is false when the group has no such process (gone ones included).
func (g *Group) Backtraces(ctx context.Context, pid int) (dump string, found bool, err error) {
	g.mu.Lock()
	var proc Proc
	for _, p := range g.procs {
		if p.proc.PID() == pid && p.state != gone {
			proc = p.proc
			break
		}
	}
	g.mu.Unlock()
	if proc == nil {
		return "", false, nil
	}
	bt, ok := proc.(Backtracer)
	if !ok {
		return "", true, ErrNoBacktraces
	}
	dump, err = bt.Backtraces(ctx)
	return dump, true, err
}

// PIDs lists the group's processes that are not gone, in the group's order.
func (g *Group) PIDs() []int {
	g.mu.Lock()
	defer g.mu.Unlock()
	var pids []int
	for _, p := range g.procs {
		if p.state != gone {
			pids = append(pids, p.proc.PID())
		}
	}
	return pids
}
