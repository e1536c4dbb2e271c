package config

import (
	"strings"
	"testing"
	"time"
)

// With the defaults, a core told to stop is gone before the 30 s after
// which Kubernetes (terminationGracePeriodSeconds) and most supervisors
// kill it, even with a request that never ends: drain delay, then requests
// in flight, then the apps' SIGTERM → SIGKILL, each bounded.
func TestDrainDefaultsFitThirtySeconds(t *testing.T) {
	cfg, err := Load([]string{wsgiApp(t)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	total := cfg.DrainDelay + cfg.ShutdownTimeout + cfg.AppStopTimeout
	if cfg.DrainDelay != 5*time.Second || cfg.ShutdownTimeout != 20*time.Second || cfg.AppStopTimeout != 3*time.Second {
		t.Errorf("defaults %s + %s + %s changed: update docs/deploying.md and deploy/", cfg.DrainDelay, cfg.ShutdownTimeout, cfg.AppStopTimeout)
	}
	if total >= 30*time.Second {
		t.Errorf("the default shutdown takes up to %s, not under 30s", total)
	}
}

func TestDrainSources(t *testing.T) {
	cfg, err := Load([]string{wsgiApp(t), "--app-stop-timeout", "7"}, []string{"FERRY_DRAIN_DELAY=0"})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.DrainDelay != 0 || cfg.AppStopTimeout != 7*time.Second {
		t.Errorf("drain delay %s, app stop timeout %s", cfg.DrainDelay, cfg.AppStopTimeout)
	}
	_, err = Load([]string{wsgiApp(t), "--drain-delay", "-1", "--app-stop-timeout", "0"}, nil)
	for _, key := range []string{"--drain-delay", "--app-stop-timeout"} {
		if err == nil || !strings.Contains(err.Error(), key) {
			t.Errorf("error does not name %s: %v", key, err)
		}
	}
}
