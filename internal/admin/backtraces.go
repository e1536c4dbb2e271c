package admin

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"time"
)

// Backtraces is the answer of GET /backtraces.
type Backtraces struct {
	Processes []ProcessBacktraces `json:"processes"`
}

// ProcessBacktraces is the dump of one process, or why there is none.
type ProcessBacktraces struct {
	App        string `json:"app"`
	PID        int    `json:"pid"`
	Backtraces string `json:"backtraces,omitempty"`
	Error      string `json:"error,omitempty"`
}

// Bounds of ?timeout: how long each process has to write its dump.
const (
	DefaultBacktraceTimeout = 5 * time.Second
	maxBacktraceTimeout     = time.Minute
)

// backtraces asks app processes for the stack of every thread, without
// stopping them: ?pid=N for one, ?app=NAME for one app's, else all. Each
// process has ?timeout (default 5s) to answer; they are asked at once.
func (s *Server) backtraces(r *http.Request) (any, error) {
	q := r.URL.Query()
	timeout := DefaultBacktraceTimeout
	if v := q.Get("timeout"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 || d > maxBacktraceTimeout {
			return nil, &APIError{Status: http.StatusBadRequest,
				Message: fmt.Sprintf("timeout must be a duration between 0 and %s (e.g. 5s), not %q", maxBacktraceTimeout, v)}
		}
		timeout = d
	}
	pid := 0
	if v := q.Get("pid"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 {
			return nil, &APIError{Status: http.StatusBadRequest, Message: fmt.Sprintf("pid must be a process id, not %q", v)}
		}
		pid = n
	}
	appName := q.Get("app")

	type target struct {
		app App
		pid int
	}
	var targets []target
	apps := s.src.Apps()
	appFound := false
	for _, a := range apps {
		if appName != "" && a.Group.Name() != appName {
			continue
		}
		appFound = true
		for _, p := range a.Group.PIDs() {
			if pid == 0 || p == pid {
				targets = append(targets, target{a, p})
			}
		}
	}
	switch {
	case appName != "" && !appFound:
		return nil, &APIError{Status: http.StatusNotFound, Message: fmt.Sprintf("no app named %q", appName)}
	case pid != 0 && len(targets) == 0:
		return nil, &APIError{Status: http.StatusNotFound, Message: fmt.Sprintf("no app process with pid %d", pid)}
	}

	ctx, cancel := context.WithTimeout(r.Context(), timeout)
	defer cancel()
	out := Backtraces{Processes: make([]ProcessBacktraces, len(targets))}
	var wg sync.WaitGroup
	for i, t := range targets {
		wg.Go(func() {
			res := ProcessBacktraces{App: t.app.Group.Name(), PID: t.pid}
			dump, found, err := t.app.Group.Backtraces(ctx, t.pid)
			switch {
			case !found:
				res.Error = "the process is gone"
			case err != nil:
				res.Error = err.Error()
			default:
				res.Backtraces = dump
			}
			out.Processes[i] = res
		})
	}
	wg.Wait()
	return out, nil
}
