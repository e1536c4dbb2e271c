package spawn

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"syscall"
)

// Backtraces on demand: a ready loader keeps its status pipe open after the
// handshake, and on BacktraceSignal writes the stack of every thread there,
// ending with BacktraceEnd. The core reads the pipe for the process's whole
// life, so a dump never mixes with the app's output and nothing in the
// file system is involved (the work directory is not the app's once it is
// ready).
const (
	// BacktraceSignal is ignored by default, so a process without the
	// loader's handler (a loader from before, or one still loading) is
	// not hurt by it.
	BacktraceSignal = syscall.SIGWINCH
	// BacktraceEnd is the line that ends a dump.
	BacktraceEnd = "-- ferry: end of backtraces --"
	// maxBacktrace bounds one dump kept in memory.
	maxBacktrace = 4 << 20
)

// ErrNoBacktraces is returned for a process that does not report
// backtraces: a generic app, a preloader, or a loader that closed its
// status pipe.
var ErrNoBacktraces = errors.New("the process does not report backtraces (only the Ruby, Python and Node.js loaders' app processes do)")

// backtraces collects the dumps a process writes on its status pipe.
type backtraces struct {
	f      *os.File
	ask    chan struct{} // one request at a time
	closed chan struct{} // the pipe ended

	mu    sync.Mutex
	cur   []byte      // the dump being written
	full  bool        // cur reached maxBacktrace
	dumps chan []byte // finished dumps, at most one waiting
}

// watchBacktraces reads the status pipe f, past the handshake line that r
// (reading f) has returned, until it ends or is closed.
func watchBacktraces(f *os.File, r *bufio.Reader) *backtraces {
	b := &backtraces{f: f, ask: make(chan struct{}, 1), closed: make(chan struct{}), dumps: make(chan []byte, 1)}
	go b.read(r)
	return b
}

func (b *backtraces) read(r *bufio.Reader) {
	defer close(b.closed)
	defer b.f.Close()
	for {
		line, err := r.ReadSlice('\n')
		if len(line) > 0 {
			b.add(line)
		}
		if err != nil && !errors.Is(err, bufio.ErrBufferFull) {
			return
		}
	}
}

func (b *backtraces) add(line []byte) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if string(line) == BacktraceEnd+"\n" {
		d := b.cur
		b.cur, b.full = nil, false
		select {
		case <-b.dumps: // an older dump no one took
		default:
		}
		b.dumps <- d
		return
	}
	if b.full {
		return
	}
	if len(b.cur)+len(line) > maxBacktrace {
		b.cur = append(b.cur, "(truncated: the dump is over 4 MiB)\n"...)
		b.full = true
		return
	}
	b.cur = append(b.cur, line...)
}

// reset forgets what came before a new request.
func (b *backtraces) reset() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.cur, b.full = nil, false
	select {
	case <-b.dumps:
	default:
	}
}

func (b *backtraces) partial() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return string(b.cur)
}

// close stops reading (the process is gone; a child it left may hold the
// pipe's write end).
func (b *backtraces) close() {
	b.f.Close()
}

// Backtraces asks the process for the stack of every thread and returns the
// loader's dump, without stopping the process. It waits until the dump is
// complete or ctx ends; then a dump begun but not finished (a Python
// process whose main thread is stuck in C code writes the threads' stacks
// but not the rest) is returned with a note, and nothing at all is an
// error.
func (p *Process) Backtraces(ctx context.Context) (string, error) {
	b := p.bt
	if b == nil {
		return "", ErrNoBacktraces
	}
	select {
	case b.ask <- struct{}{}:
		defer func() { <-b.ask }()
	case <-ctx.Done():
		return "", fmt.Errorf("another backtrace request for pid %d is under way: %w", p.pid, ctx.Err())
	}
	select {
	case <-b.closed:
		return "", ErrNoBacktraces
	case <-p.done:
		return "", fmt.Errorf("process %d has exited", p.pid)
	default:
	}
	b.reset()
	if err := p.signalOne(BacktraceSignal); err != nil {
		return "", fmt.Errorf("signal process %d: %w", p.pid, err)
	}
	select {
	case d := <-b.dumps:
		return string(d), nil
	case <-b.closed:
		return "", ErrNoBacktraces
	case <-p.done:
		return "", fmt.Errorf("process %d exited before it wrote its backtraces", p.pid)
	case <-ctx.Done():
		if d := b.partial(); d != "" {
			return d + "(incomplete: the process did not finish its dump in time; a thread may be stuck in native code)\n", nil
		}
		return "", fmt.Errorf("process %d wrote no backtraces in time (a thread stuck in native code, or a Node.js event loop kept busy, runs no handler): %w", p.pid, ctx.Err())
	}
}
