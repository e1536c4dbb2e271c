package instance

import (
	"os"
	"path/filepath"
	"testing"
)

// TestPidFile: the pid is written, replacing an old file; a symlink at the
// path is replaced, not followed; the file is removed only while it still
// names the pid written.
func TestPidFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "ferry.pid")
	if err := os.WriteFile(path, []byte("999\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := WritePidFile(path, 1234); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(path); string(b) != "1234\n" {
		t.Fatalf("pid file holds %q", b)
	}

	target := filepath.Join(dir, "target")
	if err := os.WriteFile(target, []byte("precious\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "link.pid")
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	if err := WritePidFile(link, 1234); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(target); string(b) != "precious\n" {
		t.Fatalf("the symlink's target was written: %q", b)
	}
	if fi, err := os.Lstat(link); err != nil || fi.Mode()&os.ModeSymlink != 0 {
		t.Fatalf("the symlink is still there: %v %v", fi, err)
	}

	RemovePidFile(path, 5678) // a new core's file: kept
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("another pid's file was removed: %v", err)
	}
	RemovePidFile(path, 1234)
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatalf("own pid file not removed: %v", err)
	}
	RemovePidFile(path, 1234) // gone already: nothing to do
}
