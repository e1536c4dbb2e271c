package main

import (
	"context"
	"fmt"
	"os"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "0.1.0-dev"

func run(ctx context.Context, args []string) error {
	if len(args) == 0 {
		fmt.Fprint(os.Stderr, usageText())
		return fmt.Errorf("no command given")
	}
	c, ok := lookup(args[0])
	if !ok {
		fmt.Fprint(os.Stderr, usageText())
		return fmt.Errorf("unknown command %q", args[0])
	}
	return c.exec(ctx, args[1:])
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
