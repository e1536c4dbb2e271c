//go:build unix

package static

import (
	"net/http/httptest"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/ferry-server/ferry/internal/identity"
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

// TestFollowSymlinksAsUser checks that with FollowSymlinks and As, a symlink
// under public/ reaches only what the app's user could read itself: the
// core runs as root, and an app must not use it to read root's files.
func TestFollowSymlinksAsUser(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: opens files as another user (CI runs as root)")
	}
	nobody, err := identity.Lookup("nobody")
	if err != nil {
		t.Skip("no user nobody")
	}
	base, err := os.MkdirTemp("", "ferry-static-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(base)
	os.Chmod(base, 0o755)
	pub := filepath.Join(base, "public")
	private := filepath.Join(base, "private") // root's, 0700
	shared := filepath.Join(base, "shared")   // anyone's to read
	for _, d := range []string{pub, private, shared} {
		mkdir(t, d)
	}
	os.Chmod(private, 0o700)
	write(t, filepath.Join(private, "key.txt"), secret)
	write(t, filepath.Join(shared, "logo.txt"), "logo")
	write(t, filepath.Join(shared, "root-only.txt"), secret)
	os.Chmod(filepath.Join(shared, "root-only.txt"), 0o600)
	for name, target := range map[string]string{
		"key.txt":       filepath.Join(private, "key.txt"),
		"logo.txt":      filepath.Join(shared, "logo.txt"),
		"root-only.txt": filepath.Join(shared, "root-only.txt"),
		"shadow":        "/etc/shadow",
	} {
		if err := os.Symlink(target, filepath.Join(pub, name)); err != nil {
			t.Fatal(err)
		}
	}
	for _, cached := range []bool{true, false} {
		opts := Options{FollowSymlinks: true, As: nobody.Do}
		if !cached {
			opts.CacheMaxEntries = -1
		}
		h := newHandler(t, pub, opts)
		for _, tc := range []struct {
			path, want string
		}{
			{"/logo.txt", "logo"},
			{"/key.txt", ""},
			{"/root-only.txt", ""},
			{"/shadow", ""},
		} {
			w, ok := do(t, h, httptest.NewRequest("GET", tc.path, nil))
			if ok != (tc.want != "") || w.Body.String() != tc.want {
				t.Errorf("cached=%v %s: served=%v body %q, want %q", cached, tc.path, ok, w.Body.String(), tc.want)
			}
		}
	}
	// Without As (the core is not root, or the app runs as root), the
	// operator's choice holds: the kernel decides for the core's user.
	h := newHandler(t, pub, Options{FollowSymlinks: true})
	if _, ok := do(t, h, httptest.NewRequest("GET", "/key.txt", nil)); !ok {
		t.Error("without As, a readable symlink target was refused")
	}
}
