package server

import (
	"sort"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

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

// inflight is a request being served, for the admin API. It is part of
// the pooled per-request state and links itself into its shard's list:
// adding and removing one costs no allocation and no hashing.
type inflight struct {
	app, method, client string
	// path and query are the request target's parts (u.RequestURI() is
	// path, or path+"?"+query when hasQuery), joined only when listed.
	path, query string
	hasQuery    bool
	start       time.Time
	state       atomic.Pointer[string]
	pid         atomic.Int64
	prev, next  *inflight // in its shard's list, under the shard's lock
}

func (r *inflight) set(state *string) { r.state.Store(state) }

// uri is the request target, as r.URL.RequestURI() gave it.
func (r *inflight) uri() string {
	if r.hasQuery {
		return r.path + "?" + r.query
	}
	return r.path
}

// inflightShard is a list of requests under a lock, alone on its cache
// lines so that two cores working on two shards share nothing.
type inflightShard struct {
	mu   sync.Mutex
	head *inflight
	_    [64 - 16]byte
}

// inflightSet holds the requests in flight, sharded so that the request
// path's add and remove do not contend on one lock. A request's shard is
// picked from its (pooled, so mostly per-CPU) state's address: no counter
// shared between cores.
type inflightSet struct {
	shards [16]inflightShard
}

// add puts r in the set; remove takes it out of the shard add returned.
func (s *inflightSet) add(r *inflight) *inflightShard {
	a := uintptr(unsafe.Pointer(r))
	sh := &s.shards[(a>>6^a>>12)%uintptr(len(s.shards))]
	sh.mu.Lock()
	r.prev, r.next = nil, sh.head
	if sh.head != nil {
		sh.head.prev = r
	}
	sh.head = r
	sh.mu.Unlock()
	return sh
}

func (sh *inflightShard) remove(r *inflight) {
	sh.mu.Lock()
	if r.prev != nil {
		r.prev.next = r.next
	} else {
		sh.head = r.next
	}
	if r.next != nil {
		r.next.prev = r.prev
	}
	r.prev, r.next = nil, nil
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
		for r := sh.head; r != nil; r = r.next {
			st := ""
			if p := r.state.Load(); p != nil {
				st = *p
			}
			out = append(out, admin.RequestInfo{App: r.app, Method: r.method, Path: r.uri(), Client: r.client,
				State: st, Start: r.start, AgeMS: now.Sub(r.start).Milliseconds(), PID: int(r.pid.Load())})
		}
		sh.mu.Unlock()
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Start.Before(out[j].Start) })
	return out
}
