package logs

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestReopenAfterRotation(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "ferry.log")
	out, err := New(Options{File: path, Format: "json"})
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	appLog, err := out.App(filepath.Join(dir, "app.log"))
	if err != nil {
		t.Fatal(err)
	}
	out.Core.Info("before rotation")
	appLog.Info("app output", "line", "hello")
	if err := os.Rename(path, path+".1"); err != nil {
		t.Fatal(err)
	}
	out.Core.Info("still the old file")
	if err := out.Reopen(); err != nil {
		t.Fatal(err)
	}
	out.Core.Info("after rotation")

	rotated, _ := os.ReadFile(path + ".1")
	fresh, _ := os.ReadFile(path)
	if !strings.Contains(string(rotated), "before rotation") || !strings.Contains(string(rotated), "still the old file") ||
		strings.Contains(string(rotated), "after rotation") {
		t.Errorf("rotated file:\n%s", rotated)
	}
	if !strings.Contains(string(fresh), "after rotation") {
		t.Errorf("new file:\n%s", fresh)
	}
	var rec map[string]any
	if err := json.Unmarshal([]byte(strings.SplitN(string(fresh), "\n", 2)[0]), &rec); err != nil || rec["msg"] != "after rotation" {
		t.Errorf("json format: %v %v", rec, err)
	}
	app, _ := os.ReadFile(filepath.Join(dir, "app.log"))
	if !strings.Contains(string(app), `"line":"hello"`) || strings.Contains(string(rotated), "hello") {
		t.Errorf("app output not in its own file: app.log %q", app)
	}
}

func TestOpenError(t *testing.T) {
	if _, err := New(Options{File: "/nonexistent/dir/ferry.log"}); err == nil || !strings.Contains(err.Error(), "/nonexistent/dir/ferry.log") {
		t.Fatalf("error = %v", err)
	}
}

func TestRefusesSymlinkAndHardLink(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(dir, "precious")
	os.WriteFile(target, []byte("keep me\n"), 0o600)
	link := filepath.Join(dir, "ferry.log")
	os.Symlink(target, link)
	if _, err := Open(link); err == nil {
		t.Fatal("opened a log file through a symlink")
	}
	hard := filepath.Join(dir, "other.log")
	os.Link(target, hard)
	if _, err := Open(hard); err == nil || !strings.Contains(err.Error(), "hard links") {
		t.Fatalf("hard link: %v", err)
	}
	if b, _ := os.ReadFile(target); string(b) != "keep me\n" {
		t.Fatalf("target changed: %q", b)
	}
}

// eventually polls cond until it holds; it asserts nothing about speed.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for: %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func readLines(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	return strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
}

// Lines from many goroutines are all in the file after Close, each whole.
func TestBufferedManyWritersClose(t *testing.T) {
	path := filepath.Join(t.TempDir(), "access.log")
	out, err := New(Options{File: filepath.Join(filepath.Dir(path), "ferry.log")})
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	w, closeW, err := out.Access(path)
	if err != nil {
		t.Fatal(err)
	}
	const writers, each = 16, 5000 // several times BufferSize in all
	var wg sync.WaitGroup
	for g := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				fmt.Fprintf(w, "writer=%d line=%d %s\n", g, i, strings.Repeat("x", i%100))
			}
		}()
	}
	wg.Wait()
	if err := closeW(); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write([]byte("after close\n")); err == nil {
		t.Error("a write after close succeeded")
	}
	seen := map[string]bool{}
	for _, l := range readLines(t, path) {
		var g, i int
		if _, err := fmt.Sscanf(l, "writer=%d line=%d", &g, &i); err != nil || l != fmt.Sprintf("writer=%d line=%d %s", g, i, strings.Repeat("x", i%100)) {
			t.Fatalf("torn line %q", l)
		}
		if seen[l] {
			t.Fatalf("line twice: %q", l)
		}
		seen[l] = true
	}
	if len(seen) != writers*each {
		t.Fatalf("%d lines in the file, want %d", len(seen), writers*each)
	}
}

// A line that fills nothing reaches the file within FlushInterval, without
// a Close or another line.
func TestBufferedFlushesWithoutClose(t *testing.T) {
	path := filepath.Join(t.TempDir(), "access.log")
	f, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	w := f.Buffered()
	for round := range 3 { // the timer is armed again after it fired
		line := fmt.Sprintf("round %d\n", round)
		w.Write([]byte(line))
		eventually(t, "the buffered line in the file", func() bool {
			b, _ := os.ReadFile(path)
			return strings.HasSuffix(string(b), line)
		})
	}
}

// Write (the core's own lines) comes after the buffered lines written
// before it, in one file.
func TestBufferedKeepsOrderWithWrite(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ferry.log")
	f, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	f.Buffered().Write([]byte("access 1\n"))
	f.Buffered().Write([]byte("access 2\n"))
	f.Write([]byte("core 1\n"))
	f.Buffered().Write([]byte("access 3\n"))
	if b, _ := os.ReadFile(path); string(b) != "access 1\naccess 2\ncore 1\n" {
		t.Errorf("before close: %q", b)
	}
	f.Close()
	if b, _ := os.ReadFile(path); string(b) != "access 1\naccess 2\ncore 1\naccess 3\n" {
		t.Errorf("after close: %q", b)
	}
}

