package spawn

import (
	"strings"

	"github.com/ferry-server/ferry/internal/identity"
)

// Inherit is the part of the core's environment apps get, built explicitly.
// Like Passenger, Ferry passes on the environment it was started with
// (PATH, LANG, TZ, proxies, whatever the operator set for the apps), minus:
//
//   - Ferry's own settings and internals (FERRY_*, PASSENGER_*): they
//     configure Ferry, not the app, and the core sets the app's own
//     FERRY_* handshake variables itself;
//   - what belongs to the core's service manager or login session, not to
//     the app: systemd's NOTIFY_SOCKET, LISTEN_FDS and friends (an app
//     that saw them could speak for Ferry to systemd), its
//     CREDENTIALS_DIRECTORY (Ferry's secrets), agent and bus sockets
//     (SSH_AUTH_SOCK, DBUS_SESSION_BUS_ADDRESS, …), PWD;
//   - the app environment names (RAILS_ENV, …) and PYTHONUNBUFFERED, which
//     the core sets from --environment.
//
// When apps run as another user (u non-nil), the variables that describe
// the core's user are dropped too (HOME, USER, LOGNAME, SHELL, MAIL,
// XDG_*: root's runtime and config directories are no place for an app)
// and HOME, USER, LOGNAME and SHELL name u instead. --envvar settings,
// added after this by the caller, win over all of it.
func Inherit(environ []string, u *identity.User) []string {
	var env []string
	for _, kv := range environ {
		k, _, ok := strings.Cut(kv, "=")
		if !ok || dropped(k) || u != nil && userVar(k) {
			continue
		}
		env = append(env, kv)
	}
	if u != nil {
		env = append(env, u.Env()...)
	}
	return env
}

// droppedNames are never passed on, whoever the app runs as.
var droppedNames = map[string]bool{
	// systemd: readiness, socket activation, watchdog, credentials.
	"NOTIFY_SOCKET": true, "LISTEN_FDS": true, "LISTEN_PID": true, "LISTEN_FDNAMES": true,
	"WATCHDOG_USEC": true, "WATCHDOG_PID": true, "CREDENTIALS_DIRECTORY": true,
	"INVOCATION_ID": true, "JOURNAL_STREAM": true, "MANAGERPID": true, "SYSTEMD_EXEC_PID": true,
	"MAINPID": true, "TRIGGER_UNIT": true, "MONITOR_SERVICE_RESULT": true,
	// Agents and buses of the login session that started Ferry.
	"SSH_AUTH_SOCK": true, "SSH_AGENT_PID": true, "GPG_AGENT_INFO": true,
	"DBUS_SESSION_BUS_ADDRESS": true, "KRB5CCNAME": true,
	// The core's working directory, not the app's.
	"PWD": true, "OLDPWD": true,
	// Set by the core from --environment.
	"RAILS_ENV": true, "RACK_ENV": true, "WSGI_ENV": true, "NODE_ENV": true, "PYTHONUNBUFFERED": true,
}

func dropped(k string) bool {
	return droppedNames[k] || strings.HasPrefix(k, "FERRY_") || strings.HasPrefix(k, "PASSENGER_")
}

// userVar reports whether k describes the core's user.
func userVar(k string) bool {
	switch k {
	case "HOME", "USER", "LOGNAME", "SHELL", "MAIL", "SUDO_USER", "SUDO_UID", "SUDO_GID", "SUDO_COMMAND":
		return true
	}
	return strings.HasPrefix(k, "XDG_")
}
