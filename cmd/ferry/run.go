package main

import (
	"context"
	"fmt"
	"os"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "0.1.0-dev"

const usage = `Ferry: an application server and process manager.

Usage:
  ferry start [APP_DIR] [options]   serve the app in APP_DIR (default: .)
  ferry start --config FILE         serve every app of a multi-app file
  ferry restart [APP_DIR] [--rolling]  restart the app of a running instance
  ferry stop [APP_DIR | --pid-file F]  stop a running instance gracefully
  ferry reload [APP_DIR]            load the configuration again (as SIGHUP does)
  ferry upgrade [APP_DIR]           hand over to the installed binary without refusing a connection
  ferry nginx-config [APP_DIR | --config FILE]   print nginx server blocks for the apps
  ferry apache-config [APP_DIR | --config FILE]  print Apache virtual hosts for the apps
  ferry config check [APP_DIR | --config FILE]  validate and print the configuration
  ferry status [APP_DIR] [--show=VIEW] [--json]  show a running instance's pool,
                                    requests, server or metrics
  ferry memory-stats [APP_DIR]      memory of the core and every app process
                                    (reads /proc; works when the core is stuck)
  ferry top [APP_DIR] [--interval 1s]  live view of the pool and requests
  ferry logs [APP] [-f] [--pid N]   the core's and apps' latest log lines; -f follows
  ferry version                     print the version

Run 'ferry COMMAND --help' for the options of a command.
`

func run(ctx context.Context, args []string) error {
	if len(args) == 0 {
		fmt.Fprint(os.Stderr, usage)
		return fmt.Errorf("no command given")
	}
	switch cmd, rest := args[0], args[1:]; cmd {
	case "start":
		return start(ctx, rest)
	case "restart":
		return restart(ctx, rest)
	case "config":
		return configCmd(rest)
	case "reload":
		return reload(ctx, rest)
	case "stop":
		return stop(ctx, rest)
	case "upgrade":
		return upgradeCmd(ctx, rest)
	case "nginx-config":
		return webConfig("nginx", rest)
	case "apache-config":
		return webConfig("apache", rest)
	case "status":
		return status(ctx, rest)
	case "memory-stats":
		return memoryStats(ctx, rest)
	case "top":
		return top(ctx, rest)
	case "logs":
		return logsCmd(ctx, rest)
	case "version", "--version", "-v":
		fmt.Println(versionLine())
		return nil
	case "help", "--help", "-h":
		fmt.Print(usage)
		return nil
	default:
		fmt.Fprint(os.Stderr, usage)
		return fmt.Errorf("unknown command %q", cmd)
	}
}

// wantsHelp reports -h/--help among args, which flag would otherwise only
// notice before the first positional argument.
func wantsHelp(args []string) bool {
	for _, a := range args {
		if a == "-h" || a == "--help" || a == "-help" {
			return true
		}
	}
	return false
}
