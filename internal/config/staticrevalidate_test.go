package config

import (
	"strings"
	"testing"
	"time"
)

// TestStaticRevalidate: --static-revalidate defaults to static's own
// default (stored as 0), takes seconds or a duration, and every spelling
// of "stat each time" (off, 0, negative) is one value; junk is an error
// that names the option.
func TestStaticRevalidate(t *testing.T) {
	cfg, err := Load([]string{wsgiApp(t)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := cfg.Apps[0].StaticRevalidate; got != 0 {
		t.Errorf("default %s, want 0 (static's default)", got)
	}
	for _, tc := range []struct {
		arg  string
		want time.Duration
		show string
	}{
		{"5", 5 * time.Second, "5"},
		{"0.25", 250 * time.Millisecond, "0.25"},
		{"2m", 2 * time.Minute, "120"},
		{"off", StatEveryRequest, "off"},
		{"OFF", StatEveryRequest, "off"},
		{"0", StatEveryRequest, "off"},
		{"-3", StatEveryRequest, "off"},
	} {
		cfg, err := Load([]string{wsgiApp(t), "--static-revalidate", tc.arg}, nil)
		if err != nil {
			t.Errorf("--static-revalidate %s: %v", tc.arg, err)
			continue
		}
		got := cfg.Apps[0].StaticRevalidate
		if got != tc.want || (*revalidateValue)(&got).String() != tc.show {
			t.Errorf("--static-revalidate %s: %s (%q), want %s (%q)", tc.arg, got, (*revalidateValue)(&got).String(), tc.want, tc.show)
		}
	}
	cfg, err = Load([]string{wsgiApp(t)}, []string{"FERRY_STATIC_REVALIDATE=off"})
	if err != nil || cfg.Apps[0].StaticRevalidate != StatEveryRequest {
		t.Errorf("FERRY_STATIC_REVALIDATE=off: %s, %v", cfg.Apps[0].StaticRevalidate, err)
	}
	_, err = Load([]string{wsgiApp(t), "--static-revalidate", "often"}, nil)
	if err == nil || !strings.Contains(err.Error(), "--static-revalidate") {
		t.Errorf("--static-revalidate often: %v", err)
	}
}
