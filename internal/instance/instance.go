// Package instance owns the instance directory of one running core: a private
// directory holding the pid file, a description of the instance, the admin
// socket and its tokens, per-spawn work directories and spill files for
// buffered bodies. It is removed on clean exit. It does not know what runs
// inside.
//
// Permissions, when the core runs as root and apps run as other users:
//
//	<registry>/            root (or the core's user), never writable by others
//	  ferry-XXXXXX/        0711: app users may pass through, not list
//	    core.pid, properties.json, read.token, admin.token   0600
//	    admin.sock         0600 (the admin package): only root connects
//	    wsgi.py, …         0644 loader scripts, readable by every app user
//	    buffers/           0700: request and response spill files (0600, unlinked)
//	    work/              0711
//	      APP.N/           0700, the app's user's until its process listens,
//	                       root's after (the spawn package)
//
// Without root, everything is the core's user's and the instance directory
// is 0700.
package instance

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
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
	// StartTicks is when the core's process started, in clock ticks after
	// boot: with PID, it tells the core from a process that has its pid
	// later (Running). Create fills it in.
	StartTicks uint64 `json:"start_ticks,omitempty"`
}

// Create makes a new instance directory under registry (created 0755 if
// missing) and writes the pid file and properties into it. The registry
// must be safe: see checkRegistry.
func Create(registry string, props Properties) (*Dir, error) {
	if err := os.MkdirAll(registry, 0o755); err != nil {
		return nil, fmt.Errorf("create instance registry %s: %w", registry, err)
	}
	registry, err := checkRegistry(registry)
	if err != nil {
		return nil, err
	}
	// A random name (MkdirTemp), never a predictable one: in a shared
	// directory such as /tmp nobody can create it first.
	path, err := os.MkdirTemp(registry, "ferry-")
	if err != nil {
		return nil, fmt.Errorf("create instance directory in %s: %w", registry, err)
	}
	d := &Dir{path: path}
	// App users (when the core is root) must pass through to their work
	// directories and read the loaders, and may do nothing else.
	mode, workMode := os.FileMode(0o700), os.FileMode(0o700)
	if os.Geteuid() == 0 {
		mode, workMode = 0o711, 0o711
	}
	// Explicitly, whatever the umask.
	if err := os.Chmod(path, mode); err != nil {
		d.Remove()
		return nil, fmt.Errorf("chmod instance directory: %w", err)
	}
	for _, sub := range []struct {
		name string
		mode os.FileMode
	}{{"work", workMode}, {"buffers", 0o700}} {
		p := filepath.Join(path, sub.name)
		if err := os.Mkdir(p, sub.mode); err != nil {
			d.Remove()
			return nil, fmt.Errorf("create instance directory: %w", err)
		}
		if err := os.Chmod(p, sub.mode); err != nil {
			d.Remove()
			return nil, fmt.Errorf("create instance directory: %w", err)
		}
	}
	if err := os.WriteFile(filepath.Join(path, "core.pid"), []byte(strconv.Itoa(props.PID)+"\n"), 0o600); err != nil {
		d.Remove()
		return nil, fmt.Errorf("write instance pid file: %w", err)
	}
	if props.StartTicks == 0 {
		props.StartTicks = StartTicks(props.PID)
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

// checkRegistry makes sure nobody but root and the core's user can change
// the registry or any directory above it, for otherwise another user could
// rename the instance directory away and put one of their own (or a
// symlink) in its place, and the core would write its admin socket and
// tokens there, or give their processes' sockets to the wrong place. Every
// directory on the resolved path must belong to root or the core's user and
// be writable by no one else, unless sticky (as /tmp is: there, only the
// owner of an entry may rename or remove it). It returns the registry with
// symlinks resolved, which is where the instance directory goes.
func checkRegistry(registry string) (string, error) {
	abs, err := filepath.Abs(registry)
	if err != nil {
		return "", err
	}
	resolved, err := filepath.EvalSymlinks(abs)
	if err != nil {
		return "", fmt.Errorf("instance registry %s: %w", registry, err)
	}
	euid := uint32(os.Geteuid())
	for dir := resolved; ; dir = filepath.Dir(dir) {
		fi, err := os.Lstat(dir)
		if err != nil {
			return "", fmt.Errorf("instance registry %s: %w", registry, err)
		}
		st, ok := fi.Sys().(*syscall.Stat_t)
		if !ok {
			return "", fmt.Errorf("instance registry %s: cannot tell who owns %s", registry, dir)
		}
		perm := fi.Mode()
		switch {
		case !fi.IsDir():
			return "", fmt.Errorf("instance registry %s: %s is not a directory", registry, dir)
		case st.Uid != 0 && st.Uid != euid:
			return "", fmt.Errorf("instance registry %s: %s belongs to uid %d, who could replace Ferry's instance directory; use a directory of your own or root's (--instance-registry-dir)", registry, dir, st.Uid)
		case perm.Perm()&0o022 != 0 && perm&os.ModeSticky == 0:
			return "", fmt.Errorf("instance registry %s: %s is writable by others (mode %04o), who could replace Ferry's instance directory; use a directory only its owner can write (--instance-registry-dir)", registry, dir, perm.Perm())
		}
		if dir == "/" || dir == filepath.Dir(dir) {
			return resolved, nil
		}
	}
}
