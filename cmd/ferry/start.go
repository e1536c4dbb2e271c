package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/ferry-server/ferry/internal/config"
	"github.com/ferry-server/ferry/internal/core"
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
	log, closeLog, err := newLogger(cfg)
	if err != nil {
		return err
	}
	defer closeLog()

	ctx, stop := signal.NotifyContext(ctx, syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	// A client that vanishes mid-write must not kill the core.
	signal.Ignore(syscall.SIGPIPE)
	return core.Run(ctx, cfg, log, version)
}

func newLogger(cfg config.Config) (*slog.Logger, func(), error) {
	var w io.Writer = os.Stderr
	closer := func() {}
	if cfg.LogFile != "" && cfg.LogFile != "-" {
		f, err := os.OpenFile(cfg.LogFile, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
		if err != nil {
			return nil, nil, fmt.Errorf("open log file: %w", err)
		}
		w, closer = f, func() { f.Close() }
	}
	h := slog.NewTextHandler(w, &slog.HandlerOptions{Level: cfg.LogLevel})
	return slog.New(h), closer, nil
}
