package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	"github.com/ferry-server/ferry/internal/config"
)

// command is one subcommand of ferry: its lines in `ferry help`, its
// --help, and what it does. Most take options and one optional APP_DIR;
// they give setup, and the preamble they share (exec) makes their flag
// set, answers --help and parses the arguments. The few that read their
// arguments themselves (start, config, nginx-config…) give raw instead.
type command struct {
	name    string
	aliases []string
	usage   []usageLine // in `ferry help`; none: not listed
	help    string      // the text of --help above the options
	// options lists the flags under --help (default printFlags).
	options func(io.Writer, *flag.FlagSet)
	// setup registers the command's flags on fs and returns what runs
	// with them once parsed, given the positional argument ("" if none).
	setup func(fs *flag.FlagSet) func(ctx context.Context, arg string) error
	raw   func(ctx context.Context, args []string) error
}

// usageLine is one line of `ferry help`: a form of the command and what it
// does (continuation lines separated by \n).
type usageLine struct{ form, what string }

// commands is the table of ferry's subcommands, in the order `ferry help`
// lists them. A function, not a variable, since help reads the table.
func commands() []command {
	return []command{
		{name: "start", raw: start, usage: []usageLine{
			{"ferry start [APP_DIR] [options]", "serve the app in APP_DIR (default: .)"},
			{"ferry start --config FILE", "serve every app of a multi-app file"}}},
		{name: "restart", help: restartHelp, options: config.PrintUsage, setup: restartCommand, usage: []usageLine{
			{"ferry restart [APP_DIR] [--rolling]", "restart the app of a running instance"}}},
		{name: "stop", help: stopHelp, options: config.PrintUsage, setup: stopCommand, usage: []usageLine{
			{"ferry stop [APP_DIR | --pid-file F]", "stop a running instance gracefully"}}},
		{name: "reload", help: reloadHelp, options: config.PrintUsage, setup: reloadCommand, usage: []usageLine{
			{"ferry reload [APP_DIR]", "load the configuration again (as SIGHUP does)"}}},
		{name: "upgrade", help: upgradeHelp, options: config.PrintUsage, setup: upgradeCommand, usage: []usageLine{
			{"ferry upgrade [APP_DIR]", "hand over to the installed binary without refusing a connection"}}},
		{name: "nginx-config", raw: webConfigCommand("nginx"), usage: []usageLine{
			{"ferry nginx-config [APP_DIR | --config FILE]", "print nginx server blocks for the apps"}}},
		{name: "apache-config", raw: webConfigCommand("apache"), usage: []usageLine{
			{"ferry apache-config [APP_DIR | --config FILE]", "print Apache virtual hosts for the apps"}}},
		{name: "config", raw: configCmd, usage: []usageLine{
			{"ferry config check [APP_DIR | --config FILE]", "validate and print the configuration"}}},
		{name: "status", help: statusHelp, setup: statusCommand, usage: []usageLine{
			{"ferry status [APP_DIR] [--show=VIEW] [--json]", "show a running instance's pool,\nrequests, server or metrics"}}},
		{name: "memory-stats", help: memoryStatsHelp, setup: memoryStatsCommand, usage: []usageLine{
			{"ferry memory-stats [APP_DIR]", "memory of the core and every app process\n(reads /proc; works when the core is stuck)"}}},
		{name: "top", help: topHelp, setup: topCommand, usage: []usageLine{
			{"ferry top [APP_DIR] [--interval 1s]", "live view of the pool and requests"}}},
		{name: "logs", help: logsHelp, setup: logsCommand, usage: []usageLine{
			{"ferry logs [APP] [-f] [--pid N]", "the core's and apps' latest log lines; -f follows"}}},
		{name: "version", aliases: []string{"--version", "-v"}, raw: printVersion, usage: []usageLine{
			{"ferry version", "print the version"}}},
		{name: "help", aliases: []string{"--help", "-h"}, raw: printHelp},
	}
}

// lookup finds the command named (or aliased) name.
func lookup(name string) (command, bool) {
	for _, c := range commands() {
		if c.name == name || slices.Contains(c.aliases, name) {
			return c, true
		}
	}
	return command{}, false
}

// exec runs c with its arguments: the preamble every command with setup
// shares, then its own work.
func (c command) exec(ctx context.Context, args []string) error {
	if c.raw != nil {
		return c.raw(ctx, args)
	}
	fs := flag.NewFlagSet(c.name, flag.ContinueOnError)
	run := c.setup(fs)
	if wantsHelp(args) {
		fmt.Print(c.help, "\nOptions:\n")
		options := c.options
		if options == nil {
			options = printFlags
		}
		options(os.Stdout, fs)
		return flag.ErrHelp
	}
	arg, err := parseWithPositional(fs, args)
	if err != nil {
		return fmt.Errorf("%s: %w", c.name, err)
	}
	return run(ctx, arg)
}

// usageText is `ferry help`, made from the table.
func usageText() string {
	const width = 33 // of the forms' column; a longer form pushes its text on
	var b strings.Builder
	b.WriteString("Ferry: an application server and process manager.\n\nUsage:\n")
	for _, c := range commands() {
		for _, u := range c.usage {
			what := strings.ReplaceAll(u.what, "\n", "\n"+strings.Repeat(" ", 2+width+1))
			if len(u.form) > width {
				fmt.Fprintf(&b, "  %s  %s\n", u.form, what)
			} else {
				fmt.Fprintf(&b, "  %-*s %s\n", width, u.form, what)
			}
		}
	}
	b.WriteString("\nRun 'ferry COMMAND --help' for the options of a command.\n")
	return b.String()
}

func printHelp(context.Context, []string) error {
	fmt.Print(usageText())
	return nil
}

func printVersion(context.Context, []string) error {
	fmt.Println(versionLine())
	return nil
}

// parseWithPositional parses flags that may come before or after one
// optional positional argument.
func parseWithPositional(fs *flag.FlagSet, args []string) (string, error) {
	fs.SetOutput(io.Discard)
	positional, err := config.ParseInterleaved(fs, args)
	if err != nil {
		return "", config.FlagError(fs, "ferry "+fs.Name(), err, nil)
	}
	if len(positional) > 1 {
		return "", fmt.Errorf("expected at most one APP_DIR, got %v", positional)
	}
	if len(positional) == 1 {
		return positional[0], nil
	}
	return "", nil
}