// Reopen (SIGUSR1) after logrotate moved the file: what was written before
// is all in the moved file, what comes after in the new one.
func TestBufferedReopenAfterRename(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "access.log")
	out, err := New(Options{File: filepath.Join(dir, "ferry.log")})
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	w, closeW, err := out.Access(path)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 1000 {
		fmt.Fprintf(w, "before %d\n", i)
	}
	if err := os.Rename(path, path+".1"); err != nil {
		t.Fatal(err)
	}
	if err := out.Reopen(); err != nil {
		t.Fatal(err)
	}
	for i := range 1000 {
		fmt.Fprintf(w, "after %d\n", i)
	}
	if err := closeW(); err != nil {
		t.Fatal(err)
	}
	old, fresh := readLines(t, path+".1"), readLines(t, path)
	if len(old) != 1000 || len(fresh) != 1000 {
		t.Fatalf("%d lines in the moved file, %d in the new one", len(old), len(fresh))
	}
	for i := range 1000 {
		if old[i] != fmt.Sprintf("before %d", i) || fresh[i] != fmt.Sprintf("after %d", i) {
			t.Fatalf("line %d: %q in the moved file, %q in the new one", i, old[i], fresh[i])
		}
	}
	// Closed: no longer reopened with the others.
	if err := out.Reopen(); err != nil {
		t.Fatal(err)
	}
}

// Reopen while many goroutines write: no line lost or doubled, each in
// one of the two files.
func TestBufferedReopenWhileWriting(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "access.log")
	f, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	w := f.Buffered()
	const writers, each = 8, 3000
	var wg sync.WaitGroup
	for g := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				fmt.Fprintf(w, "%d %d\n", g, i)
			}
		}()
	}
	for i := range 3 {
		os.Rename(path, fmt.Sprintf("%s.%d", path, i))
		if err := f.Reopen(); err != nil {
			t.Error(err)
		}
	}
	wg.Wait()
	f.Close()
	n := 0
	seen := map[string]bool{}
	for _, p := range []string{path + ".0", path + ".1", path + ".2", path} {
		for _, l := range readLines(t, p) {
			if l == "" {
				continue
			}
			if seen[l] {
				t.Fatalf("line twice: %q", l)
			}
			seen[l] = true
			n++
		}
	}
	if n != writers*each {
		t.Fatalf("%d lines, want %d", n, writers*each)
	}
}

// An access log file moved away without a signal is followed: lines go to
// a new file at its path after a flush.
func TestAccessFollowsWithoutSignal(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "access.log")
	out, err := New(Options{File: filepath.Join(dir, "ferry.log")})
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	w, closeW, err := out.Access(path)
	if err != nil {
		t.Fatal(err)
	}
	defer closeW()
	w.Write([]byte("first\n"))
	os.Rename(path, path+".1")
	eventually(t, "a new file at the path", func() bool {
		w.Write([]byte("later\n"))
		b, _ := os.ReadFile(path)
		return strings.Contains(string(b), "later")
	})
	if b, _ := os.ReadFile(path + ".1"); !strings.HasPrefix(string(b), "first\n") {
		t.Errorf("moved file %q", b)
	}
	// Never through a symlink.
	os.Remove(path)
	os.Symlink(filepath.Join(dir, "precious"), path)
	if _, _, err := out.Access(path); err == nil {
		t.Error("opened an access log through a symlink")
	}
}

// Access "" is the core log itself: its lines and the core's in order,
// flushed by the core's own lines and by close.
func TestAccessInCoreLog(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ferry.log")
	out, err := New(Options{File: path})
	if err != nil {
		t.Fatal(err)
	}
	w, flush, err := out.Access("")
	if err != nil {
		t.Fatal(err)
	}
	w.Write([]byte("access line\n"))
	out.Core.Info("core line")
	w.Write([]byte("access line 2\n"))
	flush()
	lines := readLines(t, path)
	if len(lines) != 3 || lines[0] != "access line" || !strings.Contains(lines[1], "msg=\"core line\"") || lines[2] != "access line 2" {
		t.Errorf("core log %q", lines)
	}
	out.Close()
}

// The JSON log gives durations in milliseconds under NAME_ms, as the JSON
// access log's duration_ms; the text log keeps Go's 1.5s.
func TestJSONDurationsInMilliseconds(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(handler(&buf, "json", slog.LevelInfo)).With("up", 2*time.Second)
	log.Info("process ready", "startup", 1500*time.Microsecond, slog.Group("g", slog.Duration("wait", 250*time.Nanosecond)))
	var m map[string]any
	if err := json.Unmarshal(buf.Bytes(), &m); err != nil {
		t.Fatal(err)
	}
	g, _ := m["g"].(map[string]any)
	if m["startup_ms"] != 1.5 || m["up_ms"] != 2000.0 || g["wait_ms"] != 0.0 || m["startup"] != nil {
		t.Errorf("JSON log: %s", buf.String())
	}
	buf.Reset()
	slog.New(handler(&buf, "text", slog.LevelInfo)).Info("x", "startup", 1500*time.Millisecond)
	if !strings.Contains(buf.String(), "startup=1.5s") {
		t.Errorf("text log: %s", buf.String())
	}
}
