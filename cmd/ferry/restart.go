package main

import (
	"context"
	"flag"
	"fmt"
	"net/url"
	"path/filepath"

	"github.com/ferry-server/ferry/internal/admin"
)

const restartHelp = `Usage: ferry restart [APP_DIR] [options]

Restarts the app of a running instance. By default a blocking restart: requests
in flight finish, new requests wait, then every process is replaced. With
--rolling, processes are replaced one at a time, each new one started before an
old one stops; if the new version fails to start, the old one keeps serving.
`

func restartCommand(fs *flag.FlagSet) func(context.Context, string) error {
	var inst instanceFlags
	inst.register(fs)
	rolling := fs.Bool("rolling", false, "replace processes one at a time, never dropping capacity")
	name := fs.String("name", "", "the app `NAME` (default: the instance's only app)")
	return func(ctx context.Context, appDir string) error { return restart(ctx, &inst, appDir, *name, *rolling) }
}

func restart(ctx context.Context, inst *instanceFlags, appDir, name string, rolling bool) error {
	in, err := inst.pick(appDir)
	if err != nil {
		return fmt.Errorf("restart: %w", err)
	}
	c := admin.NewClient(in.Dir)
	ctx, cancel := context.WithTimeout(ctx, admin.Timeout)
	defer cancel()
	app := name
	if app == "" {
		var pool struct {
			Apps []struct {
				Name string `json:"name"`
			} `json:"apps"`
		}
		if err := c.Do(ctx, "GET", "/pool", &pool); err != nil {
			return fmt.Errorf("restart: %w", err)
		}
		if len(pool.Apps) != 1 {
			return fmt.Errorf("restart: the instance has %d apps; say which with --name", len(pool.Apps))
		}
		app = pool.Apps[0].Name
	}
	var res admin.RestartResult
	path := "/apps/" + url.PathEscape(app) + "/restart?rolling=" + fmt.Sprint(rolling)
	if err := c.Do(ctx, "POST", path, &res); err != nil {
		return fmt.Errorf("restart: %w", err)
	}
	kind := "blocking"
	if res.Rolling {
		kind = "rolling"
	}
	if res.Error != "" {
		return fmt.Errorf("restart of %s (%s) failed: %s", app, kind, res.Error)
	}
	fmt.Printf("restarted %s (%s), generation %d, instance %s\n", app, kind, res.Generation, filepath.Base(in.Dir))
	return nil
}
