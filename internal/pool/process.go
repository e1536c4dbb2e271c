package pool

import (
	"crypto/rand"
	"encoding/base64"
	"io"
	"net"
	"sync"
	"time"
)

// state is where a process is in its life in the pool.
//
//	               Checkout/Release
//	spawned ──► serving ◄──────────────► (sessions)
//	              │  ▲ │
//	out-of-band   │  │ │ restart, recycle (max requests, memory),
//	work asked    ▼  │ │ idle, unreachable
//	            oob ─┘ ▼
//	                 retiring ── sessions reach 0 ──► stopping ──► gone
//	                                                                ▲
//	exits on its own (crash, kill -9) from any state ───────────────┘
type state int

const (
	// serving takes new sessions.
	serving state = iota
	// oob takes none: it does out-of-band work once idle, then serves again.
	oob
	// retiring takes none and is stopped once its sessions end.
	retiring
	// stopping has been asked to exit.
	stopping
	// gone has exited.
	gone
)

func (s state) String() string {
	switch s {
	case serving:
		return "serving"
	case oob:
		return "out_of_band"
	case retiring:
		return "retiring"
	case stopping:
		return "stopping"
	case gone:
		return "gone"
	}
	return "unknown"
}

// Process is a pool member: a running process and its use.
type Process struct {
	// member is what the policy decides on (state, sessions, capacity,
	// last use, out-of-band work, exit).
	member
	group   *Group
	proc    Proc
	done    <-chan struct{} // proc.Done()
	gen     int             // the restart generation it belongs to
	started time.Time       // ready (the spawn's end)
	// spawnBegin is when its spawn began; zero if it was not spawned by
	// the group (adopted).
	spawnBegin time.Time
	served     uint64
	limit      uint64 // served requests after which it is recycled; 0 = never
	// why it is retiring or stopping, for logs and status.
	reason string
	// recycled: retiring to be replaced for its health (max requests,
	// memory); at most one per group at a time.
	recycled bool
	// unreachable: it left rotation as dead or broken (exiting as seen by
	// the kernel, connects that keep failing); its exit is a death.
	unreachable bool
	// connectFailures counts connects to it that failed since it last
	// completed a request.
	connectFailures int
	// misframed: the app broke HTTP framing once already (logged once).
	misframed bool
	idle      []io.Closer // kept-alive connections, owned by the proxy
	// route is the process's sticky-session id: random, revealing nothing.
	route string
	// closing is closed when the process starts to leave (for tunnels that
	// should not hold it).
	closing     chan struct{}
	closingOnce sync.Once
	// detached is closed once the group has taken it off its list (after
	// its exit): what a restart waits for, so that the pool it leaves
	// behind no longer shows the old processes.
	detached chan struct{}
}

func (p *Process) signalClosing() {
	if p.closing != nil {
		p.closingOnce.Do(func() { close(p.closing) })
	}
}

