package main

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// update rewrites the golden files under testdata/ with what the code
// produces now: go test ./cmd/ferry -run Golden -update, then review the diff.
var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// golden compares got with testdata/name, or writes it there with -update.
func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if got != string(want) {
		t.Errorf("%s differs (-want +got; run with -update if the change is intended):\n%s", path, lineDiff(string(want), got))
	}
}

// lineDiff shows the lines of want and got that differ, by position: enough
// for output whose lines change in place. (No diff library: the module
// keeps to the standard library for this.)
func lineDiff(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	var b strings.Builder
	for i := range max(len(w), len(g)) {
		var wl, gl string
		if i < len(w) {
			wl = w[i]
		}
		if i < len(g) {
			gl = g[i]
		}
		if i >= len(w) || i >= len(g) || wl != gl {
			if i < len(w) {
				b.WriteString("-" + wl + "\n")
			}
			if i < len(g) {
				b.WriteString("+" + gl + "\n")
			}
		}
	}
	return b.String()
}
