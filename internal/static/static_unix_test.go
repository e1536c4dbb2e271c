//go:build unix

package static

import (
	"net/http/httptest"
	"path/filepath"
	"syscall"
	"testing"
)

// TestFIFO checks that a named pipe is never opened (opening one for reading
// blocks until a writer appears) and falls through.
func TestFIFO(t *testing.T) {
	_, pub := fixture(t)
	if err := syscall.Mkfifo(filepath.Join(pub, "fifo"), 0o644); err != nil {
		t.Skipf("mkfifo: %v", err)
	}
	for _, opts := range []Options{{}, {FollowSymlinks: true}, {CacheMaxEntries: -1}} {
		h := newHandler(t, pub, opts)
		if _, ok := do(t, h, httptest.NewRequest("GET", "/fifo", nil)); ok {
			t.Fatalf("%+v: fifo served", opts)
		}
	}
}
