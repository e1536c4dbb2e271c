package core

import (
	"context"
	"os"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/ferry-server/ferry/internal/config"
)

func TestDrainDelay(t *testing.T) {
	cfg := &config.Config{}
	cfg.DrainDelay = 5 * time.Second
	ended := func(cause error) context.Context {
		ctx, cancel := context.WithCancelCause(context.Background())
		cancel(cause)
		return ctx
	}
	for _, c := range []struct {
		name     string
		ctx      context.Context
		upgraded bool
		want     time.Duration
	}{
		{"SIGTERM drains", ended(StopSignal{syscall.SIGTERM}), false, 5 * time.Second},
		{"context ended otherwise", ended(context.Canceled), false, 5 * time.Second},
		{"Ctrl-C does not", ended(StopSignal{os.Interrupt}), false, 0},
		{"an upgrade does not", ended(StopSignal{syscall.SIGTERM}), true, 0},
		{"a failed front does not", context.Background(), false, 0},
	} {
		if got := drainDelay(c.ctx, cfg, c.upgraded); got != c.want {
			t.Errorf("%s: got %s, want %s", c.name, got, c.want)
		}
	}
}

func TestUpgradeReadyTimeout(t *testing.T) {
	cfg := &config.Config{Apps: []config.App{{StartTimeout: 30 * time.Second}, {StartTimeout: 90 * time.Second}}}
	if got := upgradeReadyTimeout(cfg); got != 100*time.Second {
		t.Fatalf("got %s, want the slowest app's start timeout and 10 s", got)
	}
}

// TestCleanupOrder: what Run built is taken down in reverse order.
func TestCleanupOrder(t *testing.T) {
	var r runner
	var got []int
	for i := range 3 {
		r.onExit(func() { got = append(got, i) })
	}
	r.cleanup()
	if !slices.Equal(got, []int{2, 1, 0}) {
		t.Fatalf("got %v", got)
	}
}
