package lean

import (
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultWatchDelay is how long a handler may wait before its connection
// is watched for a client that leaves (Options.WatchDelay).
const DefaultWatchDelay = 20 * time.Millisecond

// Watching a connection for a client that leaves costs a goroutine, a read
// that finds nothing, two deadline changes and the wake-ups between them: a
// fifth of the core's CPU for a proxied hello world when every wait was
// watched. Most waits end well before Options.WatchDelay, so a wait is only
// listed when it starts, and a sweeper starts the watch of those that are
// still listed after the delay. Listing is a striped lock and two pointer
// writes: not a timer, whose reset on every request woke the netpoller
// (netpollBreak) whenever it was the earliest.
//
// Once started, a watch reads one byte: EOF or an error cancels the
// request (its context is the connection's); a byte is the start of a
// pipelined request, kept for the read buffer.

// watchState is a connection's watch: idle, listed (waiting, not yet
// watched) or reading (the watch goroutine reads the connection).
type watchState uint8

const (
	watchIdle watchState = iota
	watchListed
	watchReading
)

// watcher is a connection's part in the watch lists. Its fields are the
// stripe's, under its lock, except done and stopping.
type watcher struct {
	state      watchState
	since      int64 // when the wait started (UnixNano)
	prev, next *conn
	stripe     *waitStripe   // the connection's, chosen once
	done       chan struct{} // closed when the watch's read has ended
	// stopping: stop interrupts the read; its error is not the client's.
	stopping atomic.Bool
}

// waitStripe is one list of listed waits, oldest first.
type waitStripe struct {
	mu         sync.Mutex
	head, tail *conn
	_          [40]byte // its own cache line
}

// waits is an engine's lists of listed waits and their sweeper.
type waits struct {
	delay   time.Duration
	stripes [8]waitStripe
	n       atomic.Int64 // listed waits, over all stripes
	// sweeping: the sweeper is running; kick wakes it when it is not.
	sweeping atomic.Bool
	kick     chan struct{}
	closed   chan struct{}
}

func (ws *waits) init(delay time.Duration) {
	ws.delay = delay
	ws.kick = make(chan struct{}, 1)
	ws.closed = make(chan struct{})
}

// stripeFor picks a connection's stripe, once: connections spread over
// them at random.
func (ws *waits) stripeFor() *waitStripe {
	return &ws.stripes[rand.Uint32()%uint32(len(ws.stripes))]
}

// start lists c's wait.
func (ws *waits) start(c *conn) {
	w := &c.watch
	s := w.stripe
	s.mu.Lock()
	w.state = watchListed
	w.since = time.Now().UnixNano()
	w.prev, w.next = s.tail, nil
	if s.tail != nil {
		s.tail.watch.next = c
	} else {
		s.head = c
	}
	s.tail = c
	s.mu.Unlock()
	if ws.n.Add(1) == 1 && !ws.sweeping.Load() {
		select {
		case ws.kick <- struct{}{}:
		default:
		}
	}
}

// unlink takes c off its stripe's list; under the stripe's lock.
func (s *waitStripe) unlink(c *conn) {
	w := &c.watch
	if w.prev != nil {
		w.prev.watch.next = w.next
	} else {
		s.head = w.next
	}
	if w.next != nil {
		w.next.watch.prev = w.prev
	} else {
		s.tail = w.prev
	}
	w.prev, w.next = nil, nil
}

// stop ends c's wait: it unlists it, or interrupts its watch's read and
// waits for it (the byte it may have read belongs to the connection's
// goroutine, which goes on once stop returns).
func (ws *waits) stop(c *conn) {
	w := &c.watch
	s := w.stripe
	s.mu.Lock()
	state := w.state
	w.state = watchIdle
	if state == watchListed {
		s.unlink(c)
	}
	done := w.done
	w.done = nil
	s.mu.Unlock()
	if state == watchListed {
		ws.n.Add(-1)
		return
	}
	w.stopping.Store(true)
	c.raw.SetReadDeadline(aLongTimeAgo)
	<-done
	c.raw.SetReadDeadline(time.Time{})
}

// sweep runs until the engine shuts down: while waits are listed, every
// half delay it starts the watch of those listed for the delay or longer.
func (ws *waits) sweep() {
	for {
		ws.sweeping.Store(false)
		if ws.n.Load() == 0 {
			select {
			case <-ws.kick:
			case <-ws.closed:
				return
			}
		}
		ws.sweeping.Store(true)
		select {
		case <-time.After(ws.delay / 2):
		case <-ws.closed:
			return
		}
		due := time.Now().Add(-ws.delay).UnixNano()
		for i := range ws.stripes {
			ws.sweepStripe(&ws.stripes[i], due)
		}
	}
}

// sweepStripe starts the watch of the stripe's waits listed at due or
// before: they are at its head.
func (ws *waits) sweepStripe(s *waitStripe, due int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := s.head; c != nil && c.watch.since <= due; c = s.head {
		s.unlink(c)
		w := &c.watch
		w.state = watchReading
		w.stopping.Store(false)
		w.done = make(chan struct{})
		ws.n.Add(-1)
		go c.watchRead(w.done)
	}
}

// watchRead is a started watch: it reads until the client sends a byte,
// leaves, or stop interrupts it.
func (c *conn) watchRead(done chan struct{}) {
	defer close(done)
	n, err := c.raw.Read(c.pre[:])
	if n == 1 {
		c.hasPre = true
		return
	}
	if err != nil && !c.watch.stopping.Load() {
		c.cancel()
	}
}
