package config

import (
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func wsgiApp(t testing.TB) string {
	t.Helper()
	dir := t.TempDir()
	write(t, filepath.Join(dir, "passenger_wsgi.py"), "application = None\n")
	return dir
}

func write(t testing.TB, path, s string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}

func load(t *testing.T, env []string, args ...string) *Config {
	t.Helper()
	c, err := Load(args, env)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestDefaults(t *testing.T) {
	dir := wsgiApp(t)
	c := load(t, nil, dir)
	a := c.Apps[0]
	if c.Port != 3000 || c.Address != "0.0.0.0" || a.Environment != "development" || a.MaxPoolSize != 6 ||
		a.MinInstances != 1 || a.MaxRequestQueueSize != 100 || a.PoolIdleTime != 300*time.Second ||
		a.Python != "python3" || a.AppType != AppTypeWSGI || a.StartupFile != "passenger_wsgi.py" || a.Root != dir ||
		a.StatThrottleRate != 10*time.Second || a.SpawnMethod != "smart" || a.ConcurrencyModel != "process" ||
		a.ThreadCount != 1 || a.ForceMaxConcurrentRequestsPerProcess != -1 || a.MaxPreloaderIdleTime != 300*time.Second ||
		a.StartTimeout != 90*time.Second || a.RestartDir != filepath.Join(dir, "tmp") || !a.TurboCaching ||
		a.Name != filepath.Base(dir) || c.InstanceRegistryDir == "" {
		t.Fatalf("defaults: %+v %+v", c.Server, a)
	}
}

func TestFlagsAnywhere(t *testing.T) {
	dir := wsgiApp(t)
	c := load(t, nil, "--port", "4000", dir, "-e", "production", "--max-pool-size=3",
		"--pool-idle-time", "1.5", "--start-timeout", "2m", "--log-level", "7", "--request-buffer-memory", "1m",
		"--envvar", "A=1", "--envvar", "B=2", "--disable-turbocaching")
	a := c.Apps[0]
	if c.Port != 4000 || a.Environment != "production" || a.MaxPoolSize != 3 || a.PoolIdleTime != 1500*time.Millisecond ||
		a.StartTimeout != 2*time.Minute || c.LogLevel != slog.LevelDebug || c.RequestBufferMemory != 1<<20 ||
		a.Envvars["A"] != "1" || a.Envvars["B"] != "2" || a.TurboCaching {
		t.Fatalf("parsed: %+v %+v", c.Server, a)
	}
}

func TestPrecedence(t *testing.T) {
	dir := wsgiApp(t)
	write(t, filepath.Join(dir, "Passengerfile.json"), `{
		"port": 4100, "max_pool_size": 4, "min_instances": 2, "environment": "staging",
		"envvars": {"FROM_FILE": "yes", "SHARED": "file"}, "spawn_method": "direct"
	}`)
	env := []string{"PASSENGER_MAX_POOL_SIZE=5", "FERRY_MIN_INSTANCES=3", "PASSENGER_PORT=", "FERRY_ENVVARS=SHARED=env"}
	c := load(t, env, dir, "--min-instances", "1")
	a := c.Apps[0]
	// defaults < Passengerfile.json < environment < command line; empty
	// environment values are ignored.
	if c.Port != 4100 || a.MaxPoolSize != 5 || a.MinInstances != 1 || a.Environment != "staging" || a.SpawnMethod != "direct" {
		t.Fatalf("port %d max %d min %d env %q spawn %q", c.Port, a.MaxPoolSize, a.MinInstances, a.Environment, a.SpawnMethod)
	}
	if a.Envvars["FROM_FILE"] != "yes" || a.Envvars["SHARED"] != "env" {
		t.Fatalf("envvars %v", a.Envvars)
	}
	// FERRY_ wins over PASSENGER_.
	c = load(t, []string{"PASSENGER_MAX_POOL_SIZE=5", "FERRY_MAX_POOL_SIZE=7"}, dir)
	if c.Apps[0].MaxPoolSize != 7 {
		t.Fatalf("FERRY_ vs PASSENGER_: %d", c.Apps[0].MaxPoolSize)
	}
	// The shell's app environment is the default, as in Passenger.
	os.Remove(filepath.Join(dir, "Passengerfile.json"))
	if c := load(t, []string{"RAILS_ENV=production"}, dir); c.Apps[0].Environment != "production" {
		t.Fatalf("RAILS_ENV default: %q", c.Apps[0].Environment)
	}
}

func TestPassengerfileErrors(t *testing.T) {
	dir := wsgiApp(t)
	pf := filepath.Join(dir, "Passengerfile.json")
	write(t, pf, `{"max_pool_size": "lots", "frobnicate": 1, "envvars": ["x"]}`)
	_, err := Load([]string{dir}, nil)
	if err == nil {
		t.Fatal("bad types accepted")
	}
	for _, want := range []string{pf + ": max_pool_size: want a whole number", pf + ": envvars: want NAME=VALUE"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
	write(t, pf, `{"frobnicate": 1}`)
	c := load(t, nil, dir)
	if len(c.Warnings) != 1 || !strings.Contains(c.Warnings[0], `unknown key "frobnicate"`) {
		t.Fatalf("warnings %q", c.Warnings)
	}
	write(t, pf, `[1,2]`)
	if _, err := Load([]string{dir}, nil); err == nil || !strings.Contains(err.Error(), "not a JSON object") {
		t.Fatalf("array file: %v", err)
	}
	os.Remove(pf)
	if _, err := Load([]string{dir}, []string{"FERRY_PORT=http"}); err == nil || !strings.Contains(err.Error(), "FERRY_PORT: want a whole number") {
		t.Fatalf("bad env: %v", err)
	}
}

func TestValidationNamesEveryBadKey(t *testing.T) {
	dir := wsgiApp(t)
	_, err := Load([]string{dir, "--max-pool-size", "0", "--min-instances", "-1", "--port", "70000",
		"--max-request-queue-size", "-5", "--shutdown-timeout", "0"}, nil)
	if err == nil {
		t.Fatal("want an error")
	}
	for _, key := range []string{"--max-pool-size", "--min-instances", "--port", "--max-request-queue-size", "--shutdown-timeout"} {
		if !strings.Contains(err.Error(), key) {
			t.Errorf("error does not name %s: %v", key, err)
		}
	}
}

func TestDetection(t *testing.T) {
	if _, err := Load([]string{t.TempDir()}, nil); err == nil || !strings.Contains(err.Error(), "passenger_wsgi.py") {
		t.Fatalf("empty dir: %v", err)
	}
	dir := t.TempDir()
	write(t, filepath.Join(dir, "app.py"), "")
	c := load(t, nil, dir, "--startup-file", "app.py")
	if c.Apps[0].AppType != AppTypeWSGI {
		t.Fatalf("startup file app.py: %q", c.Apps[0].AppType)
	}
	if _, err := Load([]string{dir, "--startup-file", "../etc/passwd"}, nil); err == nil {
		t.Fatal("a startup file outside the app was accepted")
	}
	// Absolute, as Passenger takes it: inside the app it is fine; outside,
	// refused, naming the option.
	if c := load(t, nil, dir, "--startup-file", filepath.Join(dir, "app.py")); c.Apps[0].StartupFile != "app.py" {
		t.Errorf("absolute startup file inside the app: %q, want app.py", c.Apps[0].StartupFile)
	}
	link := filepath.Join(t.TempDir(), "link")
	if err := os.Symlink(dir, link); err != nil {
		t.Fatal(err)
	}
	if c := load(t, nil, link, "--startup-file", filepath.Join(dir, "app.py")); c.Apps[0].StartupFile != "app.py" {
		t.Errorf("absolute startup file inside the app reached through a symlink: %q, want app.py", c.Apps[0].StartupFile)
	}
	if _, err := Load([]string{dir, "--startup-file", "/etc/passwd"}, nil); err == nil || !strings.Contains(err.Error(), "--startup-file: /etc/passwd is not inside the app directory") {
		t.Fatalf("an absolute startup file outside the app: %v", err)
	}
	if _, err := Load([]string{dir, "extra"}, nil); err == nil {
		t.Fatal("two positional arguments accepted")
	}
	for file, typ := range map[string]string{"config.ru": AppTypeRack, "asgi.py": AppTypeASGI, "app.js": AppTypeNode} {
		d := t.TempDir()
		write(t, filepath.Join(d, file), "")
		if c := load(t, nil, d); c.Apps[0].AppType != typ {
			t.Errorf("%s: detected %q, want %q", file, c.Apps[0].AppType, typ)
		}
	}
	d := t.TempDir()
	write(t, filepath.Join(d, "package.json"), `{"main": "server/main.js"}`)
	write(t, filepath.Join(d, "server/main.js"), "")
	if c := load(t, nil, d); c.Apps[0].StartupFile != "server/main.js" {
		t.Errorf("package.json main: %q", c.Apps[0].StartupFile)
	}
}

func TestMultiAppFile(t *testing.T) {
	base := t.TempDir()
	write(t, filepath.Join(base, "blog", "config.ru"), "")
	write(t, filepath.Join(base, "api", "passenger_wsgi.py"), "")
	write(t, filepath.Join(base, "api", "Passengerfile.json"), `{"max_pool_size": 9, "min_instances": 2}`)
	file := filepath.Join(base, "ferry.toml")
	write(t, file, `
# server-wide, and defaults for every app
port = 8080
environment = "production"
max_pool_size = 3

[[app]]
name = "blog"
root = "blog"
server_names = ["blog.example.com", "*.blog.example.com"]

[[app]]
root = "api"
base_uri = "/api/"
min_instances = 0
envvars = { TOKEN = "abc", PORT_HINT = 1 }
`)
	c := load(t, []string{"FERRY_POOL_IDLE_TIME=60"}, "--config", file, "--max-requests", "100")
	if c.Port != 8080 || len(c.Apps) != 2 {
		t.Fatalf("port %d, %d apps", c.Port, len(c.Apps))
	}
	blog, api := c.Apps[0], c.Apps[1]
	if blog.Name != "blog" || blog.Root != filepath.Join(base, "blog") || blog.AppType != AppTypeRack ||
		blog.Environment != "production" || blog.MaxPoolSize != 3 || len(blog.ServerNames) != 2 {
		t.Errorf("blog: %+v", blog)
	}
	// The app's Passengerfile.json beats the file's top-level defaults; its
	// [[app]] table beats both.
	if api.Name != "api" || api.BaseURI != "/api" || api.MaxPoolSize != 9 || api.MinInstances != 0 ||
		api.Envvars["TOKEN"] != "abc" || api.Envvars["PORT_HINT"] != "1" {
		t.Errorf("api: %+v", api)
	}
	for _, a := range c.Apps {
		if a.PoolIdleTime != time.Minute || a.MaxRequests != 100 {
			t.Errorf("%s: environment and flags must apply to every app: idle %s, max requests %d", a.Name, a.PoolIdleTime, a.MaxRequests)
		}
	}
}

func TestMultiAppFileErrors(t *testing.T) {
	base := t.TempDir()
	write(t, filepath.Join(base, "a", "config.ru"), "")
	for name, tc := range map[string]struct{ toml, want string }{
		"no apps":       {`port = 1`, "no [[app]] tables"},
		"no root":       {"[[app]]\nname = \"x\"", "root is missing"},
		"server in app": {"[[app]]\nroot = \"a\"\nport = 9", "port is server-wide"},
		"bad toml":      {"port = ", "toml: line 1"},
		"same route":    {"[[app]]\nroot = \"a\"\nname = \"one\"\n[[app]]\nroot = \"a\"\nname = \"two\"", "both claim host"},
		"same name":     {"[[app]]\nroot = \"a\"\nbase_uri = \"/x\"\n[[app]]\nroot = \"a\"", "two apps are named"},
		"bad base uri":  {"[[app]]\nroot = \"a\"\nbase_uri = \"api\"", "base_uri: must be a path"},
	} {
		t.Run(name, func(t *testing.T) {
			file := filepath.Join(base, name+".toml")
			write(t, file, tc.toml)
			if _, err := Load([]string{"--config", file}, nil); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error = %v, want %q", err, tc.want)
			}
		})
	}
}

func TestUsageListsEveryFlag(t *testing.T) {
	var b strings.Builder
	PrintStartUsage(&b)
	for _, o := range options {
		if o.Name != "" && !strings.Contains(b.String(), "--"+o.Name) {
			t.Errorf("usage lacks --%s", o.Name)
		}
	}
	if !strings.Contains(b.String(), "-p, --port PORT") || !strings.Contains(b.String(), "(default 3000)") {
		t.Errorf("usage:\n%s", b.String())
	}
}

func TestParseHelpers(t *testing.T) {
	for in, want := range map[string]int64{"1024": 1024, "4k": 4096, "2m": 2 << 20, "1g": 1 << 30, "3Mi": 3 << 20} {
		if got, err := ParseBytes(in); err != nil || got != want {
			t.Errorf("ParseBytes(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "x", "-1", "1t"} {
		if _, err := ParseBytes(bad); err == nil {
			t.Errorf("ParseBytes(%q) accepted", bad)
		}
	}
	for in, want := range map[string]time.Duration{"300": 300 * time.Second, "0.25": 250 * time.Millisecond, "5m": 5 * time.Minute} {
		if got, err := ParseSeconds(in); err != nil || got != want {
			t.Errorf("ParseSeconds(%q) = %s, %v", in, got, err)
		}
	}
	if _, err := ParseLogLevel("loud"); err == nil {
		t.Error("ParseLogLevel accepted nonsense")
	}
}

func FuzzParseBytes(f *testing.F) {
	for _, s := range []string{"0", "1k", "1m", "1g", "12Mi", "-3", "99999999999999999999", "k"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := ParseBytes(s)
		if err == nil && n < 0 {
			t.Fatalf("ParseBytes(%q) = %d: negative", s, n)
		}
	})
}

// FuzzPassengerfile feeds arbitrary JSON to the loader: never a panic, and
// every error names the file.
func FuzzPassengerfile(f *testing.F) {
	for _, s := range []string{`{}`, `{"port": 80}`, `{"max_pool_size": "x"}`, `{"envvars": {"A": "1"}}`,
		`{"envvars": [1]}`, `[]`, `{"port": 1e99}`, `{"min_instances": -1}`, `null`, `{"spawn_method": {"x": 1}}`} {
		f.Add(s)
	}
	dir := f.TempDir()
	os.WriteFile(filepath.Join(dir, "passenger_wsgi.py"), nil, 0o644)
	f.Fuzz(func(t *testing.T, js string) {
		pf := filepath.Join(dir, "Passengerfile.json")
		if err := os.WriteFile(pf, []byte(js), 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := Load([]string{dir}, nil)
		if err != nil && !strings.Contains(err.Error(), "Passengerfile.json") && !strings.Contains(err.Error(), "--") {
			t.Fatalf("error names neither the file nor an option: %v", err)
		}
	})
}

func TestMeteor(t *testing.T) {
	dir := t.TempDir()
	os.Mkdir(filepath.Join(dir, ".meteor"), 0o755)
	write(t, filepath.Join(dir, "package.json"), `{"name": "meteor-app"}`) // raw Meteor apps have one
	// Without the meteor command: a clear error saying how to bundle.
	_, err := Load([]string{dir}, []string{"PATH=/nonexistent"})
	if _, lookErr := exec.LookPath("meteor"); lookErr == nil {
		t.Skip("meteor is installed here")
	}
	if err == nil || !strings.Contains(err.Error(), "raw Meteor app") || !strings.Contains(err.Error(), "meteor build") {
		t.Fatalf("error = %v", err)
	}
	// With a meteor on PATH: a generic app started by meteor run.
	bin := t.TempDir()
	write(t, filepath.Join(bin, "meteor"), "#!/bin/sh\n")
	os.Chmod(filepath.Join(bin, "meteor"), 0o755)
	t.Setenv("PATH", bin+":"+os.Getenv("PATH"))
	c := load(t, nil, dir)
	if a := c.Apps[0]; a.AppType != AppTypeGeneric || a.AppStartCommand != "meteor run --production --port $PORT" {
		t.Fatalf("meteor app: %q %q", a.AppType, a.AppStartCommand)
	}
}

// Effective names every option by the key users write in files, with
// durations in seconds and sizes as written: what config check and status
// print.
func TestEffective(t *testing.T) {
	dir := wsgiApp(t)
	c := load(t, nil, dir, "--shutdown-timeout", "1m", "--client-max-body-size", "1048577", "--max-pool-size", "3", "--envvar", "A=b")
	m := c.Effective()
	for key, want := range map[string]any{
		"shutdown_timeout": 60.0, "client_max_body_size": "1048577", "max_header_size": "64k",
		"port": 3000, "log_level": "info", "ssl": false, "socket_mode": "0660",
	} {
		if m[key] != want {
			t.Errorf("%s = %#v, want %#v", key, m[key], want)
		}
	}
	app := m["app"].([]any)[0].(map[string]any)
	for key, want := range map[string]any{"max_pool_size": 3, "start_timeout": 90.0, "app_type": "wsgi", "name": filepath.Base(dir), "user_switching": true} {
		if app[key] != want {
			t.Errorf("app %s = %#v, want %#v", key, app[key], want)
		}
	}
	if _, ok := app["app_group_name"]; ok {
		t.Error("app_group_name shown beside name, the same setting")
	}
	// Every key is one a file takes.
	for k := range m {
		if k != "app" && fileOption(k) == nil {
			t.Errorf("server key %q is no option's", k)
		}
	}
	for k := range app {
		if fileOption(k) == nil {
			t.Errorf("app key %q is no option's", k)
		}
	}
	if b := string(c.EffectiveJSON()); strings.Contains(b, "ShutdownTimeout") || strings.Contains(b, "60000000000") {
		t.Errorf("Go names or nanoseconds:\n%s", b)
	}
}
