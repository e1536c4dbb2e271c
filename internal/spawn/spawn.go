// Package spawn owns starting and stopping one app process: its private work
// directory, its environment, the user it runs as and its resource limits,
// the status and lifeline pipes, the start-up handshake, capturing what it
// prints, and signalling its process group. It believes nothing an app
// process reports about itself (secure.go). It does not decide when or how
// many processes run; that is the pool's job (Limit only caps how many may
// run at once across apps).
package spawn

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/ferry-server/ferry/internal/appwire"
	"github.com/ferry-server/ferry/internal/identity"
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
	// HTTPOnly offers loaders no framed wire (no FERRY_WIRE): they speak
	// HTTP/1.1 (--app-wire http1).
	HTTPOnly bool
	// StartTimeout bounds the wait for the handshake. Default 90s.
	StartTimeout time.Duration
	// KeepOutput is how many bytes of start-up output are kept for error
	// pages. Default 64 KiB.
	KeepOutput int
	// Generic: Command is any program, told its port in $PORT; readiness is
	// the port accepting connections instead of a handshake.
	Generic bool
	// Output receives what processes print, one record per line. Default:
	// the spawner's log.
	Output *slog.Logger

	// User is who processes run as when the core runs as root; nil: as the
	// core. Env should name the same user (identity.User.Env).
	User *identity.User
	// UserReason says why User was chosen, for error messages ("owner of
	// config.ru").
	UserReason string
	// StartupFile, relative to Root, is checked to be readable by User
	// before a process starts; "" checks only Root.
	StartupFile string
	// FileDescriptorLimit sets RLIMIT_NOFILE of processes (soft and hard).
	// Default 0: inherited from the core as it was started.
	FileDescriptorLimit int
	// CoreDumps leaves RLIMIT_CORE as inherited. Default false: 0, no core
	// dumps.
	CoreDumps bool
	// Limit caps processes across spawners (nil: no cap); Reserve is how
	// many of them this spawner may always have (its --min-instances).
	Limit   *Limit
	Reserve int
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
	if cfg.Output == nil {
		cfg.Output = log
	}
	s := &Spawner{cfg: cfg, log: log}
	if len(s.cfg.Command) > 0 {
		s.cfg.Command = append([]string{s.resolve(s.cfg.Command[0])}, s.cfg.Command[1:]...)
	}
	if cfg.Limit != nil {
		cfg.Limit.join(s, cfg.Reserve)
	}
	return s
}

