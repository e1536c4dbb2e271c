package main

import (
	"strings"
	"testing"
)

func TestVersionLine(t *testing.T) {
	old := commit
	defer func() { commit = old }()
	commit = "0123456789abcdef0123"
	if got := versionLine(); !strings.HasPrefix(got, "ferry "+version+" (commit 0123456789ab, go1.") {
		t.Fatalf("versionLine() = %q", got)
	}
}
