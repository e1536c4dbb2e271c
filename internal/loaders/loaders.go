// Package loaders owns the embedded loader scripts and nothing else: the
// programs an app process runs to load an app and speak the loader contract
// (docs/architecture.md), and writing them to disk for a spawn.
package loaders

import (
	_ "embed"
	"fmt"
	"os"
	"path/filepath"
)

//go:embed wsgi.py
var wsgiPy []byte

//go:embed asgi.py
var asgiPy []byte

//go:embed rack.rb
var rackRb []byte

//go:embed node.cjs
var nodeCjs []byte

// scripts are the loaders by name.
var scripts = map[string][]byte{
	"wsgi.py":  wsgiPy,
	"asgi.py":  asgiPy,
	"rack.rb":  rackRb,
	"node.cjs": nodeCjs,
}

// Write writes the loader called name ("wsgi.py", "asgi.py", "rack.rb", "node.cjs") into dir with mode
// 0644 and returns its path.
func Write(dir, name string) (string, error) {
	script, ok := scripts[name]
	if !ok {
		return "", fmt.Errorf("write loader %q: unknown loader", name)
	}
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, script, 0o644); err != nil {
		return "", fmt.Errorf("write loader %q: %w", name, err)
	}
	if err := os.Chmod(path, 0o644); err != nil { // whatever the umask
		return "", fmt.Errorf("write loader %q: %w", name, err)
	}
	return path, nil
}