// Close tells the spawner's Limit, if any, that the app is gone: its
// reserve is freed (its processes count until they exit).
func (s *Spawner) Close() {
	if s.cfg.Limit != nil {
		s.cfg.Limit.leave(s)
	}
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

// ErrorPage is what the error page shows of e in development: the server
// package finds it through this method, without importing spawn.
func (e *Error) ErrorPage() (summary, details, output string) {
	return e.Summary, e.Details, e.Output
}

// handshake is the one JSON line a loader writes to the status pipe.
type handshake struct {
	Status      string `json:"status"`
	Socket      string `json:"socket"`
	Concurrency int    `json:"concurrency"`
	Preloader   bool   `json:"preloader"`
	// Wire is the loader wire the process chose from FERRY_WIRE (0 or
	// absent: HTTP/1.1; 1: ferry-wire/1, docs/loader-wire.md).
	Wire int `json:"wire"`
	// Head is the layout of ferry-wire request heads the loader reads:
	// "" (the CGI environment) or "asgi" (docs/loader-wire.md).
	Head    string `json:"head"`
	Summary string `json:"summary"`
	Details string `json:"details"`
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
		if h.Head != "" && (h.Wire == 0 || !appwire.KnownHead(h.Head)) {
			return h, fmt.Errorf("the loader asked for request heads in the layout %q, which this Ferry does not know (a loader from another Ferry version?)", h.Head)
		}
		if !appwire.Supported(h.Wire) {
			// Fail loudly: a loader from another Ferry version.
			return h, fmt.Errorf("the loader chose loader wire version %d, but this Ferry speaks only HTTP/1.1 and versions %s (a loader from another Ferry version?)", h.Wire, appwire.Versions)
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
	release, err := s.slot(ctx)
	if err != nil {
		return nil, err
	}
	n := s.seq.Add(1)
	work, err := s.makeWorkDir(s.cfg.App + "." + strconv.FormatUint(n, 10))
	if err != nil {
		release()
		return nil, &Error{App: s.cfg.App, Summary: "cannot create work directory", Err: err}
	}
	var p *Process
	if s.cfg.Generic {
		p, err = s.startGeneric(ctx, work)
	} else {
		p, err = s.start(ctx, work, nil)
	}
	if err != nil {
		os.RemoveAll(work)
		release()
		return nil, err
	}
	if p.preloader {
		p.Kill()
		release()
		return nil, &Error{App: s.cfg.App, Summary: "the loader started a preloader, but direct spawning was asked for"}
	}
	go func() { <-p.done; release() }()
	return p, nil
}

// slot takes a place under the Limit, if any; release gives it back.
func (s *Spawner) slot(ctx context.Context) (release func(), err error) {
	if s.cfg.Limit == nil {
		return func() {}, nil
	}
	return s.cfg.Limit.acquire(ctx, s, s.cfg.StartTimeout)
}

// start runs the loader in work with the handshake pipes and waits for its
// status line. extraEnv is added to the environment.
func (s *Spawner) start(ctx context.Context, work string, extraEnv []string) (*Process, error) {
	socket := filepath.Join(work, "sock")
	lifeR, err := lifeline()
	if err != nil {
		return nil, s.failed("cannot create lifeline pipe", err)
	}
	defer lifeR.Close()
	pipes, err := openPipes(3) // status, stdout, stderr
	if err != nil {
		return nil, s.failed("cannot create status and output pipes", err)
	}
	statusR, outR, errR := pipes[0][0], pipes[1][0], pipes[2][0]
	keepStatus := false // a ready app process keeps it for backtraces
	defer func() {
		if !keepStatus {
			statusR.Close()
		}
	}()
	cmd := exec.Command(s.cfg.Command[0], s.cfg.Command[1:]...)
	// A command that is not found is left for Start to report.
	if err := s.checkAccess(cmd.Path, cmd.Err == nil, work); err != nil {
		closeWriteEnds(pipes)
		outR.Close()
		errR.Close()
		s.log.Error("spawn failed", "app", s.cfg.App, "error", err.(*Error).Summary)
		return nil, err
	}
	s.prepareLoader(cmd, socket, extraEnv, pipes[0][1], pipes[1][1], pipes[2][1], lifeR)
	startErr := cmd.Start()
	// The child has its copies now; ours must go so EOFs reach the right side.
	closeWriteEnds(pipes)
	if startErr != nil {
		outR.Close()
		errR.Close()
		return nil, s.failed("cannot start "+s.cfg.Command[0], startErr)
	}

	p := s.newExecProcess(cmd, work, outR, errR)
	p.addr = &net.UnixAddr{Name: socket, Net: "unix"}
	statusBuf, lines := readStatusLine(statusR)
	h, err := s.awaitHandshake(ctx, p, lines)
	if err != nil {
		return nil, err
	}
	// Trust nothing the app reports: the socket is the one we chose, in a
	// directory the app no longer controls.
	if err := s.lockWorkDir(work, socket); err != nil {
		return nil, s.abort(p, "unsafe work directory: "+err.Error(), "", err)
	}
	p.concurrency = h.Concurrency
	p.wire, p.wireHead = h.Wire, h.Head
	p.preloader = h.Preloader
	if !p.preloader {
		p.bt = watchBacktraces(statusR, statusBuf)
		keepStatus = true
	}
	p.out.stopKeeping()
	msg := "process ready"
	if p.preloader {
		msg = "preloader ready"
	}
	p.logger().Info(msg, "startup", time.Since(p.started).Round(time.Millisecond))
	return p, nil
}

// prepareLoader sets up cmd to run a loader: in the app's root, its
// socket and fds named in the environment (the status pipe as fd 3, the
// lifeline as fd 4), its output to the pipes, in a process group of its
// own, as the app's user, with its resource limits.
func (s *Spawner) prepareLoader(cmd *exec.Cmd, socket string, extraEnv []string, statusW, outW, errW, lifeR *os.File) {
	cmd.Dir = s.cfg.Root
	cmd.Env = append(append(append([]string(nil), s.cfg.Env...), extraEnv...),
		"FERRY_SOCKET="+socket,
		"FERRY_STATUS_FD=3",
		"FERRY_LIFELINE_FD=4",
	)
	if !s.cfg.HTTPOnly {
		cmd.Env = append(cmd.Env, "FERRY_WIRE="+appwire.Versions)
	}
	cmd.Stdin = nil // /dev/null
	cmd.Stdout = outW
	cmd.Stderr = errW
	cmd.ExtraFiles = []*os.File{statusW, lifeR}
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Setpgid: true,
		// Belt and braces with the lifeline: if the core dies, so does the
		// direct child. (Go sets it after switching user, which clears it.)
		Pdeathsig:  syscall.SIGKILL,
		Credential: s.credential(),
	}
	s.withLimits(cmd)
}

// awaitHandshake waits for the status line of the started process p, up
// to --start-timeout: the handshake of a ready process, or the Error of
// one that failed (and has been killed).
func (s *Spawner) awaitHandshake(ctx context.Context, p *Process, lines <-chan []byte) (handshake, error) {
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
		return handshake{}, s.abort(p, fmt.Sprintf("the app did not start within %s", s.cfg.StartTimeout), "", context.DeadlineExceeded)
	case <-ctx.Done():
		return handshake{}, s.abort(p, "start-up cancelled", "", ctx.Err())
	}
	if len(line) == 0 {
		// EOF usually means the process is exiting; let Wait catch up so the
		// error can say how it exited.
		select {
		case <-p.done:
			return handshake{}, s.abort(p, fmt.Sprintf("the app exited (%s) before it was ready", exitText(p.exitErr)), "", p.exitErr)
		case <-time.After(time.Second):
			return handshake{}, s.abort(p, "the app closed its status pipe without reporting readiness", "", nil)
		}
	}
	h, err := ParseHandshake(line)
	if err != nil {
		return h, s.abort(p, err.Error(), "", err)
	}
	if h.Status == "error" {
		return h, s.abort(p, h.Summary, h.Details, nil)
	}
	return h, nil
}

