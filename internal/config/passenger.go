package config

import (
	"errors"
	"flag"
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/ferry-server/ferry/internal/hooks"
)

// Passenger holds the server-wide settings that exist for Passenger parity:
// event hooks (Passenger's --ctl hook_NAME=COMMAND) and what was accepted
// but has no effect.
type Passenger struct {
	// Hooks are the commands run on lifecycle events (event → commands),
	// from --hook EVENT=COMMAND and --ctl hook_EVENT=COMMAND.
	Hooks map[string][]string
	// Ctls are the --ctl NAME=VALUE settings as given (Passengerfile key
	// "ctls"); hook_* ones become Hooks, the rest are logged as ignored.
	Ctls []string
	// DataBufferDir is where request and response bodies too large for
	// memory are spilled. Default: the instance directory.
	DataBufferDir string
	// CoreFileDescriptorUlimit sets the core's limit of open files at start
	// (0: inherited; else at least MinCoreFileDescriptors).
	CoreFileDescriptorUlimit int
}

// MinCoreFileDescriptors is the least --core-file-descriptor-ulimit: the
// core's own files (listeners, logs, the instance directory, a status pipe
// and a socket per app process) with room for a few clients.
const MinCoreFileDescriptors = 64

// AppPassenger holds the per-app settings added for Passenger parity.
type AppPassenger struct {
	// StickySessions routes a client carrying the sticky cookie to the
	// process that served it before, while that process lives. Default off.
	StickySessions bool
	// StickySessionsCookieName names the sticky cookie. Default
	// _passenger_route.
	StickySessionsCookieName string
	// StickySessionsCookieAttributes are appended to the sticky cookie.
	// Default "SameSite=Lax; Secure;".
	StickySessionsCookieAttributes string
	// UnlimitedConcurrencyPaths are path prefixes (WebSocket, SSE) whose
	// requests ignore the per-process concurrency limit and never queue.
	UnlimitedConcurrencyPaths []string
	// AbortWebsocketsOnProcessShutdown closes a process's WebSockets when it
	// starts to leave (restart, recycle). Default on.
	AbortWebsocketsOnProcessShutdown bool
	// FriendlyErrorPages shows error details (spawn output, tracebacks) to
	// clients; unset: on in development only.
	FriendlyErrorPages *bool
	// CustomErrorPage is an HTML file used for the error pages Ferry itself
	// generates instead of its own.
	CustomErrorPage string
	// StaticFilesDir is the directory of static files. Default
	// APP_DIR/public.
	StaticFilesDir string
	// Rackup forces a Rack app with this rackup file (-R).
	Rackup string
	// LoadShellEnvvars starts the app through the user's login shell
	// (bash -lc) so that its startup files set the environment. Default off.
	LoadShellEnvvars bool
	// PreloadBundler is accepted: the Rack loader always loads Bundler first
	// when there is a Gemfile.
	PreloadBundler bool
	// ResistDeploymentErrors is accepted: rolling restarts always keep the
	// old processes when the new version fails to start.
	ResistDeploymentErrors bool
}

// ignoredWhy explains, per option, why Ferry accepts it and does nothing.
var ignoredWhy = map[string]string{
	"engine":                          "Ferry is its own HTTP server; there is no nginx engine to choose",
	"nginx-version":                   "Ferry does not run nginx",
	"nginx-config-template":           "Ferry does not run nginx (ferry nginx-config writes a config for an nginx in front)",
	"disable-security-update-check":   "Ferry never phones home for security updates",
	"disable-anonymous-telemetry":     "Ferry sends no telemetry",
	"admin-panel-url":                 "Ferry has no connection to Passenger's admin panel; use its admin API and metrics",
	"admin-panel-auth-type":           "Ferry has no connection to Passenger's admin panel",
	"admin-panel-username":            "Ferry has no connection to Passenger's admin panel",
	"admin-panel-password":            "Ferry has no connection to Passenger's admin panel",
	"debugger":                        "Ferry has no Ruby debugger integration; start the app with rdbg yourself (--app-start-command)",
	"disable-log-prefix":              "Ferry logs are structured (app and pid are attributes), there is no prefix to drop",
	"direct-instance-request-address": "Ferry sends every request through the core; there is no direct instance address",
}

// ignoredValue accepts any value of an option Ferry ignores and records
// why in Server.Ignored, which becomes one warning each.
type ignoredValue struct {
	s    *Server
	name string
	bool bool
}

func (v *ignoredValue) String() string {
	if v.bool {
		return "false"
	}
	return ""
}
func (v *ignoredValue) IsBoolFlag() bool { return v.bool }
func (v *ignoredValue) Set(string) error {
	if v.s.Ignored == nil {
		v.s.Ignored = map[string]string{}
	}
	v.s.Ignored[v.name] = ignoredWhy[v.name]
	return nil
}

