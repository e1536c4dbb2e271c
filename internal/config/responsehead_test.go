package config

import (
	"strings"
	"testing"
)

func TestAppWireAndResponseHead(t *testing.T) {
	cfg, err := Load([]string{wsgiApp(t)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if a := cfg.Apps[0]; a.Wire != WireFramed || a.MaxResponseHeadSize != DefaultMaxResponseHeadSize {
		t.Errorf("defaults: wire %q, response head %d", a.Wire, a.MaxResponseHeadSize)
	}
	cfg, err = Load([]string{wsgiApp(t), "--app-wire", "http1", "--max-response-head-size", "64k"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if a := cfg.Apps[0]; a.Wire != WireHTTP1 || a.MaxResponseHeadSize != 64<<10 {
		t.Errorf("set: wire %q, response head %d", a.Wire, a.MaxResponseHeadSize)
	}
	for _, bad := range [][]string{{"--app-wire", "binary"}, {"--max-response-head-size", "100"}, {"--max-response-head-size", "2g"}} {
		_, err := Load(append([]string{wsgiApp(t)}, bad...), nil)
		if err == nil || !strings.Contains(err.Error(), bad[0]) {
			t.Errorf("%v: error %v does not name %s", bad, err, bad[0])
		}
	}
}
