//go:build !linux

package static

// watcher is inotify's on Linux; elsewhere there is none, and every
// request stats its file, as the cache always did.
type watcher struct{}

func newWatcher(string, int) *watcher  { return nil }
func (w *watcher) current() uint32     { return 0 }
func (w *watcher) watch(string) uint32 { return 0 }
func (w *watcher) close()              {}
func (w *watcher) drain()              {}
