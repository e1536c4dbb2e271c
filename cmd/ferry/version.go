package main

import (
	"runtime"
	"runtime/debug"
)

// commit is the source revision, set at build time with
// -ldflags "-X main.commit=…" (packaging/build-deb.sh does); otherwise the
// one Go stamped into the binary from the checkout, if any.
var commit = ""

// versionLine is what `ferry version` prints: version, commit and the Go
// that built it, e.g. "ferry 0.2.0 (commit 88aaa72, go1.26.8)".
func versionLine() string {
	c := commit
	dirty := false
	if info, ok := debug.ReadBuildInfo(); ok && c == "" {
		for _, s := range info.Settings {
			switch s.Key {
			case "vcs.revision":
				c = s.Value
			case "vcs.modified":
				dirty = s.Value == "true"
			}
		}
	}
	if len(c) > 12 {
		c = c[:12]
	}
	if c == "" {
		c = "unknown"
	} else if dirty {
		c += "+changes"
	}
	return "ferry " + version + " (commit " + c + ", " + runtime.Version() + ")"
}
