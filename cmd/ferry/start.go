package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/ferry-server/ferry/internal/config"
	"github.com/ferry-server/ferry/internal/core"
	"github.com/ferry-server/ferry/internal/logs"
)

const startHelp = `Usage: ferry start [APP_DIR] [options]

Serves the app in APP_DIR (default: the current directory). The app type is
detected from its files (passenger_wsgi.py: WSGI) unless --app-type says.
`

func start(ctx context.Context, args []string) error {
	if wantsHelp(args) {
		c := config.Default()
		fs := config.StartFlags(&c)
		fmt.Print(startHelp)
		fmt.Println("\nOptions:")
		config.PrintUsage(os.Stdout, fs)
		return flag.ErrHelp
	}
	cfg, err := config.ParseStart(args)
	if err != nil {
		return fmt.Errorf("start: %w", err)
	}
	out, err := logs.New(logs.Options{File: cfg.LogFile, AppFile: cfg.AppLogFile, Format: cfg.LogFormat, Level: cfg.LogLevel})
	if err != nil {
		return fmt.Errorf("start: %w", err)
	}
	defer out.Close()

	ctx, stop := signal.NotifyContext(ctx, syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	// A client that vanishes mid-write must not kill the core.
	signal.Ignore(syscall.SIGPIPE)
	// logrotate: SIGUSR1 reopens the log files.
	usr1 := make(chan os.Signal, 1)
	signal.Notify(usr1, syscall.SIGUSR1)
	defer signal.Stop(usr1)
	go func() {
		for range usr1 {
			if err := out.Reopen(); err != nil {
				out.Core.Error("reopening log files failed", "error", err)
			} else {
				out.Core.Info("log files reopened")
			}
		}
	}()
	return core.Run(ctx, cfg, out, version)
}