// newRoute is a fresh sticky-session id.
func newRoute() string {
	var b [12]byte
	rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

func (p *Process) openLocked() *Session {
	p.sessions++
	p.lastUsed = time.Now()
	return &Session{p: p}
}

// openUnlimitedLocked opens a session that does not count against the
// process's concurrency.
func (p *Process) openUnlimitedLocked() *Session {
	p.unlimited++
	p.lastUsed = time.Now()
	return &Session{p: p, unlimited: true}
}

func (p *Process) closeIdleLocked() {
	for _, c := range p.idle {
		c.Close()
	}
	p.idle = nil
}

// Session is the right to send one request to one process.
type Session struct {
	p         *Process
	released  bool
	unlimited bool
}

// PID of the session's process.
func (s *Session) PID() int { return s.p.proc.PID() }

// Spawned tells when the session's process began to spawn and when it was
// ready (for tracing: a request that queued before ready waited for the
// spawn). Zero for a nil session or a process the group did not spawn.
func (s *Session) Spawned() (begin, ready time.Time) {
	if s == nil || s.p.spawnBegin.IsZero() {
		return time.Time{}, time.Time{}
	}
	return s.p.spawnBegin, s.p.started
}

// Route is the process's sticky-session id.
func (s *Session) Route() string { return s.p.route }

// Closing is closed when the session's process starts to leave (restart,
// recycling, shutdown): long-lived tunnels should end then.
func (s *Session) Closing() <-chan struct{} { return s.p.closing }

// Wire is the loader wire the session's process chose (0: HTTP/1.1), for
// processes that say (spawn.Process does).
func (s *Session) Wire() int {
	if w, ok := s.p.proc.(interface{ Wire() int }); ok {
		return w.Wire()
	}
	return 0
}

// WireHead is the layout of ferry-wire request heads the session's
// process chose ("": the CGI environment).
func (s *Session) WireHead() string {
	if w, ok := s.p.proc.(interface{ WireHead() string }); ok {
		return w.WireHead()
	}
	return ""
}

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

// Release ends the session; ok reports whether the request completed.
func (s *Session) Release(ok bool) { s.ReleaseConn(nil, ok) }

// ReleaseConn is Release that also keeps a reusable connection to the
// process (closed instead if the process is leaving).
func (s *Session) ReleaseConn(conn io.Closer, ok bool) {
	g := s.p.group
	g.mu.Lock()
	defer g.mu.Unlock()
	if s.released {
		if conn != nil {
			conn.Close()
		}
		return
	}
	s.released = true
	if s.unlimited {
		s.p.unlimited--
		s.p.sessions++ // releaseLocked takes one off
	}
	g.releaseLocked(s.p, conn, ok)
}

// OutOfBandWork records that the app asked, in its response, for
// out-of-band work: the process leaves rotation, does the work when idle
// (one process of the group at a time), and comes back.
func (s *Session) OutOfBandWork() {
	g := s.p.group
	g.mu.Lock()
	defer g.mu.Unlock()
	if s.p.state == serving {
		s.p.oobPending = true
	}
}

// Failed ends the session of a request whose connection to the process
// failed before a byte of answer: connecting failed (connect), or the
// connection was closed or reset. A process is dead when it is, not when
// one connection misbehaves: it leaves rotation at once (and is replaced)
// if the kernel shows it exiting, which the watcher may not have seen yet
// (so a retry is never handed it), or once MaxConnectFailures connects in
// a row have failed. Otherwise it keeps serving, its other requests too.
func (s *Session) Failed(connect bool, err error) {
	p := s.p
	dying := exiting(p.proc) // reads /proc: outside the lock
	g := p.group
	g.mu.Lock()
	defer g.mu.Unlock()
	if s.released {
		return
	}
	s.released = true
	if s.unlimited {
		p.unlimited--
		p.sessions++ // releaseLocked takes one off
	}
	pid := p.proc.PID()
	if connect && !dying {
		g.stats.ConnectFailures++
		p.connectFailures++
	}
	switch onFailure(dying, connect, p.connectFailures, g.cfg.MaxConnectFailures) {
	case exited:
		g.log.Warn("process is exiting; taking it out of rotation", "pid", pid, "error", err)
		g.unreachableLocked(p, "exited")
	case unreachable:
		g.log.Warn("connects to process keep failing; replacing it", "pid", pid, "failures", p.connectFailures, "error", err)
		g.unreachableLocked(p, "unreachable")
	case keep:
		if connect {
			g.log.Warn("could not connect to process", "pid", pid, "failures", p.connectFailures, "error", err)
		} else {
			g.stats.DroppedConnections++
			g.log.Warn("app closed a connection without answering; the process stays in rotation", "pid", pid, "error", err)
		}
	}
	g.releaseLocked(p, nil, false)
	g.maybeSpawnLocked()
}

// unreachableLocked takes p out of rotation as dead or broken: its exit
// counts as a death, and it stops once its sessions end.
func (g *Group) unreachableLocked(p *Process, reason string) {
	p.unreachable = true
	g.retireLocked(p, reason)
}

// FramingError records that the app broke HTTP/1.1 framing on a
// connection (which the proxy closes rather than reuses): logged once per
// process, with the app and pid, and counted.
func (s *Session) FramingError(err error) {
	g := s.p.group
	g.mu.Lock()
	defer g.mu.Unlock()
	g.stats.FramingErrors++
	if s.p.misframed {
		g.log.Debug("app broke HTTP framing; connection closed", "pid", s.p.proc.PID(), "error", err)
		return
	}
	s.p.misframed = true
	g.log.Warn("app broke HTTP framing; its connection is closed, not reused (logged once per process)",
		"pid", s.p.proc.PID(), "error", err)
}

// Abort ends the session by killing its process: the request it serves ran
// too long. The process is replaced as needed.
func (s *Session) Abort(reason string) {
	g := s.p.group
	g.mu.Lock()
	p := s.p
	if s.released || p.state >= stopping {
		// Finished meanwhile: the process serves others now.
		g.mu.Unlock()
		return
	}
	g.log.Warn("killing process", "pid", p.proc.PID(), "reason", reason)
	p.unreachable = true // its exit counts as a death
	p.state, p.reason = stopping, reason
	p.closeIdleLocked()
	g.wg.Add(1)
	g.mu.Unlock()
	go func() {
		defer g.wg.Done()
		p.proc.Abort()
	}()
}
