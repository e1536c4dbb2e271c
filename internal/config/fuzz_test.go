package config

import (
	"strings"
	"testing"
)

// FuzzLoadArgs: whatever the command line, loading it returns a
// configuration or an error, never panics; an error names what is wrong
// and is never empty.
func FuzzLoadArgs(f *testing.F) {
	for _, seed := range []string{
		"--port\x003000", "--prot\x003000", "-p\x00abc", "--max-pool-size", "--daemonize=maybe", "---x", "-",
		"--client-max-body-size\x0099999999999g", "--start-timeout\x001e400", "--trusted-proxies\x0010.0.0.0/33",
		"--envvar\x00=x", "--hook\x00x", "--ctl\x00hook_app_restarted=true", "--socket-mode\x00999",
		"--startup-file\x00/etc/passwd", "--log-level\x00loud", "--user-switching\x00maybe", "--gzip-types\x00*/*",
		"--ssl-port\x00-1", "--min-instances\x005\x00--max-pool-size\x002", "stray\x00args", "--\x00--port",
	} {
		f.Add(seed)
	}
	dir := wsgiApp(f)
	f.Fuzz(func(t *testing.T, s string) {
		args := append([]string{dir}, strings.Split(s, "\x00")...)
		c, err := Load(args, nil)
		if err != nil {
			if strings.TrimSpace(err.Error()) == "" {
				t.Fatalf("%q: an empty error", args)
			}
			return
		}
		c.EffectiveJSON() // must not panic either
	})
}