// failed is the Error of a spawn that failed before there was a process.
func (s *Spawner) failed(summary string, err error) error {
	return &Error{App: s.cfg.App, Summary: summary, Err: err}
}

// openPipes opens n pipes, each [read end, write end]; on failure none is
// left open.
func openPipes(n int) ([][2]*os.File, error) {
	pipes := make([][2]*os.File, n)
	for i := range pipes {
		r, w, err := os.Pipe()
		if err != nil {
			for _, p := range pipes[:i] {
				p[0].Close()
				p[1].Close()
			}
			return nil, err
		}
		pipes[i] = [2]*os.File{r, w}
	}
	return pipes, nil
}

// closeWriteEnds closes the write ends of pipes, once a child has its
// copies: EOF then reaches the reader when the child is done.
func closeWriteEnds(pipes [][2]*os.File) {
	for _, p := range pipes {
		p[1].Close()
	}
}

// readStatusLine reads the first line of a status pipe in the background:
// the buffered reader (what comes after the line stays in it, for
// backtraces) and where the line, or nil at EOF, comes.
func readStatusLine(statusR *os.File) (*bufio.Reader, <-chan []byte) {
	buf := bufio.NewReaderSize(statusR, 4096)
	lines := make(chan []byte, 1)
	go func() {
		line, _ := buf.ReadBytes('\n')
		lines <- line
	}()
	return buf, lines
}

