package core

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"strconv"
	"time"

	"github.com/ferry-server/ferry/internal/config"
	"github.com/ferry-server/ferry/internal/health"
	"github.com/ferry-server/ferry/internal/sdnotify"
	"github.com/ferry-server/ferry/internal/server"
)

// supervisorNotify carries systemd's NOTIFY_SOCKET to a new ferry during
// an upgrade.
const supervisorNotify = "FERRY_SUPERVISOR_NOTIFY"

// upgradeReadyTimeout bounds how long a new ferry waits for its apps
// before it tells the old one it serves: the slowest app's start timeout,
// and a little.
func upgradeReadyTimeout(cfg *config.Config) time.Duration {
	d := time.Duration(0)
	for _, a := range cfg.Apps {
		d = max(d, a.StartTimeout)
	}
	return d + 10*time.Second
}

// waitAppsReady waits until readiness says every app can serve, an app's
// spawns fail, ctx ends or timeout passes.
func waitAppsReady(ctx context.Context, probes *health.Checker, timeout time.Duration) error {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		r := probes.Readiness(ctx)
		if r.Ready {
			return nil
		}
		for _, a := range r.Apps {
			if a.Reason == health.ReasonFailing {
				return fmt.Errorf("app %s cannot start: %s", a.Name, a.Error)
			}
		}
		select {
		case <-ctx.Done():
			return context.Cause(ctx)
		case <-deadline.C:
			return fmt.Errorf("the apps were not ready within %s: %+v", timeout, r.Apps)
		case <-tick.C:
		}
	}
}

// upgrade starts the ferry binary now on disk with the same arguments,
// hands it the listening sockets (as systemd does: LISTEN_FDS, LISTEN_PID)
// and waits until it serves (READY=1). The caller then drains and exits:
// the sockets never stop accepting, so no connection is refused. If the new
// one fails to start, this one keeps serving.
func upgrade(front *server.Server, ms *metricsServer, log *slog.Logger) (int, error) {
	files, err := front.Files()
	if err != nil {
		return 0, err
	}
	nfront := len(files)
	// The metrics and probes socket goes along after the front's, named
	// by its own variable: probes keep being answered through the upgrade.
	metricsEnv := ""
	if f, err := ms.file(); err != nil {
		log.Warn("upgrade: the metrics listener cannot be handed over; the new ferry opens its own", "error", err)
	} else if f != nil {
		files = append(files, f)
		metricsEnv = metricsFDEnv + "=" + strconv.Itoa(3+nfront)
	}
	defer func() {
		for _, f := range files {
			f.Close()
		}
	}()
	self, err := os.Executable()
	if err != nil {
		return 0, err
	}
	// LISTEN_PID must be the new process's own pid, known only after the
	// fork: a shell sets it and execs in place.
	script := `LISTEN_PID=$$ LISTEN_FDS=` + strconv.Itoa(nfront) + ` exec "$0" "$@"`
	cmd := exec.Command("/bin/sh", append([]string{"-c", script, self}, os.Args[1:]...)...)
	// Our own notify socket tells us when it serves; systemd's (if any)
	// travels along, so that the new ferry can tell it its pid.
	cmd.Env = append(os.Environ(), supervisorNotify+"="+os.Getenv("NOTIFY_SOCKET"))
	if metricsEnv != "" {
		cmd.Env = append(cmd.Env, metricsEnv)
	}
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	cmd.ExtraFiles = files
	child, err := sdnotify.StartChild(cmd)
	if err != nil {
		return 0, fmt.Errorf("start the new ferry: %w", err)
	}
	log.Info("upgrade: started the new ferry; waiting until it serves", "pid", cmd.Process.Pid, "binary", self)
	if err := child.WaitReady(5 * time.Minute); err != nil {
		return 0, fmt.Errorf("the new ferry did not start: %w", err)
	}
	return cmd.Process.Pid, nil // it lives on after this process exits
}
