package core

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ferry-server/ferry/internal/config"
	"github.com/ferry-server/ferry/internal/hooks"
	"github.com/ferry-server/ferry/internal/identity"
	"github.com/ferry-server/ferry/internal/instance"
	"github.com/ferry-server/ferry/internal/logs"
	"github.com/ferry-server/ferry/internal/metrics"
	"github.com/ferry-server/ferry/internal/pool"
	"github.com/ferry-server/ferry/internal/spawn"
)

// genericApp is an app whose processes would be `sleep`: nothing here
// starts one (no --min-instances).
func genericApp(t *testing.T, name string) config.App {
	return config.App{Name: name, Root: t.TempDir(), AppType: config.AppTypeGeneric,
		AppStartCommand: "sleep 600", SpawnMethod: "direct", MaxPoolSize: 2, StartTimeout: time.Minute,
		Environment: "production"}
}

// fixture is what buildApp needs: a config, an instance directory, logs,
// metrics and hooks.
type fixture struct {
	cfg  *config.Config
	inst *instance.Dir
	out  *logs.Outputs
	reg  *metrics.Metrics
	hk   *hooks.Runner
}

func newFixture(t *testing.T, apps ...config.App) *fixture {
	cfg := &config.Config{Apps: apps}
	cfg.ShutdownTimeout = 5 * time.Second
	inst, err := instance.Create(t.TempDir(), instance.Properties{PID: os.Getpid(), AppRoot: "/", StartedAt: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { inst.Remove() })
	out, err := logs.New(logs.Options{File: filepath.Join(t.TempDir(), "core.log")})
	if err != nil {
		t.Fatal(err)
	}
	hk, err := hooks.New(nil, 0, 0, out.Core)
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{cfg: cfg, inst: inst, out: out, reg: metrics.New(), hk: hk}
}

func (f *fixture) build(t *testing.T, ac config.App) *app {
	a, err := buildApp(f.cfg, ac, f.inst, f.out, f.reg, f.hk)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(a.close)
	return a
}

func TestPoolConfig(t *testing.T) {
	cfg := &config.Config{}
	cfg.ShutdownTimeout = 7 * time.Second
	ac := config.App{Name: "a", MinInstances: 1, MaxPoolSize: 4, MaxRequestQueueSize: 50,
		MaxRequestQueueTime: time.Second, PoolIdleTime: time.Minute, MaxRequests: 1000, MaxRequestsJitter: 10,
		MemoryLimit: 300}
	ac.MaxConnectFailures = 3
	am := metrics.New().App("a")
	pc := poolConfig(cfg, ac, am, nil)
	if pc.Name != "a" || pc.Min != 1 || pc.Max != 4 || pc.MaxQueue != 50 || pc.MaxQueueTime != time.Second ||
		pc.IdleTime != time.Minute || pc.StopTimeout != 7*time.Second || pc.MaxRequests != 1000 ||
		pc.MaxRequestsJitter != 10 || pc.MaxConnectFailures != 3 {
		t.Fatalf("settings not carried over: %+v", pc)
	}
	if pc.MemoryLimit != 300<<20 {
		t.Fatalf("--memory-limit is in MiB: got %d bytes", pc.MemoryLimit)
	}
	if pc.Memory == nil || pc.OutOfBand == nil || pc.Events == nil {
		t.Fatal("memory reader, out-of-band request or events missing")
	}
	if pc.ConcurrencyCap != 0 || pc.ConcurrencyTarget != 0 {
		t.Fatalf("one request per process unless configured: cap %d, target %d", pc.ConcurrencyCap, pc.ConcurrencyTarget)
	}
	ac.ForceMaxConcurrentRequestsPerProcess = 8
	if pc := poolConfig(cfg, ac, am, nil); pc.ConcurrencyCap != 8 {
		t.Fatalf("cap %d, want 8", pc.ConcurrencyCap)
	}
}

func TestSpawnConfig(t *testing.T) {
	cfg := &config.Config{}
	ac := config.App{Name: "a", Root: "/srv/a", AppType: config.AppTypeRack, StartupFile: "config.ru",
		StartTimeout: time.Minute, MinInstances: 2}
	ac.AppFileDescriptorUlimit, ac.AppCoreDumps = 1024, true
	user := identity.Choice{Why: "owner of config.ru"}
	sc := spawnConfig(cfg, ac, []string{"ruby", "rack.rb"}, []string{"A=1"}, "/work", user)
	if sc.App != "a" || sc.Root != "/srv/a" || !slices.Equal(sc.Command, []string{"ruby", "rack.rb"}) ||
		!slices.Equal(sc.Env, []string{"A=1"}) || sc.WorkDir != "/work" || sc.StartTimeout != time.Minute ||
		sc.Generic || sc.StartupFile != "config.ru" || sc.FileDescriptorLimit != 1024 || !sc.CoreDumps ||
		sc.Reserve != 2 || sc.UserReason != "owner of config.ru" || sc.Limit != nil {
		t.Fatalf("got %+v", sc)
	}
	if sc.HTTPOnly {
		t.Fatal("the framed wire is not offered by default")
	}
	ac.Wire = config.WireHTTP1
	if sc := spawnConfig(cfg, ac, nil, nil, "", user); !sc.HTTPOnly {
		t.Fatal("--app-wire http1 still offers the framed wire")
	}
	ac.AppType = config.AppTypeGeneric
	if sc := spawnConfig(cfg, ac, nil, nil, "", user); !sc.Generic || sc.StartupFile != "" {
		t.Fatalf("a generic app has no startup file to check: %+v", sc)
	}
}

func TestTransport(t *testing.T) {
	for _, c := range []struct {
		typ       string
		forwarded bool
		strip     string
	}{
		{config.AppTypeRack, false, ""},
		{config.AppTypeWSGI, false, ""},
		{config.AppTypeASGI, false, ""},
		{config.AppTypeNode, false, "/blog"},
		{config.AppTypeGeneric, true, "/blog"},
	} {
		ac := config.App{AppType: c.typ, BaseURI: "/blog"}
		ac.MaxWebsocketTunnels = 9
		ac.MaxResponseHeadSize = 4096
		tr := transport(ac)
		if tr.Forwarded != c.forwarded || tr.StripPrefix != c.strip || tr.MaxTunnels != 9 || tr.MaxResponseHead != 4096 {
			t.Errorf("%s: got %+v", c.typ, tr)
		}
	}
}

func TestPublicDir(t *testing.T) {
	if got := publicDir(config.App{Root: "/srv/a"}); got != "/srv/a/public" {
		t.Errorf("got %s", got)
	}
	ac := config.App{Root: "/srv/a"}
	ac.StaticFilesDir = "/var/www"
	if got := publicDir(ac); got != "/var/www" {
		t.Errorf("got %s", got)
	}
}

// TestBuildApp: the front's view of an app follows its settings.
func TestBuildApp(t *testing.T) {
	ac := genericApp(t, "a")
	f := newFixture(t, ac)
	if a := f.build(t, ac); a.front.Development || a.front.Cache != nil || a.front.Sticky != nil ||
		a.admin.Preloader != nil || a.front.Group != a.group {
		t.Fatalf("production defaults: %+v", a.front)
	}
	yes := true
	page := filepath.Join(t.TempDir(), "error.html")
	os.WriteFile(page, []byte("<h1>sorry</h1>"), 0o644)
	ac.Environment, ac.FriendlyErrorPages = "staging", &yes
	ac.TurboCaching, ac.StickySessions, ac.StickySessionsCookieName = true, true, "route"
	ac.CustomErrorPage = page
	a := f.build(t, ac)
	if !a.front.Development || a.front.Cache == nil || a.admin.Cache != a.front.Cache ||
		a.front.Sticky == nil || a.front.Sticky.CookieName != "route" || string(a.front.ErrorPage) != "<h1>sorry</h1>" {
		t.Fatalf("settings not applied: %+v", a.front)
	}
}

// TestBuildAppFailureCloses: an app that cannot be built leaves nothing
// behind: its spawner's reserve in --max-processes-total is given back, so
// another app may still start a process when the total is 1.
func TestBuildAppFailureCloses(t *testing.T) {
	if _, err := exec.LookPath("python3"); err != nil {
		t.Skip("needs python3 for an app that listens")
	}
	ac := genericApp(t, "a")
	ac.MinInstances = 1 // reserves the one process the total allows
	ac.CustomErrorPage = filepath.Join(t.TempDir(), "missing.html")
	f := newFixture(t, ac)
	f.cfg.MaxProcessesTotal = 1
	_, err := buildApp(f.cfg, ac, f.inst, f.out, f.reg, f.hk)
	if err == nil || !strings.Contains(err.Error(), "--custom-error-page") {
		t.Fatalf("got %v, want the error page's error", err)
	}
	b := spawn.New(spawn.Config{App: "b", Root: t.TempDir(), Generic: true, WorkDir: f.inst.WorkDir(),
		Command: []string{"/bin/sh", "-c", "exec python3 -m http.server --bind 127.0.0.1 $PORT"},
		Env:     os.Environ(), StartTimeout: 5 * time.Second, Limit: spawn.SharedLimit(1)}, f.out.Core)
	defer b.Close()
	p, err := b.Spawn(t.Context())
	if err != nil {
		t.Fatalf("the failed app still holds its reserve: %v", err)
	}
	p.Kill()
}

// TestHookEvents: every pool event an operator can hook is mapped, and
// only those.
func TestHookEvents(t *testing.T) {
	want := map[pool.EventKind]bool{pool.EventProcessAttached: true, pool.EventProcessDetached: true,
		pool.EventSpawnFailed: true, pool.EventQueueFull: true, pool.EventRestarted: true,
		pool.EventRollingRestartFinished: true}
	for kind, ev := range hookEvents {
		if !want[kind] || !slices.Contains(hooks.Known, ev) {
			t.Errorf("%v → %q", kind, ev)
		}
	}
	if len(hookEvents) != len(want) {
		t.Errorf("%d events mapped, want %d", len(hookEvents), len(want))
	}
}
