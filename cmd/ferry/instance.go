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
		return admin.Instance{Dir: f.dir}, nil
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
		where := f.registry
		if appDir != "" {
			where = "for " + appDir + " in " + where
		}
		return admin.Instance{}, fmt.Errorf("no running Ferry instance found %s", where)
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
