// Package logs owns where Ferry's logs go: the core's own log (text or
// JSON), the optional per-app log of what app processes print, the access
// log's destination, and reopening log files for logrotate (SIGUSR1, or the
// admin API). It does not decide what is logged.
package logs

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"math"
	"os"
	"slices"
	"sync"
	"syscall"
	"time"
)

// Lines written through a File's Buffered writer (the access log: one per
// request) are kept in memory and reach the file in bulk, one write(2) for
// many lines: when BufferSize bytes are pending, at most FlushInterval after
// the first of them was written, before any line written straight to the
// same file (so the file keeps the order lines were written in), and before
// the file is reopened or closed. A crash (kill -9) can thus lose at most
// FlushInterval's worth of access lines; a stop, a reload or a reopen loses
// none.
const (
	BufferSize    = 64 << 10
	FlushInterval = time.Second
	// followCheck is how often a following File checks at most that the
	// file at its path is still the one it writes to.
	followCheck = time.Second
)

// File is a log file that can be reopened in place, so that logrotate can
// move it away and Ferry starts a new one, or standard error. Write writes
// at once; Buffered gives a writer whose lines are buffered (see
// BufferSize).
type File struct {
	path string // "": standard error, never reopened nor closed
	// follow: also reopen path when the file there is no longer the one
	// written to (moved away, removed), checked when flushing, at most
	// every followCheck.
	follow bool

	mu     sync.Mutex
	f      *os.File
	ino    uint64
	next   time.Time // next follow check
	buf    []byte    // buffered lines not yet written
	timer  *time.Timer
	armed  bool // the timer will flush buf
	closed bool
}

// Open opens (appending, creating 0640) the log file at path.
func Open(path string) (*File, error) {
	l := &File{path: path}
	if err := l.Reopen(); err != nil {
		return nil, err
	}
	return l, nil
}

// openFollowing opens path like Open, and also reopens it when the file at
// path is replaced or removed without a Reopen.
func openFollowing(path string) (*File, error) {
	l := &File{path: path, follow: true}
	if err := l.Reopen(); err != nil {
		return nil, err
	}
	return l, nil
}

// Write writes p at once, after the buffered lines not yet written.
func (l *File) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return 0, os.ErrClosed
	}
	if len(l.buf) == 0 {
		return l.f.Write(p)
	}
	// One write for what is pending and p.
	l.buf = append(l.buf, p...)
	if err := l.flushLocked(); err != nil {
		return 0, err
	}
	return len(p), nil
}

// Buffered returns a writer whose writes are buffered (BufferSize,
// FlushInterval) and go to the file in the order they and Write's come.
// Each of its writes should be whole lines.
func (l *File) Buffered() io.Writer { return bufferedFile{l} }

type bufferedFile struct{ l *File }

func (w bufferedFile) Write(p []byte) (int, error) {
	l := w.l
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return 0, os.ErrClosed
	}
	if l.buf == nil {
		l.buf = make([]byte, 0, BufferSize+BufferSize/4)
	}
	l.buf = append(l.buf, p...)
	if len(l.buf) >= BufferSize {
		return len(p), l.flushLocked()
	}
	if !l.armed {
		// The first line pending since the timer last fired: it fires
		// within FlushInterval of it, and writes it and what came after.
		l.armed = true
		if l.timer == nil {
			l.timer = time.AfterFunc(FlushInterval, l.timed)
		} else {
			l.timer.Reset(FlushInterval)
		}
	}
	return len(p), nil
}

// timed is the flush FlushInterval after a first pending line.
func (l *File) timed() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.armed = false
	if !l.closed {
		l.flushLocked()
	}
}

// Flush writes the buffered lines now.
func (l *File) Flush() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil
	}
	return l.flushLocked()
}

// flushLocked writes buf, then checks (if following) that path is still
// the file written to.
func (l *File) flushLocked() error {
	err := l.writeLocked()
	if l.follow {
		if now := time.Now(); now.After(l.next) {
			l.next = now.Add(followCheck)
			if fi, serr := os.Lstat(l.path); serr != nil || inode(fi) != l.ino {
				if f, ino, oerr := openLog(l.path); oerr == nil { // else: keep writing to the old one
					l.f.Close()
					l.f, l.ino = f, ino
				}
			}
		}
	}
	return err
}

// writeLocked writes buf. Lines that fail to be written are dropped, as a
// line written straight would be: a full disk must not fill the memory.
func (l *File) writeLocked() error {
	if len(l.buf) == 0 {
		return nil
	}
	_, err := l.f.Write(l.buf)
	if cap(l.buf) > 4*BufferSize {
		l.buf = nil // a huge line went through: do not keep its memory
	} else {
		l.buf = l.buf[:0]
	}
	if err != nil {
		return fmt.Errorf("write log file %s: %w", l.name(), err)
	}
	return nil
}

func (l *File) name() string {
	if l.path == "" {
		return "standard error"
	}
	return l.path
}

// openLog opens path for appending, creating it 0640. Never through a
// symlink, nor into a file hard-linked elsewhere: a root core must not be
// made to write where an app user points it.
func openLog(path string) (*os.File, uint64, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND|syscall.O_NOFOLLOW, 0o640)
	if errors.Is(err, syscall.ELOOP) {
		return nil, 0, fmt.Errorf("cannot open log file %s: it is a symbolic link, which Ferry does not follow; give the file itself", path)
	}
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return nil, 0, fmt.Errorf("cannot open log file %s: %w", path, pe.Err) // pe's text names the path again
	}
	if err != nil {
		return nil, 0, fmt.Errorf("open log file %s: %w", path, err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, 0, fmt.Errorf("open log file %s: %w", path, err)
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && st.Nlink > 1 {
		f.Close()
		return nil, 0, fmt.Errorf("open log file %s: it has %d hard links; refusing to write into it", path, st.Nlink)
	}
	return f, inode(fi), nil
}

func inode(fi os.FileInfo) uint64 {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return st.Ino
	}
	return 0
}

