package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/ferry-server/ferry/internal/admin"
)

const logsHelp = `Usage: ferry logs [APP] [-f] [--pid N] [-n LINES] [--instance DIR | --pid-file FILE]

Prints the latest lines of a running instance's log: the core's own lines
and what its app processes print, whatever file or stream they go to (the
core keeps the latest --log-buffer-size of them in memory). APP, an app's
name or its directory, shows that app's lines only; --pid one process's.
-f follows: it prints new lines as they are logged, until interrupted or
the instance stops. The instance is the one serving APP's directory, the
one given, or the only one running.
`

func logsCommand(fs *flag.FlagSet) func(context.Context, string) error {
	var o logsOptions
	o.target.register(fs)
	fs.BoolVar(&o.follow, "follow", false, "print new lines as they are logged, until interrupted")
	fs.BoolVar(&o.follow, "f", false, "short for --follow")
	fs.IntVar(&o.lines, "lines", 100, "how many of the latest lines to print first (`N`; 0: all kept)")
	fs.IntVar(&o.lines, "n", 100, "short for --lines")
	fs.IntVar(&o.pid, "pid", 0, "only the lines of the app process with this `PID`")
	fs.BoolVar(&o.asJSON, "json", false, "print one JSON object per line (seq, time, level, app, pid, line)")
	return func(ctx context.Context, appArg string) error { return logsCmd(ctx, &o, appArg) }
}

// logsOptions are the options of ferry logs.
type logsOptions struct {
	target     targetFlags
	follow     bool
	lines, pid int
	asJSON     bool
}

func logsCmd(ctx context.Context, o *logsOptions, appArg string) error {
	if o.lines < 0 {
		return fmt.Errorf("logs: --lines must be 0 (all kept) or more, not %d", o.lines)
	}
	if o.pid < 0 {
		return fmt.Errorf("logs: --pid must be a process id, not %d", o.pid)
	}
	// APP is a directory when it looks like a path, else an app's name.
	appDir, appName := "", appArg
	if isPathArg(appArg) {
		appDir, appName = appArg, ""
	}
	in, err := o.target.pick(appDir)
	if err != nil {
		return fmt.Errorf("logs: %w", err)
	}
	c := admin.NewClient(in.Dir)
	if appDir != "" {
		if appName, err = appAt(ctx, c, appDir); err != nil {
			return fmt.Errorf("logs: %w", err)
		}
	}
	q := url.Values{}
	if appName != "" {
		q.Set("app", appName)
	}
	if o.pid != 0 {
		q.Set("pid", strconv.Itoa(o.pid))
	}
	q.Set("lines", strconv.Itoa(o.lines))
	if o.follow {
		q.Set("follow", "true")
	}
	if o.asJSON {
		q.Set("format", "json")
	}
	err = c.Stream(ctx, "/logs?"+q.Encode(), os.Stdout)
	if err != nil && !errors.Is(err, context.Canceled) {
		return fmt.Errorf("logs: %w", err)
	}
	return nil
}

// isPathArg reports an argument that names a directory rather than an app.
func isPathArg(s string) bool {
	return s == "." || s == ".." || strings.ContainsRune(s, filepath.Separator)
}

// appAt finds the name of the app whose root is dir.
func appAt(ctx context.Context, c *admin.Client, dir string) (string, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	ctx, cancel := context.WithTimeout(ctx, statusTimeout)
	defer cancel()
	var ps admin.PoolStatus
	if err := c.Do(ctx, "GET", "/pool", &ps); err != nil {
		return "", err
	}
	for _, a := range ps.Apps {
		if a.Root == abs {
			return a.Name, nil
		}
	}
	return "", fmt.Errorf("the instance serves no app in %s", abs)
}
