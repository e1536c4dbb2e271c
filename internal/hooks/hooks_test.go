package hooks

import (
	"bytes"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestFireRunsWithDetails(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "out")
	r, err := New(map[string][]string{
		SpawnFailed: {`echo "$FERRY_EVENT $FERRY_APP $FERRY_ERROR $PASSENGER_APP" > ` + out},
	}, 10*time.Second, 2, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	r.Fire(SpawnFailed, map[string]string{"app": "blog", "error": "boom"})
	r.Fire(AttachedProcess, map[string]string{"app": "blog"}) // no hook: nothing
	r.Wait()
	b, _ := os.ReadFile(out)
	if strings.TrimSpace(string(b)) != "spawn_failed blog boom blog" {
		t.Fatalf("hook saw %q", b)
	}
}

func TestSlowAndFailingHooksAreBounded(t *testing.T) {
	var logs bytes.Buffer
	r, _ := New(map[string][]string{
		QueueFullError: {"sleep 60", "exit 3"},
	}, 200*time.Millisecond, 8, slog.New(slog.NewTextHandler(&logs, nil)))
	start := time.Now()
	r.Fire(QueueFullError, nil) // returns at once
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("Fire blocked for %s", d)
	}
	r.Wait()
	if !strings.Contains(logs.String(), "hook timed out and was killed") || !strings.Contains(logs.String(), "hook failed") {
		t.Fatalf("logs:\n%s", logs.String())
	}
}

func TestTooManyAtOnceAreDropped(t *testing.T) {
	var logs bytes.Buffer
	r, _ := New(map[string][]string{AppRestarted: {"sleep 0.5"}}, 10*time.Second, 1, slog.New(slog.NewTextHandler(&logs, nil)))
	r.Fire(AppRestarted, nil)
	r.Fire(AppRestarted, nil)
	r.Wait()
	if !strings.Contains(logs.String(), "hook dropped") {
		t.Fatalf("logs:\n%s", logs.String())
	}
}

func TestUnknownEvent(t *testing.T) {
	if _, err := New(map[string][]string{"frobnicated": {"true"}}, 0, 0, slog.New(slog.DiscardHandler)); err == nil {
		t.Fatal("unknown event accepted")
	}
}
