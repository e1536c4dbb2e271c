package core

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/ferry-server/ferry/internal/memtrim"
)

// trimDelay is how long after it starts serving the core trims its memory:
// long enough for the first app processes to have spawned (whose code is
// start-up's too), short enough that an operator looking at a fresh
// instance sees its real size.
const trimDelay = 10 * time.Second

// trimMemoryLater gives back, once, the pages of the executable that only
// start-up used (--memory-trim; internal/memtrim).
func trimMemoryLater(ctx context.Context, on bool, log *slog.Logger) {
	if !on {
		return
	}
	go func() {
		select {
		case <-ctx.Done():
			return
		case <-time.After(trimDelay):
		}
		n, err := memtrim.Trim()
		switch {
		case errors.Is(err, memtrim.ErrUnsupported):
			log.Debug("memory trim unavailable", "error", err)
		case err != nil:
			log.Warn("memory trim failed", "error", err)
		default:
			log.Debug("memory trimmed: start-up pages of the executable given back", "advised_bytes", n)
		}
	}()
}
