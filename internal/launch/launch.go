// Package launch owns what an app's processes are started with, read from
// its configuration: the command line (its loader under its interpreter,
// or a generic app's command under a shell) and the environment (what of
// the core's own it inherits, what it is told about itself, the user's
// --envvar). The spawn package starts processes with them; it knows no
// configuration.
package launch

import (
	"fmt"
	"maps"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/ferry-server/ferry/internal/config"
	"github.com/ferry-server/ferry/internal/identity"
	"github.com/ferry-server/ferry/internal/loaders"
	"github.com/ferry-server/ferry/internal/spawn"
)

// Command is the argv that starts one process of the app: its loader
// (written into dir) under its interpreter, or the generic app's command
// under a shell; under a login shell first with --load-shell-envvars.
func Command(ac config.App, dir string) ([]string, error) {
	command, err := command(ac, dir)
	if err != nil {
		return nil, err
	}
	if ac.LoadShellEnvvars {
		// The user's login shell files set the environment, then the
		// shell becomes the app (same pid).
		command = append([]string{"/bin/bash", "-lc", `exec "$0" "$@"`}, command...)
	}
	return command, nil
}

func command(ac config.App, dir string) ([]string, error) {
	var interpreter, loader string
	switch ac.AppType {
	case config.AppTypeGeneric:
		return []string{"/bin/sh", "-c", ExecPrefix(ac.AppStartCommand)}, nil
	case config.AppTypeWSGI:
		interpreter, loader = ac.Python, "wsgi.py"
	case config.AppTypeASGI:
		interpreter, loader = ac.Python, "asgi.py"
	case config.AppTypeRack:
		interpreter, loader = ac.Ruby, "rack.rb"
	case config.AppTypeNode:
		interpreter, loader = ac.Nodejs, "node.cjs"
	default:
		return nil, fmt.Errorf("no loader for app type %q", ac.AppType)
	}
	path, err := loaders.Write(dir, loader)
	if err != nil {
		return nil, err
	}
	return []string{interpreter, path}, nil
}

// ExecPrefix makes the shell replace itself with a simple command, so the
// app itself is the process Ferry started (and gets its Pdeathsig). A
// compound command (;, &&, |, …) runs as written: it should exec its last
// step itself.
func ExecPrefix(cmd string) string {
	c := strings.TrimSpace(cmd)
	if strings.HasPrefix(c, "exec ") || strings.ContainsAny(c, ";&|<>()`\n") {
		return c
	}
	return "exec " + c
}

// Env builds an app's environment explicitly (spawn.Inherit says what of
// the core's own it gets), plus what the app is told about itself. user is
// who it runs as when that is not Ferry's own user.
func Env(ac config.App, instanceDir string, user *identity.User) []string {
	return env(os.Environ(), ac, instanceDir, user)
}

// env is Env over the core's environment core.
func env(core []string, ac config.App, instanceDir string, user *identity.User) []string {
	env := spawn.Inherit(core, user)
	if ac.ConcurrencyModel == "thread" {
		env = append(env, "FERRY_THREADS="+strconv.Itoa(ac.ThreadCount))
	}
	e := ac.Environment
	env = append(env,
		"FERRY_APP_ROOT="+ac.Root,
		// Marks the instance's processes, so that memory-stats finds them
		// from /proc even when the core cannot answer.
		"FERRY_INSTANCE="+instanceDir,
		"FERRY_STARTUP_FILE="+ac.StartupFile,
		"FERRY_BASE_URI="+ac.BaseURI,
		"FERRY_APP_ENV="+e,
		"PASSENGER_APP_ENV="+e,
		"RAILS_ENV="+e,
		"RACK_ENV="+e,
		"WSGI_ENV="+e,
		"NODE_ENV="+e,
		"PYTHONUNBUFFERED=1",
	)
	// The user's --envvar come last and win (exec keeps the last value of a
	// repeated name); the spawner's FERRY_SOCKET & co. come after them.
	for _, k := range slices.Sorted(maps.Keys(ac.Envvars)) {
		if strings.HasPrefix(k, "FERRY_") {
			continue
		}
		env = append(env, k+"="+ac.Envvars[k])
	}
	return env
}
