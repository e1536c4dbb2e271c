// Package spawn owns starting and stopping one app process: its private work
// directory, its environment, the status and lifeline pipes, the start-up
// handshake, capturing what it prints, and signalling its process group. It
// does not decide when or how many processes run; that is the pool's job.
package spawn

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Config describes how to start processes of one app.
type Config struct {
	// App names the app in logs and errors.
	App string
	// Root is the app directory; processes start with it as working directory.
	Root string
	// Command is the argv that starts a loader, e.g. [python3 /…/wsgi.py].
	Command []string
	// Env is the process environment, apart from the FERRY_* handshake
	// variables this package adds. It is used as given: nothing is inherited.
	Env []string
	// WorkDir is where per-spawn work directories are created.
	WorkDir string
	// StartTimeout bounds the wait for the handshake. Default 90s.
	StartTimeout time.Duration
	// KeepOutput is how many bytes of start-up output are kept for error
	// pages. Default 64 KiB.
	KeepOutput int
}

// Spawner starts processes of one app.
type Spawner struct {
	cfg Config
	log *slog.Logger
	seq atomic.Uint64
}

// New returns a Spawner for cfg, logging to log.
func New(cfg Config, log *slog.Logger) *Spawner {
	if cfg.StartTimeout <= 0 {
		cfg.StartTimeout = 90 * time.Second
	}
	if cfg.KeepOutput <= 0 {
		cfg.KeepOutput = 64 << 10
	}
	return &Spawner{cfg: cfg, log: log}
}

// Error is a failed start-up: what went wrong, in a line and in full, and
// what the process printed meanwhile.
type Error struct {
	App     string
	Summary string // one line, safe to show in production
	Details string // e.g. a traceback reported by the loader
	Output  string // what the process printed before it failed
	Err     error  // the underlying cause, if any
}

func (e *Error) Error() string {
	return fmt.Sprintf("spawn %s: %s", e.App, e.Summary)
}

func (e *Error) Unwrap() error { return e.Err }

// handshake is the one JSON line a loader writes to the status pipe.
type handshake struct {
	Status      string `json:"status"`
	Socket      string `json:"socket"`
	Concurrency int    `json:"concurrency"`
	Summary     string `json:"summary"`
	Details     string `json:"details"`
}

// ParseHandshake decodes and checks a status line.
func ParseHandshake(line []byte) (handshake, error) {
	var h handshake
	if err := json.Unmarshal(line, &h); err != nil {
		return h, fmt.Errorf("malformed status line: %w", err)
	}
	switch h.Status {
	case "ready":
		if h.Concurrency < 0 {
			return h, fmt.Errorf("malformed status line: concurrency %d", h.Concurrency)
		}
		if h.Concurrency == 0 {
			h.Concurrency = 1
		}
	case "error":
		if h.Summary == "" {
			h.Summary = "the app reported an error without a summary"
		}
	default:
		return h, fmt.Errorf("malformed status line: unknown status %q", h.Status)
	}
	return h, nil
}

// Spawn starts one process and waits for its handshake. On failure it returns
// an *Error and leaves nothing running.
func (s *Spawner) Spawn(ctx context.Context) (*Process, error) {
	n := s.seq.Add(1)
	work := filepath.Join(s.cfg.WorkDir, s.cfg.App+"."+strconv.FormatUint(n, 10))
	if err := os.Mkdir(work, 0o700); err != nil {
		return nil, &Error{App: s.cfg.App, Summary: "cannot create work directory", Err: err}
	}
	p, err := s.start(ctx, work)
	if err != nil {
		os.RemoveAll(work)
		return nil, err
	}
	return p, nil
}

