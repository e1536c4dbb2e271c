// Package instance owns the instance directory of one running core: a private
// (0700) directory holding the pid file, a description of the instance, the
// admin socket, per-spawn work directories and spill files for buffered
// bodies. It is removed on clean exit. It does not know what runs inside.
package instance

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"
)

// Dir is one instance directory.
type Dir struct {
	path string
}

// Properties describe a running instance to clients such as `ferry status`.
type Properties struct {
	PID       int       `json:"pid"`
	AppRoot   string    `json:"app_root"`
	AppRoots  []string  `json:"app_roots"`
	Listen    string    `json:"listen"`
	StartedAt time.Time `json:"started_at"`
	Version   string    `json:"version"`
}

// Create makes a new instance directory under registry (created 0755 if
// missing) and writes the pid file and properties into it.
func Create(registry string, props Properties) (*Dir, error) {
	if err := os.MkdirAll(registry, 0o755); err != nil {
		return nil, fmt.Errorf("create instance registry %s: %w", registry, err)
	}
	path, err := os.MkdirTemp(registry, "ferry-")
	if err != nil {
		return nil, fmt.Errorf("create instance directory in %s: %w", registry, err)
	}
	d := &Dir{path: path}
	// MkdirTemp already uses 0700; say so explicitly against a lax umask.
	if err := os.Chmod(path, 0o700); err != nil {
		d.Remove()
		return nil, fmt.Errorf("chmod instance directory: %w", err)
	}
	for _, sub := range []string{"work", "buffers"} {
		if err := os.Mkdir(filepath.Join(path, sub), 0o700); err != nil {
			d.Remove()
			return nil, fmt.Errorf("create instance directory: %w", err)
		}
	}
	if err := os.WriteFile(filepath.Join(path, "core.pid"), []byte(strconv.Itoa(props.PID)+"\n"), 0o600); err != nil {
		d.Remove()
		return nil, fmt.Errorf("write instance pid file: %w", err)
	}
	b, _ := json.MarshalIndent(props, "", "  ")
	if err := os.WriteFile(filepath.Join(path, "properties.json"), append(b, '\n'), 0o600); err != nil {
		d.Remove()
		return nil, fmt.Errorf("write instance properties: %w", err)
	}
	return d, nil
}

// Path is the instance directory itself.
func (d *Dir) Path() string { return d.path }

// WorkDir holds one subdirectory per spawned process.
func (d *Dir) WorkDir() string { return filepath.Join(d.path, "work") }

// BufferDir holds temp files of request and response bodies that spilled
// out of memory.
func (d *Dir) BufferDir() string { return filepath.Join(d.path, "buffers") }

// AdminSocket is the path of the admin API's Unix socket.
func (d *Dir) AdminSocket() string { return filepath.Join(d.path, "admin.sock") }

// Remove deletes the instance directory and everything in it.
func (d *Dir) Remove() error {
	return os.RemoveAll(d.path)
}
