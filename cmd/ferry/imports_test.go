package main

import (
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestImportRules holds the layering docs/architecture.md ("Import rules")
// describes: no production file of a package imports the packages it must
// reach only through an interface or through admin.
func TestImportRules(t *testing.T) {
	const mod = "github.com/ferry-server/ferry/"
	for _, r := range []struct {
		dir       string // from this package's directory
		forbidden []string
	}{
		{".", []string{"internal/server", "internal/pool", "internal/proxy", "internal/spawn"}},
		{"../../internal/server", []string{"internal/spawn", "internal/core"}},
		{"../../internal/admin", []string{"internal/server", "internal/core"}},
	} {
		files, err := filepath.Glob(filepath.Join(r.dir, "*.go"))
		if err != nil || len(files) == 0 {
			t.Fatalf("%s: no Go files (%v)", r.dir, err)
		}
		for _, f := range files {
			if strings.HasSuffix(f, "_test.go") {
				continue
			}
			src, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			ast, err := parser.ParseFile(token.NewFileSet(), f, src, parser.ImportsOnly)
			if err != nil {
				t.Fatal(err)
			}
			for _, imp := range ast.Imports {
				path, _ := strconv.Unquote(imp.Path.Value)
				for _, bad := range r.forbidden {
					if path == mod+bad {
						t.Errorf("%s imports %s", f, bad)
					}
				}
			}
		}
	}
}
