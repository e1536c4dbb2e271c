package main

import (
	"context"
	"flag"
	"fmt"
	"os"

	"github.com/ferry-server/ferry/internal/admin"
	"github.com/ferry-server/ferry/internal/config"
)

const reloadHelp = `Usage: ferry reload [APP_DIR] [options]

Makes a running instance load its configuration again (as SIGHUP does): new
apps start, removed apps drain and stop, changed apps restart, unchanged apps
keep their processes. Connections are not dropped. Listeners and other
server-wide settings take effect only when Ferry restarts.
`

func reload(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("reload", flag.ContinueOnError)
	var inst instanceFlags
	inst.register(fs)
	if wantsHelp(args) {
		fmt.Print(reloadHelp, "\nOptions:\n")
		config.PrintUsage(os.Stdout, fs)
		return flag.ErrHelp
	}
	appDir, err := parseWithPositional(fs, args)
	if err != nil {
		return fmt.Errorf("reload: %w", err)
	}
	in, err := inst.pick(appDir)
	if err != nil {
		return fmt.Errorf("reload: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, admin.Timeout)
	defer cancel()
	if err := admin.NewClient(in.Dir).Do(ctx, "POST", "/reload", nil); err != nil {
		return fmt.Errorf("reload: %w", err)
	}
	fmt.Println("configuration reloaded")
	return nil
}
