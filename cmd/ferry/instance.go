package main

import (
	"errors"
	"flag"
	"fmt"
	"path/filepath"
	"slices"
	"strings"

	"github.com/ferry-server/ferry/internal/admin"
	"github.com/ferry-server/ferry/internal/config"
	"github.com/ferry-server/ferry/internal/instance"
)

// instanceFlags are how a client command finds the instance to talk to.
type instanceFlags struct {
	registry string
	dir      string
}

func (f *instanceFlags) register(fs *flag.FlagSet) {
	f.registry = config.DefaultRegistryDir()
	fs.StringVar(&f.registry, "instance-registry-dir", f.registry, "`DIR` where running instances register")
	fs.StringVar(&f.dir, "instance", "", "the instance directory `DIR` to talk to")
}

// pick finds the instance: the one given, or the one serving appDir, or the
// only one running.
func (f *instanceFlags) pick(appDir string) (admin.Instance, error) {
	if f.dir != "" {
		props, err := readProperties(f.dir)
		if err != nil {
			return admin.Instance{}, fmt.Errorf("--instance: %w", err)
		}
		if !instance.Running(props.PID, props.StartTicks) {
			return admin.Instance{}, fmt.Errorf("--instance %s: its core (pid %d) is not running; the directory is stale and may be removed", f.dir, props.PID)
		}
		return admin.Instance{Dir: f.dir, PID: props.PID, AppRoot: props.AppRoot, AppRoots: props.AppRoots, Listen: props.Listen}, nil
	}
	all, err := admin.FindInstances(f.registry)
	if err != nil {
		return admin.Instance{}, err
	}
	if appDir != "" {
		abs, err := filepath.Abs(appDir)
		if err != nil {
			return admin.Instance{}, err
		}
		var match []admin.Instance
		for _, in := range all {
			if in.AppRoot == abs || slices.Contains(in.AppRoots, abs) {
				match = append(match, in)
			}
		}
		all = match
	}
	switch len(all) {
	case 0:
		if appDir != "" {
			return admin.Instance{}, fmt.Errorf("no running Ferry instance serves %s (looked in %s); start it with ferry start %s, or give the --instance-registry-dir it runs with", appDir, f.registry, appDir)
		}
		return admin.Instance{}, fmt.Errorf("no running Ferry instance found in %s; start one with ferry start APP_DIR, or give the --instance-registry-dir it runs with", f.registry)
	case 1:
		return all[0], nil
	}
	var b strings.Builder
	b.WriteString("several Ferry instances are running; say which with APP_DIR or --instance:\n")
	for _, in := range all {
		fmt.Fprintf(&b, "  --instance %s   (pid %d, %s, listening on %s)\n", in.Dir, in.PID, in.AppRoot, in.Listen)
	}
	return admin.Instance{}, errors.New(strings.TrimRight(b.String(), "\n"))
}