// newExecProcess wraps a started command: its output readers and the one
// goroutine that waits for it.
func (s *Spawner) newExecProcess(cmd *exec.Cmd, work string, outR, errR *os.File) *Process {
	p := &Process{
		pid:     cmd.Process.Pid,
		workDir: work,
		done:    make(chan struct{}),
		out:     newCapture(s.cfg.KeepOutput),
		started: time.Now(),
	}
	p.log.Store(s.log.With("app", s.cfg.App, "pid", p.pid))
	p.output.Store(s.cfg.Output.With("app", s.cfg.App, "pid", p.pid))
	p.sendSignal = func(sig syscall.Signal) error {
		if err := syscall.Kill(-p.pid, sig); err != nil {
			return cmd.Process.Signal(sig)
		}
		return nil
	}
	// os.Process knows when the process has been reaped.
	p.signalOne = func(sig syscall.Signal) error { return cmd.Process.Signal(sig) }
	p.readers.Add(2)
	go p.pipeLines(outR, "stdout")
	go p.pipeLines(errR, "stderr")
	// Exactly one goroutine waits for the process.
	go func() {
		p.exitErr = cmd.Wait()
		close(p.done)
	}()
	return p
}

// startGeneric runs a generic app on a free loopback port and waits until
// the port accepts connections.
func (s *Spawner) startGeneric(ctx context.Context, work string) (*Process, error) {
	port, err := freePort()
	if err != nil {
		return nil, s.failed("cannot find a free port", err)
	}
	pipes, err := openPipes(2)
	if err != nil {
		return nil, s.failed("cannot create output pipe", err)
	}
	outR, outW, errR, errW := pipes[0][0], pipes[0][1], pipes[1][0], pipes[1][1]
	cmd := exec.Command(s.cfg.Command[0], s.cfg.Command[1:]...)
	if err := s.checkAccess(cmd.Path, cmd.Err == nil, ""); err != nil {
		outR.Close()
		outW.Close()
		errR.Close()
		errW.Close()
		s.log.Error("spawn failed", "app", s.cfg.App, "error", err.(*Error).Summary)
		return nil, err
	}
	cmd.Dir = s.cfg.Root
	cmd.Env = append(append([]string(nil), s.cfg.Env...), "PORT="+strconv.Itoa(port))
	cmd.Stdout, cmd.Stderr = outW, errW
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL, Credential: s.credential()}
	s.withLimits(cmd)
	startErr := cmd.Start()
	outW.Close()
	errW.Close()
	if startErr != nil {
		outR.Close()
		errR.Close()
		return nil, s.failed("cannot start "+s.cfg.Command[0], startErr)
	}
	p := s.newExecProcess(cmd, work, outR, errR)
	addr := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: port}
	p.addr = addr

	deadline := time.NewTimer(s.cfg.StartTimeout)
	defer deadline.Stop()
	tick := time.NewTicker(25 * time.Millisecond)
	defer tick.Stop()
	for {
		// Waiting for a port to open is inherently a poll; it ends at the
		// first accepted connection, the process's exit, or the timeout.
		if c, err := net.DialTimeout("tcp", addr.String(), time.Second); err == nil {
			c.Close()
			break
		}
		select {
		case <-p.done:
			return nil, s.abort(p, fmt.Sprintf("the app exited (%s) before it listened on port %d", exitText(p.exitErr), port), "", p.exitErr)
		case <-deadline.C:
			return nil, s.abort(p, fmt.Sprintf("the app did not listen on port %d ($PORT) within %s", port, s.cfg.StartTimeout), "", context.DeadlineExceeded)
		case <-ctx.Done():
			return nil, s.abort(p, "start-up cancelled", "", ctx.Err())
		case <-tick.C:
		}
	}
	if err := s.checkPortOwner(port); err != nil {
		return nil, s.abort(p, err.Error(), "", err)
	}
	p.out.stopKeeping()
	p.logger().Info("process ready", "port", port, "startup", time.Since(p.started).Round(time.Millisecond))
	return p, nil
}