func (s *Spawner) start(ctx context.Context, work string) (*Process, error) {
	fail := func(summary string, err error) error {
		return &Error{App: s.cfg.App, Summary: summary, Err: err}
	}
	socket := filepath.Join(work, "sock")

	statusR, statusW, err := os.Pipe()
	if err != nil {
		return nil, fail("cannot create status pipe", err)
	}
	defer statusR.Close()
	lifeR, lifeW, err := os.Pipe()
	if err != nil {
		statusW.Close()
		return nil, fail("cannot create lifeline pipe", err)
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		statusW.Close()
		lifeR.Close()
		lifeW.Close()
		return nil, fail("cannot create output pipe", err)
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		statusW.Close()
		lifeR.Close()
		lifeW.Close()
		outR.Close()
		outW.Close()
		return nil, fail("cannot create output pipe", err)
	}

	cmd := exec.Command(s.cfg.Command[0], s.cfg.Command[1:]...)
	cmd.Dir = s.cfg.Root
	cmd.Env = append(append([]string(nil), s.cfg.Env...),
		"FERRY_SOCKET="+socket,
		"FERRY_STATUS_FD=3",
		"FERRY_LIFELINE_FD=4",
	)
	cmd.Stdin = nil // /dev/null
	cmd.Stdout = outW
	cmd.Stderr = errW
	cmd.ExtraFiles = []*os.File{statusW, lifeR}
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Setpgid: true,
		// Belt and braces with the lifeline: if the core dies, so does the
		// direct child.
		Pdeathsig: syscall.SIGKILL,
	}
	startErr := cmd.Start()
	// The child has its copies now; ours must go so EOFs reach the right side.
	statusW.Close()
	lifeR.Close()
	outW.Close()
	errW.Close()
	if startErr != nil {
		lifeW.Close()
		outR.Close()
		errR.Close()
		return nil, fail("cannot start "+s.cfg.Command[0], startErr)
	}

	p := &Process{
		pid:      cmd.Process.Pid,
		socket:   socket,
		workDir:  work,
		cmd:      cmd,
		lifeline: lifeW,
		done:     make(chan struct{}),
		out:      newCapture(s.cfg.KeepOutput),
		started:  time.Now(),
	}
	p.log = s.log.With("app", s.cfg.App, "pid", p.pid)
	p.readers.Add(2)
	go p.pipeLines(outR, "stdout")
	go p.pipeLines(errR, "stderr")
	// Exactly one goroutine waits for the process.
	go func() {
		p.exitErr = cmd.Wait()
		close(p.done)
	}()

	lines := make(chan []byte, 1)
	go func() {
		line, _ := bufio.NewReaderSize(statusR, 4096).ReadBytes('\n')
		lines <- line
	}()
	timer := time.NewTimer(s.cfg.StartTimeout)
	defer timer.Stop()

	var line []byte
	select {
	case line = <-lines:
	case <-p.done:
		// A loader that reports an error exits right after: its line, if
		// any, is in the pipe, and the reader sees it or EOF at once.
		line = <-lines
	case <-timer.C:
		return nil, s.abort(p, fmt.Sprintf("the app did not start within %s", s.cfg.StartTimeout), "", context.DeadlineExceeded)
	case <-ctx.Done():
		return nil, s.abort(p, "start-up cancelled", "", ctx.Err())
	}
	if len(line) == 0 {
		select {
		case <-p.done:
			return nil, s.abort(p, fmt.Sprintf("the app exited (%s) before it was ready", exitText(p.exitErr)), "", p.exitErr)
		default:
			return nil, s.abort(p, "the app closed its status pipe without reporting readiness", "", nil)
		}
	}
	h, err := ParseHandshake(line)
	if err != nil {
		return nil, s.abort(p, err.Error(), "", err)
	}
	if h.Status == "error" {
		return nil, s.abort(p, h.Summary, h.Details, nil)
	}

	// Trust nothing the app reports: the socket is the one we chose.
	p.concurrency = h.Concurrency
	p.out.stopKeeping()
	p.log.Info("process ready", "startup", time.Since(p.started).Round(time.Millisecond))
	return p, nil
}

// abort kills a process that failed to start and builds its error.
func (s *Spawner) abort(p *Process, summary, details string, err error) error {
	p.signal(syscall.SIGKILL)
	<-p.done
	p.waitReaders(time.Second)
	p.lifeline.Close()
	e := &Error{App: s.cfg.App, Summary: summary, Details: details, Output: p.out.String(), Err: err}
	s.log.Error("spawn failed", "app", s.cfg.App, "pid", p.pid, "error", summary)
	return e
}

