package config

import (
	"flag"
	"strings"
	"testing"
)

// candidates are tried, in order, as a sample value for an option: the first
// its value type accepts and that changes the value is used.
var candidates = []string{"7", "true", "false", "debug", "sample-value", "K=V", "127.0.0.1/32", "0600",
	"1.3", "text", "attached_process=true", "hook_attached_process=true", "/tmp"}

// sample finds a value that changes o from its default (or records it as
// ignored); "" when none of the candidates does.
func sample(o *option) string {
	for _, c := range candidates {
		s, a := DefaultServer(), DefaultApp()
		v := bound(o, &s, &a)
		before := v.String()
		if err := v.Set(c); err != nil {
			continue
		}
		if v.String() != before || len(s.Ignored) > 0 {
			return c
		}
	}
	return ""
}

func bound(o *option, s *Server, a *App) flag.Value {
	if o.Scope == serverScope {
		return o.bindServer(s)
	}
	return o.bindApp(a)
}

// effect applies settings to a fresh configuration and says what the
// option then is: its value, or that it was recorded as ignored.
func effect(t *testing.T, o *option, settings []setting) string {
	t.Helper()
	c := &Config{Server: DefaultServer(), Apps: []App{DefaultApp()}}
	n := 0
	for _, st := range settings {
		if st.o != o {
			continue
		}
		n++
		if err := st.apply(c, []int{0}); err != nil {
			t.Fatalf("%s: %v", st.source, err)
		}
	}
	if n == 0 {
		t.Fatalf("no setting for %s from this source", o.Name)
	}
	if why, ok := c.Ignored[o.Name]; ok {
		return "ignored: " + why
	}
	if why, ok := c.Ignored[o.key()]; ok {
		return "ignored: " + why
	}
	return bound(o, &c.Server, &c.Apps[0]).String()
}

// TestEveryOptionFromEverySource walks the option table: each option that
// has a flag and a file key is set by flag, by Passengerfile.json and by
// PASSENGER_ (and FERRY_) environment variable, and must have the same
// effect each way, different from its default.
func TestEveryOptionFromEverySource(t *testing.T) {
	tested := 0
	for _, o := range options {
		if o.Name == "" || o.key() == "" {
			continue // file-only (root, name, …) or flag-only (--disable-X)
		}
		t.Run(o.Name, func(t *testing.T) {
			v := sample(o)
			if v == "" {
				t.Skipf("no generic sample value for --%s; covered by its own tests", o.Name)
			}
			s, a := DefaultServer(), DefaultApp()
			def := bound(o, &s, &a).String()

			flags, _, _, err := StartFlags([]string{"--" + o.Name + "=" + v})
			if err != nil {
				t.Fatalf("--%s=%s: %v", o.Name, v, err)
			}
			byFlag := effect(t, o, flags)

			file, err := fileSettings("Passengerfile.json", map[string]any{o.key(): v}, nil, func(w string) {
				t.Errorf("Passengerfile key %q unknown: %s", o.key(), w)
			})
			if err != nil {
				t.Fatal(err)
			}
			byFile := effect(t, o, file)

			for _, prefix := range []string{"PASSENGER_", "FERRY_"} {
				name := prefix + strings.ToUpper(o.key())
				byEnv := effect(t, o, envSettings([]string{name + "=" + v}))
				if byEnv != byFlag {
					t.Errorf("%s=%s gives %q, --%s gives %q", name, v, byEnv, o.Name, byFlag)
				}
			}
			if byFile != byFlag {
				t.Errorf("Passengerfile %q: %q gives %q, --%s gives %q", o.key(), v, byFile, o.Name, byFlag)
			}
			if byFlag == def && !strings.HasPrefix(byFlag, "ignored") {
				t.Errorf("--%s=%s has no effect (still %q)", o.Name, v, def)
			}
		})
		tested++
	}
	if tested < 60 {
		t.Fatalf("only %d options walked; the table shrank?", tested)
	}

}
