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

// Write writes the loader called name (e.g. "wsgi.py") into dir with mode
// 0644 and returns its path.
func Write(dir, name string) (string, error) {
	var script []byte
	switch name {
	case "wsgi.py":
		script = wsgiPy
	default:
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
