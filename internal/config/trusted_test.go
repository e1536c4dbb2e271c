package config

import (
	"net/netip"
	"slices"
	"strings"
	"testing"
)

func TestTrustedProxiesDefaultAndNone(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		env     []string
		loop    bool // loopback trusted
		unix    bool
		nets    int
		wantErr string
	}{
		{name: "default: the local hop", loop: true, unix: true, nets: 2},
		{name: "none", args: []string{"--trusted-proxies", "none"}, nets: 0},
		{name: "NONE from the environment", env: []string{"FERRY_TRUSTED_PROXIES=NONE"}, nets: 0},
		{name: "explicit list replaces the default", args: []string{"--trusted-proxies", "10.0.0.0/8"}, nets: 1},
		{name: "unix only", args: []string{"--trusted-proxies", "unix"}, unix: true, nets: 0},
		{name: "none with others", args: []string{"--trusted-proxies", "none,unix"}, wantErr: `--trusted-proxies: none trusts no one and cannot be combined with ["unix"]`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Load(append([]string{wsgiApp(t)}, tc.args...), tc.env)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			f := c.Front
			hasLoop := slices.ContainsFunc(f.TrustedNets, func(p netip.Prefix) bool { return p.String() == "127.0.0.0/8" })
			if hasLoop != tc.loop || f.TrustUnix != tc.unix || len(f.TrustedNets) != tc.nets {
				t.Errorf("nets %v unix %v", f.TrustedNets, f.TrustUnix)
			}
		})
	}
}
