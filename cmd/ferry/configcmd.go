package main

import (
	"context"
	"flag"
	"fmt"
	"os"

	"github.com/ferry-server/ferry/internal/config"
)

const configHelp = `Usage: ferry config check [APP_DIR | --config FILE] [options]

Loads the configuration exactly as 'ferry start' would (defaults,
Passengerfile.json, the multi-app file, FERRY_*/PASSENGER_* environment
variables, the options given), validates it, and prints the effective
configuration as JSON: the options by their Passengerfile.json keys, in the
units they are written in (durations in seconds, sizes with k, m or g),
server-wide ones at the top and each app's in "app". Exits non-zero, naming every bad value, when it is not
valid. Starts nothing.
`

func configCmd(_ context.Context, args []string) error {
	if len(args) == 0 || args[0] != "check" || wantsHelp(args) {
		fmt.Print(configHelp)
		if len(args) > 0 && args[0] == "check" {
			return flag.ErrHelp
		}
		return fmt.Errorf("config: want 'ferry config check'")
	}
	cfg, err := config.Load(args[1:], os.Environ())
	if err != nil {
		return fmt.Errorf("config check: %w", err)
	}
	for _, w := range cfg.Warnings {
		fmt.Fprintln(os.Stderr, "warning:", w)
	}
	_, err = os.Stdout.Write(cfg.EffectiveJSON())
	return err
}
