package server

import (
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ferry-server/ferry/internal/admin"
)

// Request states, as the admin API shows them. Variables, so that setting
// one stores a pointer without allocating.
var (
	stateReceiving = "receiving body"
	stateQueued    = "waiting for a process"
	stateApp       = "in the app"
	stateSending   = "sending response"
)

// inflight is a request being served, for the admin API.
type inflight struct {
	app, method, path, client string
	start                     time.Time
	state                     atomic.Pointer[string]
	pid                       atomic.Int64
}

func (r *inflight) set(state *string) { r.state.Store(state) }

type inflightShard struct {
	mu sync.Mutex
	m  map[*inflight]struct{}
}

// inflightSet holds the requests in flight, sharded so that the request
// path's add and remove do not contend on one lock.
type inflightSet struct {
	shards [16]inflightShard
	next   atomic.Uint32
}

// add puts r in the set; remove takes it out of the shard add returned.
func (s *inflightSet) add(r *inflight) *inflightShard {
	sh := &s.shards[s.next.Add(1)%uint32(len(s.shards))]
	sh.mu.Lock()
	if sh.m == nil {
		sh.m = make(map[*inflight]struct{})
	}
	sh.m[r] = struct{}{}
	sh.mu.Unlock()
	return sh
}

func (sh *inflightShard) remove(r *inflight) {
	sh.mu.Lock()
	delete(sh.m, r)
	sh.mu.Unlock()
}

// Requests lists the requests in flight, oldest first, as the admin API
// shows them.
func (h *Handler) Requests() []admin.RequestInfo { return h.inflight.list() }

func (s *inflightSet) list() []admin.RequestInfo {
	now := time.Now()
	var out []admin.RequestInfo
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.Lock()
		for r := range sh.m {
			st := ""
			if p := r.state.Load(); p != nil {
				st = *p
			}
			out = append(out, admin.RequestInfo{App: r.app, Method: r.method, Path: r.path, Client: r.client,
				State: st, Start: r.start, AgeMS: now.Sub(r.start).Milliseconds(), PID: int(r.pid.Load())})
		}
		sh.mu.Unlock()
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Start.Before(out[j].Start) })
	return out
}
