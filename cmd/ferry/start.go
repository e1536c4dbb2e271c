package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"strconv"
	"syscall"

	"github.com/ferry-server/ferry/internal/admin"
	"github.com/ferry-server/ferry/internal/config"
	"github.com/ferry-server/ferry/internal/core"
	"github.com/ferry-server/ferry/internal/logs"
	"github.com/ferry-server/ferry/internal/pid1"
)

const startHelp = `Usage: ferry start [APP_DIR] [options]
       ferry start --config FILE [options]

Serves the app in APP_DIR (default: the current directory), or every app of a
multi-app configuration file. The app type is detected from its files
(config.ru, passenger_wsgi.py, asgi.py, app.js or package.json) unless
--app-type or --app-start-command says. Settings come from, in increasing
precedence: defaults, APP_DIR/Passengerfile.json (and the --config file),
FERRY_<OPTION> and PASSENGER_<OPTION> environment variables, the command line.
`

func start(ctx context.Context, args []string) error {
	if wantsHelp(args) {
		fmt.Print(startHelp)
		fmt.Println("\nOptions:")
		fmt.Printf("  %-38s %s\n", "--config FILE", "multi-app configuration file (TOML); see docs/configuration.md")
		config.PrintStartUsage(os.Stdout)
		return flag.ErrHelp
	}
	if pid1.Needed() {
		// A container's first process: reap orphans and forward signals
		// to the core, which runs as our child.
		os.Exit(pid1.Run())
	}
	environ := os.Environ()
	cfg, err := config.Load(args, environ)
	if err != nil {
		return fmt.Errorf("start: %w", err)
	}
	if cfg.Daemonize && os.Getenv(daemonChildEnv) == "" {
		return daemonize(cfg, withoutDaemonize(args))
	}
	out, err := logs.New(logs.Options{File: cfg.LogFile, Format: cfg.LogFormat, Level: cfg.LogLevel,
		Recent: cfg.LogBufferSize})
	if err != nil {
		return fmt.Errorf("start: --log-file: %w", err)
	}
	defer out.Close()

	ctx, stop := context.WithCancelCause(ctx)
	defer stop(nil)
	sigs := watchSignals(stop, out)
	defer sigs.stop()
	err = core.Run(ctx, core.Options{
		Upgrades: sigs.upgrades,
		Hurry:    sigs.hurry,
		Config:   cfg,
		Logs:     out,
		Version:  version,
		Reload:   func() (*config.Config, error) { return config.Load(args, environ) },
		Reloads:  sigs.reloads,
	})
	return startError(cfg, err)
}

// startError is what ferry start says when the core ends with err: a port
// in use by another Ferry names it.
func startError(cfg *config.Config, err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, syscall.EADDRINUSE) {
		if in, ok := servingOn(cfg); ok {
			return fmt.Errorf("start: Ferry already serves %s on %s (pid %d); stop it first (ferry stop %s), or choose another --port", in.AppRoot, in.Listen, in.PID, in.AppRoot)
		}
	}
	return fmt.Errorf("start: %w", err)
}

// startSignals are the signals of a running core, turned into its inputs.
type startSignals struct {
	hurry    chan struct{} // closed by a second stop signal
	reloads  chan struct{} // SIGHUP (or ferry reload)
	upgrades chan struct{} // SIGUSR2 (or ferry upgrade)
	stop     func()        // stops the watching, but never of the stop signals
}

// watchSignals wires the core's signals: SIGTERM and SIGINT call stop
// (with core.StopSignal), SIGUSR1 reopens out's files, SIGHUP and SIGUSR2
// ask for a reload and an upgrade, SIGPIPE is ignored.
func watchSignals(stop context.CancelCauseFunc, out *logs.Outputs) startSignals {
	// SIGTERM drains (readiness off, --drain-delay, then no new
	// connections); SIGINT skips the delay; a second signal ends it.
	stopSigs := make(chan os.Signal, 2)
	// Never stopped: a stop signal that comes while Ferry exits (say,
	// after it printed why it could not start) must not kill it by the
	// default action and lose its exit status.
	signal.Notify(stopSigs, syscall.SIGINT, syscall.SIGTERM)
	hurry := make(chan struct{})
	go func() {
		stop(core.StopSignal{Signal: <-stopSigs})
		<-stopSigs
		close(hurry)
	}()
	// A client that vanishes mid-write must not kill the core.
	signal.Ignore(syscall.SIGPIPE)
	// logrotate: SIGUSR1 reopens the log files.
	usr1 := make(chan os.Signal, 1)
	signal.Notify(usr1, syscall.SIGUSR1)
	go func() {
		for range usr1 {
			if err := out.Reopen(); err != nil {
				out.Core.Error("reopening log files failed", "error", err)
			} else {
				out.Core.Info("log files reopened")
			}
		}
	}()
	// SIGHUP (or ferry reload) loads the configuration again, from the same
	// arguments and environment; SIGUSR2 (or ferry upgrade) hands the
	// sockets to the binary now on disk.
	hup, reloads := requests(syscall.SIGHUP)
	usr2, upgrades := requests(syscall.SIGUSR2)
	return startSignals{hurry: hurry, reloads: reloads, upgrades: upgrades, stop: func() {
		signal.Stop(usr1)
		signal.Stop(hup)
		signal.Stop(usr2)
	}}
}

// requests turns sig into requests on a channel that holds one: signals
// that come while one is pending ask for nothing more.
func requests(sig os.Signal) (chan os.Signal, chan struct{}) {
	c := make(chan os.Signal, 1)
	signal.Notify(c, sig)
	out := make(chan struct{}, 1)
	go func() {
		for range c {
			select {
			case out <- struct{}{}:
			default:
			}
		}
	}()
	return c, out
}

// servingOn finds a running instance of the registry listening on cfg's
// port: what a second ferry start on the same port runs into.
func servingOn(cfg *config.Config) (admin.Instance, bool) {
	all, _ := admin.FindInstances(cfg.InstanceRegistryDir)
	for _, in := range all {
		if _, port, err := net.SplitHostPort(in.Listen); err == nil && port == strconv.Itoa(cfg.Port) && cfg.Port != 0 {
			return in, true
		}
	}
	return admin.Instance{}, false
}