// Reopen writes the buffered lines to the file, closes it and opens path
// again: what was written before Reopen is in the old file, what comes
// after in the new one. On standard error, it only flushes.
func (l *File) Reopen() error {
	if l.path == "" {
		return l.Flush()
	}
	f, ino, err := openLog(l.path)
	if err != nil {
		return err
	}
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		f.Close()
		return nil
	}
	var ferr error
	if l.f != nil {
		ferr = l.writeLocked()
	}
	old := l.f
	l.f, l.ino = f, ino
	l.next = time.Now().Add(followCheck)
	l.mu.Unlock()
	if old != nil {
		old.Close()
	}
	return ferr
}

// Close writes the buffered lines and closes the file; later writes fail
// and Close again does nothing. On standard error, which stays open for
// whatever is still said at exit, it only flushes.
func (l *File) Close() error {
	if l.path == "" {
		return l.Flush()
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil
	}
	err := l.writeLocked()
	l.closed = true
	if l.timer != nil {
		l.timer.Stop()
	}
	return errors.Join(err, l.f.Close())
}

// Outputs are the log destinations of one core.
type Outputs struct {
	mu     sync.Mutex
	files  []*File // reopened and closed together
	stderr *File
	core   *File
	opts   Options
	// Core is Ferry's own log.
	Core *slog.Logger
	// Recent keeps the latest records of the core's log and the apps'
	// output, for `ferry logs`.
	Recent *Recent
}

// Options say where logs go.
type Options struct {
	// File is the core's log; "" or "-" is standard error.
	File string
	// Format is "text" (default) or "json".
	Format string
	Level  slog.Level
	// Recent is how many bytes of the latest records Outputs.Recent keeps
	// (0: DefaultRecentBytes).
	Recent int64
}

// New opens the outputs.
func New(o Options) (*Outputs, error) {
	out := &Outputs{opts: o, Recent: NewRecent(o.Recent)}
	f, err := out.open(o.File)
	if err != nil {
		return nil, err
	}
	out.core = f
	out.Core = slog.New(out.Recent.handler(handler(f, o.Format, o.Level)))
	return out, nil
}

// Options returns the options the outputs were opened with: the core log's
// format and level.
func (o *Outputs) Options() Options { return o.opts }

func (o *Outputs) open(path string) (*File, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if path == "" || path == "-" {
		// One File for standard error, so that all that goes there
		// keeps its order.
		if o.stderr == nil {
			o.stderr = &File{f: os.Stderr}
			o.files = append(o.files, o.stderr)
		}
		return o.stderr, nil
	}
	f, err := Open(path)
	if err != nil {
		return nil, err
	}
	o.files = append(o.files, f)
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
	return slog.New(o.Recent.handler(handler(w, o.opts.Format, o.opts.Level))), nil
}

// Access returns where the access log writes its lines, buffered (see
// BufferSize): path "" is the core's log (whose own lines stay in order
// with them), "-" standard error, anything else a file of the access log's
// own, reopened with the others and also when it is moved away or removed
// (logrotate without a signal). close writes what is buffered and closes
// the file; the outputs' Close does so too.
func (o *Outputs) Access(path string) (w io.Writer, close func() error, err error) {
	if path == "" || path == o.opts.File {
		return o.core.Buffered(), o.core.Flush, nil
	}
	if path == "-" {
		f, _ := o.open(path)
		return f.Buffered(), f.Flush, nil
	}
	f, err := openFollowing(path)
	if err != nil {
		return nil, nil, err
	}
	o.mu.Lock()
	o.files = append(o.files, f)
	o.mu.Unlock()
	return f.Buffered(), func() error {
		o.mu.Lock()
		o.files = slices.DeleteFunc(o.files, func(g *File) bool { return g == f })
		o.mu.Unlock()
		return f.Close()
	}, nil
}

func handler(w io.Writer, format string, level slog.Level) slog.Handler {
	opts := &slog.HandlerOptions{Level: level}
	if format == "json" {
		opts.ReplaceAttr = millisecondDurations
		return slog.NewJSONHandler(w, opts)
	}
	return slog.NewTextHandler(w, opts)
}

// Reopen reopens every log file (after logrotate moved them), each after
// writing its buffered lines to the old one.
func (o *Outputs) Reopen() error {
	o.mu.Lock()
	defer o.mu.Unlock()
	var errs []error
	for _, f := range o.files {
		errs = append(errs, f.Reopen())
	}
	return errors.Join(errs...)
}

// Close writes what is buffered and closes the log files.
func (o *Outputs) Close() {
	o.Recent.shut()
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, f := range o.files {
		f.Close()
	}
}

// millisecondDurations writes a duration in the JSON log as NAME_ms, in
// milliseconds, as the JSON access log writes duration_ms, rather than
// slog's nanoseconds under NAME. (The text format writes 1.5s, which
// needs no unit in its name.)
func millisecondDurations(_ []string, a slog.Attr) slog.Attr {
	if a.Value.Kind() != slog.KindDuration {
		return a
	}
	ms := float64(a.Value.Duration()) / float64(time.Millisecond)
	return slog.Float64(a.Key+"_ms", math.Round(ms*1000)/1000)
}
