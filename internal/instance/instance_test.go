package instance

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

func TestCreateModes(t *testing.T) {
	reg := filepath.Join(t.TempDir(), "registry")
	d, err := Create(reg, Properties{PID: os.Getpid()})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Remove()
	top, work := os.FileMode(0o700), os.FileMode(0o700)
	if os.Geteuid() == 0 {
		// App users pass through to their work directories; nothing more.
		top, work = 0o711, 0o711
	}
	for _, tc := range []struct {
		path string
		mode os.FileMode
	}{
		{d.Path(), top},
		{d.WorkDir(), work},
		{d.BufferDir(), 0o700},
		{filepath.Join(d.Path(), "core.pid"), 0o600},
		{filepath.Join(d.Path(), "properties.json"), 0o600},
	} {
		fi, err := os.Stat(tc.path)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != tc.mode {
			t.Errorf("%s: mode %04o, want %04o", tc.path, fi.Mode().Perm(), tc.mode)
		}
	}
	if !strings.HasPrefix(filepath.Base(d.Path()), "ferry-") || len(filepath.Base(d.Path())) < len("ferry-")+6 {
		t.Errorf("instance name %q is not random", filepath.Base(d.Path()))
	}
}

// TestUnsafeRegistry checks that Ferry refuses a registry another user
// could swap its instance directory in.
func TestUnsafeRegistry(t *testing.T) {
	base := t.TempDir()
	open := filepath.Join(base, "open") // writable by anyone, not sticky
	os.Mkdir(open, 0o777)
	os.Chmod(open, 0o777)
	sticky := filepath.Join(base, "sticky") // like /tmp
	os.Mkdir(sticky, 0o777)
	os.Chmod(sticky, 0o777|os.ModeSticky)
	link := filepath.Join(base, "link") // a symlink to the open one
	os.Symlink(open, link)

	for _, tc := range []struct {
		registry, err string
	}{
		{open, "writable by others"},
		{filepath.Join(open, "ferry"), "writable by others"}, // a parent is
		{link, "writable by others"},
		{filepath.Join(sticky, "ferry"), ""},
		{sticky, ""},
	} {
		d, err := Create(tc.registry, Properties{PID: os.Getpid()})
		if tc.err == "" {
			if err != nil {
				t.Errorf("%s: %v", tc.registry, err)
				continue
			}
			if filepath.Dir(d.Path()) != tc.registry {
				t.Errorf("%s: instance at %s", tc.registry, d.Path())
			}
			d.Remove()
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tc.err) {
			t.Errorf("%s: err = %v, want %q", tc.registry, err, tc.err)
			if d != nil {
				d.Remove()
			}
		}
	}

	if os.Geteuid() == 0 {
		// A directory another user owns, even a private one.
		theirs := filepath.Join(base, "theirs")
		os.Mkdir(theirs, 0o755)
		if err := os.Chown(theirs, 65534, 65534); err != nil {
			t.Fatal(err)
		}
		_, err := Create(theirs, Properties{PID: os.Getpid()})
		if err == nil || !strings.Contains(err.Error(), "belongs to uid 65534") {
			t.Errorf("registry owned by nobody: %v", err)
		}
		// The same through a symlink is resolved and refused.
		l := filepath.Join(base, "theirs-link")
		os.Symlink(theirs, l)
		if _, err := Create(l, Properties{PID: os.Getpid()}); err == nil {
			t.Error("registry symlinked to nobody's directory accepted")
		}
	}
}

func TestRegistryIsResolved(t *testing.T) {
	base := t.TempDir()
	real := filepath.Join(base, "real")
	os.Mkdir(real, 0o755)
	link := filepath.Join(base, "link")
	if err := os.Symlink(real, link); err != nil {
		t.Skip(err)
	}
	d, err := Create(link, Properties{PID: os.Getpid()})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Remove()
	// The instance lives under the resolved path, so swapping the symlink
	// later changes nothing.
	if filepath.Dir(d.Path()) != real {
		t.Fatalf("instance at %s, want under %s", d.Path(), real)
	}
	var st syscall.Stat_t
	if err := syscall.Lstat(d.Path(), &st); err != nil || st.Mode&syscall.S_IFMT != syscall.S_IFDIR {
		t.Fatalf("instance is not a plain directory: %v", err)
	}
}
