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

// ferryCommonPy is what the two Python loaders share; they import it from
// their own directory, so Write puts it beside them.
//
//go:embed _ferry_common.py
var ferryCommonPy []byte

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

// companions are the modules a loader imports from its own directory.
var companions = map[string][]string{
	"wsgi.py": {"_ferry_common.py"},
	"asgi.py": {"_ferry_common.py"},
}

var modules = map[string][]byte{
	"_ferry_common.py": ferryCommonPy,
}

// Write writes the loader called name ("wsgi.py", "asgi.py", "rack.rb",
// "node.cjs"), and the modules it imports, into dir with mode 0644 and
// returns the loader's path.
func Write(dir, name string) (string, error) {
	script, ok := scripts[name]
	if !ok {
		return "", fmt.Errorf("write loader %q: unknown loader", name)
	}
	for _, m := range companions[name] {
		if _, err := writeFile(dir, m, modules[m]); err != nil {
			return "", fmt.Errorf("write loader %q: %w", name, err)
		}
	}
	path, err := writeFile(dir, name, script)
	if err != nil {
		return "", fmt.Errorf("write loader %q: %w", name, err)
	}
	return path, nil
}

func writeFile(dir, name string, data []byte) (string, error) {
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, data, 0o644); err != nil {
		return "", err
	}
	if err := os.Chmod(path, 0o644); err != nil { // whatever the umask
		return "", err
	}
	return path, nil
}
