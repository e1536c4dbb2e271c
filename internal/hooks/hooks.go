// Package hooks owns running operators' commands on lifecycle events
// (Passenger's `--ctl hook_NAME=COMMAND`): asynchronously, bounded in time
// and in how many run at once, with the event's details in the
// environment. A slow or failing hook never blocks requests; it is logged.
// It does not decide when events happen.
package hooks

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"sort"
	"strings"
	"sync"
	"time"
)

// Events Ferry reports, by their Passenger names where Passenger has them.
const (
	AttachedProcess        = "attached_process"
	DetachedProcess        = "detached_process"
	SpawnFailed            = "spawn_failed"
	QueueFullError         = "queue_full_error"
	MaxRequestTimeReached  = "max_request_time_reached"
	RollingRestartFinished = "rolling_restart_finished"
	AppRestarted           = "app_restarted"
)

// Known lists the events hooks can be set for.
var Known = []string{AttachedProcess, DetachedProcess, SpawnFailed, QueueFullError,
	MaxRequestTimeReached, RollingRestartFinished, AppRestarted}

// Runner runs the hooks.
type Runner struct {
	hooks   map[string][]string // event → shell commands
	timeout time.Duration
	log     *slog.Logger
	slots   chan struct{} // bounds hooks running at once
	wg      sync.WaitGroup
	now     func() time.Time
}

// New returns a runner for hooks (event → commands). timeout bounds each run
// (default 30s); at most max run at once (default 8), further events are
// dropped with a log line rather than queued without bound.
func New(hooks map[string][]string, timeout time.Duration, max int, log *slog.Logger) (*Runner, error) {
	for ev := range hooks {
		if !known(ev) {
			return nil, fmt.Errorf("unknown hook event %q (known: %s)", ev, strings.Join(Known, ", "))
		}
	}
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	if max <= 0 {
		max = 8
	}
	return &Runner{hooks: hooks, timeout: timeout, log: log, slots: make(chan struct{}, max), now: time.Now}, nil
}

func known(ev string) bool {
	for _, k := range Known {
		if k == ev {
			return true
		}
	}
	return false
}

// Fire runs the hooks of event in the background with details (e.g. "app",
// "pid", "error") in the environment as FERRY_<KEY> (and PASSENGER_<KEY>
// for hooks written for Passenger), plus FERRY_EVENT.
func (r *Runner) Fire(event string, details map[string]string) {
	if r == nil {
		return
	}
	cmds := r.hooks[event]
	if len(cmds) == 0 {
		return
	}
	env := append(os.Environ(), "FERRY_EVENT="+event, "PASSENGER_HOOK_NAME="+event)
	keys := make([]string, 0, len(details))
	for k := range details {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		name := strings.ToUpper(k)
		env = append(env, "FERRY_"+name+"="+details[k], "PASSENGER_"+name+"="+details[k])
	}
	for _, c := range cmds {
		select {
		case r.slots <- struct{}{}:
		default:
			r.log.Warn("hook dropped: too many hooks running", "event", event, "command", c)
			continue
		}
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			defer func() { <-r.slots }()
			r.run(event, c, env)
		}()
	}
}

func (r *Runner) run(event, command string, env []string) {
	ctx, cancel := context.WithTimeout(context.Background(), r.timeout)
	defer cancel()
	start := r.now()
	cmd := exec.CommandContext(ctx, "/bin/sh", "-c", command)
	cmd.Env = env
	cmd.WaitDelay = time.Second
	out, err := cmd.CombinedOutput()
	attrs := []any{"event", event, "command", command, "duration", r.now().Sub(start).Round(time.Millisecond)}
	if len(out) > 0 {
		attrs = append(attrs, "output", strings.TrimSpace(string(out)))
	}
	switch {
	case ctx.Err() != nil:
		r.log.Warn("hook timed out and was killed", append(attrs, "timeout", r.timeout)...)
	case err != nil:
		r.log.Warn("hook failed", append(attrs, "error", err)...)
	default:
		r.log.Debug("hook ran", attrs...)
	}
}

// Wait waits for the hooks running now (at shutdown).
func (r *Runner) Wait() {
	if r != nil {
		r.wg.Wait()
	}
}
