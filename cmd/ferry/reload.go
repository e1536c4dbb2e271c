package main

import (
	"context"
	"flag"
	"fmt"

	"github.com/ferry-server/ferry/internal/admin"
)

const reloadHelp = `Usage: ferry reload [APP_DIR] [options]

Makes a running instance load its configuration again (as SIGHUP does): new
apps start, removed apps drain and stop, changed apps restart, unchanged apps
keep their processes. Connections are not dropped. Listeners and other
server-wide settings take effect only when Ferry restarts.
`

func reloadCommand(fs *flag.FlagSet) func(context.Context, string) error {
	var inst instanceFlags
	inst.register(fs)
	return func(ctx context.Context, appDir string) error { return reload(ctx, &inst, appDir) }
}

func reload(ctx context.Context, inst *instanceFlags, appDir string) error {
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
