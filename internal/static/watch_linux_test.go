package static

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestCheckHolds(t *testing.T) {
	const g = 7
	c := uint64(g)<<msBits | 1000 // checked at gen 7, 1000 ms
	for _, tc := range []struct {
		check uint64
		g     uint32
		now   uint64
		want  bool
	}{
		{c, g, 1000, true},
		{c, g, 1999, true},
		{c, g, 2000, false}, // Revalidate (1000 ms) past
		{c, g + 1, 1000, false},
		{c, 0, 1000, false},        // no watcher to vouch
		{0, g, 0, false},           // never checked on the watcher's word
		{c, g + 1<<24, 1000, true}, // 24 bits of gen: 16 M events later is taken for the same (within Revalidate)
	} {
		if got := checkHolds(tc.check, tc.g, tc.now, 1000); got != tc.want {
			t.Errorf("checkHolds(%x, %d, %d) = %v, want %v", tc.check, tc.g, tc.now, got, tc.want)
		}
	}
}

// known reports what a request would be answered from without a Stat.
func knownBody(h *Handler, rel string) (body string, absent, ok bool) {
	h.watch.drain()
	e, absent := h.known(rel)
	if e != nil {
		return string(e.data), false, true
	}
	return "", absent, absent
}

func TestWatchedWithoutStat(t *testing.T) {
	_, pub := fixture(t)
	h := newHandler(t, pub, Options{Revalidate: time.Hour})
	if h.watch == nil {
		t.Skip("no inotify here")
	}
	p := filepath.Join(pub, "w.txt")
	write(t, p, "one")
	if w, ok := get(t, h, "/w.txt"); !ok || w.Body.String() != "one" {
		t.Fatalf("served %v %q", ok, w.Body.String())
	}
	if body, _, ok := knownBody(h, "w.txt"); !ok || body != "one" {
		t.Fatalf("not served from memory without a Stat: %q %v", body, ok)
	}
	// Written in place: the watch on its directory voids the check.
	write(t, p, "two")
	if _, _, ok := knownBody(h, "w.txt"); ok {
		t.Fatal("a changed file still answered without a Stat")
	}
	if w, ok := get(t, h, "/w.txt"); !ok || w.Body.String() != "two" {
		t.Fatalf("served %v %q, want two", ok, w.Body.String())
	}
	// Replaced by rename, as deploys do.
	write(t, p+".new", "three")
	if err := os.Rename(p+".new", p); err != nil {
		t.Fatal(err)
	}
	if w, ok := get(t, h, "/w.txt"); !ok || w.Body.String() != "three" {
		t.Fatalf("served %v %q, want three", ok, w.Body.String())
	}
	// Removed.
	os.Remove(p)
	if _, ok := get(t, h, "/w.txt"); ok {
		t.Fatal("removed file served")
	}
}

func TestWatchedAbsent(t *testing.T) {
	_, pub := fixture(t)
	h := newHandler(t, pub, Options{Revalidate: time.Hour})
	if h.watch == nil {
		t.Skip("no inotify here")
	}
	for _, rel := range []string{"new.txt", "d/e/new.txt"} {
		if _, ok := get(t, h, "/"+rel); ok {
			t.Fatalf("%s: served before it exists", rel)
		}
		if _, absent, _ := knownBody(h, rel); !absent {
			t.Fatalf("%s: absence not known", rel)
		}
		// Another path below the same missing directory: the directory is
		// known to be missing (no watch to try), the path is not served.
		if _, ok := get(t, h, "/"+rel+".other"); ok {
			t.Fatalf("%s.other: served", rel)
		}
		p := filepath.Join(pub, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		write(t, p, "here")
		if w, ok := get(t, h, "/"+rel); !ok || w.Body.String() != "here" {
			t.Fatalf("%s: a file that appeared is not served: %v %q", rel, ok, w.Body.String())
		}
	}
}

// A watched directory moved away and another put in its place: the old
// watch must not vouch for the new directory's files.
func TestWatchedDirectoryReplaced(t *testing.T) {
	_, pub := fixture(t)
	h := newHandler(t, pub, Options{Revalidate: time.Hour})
	if h.watch == nil {
		t.Skip("no inotify here")
	}
	d := filepath.Join(pub, "d")
	mkdir(t, d)
	write(t, filepath.Join(d, "x.txt"), "old")
	if w, ok := get(t, h, "/d/x.txt"); !ok || w.Body.String() != "old" {
		t.Fatalf("served %v %q", ok, w.Body.String())
	}
	if err := os.Rename(d, d+"2"); err != nil {
		t.Fatal(err)
	}
	mkdir(t, d)
	write(t, filepath.Join(d, "x.txt"), "new")
	if w, ok := get(t, h, "/d/x.txt"); !ok || w.Body.String() != "new" {
		t.Fatalf("served %v %q, want new", ok, w.Body.String())
	}
	// Changes in the new directory are seen too (it is watched anew), and
	// none in the old one are taken for them.
	write(t, filepath.Join(d+"2", "x.txt"), "elsewhere")
	write(t, filepath.Join(d, "x.txt"), "newer")
	if w, ok := get(t, h, "/d/x.txt"); !ok || w.Body.String() != "newer" {
		t.Fatalf("served %v %q, want newer", ok, w.Body.String())
	}
}

// Without drain, the watcher's goroutine notices a change by itself.
func TestWatcherReadsEvents(t *testing.T) {
	_, pub := fixture(t)
	h := newHandler(t, pub, Options{Revalidate: time.Hour})
	if h.watch == nil {
		t.Skip("no inotify here")
	}
	p := filepath.Join(pub, "w.txt")
	write(t, p, "one")
	get(t, h, "/w.txt")
	g := h.watch.current()
	write(t, p, "two")
	for i := 0; h.watch.current() == g; i++ {
		if i == 1000 {
			t.Fatal("no event read in 10 s")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestRevalidateBound(t *testing.T) {
	_, pub := fixture(t)
	write(t, filepath.Join(pub, "w.txt"), "one")
	h := newHandler(t, pub, Options{Revalidate: time.Millisecond})
	if h.watch == nil {
		t.Skip("no inotify here")
	}
	get(t, h, "/w.txt")
	time.Sleep(5 * time.Millisecond)
	if _, _, ok := knownBody(h, "w.txt"); ok {
		t.Fatal("a check older than Revalidate still holds")
	}
	for _, o := range []Options{{Revalidate: -1}, {FollowSymlinks: true}, {CacheMaxEntries: -1}} {
		if h := newHandler(t, pub, o); h.watch != nil {
			t.Errorf("%+v: watching", o)
		}
	}
}

// Close ends the watcher's goroutine (and its inotify instance).
func TestWatcherEndsOnClose(t *testing.T) {
	_, pub := fixture(t)
	h, err := New(pub, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if h.watch == nil {
		t.Skip("no inotify here")
	}
	get(t, h, "/hello.txt")
	h.Close()
	for i := 0; !h.watch.dead.Load(); i++ {
		if i == 1000 {
			t.Fatal("the watcher's goroutine still runs 10 s after Close")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if g := h.watch.watch("hello.txt"); g != 0 {
		t.Fatalf("a closed watcher vouches for paths (generation %d)", g)
	}
	if _, ok := get(t, h, "/hello.txt"); ok {
		t.Fatal("served after Close")
	}
}
