// Package restartfile owns Passenger's restart protocol by file: touching
// DIR/restart.txt (a new mtime) restarts the app once; DIR/always_restart.txt
// restarts it before every request while it exists. It only tells when; the
// pool restarts.
package restartfile

import (
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"
)

// Kind is what a check found.
type Kind int

const (
	None   Kind = iota
	Once        // restart.txt changed
	Always      // always_restart.txt exists
)

// Watcher checks the files at most once per throttle period.
type Watcher struct {
	dir      string
	throttle time.Duration
	now      func() time.Time

	next atomic.Int64 // unix nanos of the next check; the fast path reads only this

	mu    sync.Mutex
	mtime time.Time // restart.txt as last seen
}

// New returns a watcher of dir. The current restart.txt (if any) does not
// count as a change: only touching it later does.
func New(dir string, throttle time.Duration) *Watcher {
	w := &Watcher{dir: dir, throttle: throttle, now: time.Now}
	if fi, err := os.Stat(filepath.Join(dir, "restart.txt")); err == nil {
		w.mtime = fi.ModTime()
	}
	return w
}

// Check reports whether the app should restart now. It is cheap when the
// throttle period has not passed: one atomic load.
func (w *Watcher) Check() Kind {
	now := w.now()
	if w.throttle > 0 && now.UnixNano() < w.next.Load() {
		return None
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.throttle > 0 && now.UnixNano() < w.next.Load() {
		return None // another request checked meanwhile
	}
	w.next.Store(now.Add(w.throttle).UnixNano())
	if _, err := os.Stat(filepath.Join(w.dir, "always_restart.txt")); err == nil {
		return Always
	}
	fi, err := os.Stat(filepath.Join(w.dir, "restart.txt"))
	if err != nil {
		return None
	}
	if fi.ModTime().Equal(w.mtime) {
		return None
	}
	w.mtime = fi.ModTime()
	return Once
}