// freePort asks the kernel for a free loopback port.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// abort kills a process that failed to start and builds its error.
func (s *Spawner) abort(p *Process, summary, details string, err error) error {
	p.signal(syscall.SIGKILL)
	<-p.done
	p.waitReaders(time.Second)
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

// The lifeline is one pipe for the whole core: every app process gets its
// read end (forked workers inherit it from their preloader) and watches for
// EOF, which comes only when the core has exited, however it died. Its write
// end is never closed while the core lives, so stopping one process (a
// preloader, say) never takes others with it.
var (
	lifelineOnce sync.Once
	lifelineR    *os.File
	lifelineW    *os.File // held, never closed: the kernel closes it when the core exits
	lifelineErr  error
)

// lifeline returns a new read end of the lifeline for one child, to be
// closed once the child has it. It is the same pipe, opened again through
// /proc: a file description of its own, so that one loader setting it
// non-blocking (Node's libuv does) cannot turn another loader's blocking
// read into an error it would take for the core's death.
func lifeline() (*os.File, error) {
	lifelineOnce.Do(func() {
		lifelineR, lifelineW, lifelineErr = os.Pipe()
	})
	if lifelineErr != nil {
		return nil, lifelineErr
	}
	return os.OpenFile(fmt.Sprintf("/proc/self/fd/%d", lifelineR.Fd()), os.O_RDONLY, 0)
}

// Process is one running app process: started by the core (exec) or forked
// by a preloader (then watched through a pidfd).
type Process struct {
	pid         int
	addr        net.Addr
	concurrency int
	wire        int
	wireHead    string
	preloader   bool
	workDir     string
	started     time.Time
	done        chan struct{}
	exitErr     error
	out         *capture
	readers     sync.WaitGroup
	stopOnce    sync.Once
	log         atomic.Pointer[slog.Logger]
	output      atomic.Pointer[slog.Logger] // where its output lines go
	// sendSignal signals the process and its group; valid until done.
	sendSignal func(syscall.Signal) error
	// signalOne signals the process alone (not its children).
	signalOne func(syscall.Signal) error
	// bt reads the backtraces a loader writes on demand; nil for generic
	// apps and preloaders.
	bt *backtraces
	// release frees what watching the process holds (a pidfd).
	release func()
}

// PID is the process id, as the kernel reports it.
func (p *Process) PID() int { return p.pid }

// Addr is where the process serves: a Unix socket, or a loopback TCP port
// for generic apps.
func (p *Process) Addr() net.Addr { return p.addr }

// Concurrency is how many requests the process serves at once; 0 means any
// number.
func (p *Process) Concurrency() int { return p.concurrency }

// Wire is the loader wire the process chose: 0 for HTTP/1.1, else the
// ferry-wire version.
func (p *Process) Wire() int { return p.wire }

// WireHead is the layout of request heads the process chose ("": CGI).
func (p *Process) WireHead() string { return p.wireHead }

// Started is when the process was started.
func (p *Process) Started() time.Time { return p.started }

// Done is closed when the process has exited.
func (p *Process) Done() <-chan struct{} { return p.done }

// ExitErr is how the process exited; valid after Done is closed. Forked
// workers are reaped by their preloader, so theirs is always nil.
func (p *Process) ExitErr() error { return p.exitErr }

func (p *Process) logger() *slog.Logger { return p.log.Load() }

// Stop asks the process group to exit (SIGTERM) and waits; when ctx ends
// first, it kills the group. It then removes the work directory.
func (p *Process) Stop(ctx context.Context) {
	p.stopOnce.Do(func() {
		p.signal(syscall.SIGTERM)
		select {
		case <-p.done:
		case <-ctx.Done():
			p.logger().Warn("process did not exit in time, killing it")
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

// Abort kills a stuck process: SIGQUIT first, on which the Ruby and Python
// loaders print a backtrace of every thread, then SIGKILL a moment later.
func (p *Process) Abort() {
	p.stopOnce.Do(func() {
		p.signal(syscall.SIGQUIT)
		select {
		case <-p.done:
		case <-time.After(time.Second):
			p.signal(syscall.SIGKILL)
			<-p.done
		}
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
	if p.release != nil {
		p.release()
	}
	if p.bt != nil {
		p.bt.close()
	}
	os.RemoveAll(p.workDir)
}

// signal sends sig to the process and its group while it runs; until Done,
// the pid cannot have been reused (exec: not yet reaped; forked: pidfd).
func (p *Process) signal(sig syscall.Signal) {
	select {
	case <-p.done:
		return
	default:
	}
	if err := p.sendSignal(sig); err != nil {
		p.logger().Debug("signal failed", "signal", sig, "error", err)
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
		p.output.Load().Info("app output", "stream", stream, "line", line)
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
