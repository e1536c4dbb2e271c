package config

import (
	"reflect"
	"testing"
)

func TestDiffApps(t *testing.T) {
	app := func(name string, edit ...func(*App)) App {
		a := App{Name: name, Root: "/srv/" + name, AppType: AppTypeRack, MaxPoolSize: 6,
			Envvars: map[string]string{"A": "1"}}
		for _, e := range edit {
			e(&a)
		}
		return a
	}
	pool := func(n int) func(*App) { return func(a *App) { a.MaxPoolSize = n } }
	envvar := func(a *App) { a.Envvars = map[string]string{"A": "2"} }
	names := func(n ...string) []string { return n }
	for _, c := range []struct {
		name          string
		running, next []App
		want          AppChanges
	}{
		{"same", []App{app("a"), app("b")}, []App{app("a"), app("b")},
			AppChanges{Keep: names("a", "b")}},
		{"reordered only", []App{app("a"), app("b")}, []App{app("b"), app("a")},
			AppChanges{Keep: names("b", "a")}},
		{"added", []App{app("a")}, []App{app("a"), app("b")},
			AppChanges{Keep: names("a"), Start: names("b")}},
		{"removed", []App{app("a"), app("b")}, []App{app("b")},
			AppChanges{Keep: names("b"), Stop: names("a")}},
		{"changed setting restarts", []App{app("a"), app("b")}, []App{app("a", pool(2)), app("b")},
			AppChanges{Keep: names("b"), Start: names("a"), Stop: names("a")}},
		{"changed map value restarts", []App{app("a")}, []App{app("a", envvar)},
			AppChanges{Start: names("a"), Stop: names("a")}},
		{"renamed", []App{app("a")}, []App{app("c", func(a *App) { a.Root = "/srv/a" })},
			AppChanges{Start: names("c"), Stop: names("a")}},
		{"all replaced", []App{app("a"), app("b")}, []App{app("c"), app("a", pool(1))},
			AppChanges{Start: names("c", "a"), Stop: names("a", "b")}},
		{"from nothing", nil, []App{app("a")}, AppChanges{Start: names("a")}},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := DiffApps(c.running, c.next); !reflect.DeepEqual(got, c.want) {
				t.Fatalf("got %+v, want %+v", got, c.want)
			}
		})
	}
}

func TestServerChanged(t *testing.T) {
	a := &Config{Apps: []App{{Name: "a"}}}
	a.Port = 3000
	b := &Config{Apps: []App{{Name: "a", MaxPoolSize: 9}}}
	b.Port = 3000
	if ServerChanged(a, b) {
		t.Fatal("an app's change is not a server-wide one")
	}
	b.Port = 3001
	if !ServerChanged(a, b) {
		t.Fatal("a new port is a server-wide change")
	}
}
