package main

import (
	"context"
	"flag"
	"fmt"
	"syscall"
)

const upgradeHelp = `Usage: ferry upgrade [APP_DIR | --instance DIR] [options]

Replaces a running Ferry with the ferry binary now installed, without
refusing a connection (as SIGUSR2 does): the new one takes over the listening
sockets and starts its apps; once it serves, the old one stops accepting,
finishes its requests in flight and exits. If the new one fails to start,
the old one keeps serving.
`

func upgradeCommand(fs *flag.FlagSet) func(context.Context, string) error {
	var inst instanceFlags
	inst.register(fs)
	return func(_ context.Context, appDir string) error { return upgrade(&inst, appDir) }
}

func upgrade(inst *instanceFlags, appDir string) error {
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
