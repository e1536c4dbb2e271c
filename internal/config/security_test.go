package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestSecurityDefaults(t *testing.T) {
	c := load(t, nil, wsgiApp(t))
	a := c.Apps[0]
	if a.UserSwitchingOff || a.AllowRootApps || a.User != "" || a.Group != "" || a.AppCoreDumps ||
		a.StaticFollowSymlinks || a.AppFileDescriptorUlimit != 0 || a.MaxWebsocketTunnels != DefaultMaxWebsocketTunnels ||
		c.MaxProcessesTotal != 0 {
		t.Fatalf("security defaults: %+v %+v", c.Security, a.AppSecurity)
	}
	var b strings.Builder
	PrintStartUsage(&b)
	for _, want := range []string{
		"--user-switching BOOL", "(default true)", "--default-user USER", "(default nobody)",
		"--allow-root-apps ", "--max-websocket-tunnels N", "(default 10000)",
	} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("usage lacks %q", want)
		}
	}
}

func TestSecuritySources(t *testing.T) {
	dir := wsgiApp(t)
	write(t, filepath.Join(dir, "Passengerfile.json"), `{"app_file_descriptor_ulimit": 4096, "user_switching": false}`)
	c := load(t, []string{"FERRY_MAX_WEBSOCKET_TUNNELS=50", "PASSENGER_MAX_PROCESSES_TOTAL=4"},
		dir, "--static-follow-symlinks", "--app-core-dumps")
	a := c.Apps[0]
	if a.AppFileDescriptorUlimit != 4096 || !a.UserSwitchingOff || a.MaxWebsocketTunnels != 50 ||
		c.MaxProcessesTotal != 4 || !a.StaticFollowSymlinks || !a.AppCoreDumps {
		t.Fatalf("%+v %+v", c.Security, a.AppSecurity)
	}
	for _, v := range []string{"true", "on", "yes", "1"} {
		if a := load(t, nil, dir, "--user-switching", v).Apps[0]; a.UserSwitchingOff {
			t.Errorf("--user-switching %s turned it off", v)
		}
	}
	if _, err := Load([]string{dir, "--user-switching", "maybe"}, nil); err == nil || !strings.Contains(err.Error(), "want true or false") {
		t.Errorf("bad --user-switching: %v", err)
	}
}

func TestSecurityValidation(t *testing.T) {
	dir := wsgiApp(t)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--max-processes-total", "-1"}, "--max-processes-total: must be 0"},
		{[]string{"--max-processes-total", "1", "--min-instances", "2"}, "--max-processes-total: must be at least the apps' --min-instances"},
		{[]string{"--app-file-descriptor-ulimit", "-5"}, "--app-file-descriptor-ulimit: must be 0"},
		{[]string{"--max-websocket-tunnels", "-2"}, "--max-websocket-tunnels: must be -1"},
		{[]string{"--user-switching", "false", "--user", "root"}, "--user: has no effect with --user-switching false"},
		{[]string{"--user", "no-such-user-ferry"}, "no user \"no-such-user-ferry\""},
	} {
		_, err := Load(append([]string{dir}, tc.args...), nil)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: err = %v, want %q", tc.args, err, tc.want)
		}
	}
	if os.Geteuid() == 0 {
		if _, err := Load([]string{dir, "--user", "root"}, nil); err == nil || !strings.Contains(err.Error(), "--allow-root-apps") {
			t.Errorf("--user root without --allow-root-apps: %v", err)
		}
		if _, err := Load([]string{dir, "--user", "root", "--allow-root-apps"}, nil); err != nil {
			t.Errorf("--user root --allow-root-apps: %v", err)
		}
	} else {
		if _, err := Load([]string{dir, "--user", "root"}, nil); err == nil || !strings.Contains(err.Error(), "not root") {
			t.Errorf("--user root when not root: %v", err)
		}
	}
}

func TestRunAs(t *testing.T) {
	c := load(t, nil, wsgiApp(t))
	ch, err := c.Apps[0].RunAs()
	if err != nil {
		t.Fatal(err)
	}
	if os.Geteuid() == 0 {
		// t.TempDir's files are root's: the app runs as nobody.
		if ch.Name != "nobody" || !strings.Contains(ch.Why, "passenger_wsgi.py is owned by root") {
			t.Errorf("root-owned app runs as %s (%s), want nobody", ch.User, ch.Why)
		}
	} else if ch.UID != os.Geteuid() {
		t.Errorf("runs as %s, want Ferry's own user", ch.User)
	}
}
