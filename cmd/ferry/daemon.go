package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/ferry-server/ferry/internal/config"
	"github.com/ferry-server/ferry/internal/sdnotify"
)

// daemonChildEnv marks the re-executed child of --daemonize.
const daemonChildEnv = "FERRY_DAEMONIZED"

// daemonize starts this command again in the background (its own session,
// output to the log file) and returns once the child says it serves, or
// with the reason it could not start.
func daemonize(cfg *config.Config, args []string) error {
	logDir, pidDir := daemonDirs(cfg)
	base := "ferry." + strconv.Itoa(cfg.Port)
	logFile := cfg.LogFile
	if logFile == "" || logFile == "-" {
		logFile = filepath.Join(logDir, base+".log")
	}
	pidFile := cfg.PidFile
	if pidFile == "" {
		pidFile = filepath.Join(pidDir, base+".pid")
	}
	tmp, err := os.MkdirTemp("", "ferry-daemon-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	notify, err := sdnotify.Listen(filepath.Join(tmp, "notify"))
	if err != nil {
		return fmt.Errorf("daemonize: %w", err)
	}
	defer notify.Close()

	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("daemonize: %w", err)
	}
	childArgs := append([]string{"start"}, args...)
	childArgs = append(childArgs, "--log-file", logFile, "--pid-file", pidFile)
	out, err := os.OpenFile(logFile, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o640)
	if err != nil {
		return fmt.Errorf("daemonize: open log file: %w", err)
	}
	defer out.Close()
	cmd := exec.Command(self, childArgs...)
	cmd.Env = append(os.Environ(), "NOTIFY_SOCKET="+notify.Path(), daemonChildEnv+"=1")
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("daemonize: %w", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	if err := notify.WaitReady(exited, 5*time.Minute); err != nil {
		var ee *sdnotify.ExitError
		if !errors.As(err, &ee) {
			cmd.Process.Kill()
		}
		return fmt.Errorf("ferry did not start (%v); see %s", err, logFile)
	}
	fmt.Printf("ferry is running in the background (pid %d); log: %s; pid file: %s\n", cmd.Process.Pid, logFile, pidFile)
	cmd.Process.Release()
	return nil
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
