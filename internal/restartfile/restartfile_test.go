package restartfile

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestRestartTxt(t *testing.T) {
	dir := t.TempDir()
	touch := func(name string, mtime time.Time) {
		t.Helper()
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, nil, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(p, mtime, mtime); err != nil {
			t.Fatal(err)
		}
	}
	base := time.Now().Add(-time.Hour)
	touch("restart.txt", base)

	clock := base
	w := New(dir, 10*time.Second)
	w.now = func() time.Time { return clock }

	if k := w.Check(); k != None {
		t.Fatalf("an existing restart.txt counted as a change: %v", k)
	}
	touch("restart.txt", base.Add(time.Minute))
	if k := w.Check(); k != None {
		t.Fatalf("checked within the throttle period: %v", k)
	}
	clock = clock.Add(11 * time.Second)
	if k := w.Check(); k != Once {
		t.Fatalf("touched restart.txt: %v, want Once", k)
	}
	clock = clock.Add(11 * time.Second)
	if k := w.Check(); k != None {
		t.Fatalf("the same touch restarted twice: %v", k)
	}
	touch("always_restart.txt", base)
	clock = clock.Add(11 * time.Second)
	if k := w.Check(); k != Always {
		t.Fatalf("always_restart.txt: %v", k)
	}
}

func TestNoThrottle(t *testing.T) {
	dir := t.TempDir()
	w := New(dir, 0)
	if w.Check() != None {
		t.Fatal("no files: want None")
	}
	os.WriteFile(filepath.Join(dir, "restart.txt"), nil, 0o644)
	if w.Check() != Once {
		t.Fatal("a new restart.txt: want Once at once with no throttle")
	}
}
