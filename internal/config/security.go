package config

import (
	"errors"
	"flag"
	"strconv"
	"strings"

	"github.com/ferry-server/ferry/internal/identity"
)

// Security holds the server-wide settings of who apps run as and what they
// may use; embedded in Server. AppSecurity holds the per-app ones; embedded
// in App. Their options are registered in init below.
type Security struct {
	// MaxProcessesTotal caps the app processes of all apps together
	// (--max-processes-total). Each app may always have its
	// --min-instances; past that, apps share what is left. Preloaders do
	// not count. Default 0: no cap beyond each app's --max-pool-size.
	MaxProcessesTotal int
}

// AppSecurity is the per-app part of the security settings. Who an app runs
// as matters only when Ferry runs as root; otherwise apps run as Ferry's own
// user, and naming another is an error.
type AppSecurity struct {
	// User runs the app as this user (name or uid), with its groups
	// (--user). Default: the owner of the startup file (the app directory
	// for generic apps), or DefaultUser when that is root.
	User string
	// Group runs the app with this primary group (--group). Default: the
	// user's primary group.
	Group string
	// DefaultUser runs apps whose startup file root owns (or a uid without
	// a user) (--default-user). Default: nobody.
	DefaultUser string
	// DefaultGroup is DefaultUser's group (--default-group). Default:
	// DefaultUser's primary group (nogroup for nobody).
	DefaultGroup string
	// UserSwitchingOff runs every app as DefaultUser whoever owns it
	// (--user-switching false). Default false: switching is on.
	UserSwitchingOff bool
	// AllowRootApps lets --user, --group, --default-user or
	// --default-group name root (--allow-root-apps). Default false: an app
	// never runs as root or with group root.
	AllowRootApps bool
	// AppFileDescriptorUlimit sets the app processes' limit of open files
	// (RLIMIT_NOFILE) (--app-file-descriptor-ulimit). Default 0: the limit
	// Ferry itself was started with.
	AppFileDescriptorUlimit int
	// AppCoreDumps lets app processes write core dumps
	// (--app-core-dumps). Default false: RLIMIT_CORE is 0, so a crash does
	// not leave the app's memory (secrets, other users' requests) on disk.
	AppCoreDumps bool
	// StaticFollowSymlinks serves files under public/ through symlinks that
	// point outside it (--static-follow-symlinks); when Ferry runs as root
	// they are opened as the app's user. Default false: such symlinks are
	// not followed.
	StaticFollowSymlinks bool
	// MaxWebsocketTunnels caps the app's concurrent WebSocket (and other
	// Upgrade) connections; past it, new ones get 503
	// (--max-websocket-tunnels). Default 0 here means the built-in 10000;
	// -1: no cap.
	MaxWebsocketTunnels int
}

// DefaultMaxWebsocketTunnels is an app's tunnel cap when none is given:
// two file descriptors each, so that one app's WebSockets cannot use up
// the core's descriptors and starve the others.
const DefaultMaxWebsocketTunnels = 10000

func init() {
	register(
		srv("max-processes-total", "most app processes of all apps together (`N`; 0 = no cap); each app keeps its --min-instances", func(s *Server) flag.Value {
			return (*intValue)(&s.MaxProcessesTotal)
		}),
		app("user", "run the app as this `USER` when Ferry runs as root (default: the owner of the startup file)", func(a *App) flag.Value { return (*strValue)(&a.User) }),
		app("group", "run the app with this `GROUP` when Ferry runs as root (default: the user's primary group)", func(a *App) flag.Value { return (*strValue)(&a.Group) }),
		app("default-user", "`USER` for apps whose startup file root owns (default nobody)", func(a *App) flag.Value { return (*strValue)(&a.DefaultUser) }),
		app("default-group", "`GROUP` of --default-user (default: its primary group)", func(a *App) flag.Value { return (*strValue)(&a.DefaultGroup) }),
		app("user-switching", "run each app as the owner of its startup file when Ferry runs as root (`BOOL`; false: every app as --default-user)", func(a *App) flag.Value {
			return (*onOffValue)(&a.UserSwitchingOff)
		}),
		app("allow-root-apps", "let --user, --group, --default-user or --default-group name root", func(a *App) flag.Value { return (*boolValue)(&a.AllowRootApps) }),
		app("app-file-descriptor-ulimit", "limit of open files for app processes (`N`; 0 = Ferry's own)", func(a *App) flag.Value { return (*intValue)(&a.AppFileDescriptorUlimit) }),
		app("app-core-dumps", "let app processes write core dumps (off: RLIMIT_CORE 0)", func(a *App) flag.Value { return (*boolValue)(&a.AppCoreDumps) }),
		app("static-follow-symlinks", "serve files under public/ through symlinks that point outside it", func(a *App) flag.Value { return (*boolValue)(&a.StaticFollowSymlinks) }),
		app("max-websocket-tunnels", "most WebSocket connections to the app at once; past it 503 (`N`; -1 = no cap) (default 10000)", func(a *App) flag.Value {
			return (*intValue)(&a.MaxWebsocketTunnels)
		}),
	)
}