func exitText(err error) string {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ProcessState.String()
	}
	if err == nil {
		return "exit status 0"
	}
	return err.Error()
}

// Process is one running app process.
type Process struct {
	pid         int
	socket      string
	concurrency int
	workDir     string
	started     time.Time
	cmd         *exec.Cmd
	lifeline    *os.File
	done        chan struct{}
	exitErr     error
	out         *capture
	readers     sync.WaitGroup
	stopOnce    sync.Once
	log         *slog.Logger
}

// PID is the process id Ferry got from starting it.
func (p *Process) PID() int { return p.pid }

// Socket is the Unix socket the process serves on.
func (p *Process) Socket() string { return p.socket }

// Concurrency is how many requests the process serves at once.
func (p *Process) Concurrency() int { return p.concurrency }

// Started is when the process was started.
func (p *Process) Started() time.Time { return p.started }

// Done is closed when the process has exited.
func (p *Process) Done() <-chan struct{} { return p.done }

// ExitErr is how the process exited; valid after Done is closed.
func (p *Process) ExitErr() error { return p.exitErr }

// Stop asks the process group to exit (SIGTERM) and waits; when ctx ends
// first, it kills the group. It then removes the work directory.
func (p *Process) Stop(ctx context.Context) {
	p.stopOnce.Do(func() {
		p.signal(syscall.SIGTERM)
		select {
		case <-p.done:
		case <-ctx.Done():
			p.log.Warn("process did not exit in time, killing it")
			p.signal(syscall.SIGKILL)
			<-p.done
		}
		p.cleanup()
	})
}

// Kill kills the process group at once and waits for it.
func (p *Process) Kill() {
	p.stopOnce.Do(func() {
		p.signal(syscall.SIGKILL)
		<-p.done
		p.cleanup()
	})
}

// Reap finishes bookkeeping for a process that exited on its own.
func (p *Process) Reap() {
	p.stopOnce.Do(func() {
		<-p.done
		p.cleanup()
	})
}

func (p *Process) cleanup() {
	// Stragglers in the group (children the app forked) go with it.
	syscall.Kill(-p.pid, syscall.SIGKILL)
	p.lifeline.Close()
	os.RemoveAll(p.workDir)
}

// signal sends sig to the process group while the leader is unreaped; the
// pid cannot have been reused before Wait returns.
func (p *Process) signal(sig syscall.Signal) {
	select {
	case <-p.done:
		return
	default:
	}
	if err := syscall.Kill(-p.pid, sig); err != nil {
		p.cmd.Process.Signal(sig)
	}
}

// pipeLines logs each line the process prints and keeps start-up output.
func (p *Process) pipeLines(f *os.File, stream string) {
	defer p.readers.Done()
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 4096), 64<<10)
	for sc.Scan() {
		line := sc.Text()
		p.out.add(line)
		p.log.Info("app output", "stream", stream, "line", line)
	}
}

func (p *Process) waitReaders(max time.Duration) {
	ch := make(chan struct{})
	go func() { p.readers.Wait(); close(ch) }()
	select {
	case <-ch:
	case <-time.After(max):
	}
}

// capture keeps the first bytes a process prints, until it is ready.
type capture struct {
	mu      sync.Mutex
	buf     []byte
	limit   int
	keeping bool
}

func newCapture(limit int) *capture { return &capture{limit: limit, keeping: true} }

func (c *capture) add(line string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.keeping || len(c.buf) >= c.limit {
		return
	}
	c.buf = append(c.buf, line...)
	c.buf = append(c.buf, '\n')
	if len(c.buf) > c.limit {
		c.buf = c.buf[:c.limit]
	}
}

func (c *capture) stopKeeping() {
	c.mu.Lock()
	c.keeping = false
	c.buf = nil
	c.mu.Unlock()
}

func (c *capture) String() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return string(c.buf)
}