func ignored(name string, isBool bool, usage string) *option {
	return srv(name, usage+" (accepted for Passenger; ignored)", func(s *Server) flag.Value {
		return &ignoredValue{s: s, name: name, bool: isBool}
	})
}

// hookValue is a repeatable EVENT=COMMAND.
type hookValue map[string][]string

func (v *hookValue) multi() {}
func (v *hookValue) String() string {
	var parts []string
	for _, k := range slices.Sorted(func(yield func(string) bool) {
		for k := range *v {
			if !yield(k) {
				return
			}
		}
	}) {
		for _, c := range (*v)[k] {
			parts = append(parts, k+"="+c)
		}
	}
	return strings.Join(parts, " ")
}
func (v *hookValue) Set(s string) error {
	ev, cmd, ok := strings.Cut(s, "=")
	ev = strings.TrimSpace(ev)
	if !ok || ev == "" || strings.TrimSpace(cmd) == "" {
		return errors.New("want EVENT=COMMAND")
	}
	if !slices.Contains(hooks.Known, ev) {
		return fmt.Errorf("unknown event %q (known: %s)", ev, strings.Join(hooks.Known, ", "))
	}
	if *v == nil {
		*v = map[string][]string{}
	}
	(*v)[ev] = append((*v)[ev], cmd)
	return nil
}

// ctlValue is Passenger's repeatable --ctl NAME=VALUE: hook_EVENT=COMMAND
// sets a hook; anything else is recorded and logged as ignored.
type ctlValue struct{ p *Passenger }

func (v *ctlValue) multi()         {}
func (v *ctlValue) String() string { return strings.Join(v.p.Ctls, " ") }
func (v *ctlValue) Set(s string) error {
	name, val, ok := strings.Cut(s, "=")
	if !ok || name == "" {
		return errors.New("want NAME=VALUE")
	}
	if ev, isHook := strings.CutPrefix(name, "hook_"); isHook {
		if err := (*hookValue)(&v.p.Hooks).Set(ev + "=" + val); err != nil {
			return err
		}
	}
	v.p.Ctls = append(v.p.Ctls, s)
	return nil
}

// onValue is an on-by-default boolean with a --no-X twin: the field is the
// setting itself (true = on).
type optBoolValue struct{ p **bool }

func (v *optBoolValue) String() string {
	if *v.p == nil {
		return ""
	}
	return fmt.Sprint(**v.p)
}
func (v *optBoolValue) IsBoolFlag() bool { return true }
func (v *optBoolValue) Set(s string) error {
	var b boolValue
	if err := b.Set(s); err != nil {
		return err
	}
	x := bool(b)
	*v.p = &x
	return nil
}

type negOptBoolValue struct{ p **bool }

func (v *negOptBoolValue) String() string   { return "false" }
func (v *negOptBoolValue) IsBoolFlag() bool { return true }
func (v *negOptBoolValue) Set(s string) error {
	var b boolValue
	if err := b.Set(s); err != nil {
		return err
	}
	x := !bool(b)
	*v.p = &x
	return nil
}

