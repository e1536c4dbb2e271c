package launch

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/ferry-server/ferry/internal/config"
)

func TestExecPrefix(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"bundle exec puma", "exec bundle exec puma"},
		{"  ./server --port $PORT \t", "exec ./server --port $PORT"},
		{"exec ./server", "exec ./server"},
		{"cd web; ./server", "cd web; ./server"},
		{"./a && ./b", "./a && ./b"},
		{"./a | tee log", "./a | tee log"},
		{"./a > log", "./a > log"},
		{"(./a)", "(./a)"},
		{"echo `date`", "echo `date`"},
		{"./a\n./b", "./a\n./b"},
	} {
		if got := ExecPrefix(c.in); got != c.want {
			t.Errorf("ExecPrefix(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

// TestCommand: each app type's loader is written into the directory and
// started under its interpreter; a generic app runs under sh, execing
// itself; --load-shell-envvars puts a login shell in front.
func TestCommand(t *testing.T) {
	app := config.App{Python: "/usr/bin/python3", Ruby: "/usr/bin/ruby", Nodejs: "/usr/bin/node",
		AppStartCommand: "./server"}
	for _, c := range []struct {
		typ    string
		shell  bool
		want   []string // "DIR/" stands for the directory
		errMsg string
	}{
		{typ: config.AppTypeWSGI, want: []string{"/usr/bin/python3", "DIR/wsgi.py"}},
		{typ: config.AppTypeASGI, want: []string{"/usr/bin/python3", "DIR/asgi.py"}},
		{typ: config.AppTypeRack, want: []string{"/usr/bin/ruby", "DIR/rack.rb"}},
		{typ: config.AppTypeNode, want: []string{"/usr/bin/node", "DIR/node.cjs"}},
		{typ: config.AppTypeGeneric, want: []string{"/bin/sh", "-c", "exec ./server"}},
		{typ: config.AppTypeRack, shell: true,
			want: []string{"/bin/bash", "-lc", `exec "$0" "$@"`, "/usr/bin/ruby", "DIR/rack.rb"}},
		{typ: "cobol", errMsg: `no loader for app type "cobol"`},
	} {
		t.Run(c.typ, func(t *testing.T) {
			dir := t.TempDir()
			a := app
			a.AppType, a.LoadShellEnvvars = c.typ, c.shell
			got, err := Command(a, dir)
			if c.errMsg != "" {
				if err == nil || err.Error() != c.errMsg {
					t.Fatalf("got %q, %v; want error %q", got, err, c.errMsg)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			want := make([]string, len(c.want))
			for i, w := range c.want {
				want[i] = strings.Replace(w, "DIR/", dir+"/", 1)
			}
			if !slices.Equal(got, want) {
				t.Fatalf("got %q, want %q", got, want)
			}
			if c.typ != config.AppTypeGeneric {
				if _, err := os.Stat(filepath.Join(dir, filepath.Base(got[len(got)-1]))); err != nil {
					t.Fatalf("loader not written: %v", err)
				}
			}
		})
	}
}

// TestEnv: what the app is told about itself follows what it inherits;
// --envvar come last, sorted, and cannot set FERRY_ names; the core's own
// systemd and environment names are not passed on.
func TestEnv(t *testing.T) {
	core := []string{"PATH=/usr/bin", "NOTIFY_SOCKET=/run/notify", "RAILS_ENV=test", "HOME=/root"}
	ac := config.App{Root: "/srv/app", StartupFile: "config.ru", BaseURI: "/shop", Environment: "staging",
		ConcurrencyModel: "thread", ThreadCount: 8,
		Envvars: map[string]string{"ZED": "last", "ALPHA": "1", "FERRY_SOCKET": "/evil"}}
	got := env(core, ac, "/tmp/ferry-inst", nil)
	want := []string{"PATH=/usr/bin", "HOME=/root",
		"FERRY_THREADS=8",
		"FERRY_APP_ROOT=/srv/app", "FERRY_INSTANCE=/tmp/ferry-inst", "FERRY_STARTUP_FILE=config.ru",
		"FERRY_BASE_URI=/shop", "FERRY_APP_ENV=staging", "PASSENGER_APP_ENV=staging", "RAILS_ENV=staging",
		"RACK_ENV=staging", "WSGI_ENV=staging", "NODE_ENV=staging", "PYTHONUNBUFFERED=1",
		"ALPHA=1", "ZED=last"}
	if !slices.Equal(got, want) {
		t.Fatalf("got\n%q\nwant\n%q", got, want)
	}
	ac.ConcurrencyModel = "process"
	if got := env(core, ac, "/tmp/ferry-inst", nil); slices.ContainsFunc(got, func(kv string) bool {
		return strings.HasPrefix(kv, "FERRY_THREADS=")
	}) {
		t.Fatalf("FERRY_THREADS without threads: %q", got)
	}
}