// onOffValue is a setting that is on by default, stored as its negation so
// that the zero value means on. It takes a value (--user-switching false),
// as Passenger's option does, so it is not a boolean flag.
type onOffValue bool

func (v *onOffValue) String() string { return strconv.FormatBool(!bool(*v)) }
func (v *onOffValue) Set(s string) error {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "true", "on", "yes", "1":
		*v = false
	case "false", "off", "no", "0":
		*v = true
	default:
		return errors.New("want true or false")
	}
	return nil
}

// finish validates the server-wide security settings.
func (s *Security) finish(p *problems) {
	if s.MaxProcessesTotal < 0 {
		p.bad("max-processes-total", "must be 0 (no cap) or more (got %d)", s.MaxProcessesTotal)
	}
}

// finish validates an app's security settings: users and groups exist,
// root only with --allow-root-apps, and no other user when Ferry is not
// root.
func (a *AppSecurity) finish(p *problems) {
	if a.UserSwitchingOff && a.User != "" {
		p.bad("user", "has no effect with --user-switching false, which runs every app as --default-user; drop one of them")
	}
	if a.UserSwitchingOff && a.Group != "" {
		p.bad("group", "has no effect with --user-switching false, which runs every app with --default-group; drop one of them")
	}
	if err := a.Policy().Check(); err != nil {
		p.add(err)
	}
	if a.AppFileDescriptorUlimit < 0 {
		p.bad("app-file-descriptor-ulimit", "must be 0 (Ferry's own) or more (got %d)", a.AppFileDescriptorUlimit)
	}
	switch {
	case a.MaxWebsocketTunnels == 0:
		a.MaxWebsocketTunnels = DefaultMaxWebsocketTunnels
	case a.MaxWebsocketTunnels < -1:
		p.bad("max-websocket-tunnels", "must be -1 (no cap) or at least 1 (got %d)", a.MaxWebsocketTunnels)
	}
}

// Policy is how the app's user is chosen, from its settings.
func (a *AppSecurity) Policy() identity.Policy {
	return identity.Policy{
		User: a.User, Group: a.Group,
		DefaultUser: a.DefaultUser, DefaultGroup: a.DefaultGroup,
		Switching: !a.UserSwitchingOff,
		AllowRoot: a.AllowRootApps,
	}
}

// RunAs chooses who the app's processes run as (see identity.Policy); it
// needs the app finished (its type and startup file known).
func (a *App) RunAs() (identity.Choice, error) {
	startup := a.StartupFile
	if a.AppType == AppTypeGeneric {
		startup = ""
	}
	return a.Policy().Choose(a.Root, startup)
}

// checkProcessesTotal refuses a total cap smaller than the apps' minimums
// together, which could never all be met.
func (c *Config) checkProcessesTotal() error {
	if c.MaxProcessesTotal == 0 {
		return nil
	}
	sum := 0
	for _, a := range c.Apps {
		sum += a.MinInstances
	}
	if sum > c.MaxProcessesTotal {
		return errors.New("--max-processes-total: must be at least the apps' --min-instances together (" +
			strconv.Itoa(sum) + "; got " + strconv.Itoa(c.MaxProcessesTotal) + ")")
	}
	return nil
}
