package core

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ferry-server/ferry/internal/config"
	"github.com/ferry-server/ferry/internal/server"
)

// TestReload: unchanged apps keep their processes (the same app), changed
// and new ones are built anew, removed ones leave; a reload that cannot
// build an app changes nothing.
func TestReload(t *testing.T) {
	a, b, c := genericApp(t, "a"), genericApp(t, "b"), genericApp(t, "c")
	f := newFixture(t, a, b)
	var next *config.Config
	st := &state{cfg: f.cfg, inst: f.inst, out: f.out, reg: f.reg, hooks: f.hk,
		handler:  server.NewHandler(nil, server.Options{}, f.out.Core),
		reloadFn: func() (*config.Config, error) { return next, nil }}
	st.apps = []*app{f.build(t, a), f.build(t, b)}
	t.Cleanup(st.closeAll)
	oldA, oldB := st.apps[0], st.apps[1]

	b2 := b
	b2.MaxPoolSize = 5
	next = &config.Config{Server: f.cfg.Server, Apps: []config.App{c, b2, a}}
	if err := st.reload(); err != nil {
		t.Fatal(err)
	}
	got := st.current()
	if len(got) != 3 || got[0].cfg.Name != "c" || got[1].cfg.Name != "b" || got[2] != oldA {
		t.Fatalf("after the reload: %v", names(got))
	}
	if got[1] == oldB || got[1].cfg.MaxPoolSize != 5 {
		t.Fatal("the changed app was not replaced")
	}

	bad := genericApp(t, "d")
	bad.CustomErrorPage = filepath.Join(t.TempDir(), "missing.html")
	next = &config.Config{Server: f.cfg.Server, Apps: []config.App{a, bad}}
	if err := st.reload(); err == nil || !strings.Contains(err.Error(), "app d:") {
		t.Fatalf("got %v, want app d's error", err)
	}
	if after := st.current(); len(after) != 3 || after[0] != got[0] || after[1] != got[1] || after[2] != got[2] {
		t.Fatalf("a failed reload changed the apps: %v", names(after))
	}

	st.reloadFn = func() (*config.Config, error) { return nil, errors.New("bad file") }
	if err := st.reload(); err == nil || err.Error() != "bad file" {
		t.Fatalf("got %v", err)
	}
	st.reloadFn = nil
	if err := st.reload(); err == nil {
		t.Fatal("an instance without a reload function reloaded")
	}
}

func names(apps []*app) []string {
	var out []string
	for _, a := range apps {
		out = append(out, a.cfg.Name)
	}
	return out
}
