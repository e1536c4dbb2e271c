package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"syscall"

	"github.com/ferry-server/ferry/internal/config"
)

const upgradeHelp = `Usage: ferry upgrade [APP_DIR | --instance DIR] [options]

Replaces a running Ferry with the ferry binary now installed, without
refusing a connection (as SIGUSR2 does): the new one takes over the listening
sockets and starts its apps; once it serves, the old one stops accepting,
finishes its requests in flight and exits. If the new one fails to start,
the old one keeps serving.
`

func upgradeCmd(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("upgrade", flag.ContinueOnError)
	var inst instanceFlags
	inst.register(fs)
	if wantsHelp(args) {
		fmt.Print(upgradeHelp, "\nOptions:\n")
		config.PrintUsage(os.Stdout, fs)
		return flag.ErrHelp
	}
	appDir, err := parseWithPositional(fs, args)
	if err != nil {
		return fmt.Errorf("upgrade: %w", err)
	}
	in, err := inst.pick(appDir)
	if err != nil {
		return fmt.Errorf("upgrade: %w", err)
	}
	pid, err := instancePID(in.Dir, in.PID)
	if err != nil {
		return fmt.Errorf("upgrade: %w", err)
	}
	if err := syscall.Kill(pid, syscall.SIGUSR2); err != nil {
		return fmt.Errorf("upgrade: signal %d: %w", pid, err)
	}
	fmt.Printf("asked ferry (pid %d) to hand over to the installed binary; its log tells how it went\n", pid)
	return nil
}
