package static

import (
	"errors"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"
)

// watcher tells the cache when something under the root may have changed,
// so that a cached file (or a path known to be absent) is served without a
// Stat per request: an inotify watch on every directory from the root down
// to a cached or absent path, and every event, of any kind, on any of them
// moves gen on. A check recorded at one gen is void at the next (see
// Handler.holds). Events are read by a goroutine: a request that races a
// change may still get the copy from before it, as it could with a Stat.
//
// What these watches do not see is still noticed within
// Options.Revalidate, the age past which a check is redone anyway: a write
// to a cached file through another name (a hard link elsewhere, the target
// of a symlink in an unwatched directory), through a shared mmap, or on a
// network filesystem by another host.
type watcher struct {
	f     *os.File
	fd    int    // f's, for adding watches (f.Fd would make f blocking)
	shut  bool   // closed: fd is no longer ours; guarded by mu
	root  string // the root directory, with a trailing separator
	gen   atomic.Uint32
	dead  atomic.Bool // reading events failed: every request stats again
	mu    sync.Mutex
	wds   map[string]int32 // watched path (relative, "" the root) → watch
	paths map[int32]string // and back, for IN_IGNORED
	// gone are directories found missing, at the generation before the
	// look: while it holds, the watched directory above has seen nothing
	// appear, so they are still missing (no inotify_add_watch to find out).
	gone map[string]uint32
	max  int // the most watches this watcher adds
}

// events are everything that can change what a path in a directory is.
const events = unix.IN_CREATE | unix.IN_DELETE | unix.IN_MOVED_FROM | unix.IN_MOVED_TO | unix.IN_MODIFY |
	unix.IN_ATTRIB | unix.IN_CLOSE_WRITE | unix.IN_DELETE_SELF | unix.IN_MOVE_SELF | unix.IN_ONLYDIR

// newWatcher starts watching below dir, or returns nil (no inotify here,
// or no instance left): the cache then stats every request, as before.
func newWatcher(dir string, max int) *watcher {
	fd, err := unix.InotifyInit1(unix.IN_NONBLOCK | unix.IN_CLOEXEC)
	if err != nil {
		return nil
	}
	w := &watcher{f: os.NewFile(uintptr(fd), "inotify"), fd: fd, root: strings.TrimSuffix(dir, "/") + "/",
		wds: map[string]int32{}, paths: map[int32]string{}, gone: map[string]uint32{}, max: max}
	w.gen.Store(1)
	go w.read()
	return w
}

// read waits for events and applies them (readQueued), until the watcher
// is closed. They are read under mu, in the callback, so that drain never
// misses a batch this goroutine has read but not yet applied.
func (w *watcher) read() {
	rc, err := w.f.SyscallConn()
	if err == nil {
		err = rc.Read(func(uintptr) bool {
			w.mu.Lock()
			defer w.mu.Unlock()
			if w.shut {
				return true
			}
			w.readQueued()
			return false // wait for more
		})
	}
	w.dead.Store(true)
	w.gen.Add(1)
}

// readQueued reads and applies the events queued. Call with mu held.
func (w *watcher) readQueued() {
	var buf [4096]byte
	for !w.shut {
		n, err := unix.Read(w.fd, buf[:])
		if err != nil || n <= 0 {
			return
		}
		w.events(buf[:n])
	}
}

// events moves gen on for a batch of events. A directory that moved or
// went (or whose entries are directories that came, went or moved, or
// events that were lost) may leave a watch on some other directory than
// the path it was added for: then every watch goes, and paths are
// watched anew as they are cached again. Call with mu held.
func (w *watcher) events(buf []byte) {
	const moved = unix.IN_CREATE | unix.IN_DELETE | unix.IN_MOVED_FROM | unix.IN_MOVED_TO
	reset := false
	for off := 0; off+unix.SizeofInotifyEvent <= len(buf); {
		ev := (*unix.InotifyEvent)(unsafe.Pointer(&buf[off]))
		switch {
		case ev.Mask&(unix.IN_MOVE_SELF|unix.IN_DELETE_SELF|unix.IN_Q_OVERFLOW) != 0,
			ev.Mask&unix.IN_ISDIR != 0 && ev.Mask&moved != 0:
			reset = true
		case ev.Mask&unix.IN_IGNORED != 0:
			// Not one this watcher removed itself (a reset forgets first).
			_, known := w.paths[ev.Wd]
			reset = reset || known
		}
		off += unix.SizeofInotifyEvent + int(ev.Len)
	}
	if !reset {
		w.gen.Add(1)
		return
	}
	// Under mu, then gen: watch reads gen under mu, so a check is never
	// recorded on watches that are gone.
	for wd := range w.paths {
		unix.InotifyRmWatch(w.fd, uint32(wd))
	}
	clear(w.paths)
	clear(w.wds)
	clear(w.gone)
	w.gen.Add(1)
}

// drain reads the events already queued, here and now, rather than when
// the reading goroutine gets to them: after drain, every change made
// before it is reflected in gen. (Tests call it after changing files.)
func (w *watcher) drain() {
	if w == nil {
		return
	}
	w.mu.Lock()
	w.readQueued()
	w.mu.Unlock()
}

// current is the generation to record a check at, or 0 when the watcher
// cannot vouch for anything.
func (w *watcher) current() uint32 {
	if w == nil || w.dead.Load() {
		return 0
	}
	return w.gen.Load()
}

// watch makes sure every directory from the root to the one holding rel
// is watched, and returns the generation to record what is then found
// at; 0 when it cannot be. A directory that does not exist ends the walk:
// the one above it, watched, sees it appear. Call it before looking at
// what it then vouches for.
func (w *watcher) watch(rel string) uint32 {
	if w == nil || w.dead.Load() {
		return 0
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if ok, _ := w.add(""); !ok {
		return 0
	}
	for i := 0; ; {
		j := strings.IndexByte(rel[i:], '/')
		if j < 0 {
			break
		}
		ok, missing := w.add(rel[:i+j])
		if !ok {
			return 0
		}
		if missing {
			break
		}
		i += j + 1
	}
	return w.gen.Load()
}

// add watches directory p (relative to the root, "" for the root) unless
// it is watched already; ok with missing when there is no directory there
// to watch. Call with mu held.
func (w *watcher) add(p string) (ok, missing bool) {
	if _, ok := w.wds[p]; ok {
		return true, false
	}
	if w.shut {
		return false, false
	}
	g := w.gen.Load()
	if at, ok := w.gone[p]; ok && at == g {
		return true, true
	}
	if len(w.wds) >= w.max {
		return false, false
	}
	wd, err := unix.InotifyAddWatch(w.fd, w.root+p, events)
	switch {
	case errors.Is(err, unix.ENOENT), errors.Is(err, unix.ENOTDIR):
		if len(w.gone) >= w.max {
			clear(w.gone)
		}
		w.gone[strings.Clone(p)] = g
		return true, true
	case err != nil:
		return false, false
	}
	p = strings.Clone(p)
	w.wds[p] = int32(wd)
	w.paths[int32(wd)] = p
	return true, false
}

func (w *watcher) close() {
	if w == nil {
		return
	}
	w.mu.Lock()
	w.shut = true
	w.mu.Unlock()
	// Not under mu: Close waits for the reading goroutine's callback.
	w.f.Close()
}
