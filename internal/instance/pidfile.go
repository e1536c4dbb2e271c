package instance

import (
	"errors"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// WritePidFile writes pid to path (--pid-file) without following a
// symlink planted there: the old file is removed and a new one created
// exclusively (a root core must not be tricked into writing elsewhere).
func WritePidFile(path string, pid int) error {
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL|syscall.O_NOFOLLOW, 0o644)
	if err != nil {
		return err
	}
	_, err = f.WriteString(strconv.Itoa(pid) + "\n")
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// RemovePidFile removes the pid file at path if it still names pid: a new
// core (an upgrade) that wrote its own keeps it.
func RemovePidFile(path string, pid int) {
	if b, err := os.ReadFile(path); err == nil && strings.TrimSpace(string(b)) == strconv.Itoa(pid) {
		os.Remove(path)
	}
}
