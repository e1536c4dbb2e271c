// Package logs owns where Ferry's logs go: the core's own log (text or
// JSON), the optional per-app log of what app processes print, and reopening
// log files for logrotate (SIGUSR1, or the admin API). It does not decide
// what is logged.
package logs

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"syscall"
)

// File is a log file that can be reopened in place, so that logrotate can
// move it away and Ferry starts a new one.
type File struct {
	path string
	mu   sync.Mutex
	f    *os.File
}

// Open opens (appending, creating 0640) the log file at path.
func Open(path string) (*File, error) {
	l := &File{path: path}
	if err := l.Reopen(); err != nil {
		return nil, err
	}
	return l, nil
}

// Write appends to the file.
func (l *File) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.f.Write(p)
}

// Reopen closes the file and opens path again.
func (l *File) Reopen() error {
	// Never through a symlink, nor into a file hard-linked elsewhere: a
	// root core must not be made to write where an app user points it.
	f, err := os.OpenFile(l.path, os.O_WRONLY|os.O_CREATE|os.O_APPEND|syscall.O_NOFOLLOW, 0o640)
	if err != nil {
		return fmt.Errorf("open log file %s: %w", l.path, err)
	}
	if fi, err := f.Stat(); err == nil {
		if st, ok := fi.Sys().(*syscall.Stat_t); ok && st.Nlink > 1 {
			f.Close()
			return fmt.Errorf("open log file %s: it has %d hard links; refusing to write into it", l.path, st.Nlink)
		}
	}
	l.mu.Lock()
	old := l.f
	l.f = f
	l.mu.Unlock()
	if old != nil {
		old.Close()
	}
	return nil
}

// Close closes the file.
func (l *File) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.f.Close()
}

// Outputs are the log destinations of one core.
type Outputs struct {
	mu    sync.Mutex
	files []*File
	opts  Options
	// Core is Ferry's own log.
	Core *slog.Logger
}

// Options say where logs go.
type Options struct {
	// File is the core's log; "" or "-" is standard error.
	File string
	// Format is "text" (default) or "json".
	Format string
	Level  slog.Level
}

// New opens the outputs.
func New(o Options) (*Outputs, error) {
	out := &Outputs{opts: o}
	w, err := out.open(o.File)
	if err != nil {
		return nil, err
	}
	out.Core = slog.New(handler(w, o.Format, o.Level))
	return out, nil
}

func (o *Outputs) open(path string) (io.Writer, error) {
	if path == "" || path == "-" {
		return os.Stderr, nil
	}
	f, err := Open(path)
	if err != nil {
		return nil, err
	}
	o.mu.Lock()
	o.files = append(o.files, f)
	o.mu.Unlock()
	return f, nil
}

// App returns the logger for what an app's processes print: its own file
// (reopened with the others) when path is set, else the core log.
func (o *Outputs) App(path string) (*slog.Logger, error) {
	if path == "" {
		return o.Core, nil
	}
	w, err := o.open(path)
	if err != nil {
		return nil, err
	}
	return slog.New(handler(w, o.opts.Format, o.opts.Level)), nil
}

func handler(w io.Writer, format string, level slog.Level) slog.Handler {
	opts := &slog.HandlerOptions{Level: level}
	if format == "json" {
		return slog.NewJSONHandler(w, opts)
	}
	return slog.NewTextHandler(w, opts)
}

// Reopen reopens every log file (after logrotate moved them).
func (o *Outputs) Reopen() error {
	o.mu.Lock()
	defer o.mu.Unlock()
	var errs []error
	for _, f := range o.files {
		errs = append(errs, f.Reopen())
	}
	return errors.Join(errs...)
}

// Close closes the log files.
func (o *Outputs) Close() {
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, f := range o.files {
		f.Close()
	}
}
