package config

import (
	"strings"
	"testing"
	"time"
)

// The first-request grace defaults to 2 s, counted inside the shutdown
// timeout (so it adds nothing to the drain arithmetic), and can be set or
// turned off; a negative one is an error that names it.
func TestFirstRequestGrace(t *testing.T) {
	cfg, err := Load([]string{wsgiApp(t)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.FirstRequestGrace != 2*time.Second || cfg.FirstRequestGrace >= cfg.ShutdownTimeout {
		t.Errorf("default grace %s (shutdown timeout %s)", cfg.FirstRequestGrace, cfg.ShutdownTimeout)
	}
	cfg, err = Load([]string{wsgiApp(t), "--shutdown-first-request-grace", "0.5"}, nil)
	if err != nil || cfg.FirstRequestGrace != 500*time.Millisecond {
		t.Errorf("--shutdown-first-request-grace 0.5: %s, %v", cfg.FirstRequestGrace, err)
	}
	cfg, err = Load([]string{wsgiApp(t)}, []string{"FERRY_SHUTDOWN_FIRST_REQUEST_GRACE=0"})
	if err != nil || cfg.FirstRequestGrace != 0 {
		t.Errorf("FERRY_SHUTDOWN_FIRST_REQUEST_GRACE=0: %s, %v", cfg.FirstRequestGrace, err)
	}
	_, err = Load([]string{wsgiApp(t), "--shutdown-first-request-grace", "-1"}, nil)
	if err == nil || !strings.Contains(err.Error(), "--shutdown-first-request-grace") {
		t.Errorf("a negative grace: %v", err)
	}
}
