package logs

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
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
