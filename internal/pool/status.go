package pool

import (
	"time"
)

// GroupStatus is a point-in-time view of a group for the admin API.
type GroupStatus struct {
	Name        string          `json:"name"`
	Min         int             `json:"min"`
	Max         int             `json:"max"`
	Queued      int             `json:"queued"`
	Spawning    int             `json:"spawning"`
	Processes   []ProcessStatus `json:"processes"`
	LastError   string          `json:"last_spawn_error,omitempty"`
	RetryAt     *time.Time      `json:"spawn_retry_at,omitempty"`
	Stats       Stats           `json:"stats"`
	ShuttingOff bool            `json:"shutting_down"`
	Generation  int             `json:"generation"`
	Restarting  bool            `json:"restarting"`
	DeployError string          `json:"deploy_error,omitempty"`
}

// ProcessStatus is one process in a GroupStatus.
type ProcessStatus struct {
	PID         int       `json:"pid"`
	Generation  int       `json:"generation"`
	State       string    `json:"state"`
	Reason      string    `json:"reason,omitempty"`
	Sessions    int       `json:"sessions"`
	Unlimited   int       `json:"unlimited_sessions,omitempty"`
	Concurrency int       `json:"concurrency"`
	Processed   uint64    `json:"processed"`
	Started     time.Time `json:"started"`
	LastUsed    time.Time `json:"last_used"`
	Capacity    int       `json:"capacity"` // sessions the pool gives it at once (concurrency, capped); 0 = any number
}

// Status snapshots the group.
func (g *Group) Status() GroupStatus {
	g.mu.Lock()
	defer g.mu.Unlock()
	st := GroupStatus{
		Name:        g.cfg.Name,
		Min:         g.cfg.Min,
		Max:         g.cfg.Max,
		Queued:      g.waiters.len(),
		Spawning:    g.spawning,
		Stats:       g.stats,
		ShuttingOff: g.closed,
		Processes:   make([]ProcessStatus, 0, len(g.procs)),
	}
	st.Generation = g.gen
	st.Restarting = g.restart != nil
	if g.deployErr != nil {
		st.DeployError = g.deployErr.Error()
	}
	if g.lastErr != nil {
		st.LastError = g.lastErr.Error()
		t := g.retryAt
		st.RetryAt = &t
	}
	for _, p := range g.procs {
		st.Processes = append(st.Processes, ProcessStatus{
			PID:         p.proc.PID(),
			Generation:  p.gen,
			State:       p.state.String(),
			Reason:      p.reason,
			Sessions:    p.sessions,
			Unlimited:   p.unlimited,
			Concurrency: p.proc.Concurrency(),
			Capacity:    capacityOf(p.proc.Concurrency(), g.cfg.ConcurrencyCap),
			Processed:   p.served,
			Started:     p.started,
			LastUsed:    p.lastUsed,
		})
	}
	return st
}
