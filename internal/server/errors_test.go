package server

import (
	"context"
	"errors"
	"fmt"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/ferry-server/ferry/internal/pool"
	"github.com/ferry-server/ferry/internal/proxy"
	"github.com/ferry-server/ferry/internal/spawn"
)

func TestErrorMapping(t *testing.T) {
	spawnErr := &spawn.Error{App: "a", Summary: "ImportError: <nope>", Details: "Traceback", Output: "printed <b>"}
	for _, tc := range []struct {
		name       string
		err        error
		dev        bool
		status     int
		retryAfter string
		has, hasnt []string
	}{
		{"queue full", fmt.Errorf("checkout: %w", pool.ErrQueueFull), false, 503, "1", []string{"queue is full"}, nil},
		{"shutting down", pool.ErrShuttingDown, false, 503, "5", nil, nil},
		{"too large", proxy.ErrBodyTooLarge, false, 413, "", nil, nil},
		{"spawn, development", spawnErr, true, 500, "", []string{"failed to start", "ImportError: &lt;nope&gt;", "Traceback", "printed &lt;b&gt;"}, []string{"<nope>"}},
		{"spawn, production", spawnErr, false, 500, "", []string{"failed to start"}, []string{"ImportError", "Traceback", "printed"}},
		{"backing off", &pool.BackoffError{Err: spawnErr, RetryAfter: 3 * time.Second}, true, 503, "3", []string{"ImportError"}, nil},
		{"app broke off", &proxy.RoundTripError{Err: errors.New("EOF")}, false, 502, "", nil, nil},
		{"timeout", context.DeadlineExceeded, false, 504, "", nil, nil},
		{"unknown", errors.New("???"), false, 500, "", nil, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			rec.Header().Set("Content-Length", "99") // left over from an app response
			if got := writeError(rec, tc.err, tc.dev); got != tc.status || rec.Code != tc.status {
				t.Fatalf("status %d (recorded %d), want %d", got, rec.Code, tc.status)
			}
			if rec.Header().Get("Retry-After") != tc.retryAfter {
				t.Errorf("Retry-After %q, want %q", rec.Header().Get("Retry-After"), tc.retryAfter)
			}
			if rec.Header().Get("Content-Length") != "" {
				t.Error("a stale Content-Length survived")
			}
			body := rec.Body.String()
			for _, s := range tc.has {
				if !strings.Contains(body, s) {
					t.Errorf("page lacks %q:\n%s", s, body)
				}
			}
			for _, s := range tc.hasnt {
				if strings.Contains(body, s) {
					t.Errorf("page shows %q:\n%s", s, body)
				}
			}
		})
	}
}

// spawn.Error reaches the error page through spawnFailure; this keeps the
// two in step without the request path importing spawn.
var _ spawnFailure = (*spawn.Error)(nil)
