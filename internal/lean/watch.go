package lean

import (
	"sync"
	"sync/atomic"
	"time"
)

// DefaultWatchDelay is how long a handler may wait before its connection
// is watched for a client that leaves (Options.WatchDelay).
const DefaultWatchDelay = 20 * time.Millisecond

// watcher notices a client that leaves while the handler waits (for a
// process, or for the app's response), from WatchDelay on. Most waits end
// well before it, and watching costs a goroutine, a read that finds
// nothing, two deadline changes and the wake-ups between them — a fifth of
// the core's CPU for a proxied hello world when every wait was watched.
// Past the delay, the watch reads one byte: EOF or an error cancels the
// request (its context is the connection's); a byte is the start of a
// pipelined request, kept for the read buffer.
//
// One watcher per connection, reused: its timer is reset for each wait.
type watcher struct {
	c     *conn
	timer *time.Timer
	// stopFn is w.stop, bound once: a method value made per request
	// would be an allocation per request.
	stopFn func()

	mu      sync.Mutex
	armed   bool          // between start and stop
	reading bool          // fire is reading the connection
	done    chan struct{} // closed when that read has ended
	// stopping: stop interrupts the read; its error is not the client's.
	stopping atomic.Bool
}

// start arms the watch for one wait.
func (w *watcher) start(delay time.Duration) (stop func()) {
	w.mu.Lock()
	w.armed = true
	w.mu.Unlock()
	if w.timer == nil {
		w.stopFn = w.stop
		w.timer = time.AfterFunc(delay, w.fire)
	} else {
		w.timer.Reset(delay)
	}
	return w.stopFn
}

// fire runs on the timer's goroutine once the delay has passed: it reads
// until the client sends a byte, leaves, or stop interrupts it. A fire
// from an earlier wait that runs late finds the watch disarmed, or armed
// for the current wait, which it then serves: either way correct.
func (w *watcher) fire() {
	w.mu.Lock()
	if !w.armed || w.reading {
		w.mu.Unlock()
		return
	}
	w.reading = true
	w.stopping.Store(false)
	done := make(chan struct{})
	w.done = done
	w.mu.Unlock()
	defer close(done)
	c := w.c
	n, err := c.raw.Read(c.pre[:])
	if n == 1 {
		c.hasPre = true
		return
	}
	if err != nil && !w.stopping.Load() {
		c.cancel()
	}
}

// stop ends the watch: it stops the timer, or interrupts the read and
// waits for it (the byte it may have read belongs to the connection's
// goroutine, which goes on once stop returns).
func (w *watcher) stop() {
	w.mu.Lock()
	w.armed = false
	reading, done := w.reading, w.done
	w.reading, w.done = false, nil
	w.mu.Unlock()
	if !reading {
		w.timer.Stop()
		return
	}
	c := w.c
	w.stopping.Store(true)
	c.raw.SetReadDeadline(aLongTimeAgo)
	<-done
	c.raw.SetReadDeadline(time.Time{})
}
