package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/ferry-server/ferry/internal/admin"
	"github.com/ferry-server/ferry/internal/config"
	"github.com/ferry-server/ferry/internal/sdnotify"
)

// daemonChildEnv marks the re-executed child of --daemonize.
const daemonChildEnv = "FERRY_DAEMONIZED"

// daemonize starts this command again in the background (its own session,
// output to the log file) and returns once the child says it serves and
// its apps have started, or with the reason it could not start (then
// nothing is left running).
func daemonize(cfg *config.Config, args []string) error {
	logFile, pidFile := daemonFiles(cfg)
	out, err := os.OpenFile(logFile, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o640)
	if err != nil {
		return fmt.Errorf("daemonize: open log file: %w", err)
	}
	defer out.Close()
	var logStart int64 // where the child's lines begin, to find its error
	if fi, err := out.Stat(); err == nil {
		logStart = fi.Size()
	}
	child, err := startDaemon(args, logFile, pidFile, out)
	if err != nil {
		return fmt.Errorf("daemonize: %w", err)
	}
	if err := child.WaitReady(5 * time.Minute); err != nil {
		if reason := childError(logFile, logStart); reason != "" {
			return fmt.Errorf("start: %s (ferry did not start; log: %s)", reason, logFile)
		}
		return fmt.Errorf("start: ferry did not start (%v); see %s", err, logFile)
	}
	// Serving, but an app that cannot start would only answer errors: wait
	// for each app's first process, and stop again if one fails.
	if err := waitAppsStarted(cfg, child.Cmd.Process.Pid, child.Exited); err != nil {
		stopDaemon(cfg, child)
		return fmt.Errorf("start: %v; ferry stopped again (log: %s)", err, logFile)
	}
	fmt.Printf("ferry is running in the background (pid %d); log: %s; pid file: %s\n", child.Cmd.Process.Pid, logFile, pidFile)
	child.Cmd.Process.Release()
	return nil
}

// daemonFiles are the daemon's log and pid files: --log-file and
// --pid-file, or ferry.PORT.log and .pid in daemonDirs.
func daemonFiles(cfg *config.Config) (logFile, pidFile string) {
	logDir, pidDir := daemonDirs(cfg)
	base := "ferry." + strconv.Itoa(cfg.Port)
	logFile = cfg.LogFile
	if logFile == "" || logFile == "-" {
		logFile = filepath.Join(logDir, base+".log")
	}
	pidFile = cfg.PidFile
	if pidFile == "" {
		pidFile = filepath.Join(pidDir, base+".pid")
	}
	return logFile, pidFile
}

// startDaemon starts `ferry start ARGS` in its own session, writing to out
// and told its log and pid files.
func startDaemon(args []string, logFile, pidFile string, out *os.File) (*sdnotify.Child, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	childArgs := append([]string{"start"}, args...)
	childArgs = append(childArgs, "--log-file", logFile, "--pid-file", pidFile)
	cmd := exec.Command(self, childArgs...)
	cmd.Env = append(os.Environ(), daemonChildEnv+"=1")
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	return sdnotify.StartChild(cmd)
}

// stopDaemon stops a child that serves, as `ferry stop` would, killing it
// if it takes longer than its stop timeouts allow.
func stopDaemon(cfg *config.Config, child *sdnotify.Child) {
	child.Cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-child.Exited:
	case <-time.After(cfg.DrainDelay + cfg.ShutdownTimeout + cfg.AppStopTimeout + 5*time.Second):
		child.Cmd.Process.Kill()
	}
}

// daemonDirs are where a daemon's log and pid files go by default: the
// app directory, as Passenger does, when it is Ferry's own; otherwise (root
// serving other users' apps) not a directory an app user could plant links
// in, but /var/log/ferry and the instance registry.
func daemonDirs(cfg *config.Config) (logDir, pidDir string) {
	root := cfg.Apps[0].Root
	if fi, err := os.Stat(root); err == nil {
		if st, ok := fi.Sys().(*syscall.Stat_t); ok && int(st.Uid) == os.Geteuid() {
			return root, root
		}
	}
	os.MkdirAll("/var/log/ferry", 0o755)
	os.MkdirAll(cfg.InstanceRegistryDir, 0o755)
	return "/var/log/ferry", cfg.InstanceRegistryDir
}

// withoutDaemonize drops -d/--daemonize from args (the child runs in the
// foreground of its own session).
func withoutDaemonize(args []string) []string {
	var out []string
	for _, a := range args {
		switch a {
		case "-d", "--daemonize", "-daemonize", "--daemonize=true", "-d=true":
			continue
		}
		out = append(out, a)
	}
	return out
}

// childError is the error line ("ferry: …") the daemon child wrote to its
// log after offset, without the prefixes, or "".
func childError(logFile string, offset int64) string {
	f, err := os.Open(logFile)
	if err != nil {
		return ""
	}
	defer f.Close()
	if _, err := f.Seek(offset, io.SeekStart); err != nil {
		return ""
	}
	b, _ := io.ReadAll(io.LimitReader(f, 1<<20))
	last := ""
	for line := range strings.SplitSeq(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "ferry: "); ok {
			last = strings.TrimPrefix(rest, "start: ")
		}
	}
	return last
}

// waitAppsStarted waits until every app that starts processes at boot
// (--min-instances 1 or more) has one, and returns why one could not start
// it. Apps with --min-instances 0 start on their first request: nothing to
// wait for. It gives up waiting, without error, after the longest
// --start-timeout (a spawn that takes longer fails, and says so, first).
func waitAppsStarted(cfg *config.Config, pid int, exited <-chan error) error {
	wait := time.Duration(0)
	for _, a := range cfg.Apps {
		if a.MinInstances > 0 {
			wait = max(wait, a.StartTimeout)
		}
	}
	if wait == 0 {
		return nil
	}
	deadline := time.Now().Add(wait + 5*time.Second)
	var c *admin.Client
	for time.Now().Before(deadline) {
		select {
		case err := <-exited:
			return fmt.Errorf("ferry exited while its apps started (%v)", err)
		case <-time.After(100 * time.Millisecond):
		}
		if c == nil {
			all, err := admin.FindInstances(cfg.InstanceRegistryDir)
			if err != nil {
				continue
			}
			for _, in := range all {
				if in.PID == pid {
					c = admin.NewClient(in.Dir)
				}
			}
			if c == nil {
				continue
			}
		}
		var ps admin.PoolStatus
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err := c.Do(ctx, "GET", "/pool", &ps)
		cancel()
		if err != nil {
			continue
		}
		pending := 0
		for _, a := range ps.Apps {
			switch {
			case a.Min == 0 || len(a.Processes) > 0:
			case a.LastError != "":
				return fmt.Errorf("app %s did not start: %s", a.Name, spawnError(a.Name, a.LastError))
			default:
				pending++
			}
		}
		if pending == 0 {
			return nil
		}
	}
	return nil
}

// spawnError is the pool's last spawn error of app as one line, without
// its "spawn APP: " prefix.
func spawnError(app, s string) string {
	s, _, _ = strings.Cut(s, "\n")
	return strings.TrimPrefix(s, "spawn "+app+": ")
}
