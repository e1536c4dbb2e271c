package config

import (
	"strings"
	"testing"
)

func TestMaxConnectFailures(t *testing.T) {
	dir := wsgiApp(t)
	if a := load(t, nil, dir).Apps[0]; a.MaxConnectFailures != DefaultMaxConnectFailures {
		t.Fatalf("default %d, want %d", a.MaxConnectFailures, DefaultMaxConnectFailures)
	}
	if a := load(t, nil, dir, "--max-connect-failures", "7").Apps[0]; a.MaxConnectFailures != 7 {
		t.Fatalf("flag: %d", a.MaxConnectFailures)
	}
	if a := load(t, []string{"FERRY_MAX_CONNECT_FAILURES=2"}, dir).Apps[0]; a.MaxConnectFailures != 2 {
		t.Fatalf("environment: %d", a.MaxConnectFailures)
	}
	if _, err := Load([]string{dir, "--max-connect-failures", "-1"}, nil); err == nil || !strings.Contains(err.Error(), "max-connect-failures") {
		t.Fatalf("negative: %v", err)
	}
}