func init() {
	register(
		srv("hook", "run `EVENT=COMMAND` (sh -c) when EVENT happens; details in FERRY_* variables (repeatable; events: "+strings.Join(hooks.Known, ", ")+")", func(s *Server) flag.Value {
			return (*hookValue)(&s.Hooks)
		}).withKey("hooks"),
		srv("ctl", "Passenger's low-level `NAME=VALUE` (repeatable): hook_EVENT=COMMAND sets a hook, others are ignored", func(s *Server) flag.Value {
			return &ctlValue{&s.Passenger}
		}).withKey("ctls"),

		srv("data-buffer-dir", "`DIR` where request and response bodies too large for memory are spilled (default: the instance directory)", func(s *Server) flag.Value {
			return (*strValue)(&s.DataBufferDir)
		}),
		srv("core-file-descriptor-ulimit", "limit of open files for the Ferry core (`N`; 0 = inherited)", func(s *Server) flag.Value {
			return (*intValue)(&s.CoreFileDescriptorUlimit)
		}),

		app("sticky-sessions", "route a client carrying the sticky cookie to the process that served it before", func(a *App) flag.Value { return (*boolValue)(&a.StickySessions) }),
		app("sticky-sessions-cookie-name", "`NAME` of the sticky-session cookie", func(a *App) flag.Value { return (*strValue)(&a.StickySessionsCookieName) }),
		app("sticky-sessions-cookie-attributes", "`ATTRIBUTES` appended to the sticky-session cookie", func(a *App) flag.Value {
			return (*strValue)(&a.StickySessionsCookieAttributes)
		}),
		app("unlimited-concurrency-path", "requests under this `PATH` prefix ignore the per-process concurrency limit and never queue (repeatable; WebSocket, SSE)", func(a *App) flag.Value {
			return (*listValue)(&a.UnlimitedConcurrencyPaths)
		}).withKey("unlimited_concurrency_paths"),
		app("abort-websockets-on-process-shutdown", "close a process's WebSockets when it starts to shut down", func(a *App) flag.Value {
			return (*boolValue)(&a.AbortWebsocketsOnProcessShutdown)
		}),
		app("no-abort-websockets-on-process-shutdown", "keep WebSockets open while their process shuts down", func(a *App) flag.Value {
			return (*negBoolValue)(&a.AbortWebsocketsOnProcessShutdown)
		}).withKey("-"),
		app("friendly-error-pages", "show error details (spawn output, tracebacks) to clients (default: in development only)", func(a *App) flag.Value {
			return &optBoolValue{&a.FriendlyErrorPages}
		}),
		app("no-friendly-error-pages", "never show error details to clients", func(a *App) flag.Value {
			return &negOptBoolValue{&a.FriendlyErrorPages}
		}).withKey("-"),
		app("custom-error-page", "HTML `FILE` used for the error pages Ferry generates", func(a *App) flag.Value { return (*strValue)(&a.CustomErrorPage) }),
		app("static-files-dir", "`DIR` of static files (default APP_DIR/public)", func(a *App) flag.Value { return (*strValue)(&a.StaticFilesDir) }),
		app("rackup", "run a Rack app from this rackup `FILE` (sets --app-type rack and --startup-file)", func(a *App) flag.Value { return (*strValue)(&a.Rackup) }).short("R"),
		app("load-shell-envvars", "start the app through the user's login shell (bash -lc), so its startup files set the environment", func(a *App) flag.Value {
			return (*boolValue)(&a.LoadShellEnvvars)
		}),
		app("preload-bundler", "accepted: the Rack loader always sets up Bundler first when there is a Gemfile", func(a *App) flag.Value { return (*boolValue)(&a.PreloadBundler) }),
		app("resist-deployment-errors", "accepted: rolling restarts always keep the old processes when the new version fails to start", func(a *App) flag.Value {
			return (*boolValue)(&a.ResistDeploymentErrors)
		}),
		app("app-group-name", "the app's `NAME` in logs, status and the admin API (Passenger's process-group name)", func(a *App) flag.Value { return (*strValue)(&a.Name) }),

		ignored("engine", false, "Passenger's web server `ENGINE`"),
		ignored("nginx-version", false, "Passenger's nginx `VERSION`"),
		ignored("nginx-config-template", false, "Passenger's nginx template `FILE`"),
		ignored("disable-security-update-check", true, "Passenger's security-update check"),
		ignored("disable-anonymous-telemetry", true, "Passenger's telemetry"),
		ignored("admin-panel-url", false, "Passenger admin panel `URL`"),
		ignored("admin-panel-auth-type", false, "Passenger admin panel auth `TYPE`"),
		ignored("admin-panel-username", false, "Passenger admin panel `USER`"),
		ignored("admin-panel-password", false, "Passenger admin panel `PASSWORD`"),
		ignored("debugger", true, "Passenger's Ruby debugger"),
		ignored("disable-log-prefix", true, "Passenger's log prefix"),
		ignored("direct-instance-request-address", false, "Passenger's direct instance `HOST`"),
	)
}

// finish turns the ignored options and --ctl settings into warnings.
func (p *Passenger) finish(s *Server, warn func(string)) {
	for _, c := range p.Ctls {
		name, _, _ := strings.Cut(c, "=")
		if !strings.HasPrefix(name, "hook_") {
			warn(fmt.Sprintf("--ctl %s: ignored: Ferry has no such core setting (only hook_EVENT=COMMAND is used)", name))
		}
	}
	names := make([]string, 0, len(s.Ignored))
	for n := range s.Ignored {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		warn(fmt.Sprintf("--%s: ignored: %s", n, s.Ignored[n]))
	}
}

// finish validates and resolves an app's Passenger-parity settings.
func (a *AppPassenger) finish(p *problems) {
	if a.StickySessionsCookieName == "" {
		p.bad("sticky-sessions-cookie-name", "must not be empty")
	}
	for i, u := range a.UnlimitedConcurrencyPaths {
		if !strings.HasPrefix(u, "/") {
			p.bad("unlimited-concurrency-path", "must start with / (got %q)", u)
		}
		a.UnlimitedConcurrencyPaths[i] = u
	}
}
