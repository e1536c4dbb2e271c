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

// TestCoreFileDescriptorUlimit: a core limited to a handful of files
// cannot start or clean up after itself; such a limit is refused.
func TestCoreFileDescriptorUlimit(t *testing.T) {
	for _, tc := range []struct {
		v  string
		ok bool
	}{{"0", true}, {"64", true}, {"4096", true}, {"1", false}, {"63", false}, {"-1", false}} {
		_, err := Load([]string{wsgiApp(t), "--core-file-descriptor-ulimit", tc.v}, nil)
		if (err == nil) != tc.ok || err != nil && !strings.Contains(err.Error(), "--core-file-descriptor-ulimit") {
			t.Errorf("%s: %v", tc.v, err)
		}
	}
}
