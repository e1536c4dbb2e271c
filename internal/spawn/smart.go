package spawn

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Smart spawns workers by forking them from a preloader that has loaded the
// app once, so that workers share its memory copy-on-write and start in
// milliseconds. The preloader is started on the first spawn, restarted when
// it has died, and stopped after IdleTime without spawns.
type Smart struct {
	sp       *Spawner
	idleTime time.Duration

	mu    sync.Mutex
	pre   *Process
	timer *time.Timer
}

// Smart returns a smart spawner for s's app; idle > 0 stops an unused
// preloader after that long.
func (s *Spawner) Smart(idle time.Duration) *Smart {
	return &Smart{sp: s, idleTime: idle}
}

// Spawn forks one worker, starting the preloader first if needed.
func (m *Smart) Spawn(ctx context.Context) (*Process, error) {
	// A slot first, outside the lock: waiting for one must not hold up
	// Stop (a restart).
	release, err := m.sp.slot(ctx)
	if err != nil {
		return nil, err
	}
	w, err := m.spawn(ctx)
	if err != nil {
		release()
		return nil, err
	}
	go func() { <-w.done; release() }()
	return w, nil
}

func (m *Smart) spawn(ctx context.Context) (*Process, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for attempt := 0; ; attempt++ {
		pre, err := m.preloaderLocked(ctx)
		if err != nil {
			return nil, err
		}
		w, err := m.sp.fork(ctx, pre)
		if err != nil {
			select {
			case <-pre.Done():
				// The preloader died under us: a new one, once.
				if attempt == 0 {
					continue
				}
			default:
			}
			return nil, err
		}
		m.armIdleLocked(pre)
		return w, nil
	}
}

// Preloader is the running preloader's pid, or 0.
func (m *Smart) Preloader() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.pre == nil {
		return 0
	}
	select {
	case <-m.pre.Done():
		return 0
	default:
		return m.pre.PID()
	}
}

// Stop stops the preloader, if any; the next Spawn starts a new one (which
// loads the app afresh: this is how a restart picks up new code).
func (m *Smart) Stop(ctx context.Context) {
	m.mu.Lock()
	pre := m.pre
	m.pre = nil
	if m.timer != nil {
		m.timer.Stop()
		m.timer = nil
	}
	m.mu.Unlock()
	if pre != nil {
		pre.Stop(ctx)
	}
}

func (m *Smart) preloaderLocked(ctx context.Context) (*Process, error) {
	if m.pre != nil {
		select {
		case <-m.pre.Done():
			m.pre.logger().Warn("preloader exited; starting a new one")
			m.pre.Reap()
			m.pre = nil
		default:
			return m.pre, nil
		}
	}
	s := m.sp
	n := s.seq.Add(1)
	work, err := s.makeWorkDir(s.cfg.App + ".preloader." + strconv.FormatUint(n, 10))
	if err != nil {
		return nil, &Error{App: s.cfg.App, Summary: "cannot create work directory", Err: err}
	}
	pre, err := s.start(ctx, work, []string{"FERRY_SPAWN_METHOD=smart"})
	if err != nil {
		os.RemoveAll(work)
		return nil, err
	}
	if !pre.preloader {
		pre.Kill()
		return nil, &Error{App: s.cfg.App, Summary: "the loader does not support smart spawning; use --spawn-method direct"}
	}
	m.pre = pre
	return pre, nil
}

func (m *Smart) armIdleLocked(pre *Process) {
	if m.idleTime <= 0 {
		return
	}
	if m.timer != nil {
		m.timer.Stop()
	}
	m.timer = time.AfterFunc(m.idleTime, func() {
		m.mu.Lock()
		if m.pre != pre {
			m.mu.Unlock()
			return
		}
		m.pre, m.timer = nil, nil
		m.mu.Unlock()
		pre.logger().Info("stopping idle preloader", "idle", m.idleTime)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		pre.Stop(ctx)
	})
}

// fork asks the preloader for a worker: a spawn command on its control
// socket with the worker's stdout, stderr and status pipes attached.
func (s *Spawner) fork(ctx context.Context, pre *Process) (*Process, error) {
	n := s.seq.Add(1)
	work, err := s.makeWorkDir(s.cfg.App + "." + strconv.FormatUint(n, 10))
	if err != nil {
		return nil, s.failed("cannot create work directory", err)
	}
	socket := filepath.Join(work, "sock")
	pipes, err := openPipes(3) // stdout, stderr, status
	if err != nil {
		os.RemoveAll(work)
		return nil, s.failed("cannot create pipes", err)
	}
	statusR := pipes[2][0]
	keepStatus := false // a ready worker keeps it for backtraces
	defer func() {
		if !keepStatus {
			statusR.Close()
		}
	}()
	p := s.newForkedProcess(pre, work, socket, pipes[0][0], pipes[1][0])
	err = sendSpawn(pre.Addr().String(), socket, pipes[0][1], pipes[1][1], pipes[2][1])
	closeWriteEnds(pipes)
	if err != nil {
		os.RemoveAll(work)
		return nil, s.failed("cannot reach the preloader", err)
	}

	statusBuf, lines := readStatusLine(statusR)
	h, err := s.awaitForked(ctx, pre, p, lines)
	if err != nil {
		return nil, err
	}
	pid, err := s.adoptWorker(pre, p)
	if err != nil {
		return nil, err
	}
	p.concurrency = h.Concurrency
	p.wire, p.wireHead = h.Wire, h.Head
	p.bt = watchBacktraces(statusR, statusBuf)
	keepStatus = true
	p.log.Store(s.log.With("app", s.cfg.App, "pid", pid))
	p.output.Store(s.cfg.Output.With("app", s.cfg.App, "pid", pid))
	p.out.stopKeeping()
	p.logger().Info("process ready", "preloader", pre.PID(), "startup", time.Since(p.started).Round(time.Millisecond))
	return p, nil
}

// newForkedProcess is the Process of a worker pre is asked to fork, its
// output read from outR and errR; its pid is known only once it is ready.
func (s *Spawner) newForkedProcess(pre *Process, work, socket string, outR, errR *os.File) *Process {
	p := &Process{
		workDir: work,
		addr:    &net.UnixAddr{Name: socket, Net: "unix"},
		done:    make(chan struct{}),
		out:     newCapture(s.cfg.KeepOutput),
		started: time.Now(),
	}
	p.log.Store(s.log.With("app", s.cfg.App, "preloader", pre.PID()))
	p.output.Store(s.cfg.Output.With("app", s.cfg.App, "preloader", pre.PID()))
	p.readers.Add(2)
	go p.pipeLines(outR, "stdout")
	go p.pipeLines(errR, "stderr")
	return p
}

// awaitForked waits for the status line of the worker p, up to
// --start-timeout: the handshake of a ready worker, or the Error of one
// that failed (and has been killed).
func (s *Spawner) awaitForked(ctx context.Context, pre, p *Process, lines <-chan []byte) (handshake, error) {
	timer := time.NewTimer(s.cfg.StartTimeout)
	defer timer.Stop()
	var line []byte
	var err error
	select {
	case line = <-lines:
	case <-pre.Done():
		err = errors.New("the preloader exited while forking a worker")
	case <-timer.C:
		err = fmt.Errorf("the worker did not start within %s", s.cfg.StartTimeout)
	case <-ctx.Done():
		err = ctx.Err()
	}
	if err != nil {
		return handshake{}, s.forkFailed(pre, p, err.Error(), "", err)
	}
	if len(line) == 0 {
		return handshake{}, s.forkFailed(pre, p, "the worker exited before it was ready", "", nil)
	}
	h, err := ParseHandshake(line)
	if err != nil {
		return h, s.forkFailed(pre, p, err.Error(), "", err)
	}
	if h.Status == "error" {
		return h, s.forkFailed(pre, p, h.Summary, h.Details, nil)
	}
	return h, nil
}

// adoptWorker finds the ready worker p and watches it: its pid comes from
// the kernel, not from anything the worker said, and its socket from a
// directory the app no longer controls.
func (s *Spawner) adoptWorker(pre, p *Process) (int, error) {
	socket := p.addr.(*net.UnixAddr).Name
	if err := s.lockWorkDir(p.workDir, socket); err != nil {
		return 0, s.forkFailed(pre, p, "unsafe work directory: "+err.Error(), "", err)
	}
	pid, pidfd, err := s.worker(socket, pre.PID())
	if err != nil {
		return 0, s.forkFailed(pre, p, "cannot identify the worker process: "+err.Error(), "", err)
	}
	if err := p.watchPidfd(pid, pidfd); err != nil {
		pidfd.Close()
		return 0, s.forkFailed(pre, p, "cannot watch the worker process", "", err)
	}
	return pid, nil
}

// forkFailed kills whatever pre forked for p, removes its work directory,
// and builds the Error.
func (s *Spawner) forkFailed(pre, p *Process, summary, details string, err error) error {
	// Find the worker by its socket — but kill it only if it is the
	// preloader's child and the app's, never whatever process the app
	// pointed its socket at. The work directory is taken back first and
	// the socket checked, so the look-up never connects through a symlink
	// the app planted there (to the preloader's control socket, say, or
	// the admin socket).
	socket := p.addr.(*net.UnixAddr).Name
	if s.lockWorkDir(p.workDir, socket) == nil {
		if pid, pidfd, perr := s.worker(socket, pre.PID()); perr == nil {
			unix.PidfdSendSignal(int(pidfd.Fd()), syscall.SIGKILL, nil, 0)
			syscall.Kill(-pid, syscall.SIGKILL)
			pidfd.Close()
		}
	}
	p.waitReaders(time.Second)
	os.RemoveAll(p.workDir)
	s.log.Error("spawn failed", "app", s.cfg.App, "preloader", pre.PID(), "error", summary)
	return &Error{App: s.cfg.App, Summary: summary, Details: details, Output: p.out.String(), Err: err}
}

// sendSpawn writes the spawn command with the three fds attached.
func sendSpawn(control, socket string, stdout, stderr, status *os.File) error {
	c, err := net.DialUnix("unix", nil, &net.UnixAddr{Name: control, Net: "unix"})
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	line, err := json.Marshal(struct {
		Command string `json:"command"`
		Socket  string `json:"socket"`
	}{"spawn", socket})
	if err != nil {
		return err
	}
	line = append(line, '\n')
	rights := syscall.UnixRights(int(stdout.Fd()), int(stderr.Fd()), int(status.Fd()))
	_, _, err = c.WriteMsgUnix(line, rights, nil)
	return err
}

// watchPidfd follows a process that is not our child through its pidfd
// f (non-blocking), which it then owns: a pidfd becomes readable when the
// process exits, and signals sent through it cannot reach a process that
// reused the pid.
func (p *Process) watchPidfd(pid int, f *os.File) error {
	raw, err := f.SyscallConn()
	if err != nil {
		return err
	}
	p.pid = pid
	p.signalOne = func(sig syscall.Signal) error {
		var err error
		raw.Control(func(fd uintptr) {
			err = unix.PidfdSendSignal(int(fd), sig, nil, 0)
		})
		return err
	}
	p.sendSignal = func(sig syscall.Signal) error {
		var err error
		raw.Control(func(fd uintptr) {
			err = unix.PidfdSendSignal(int(fd), sig, nil, 0)
		})
		// The worker is its own process group (setsid): its children too.
		syscall.Kill(-pid, sig)
		return err
	}
	p.release = func() { f.Close() }
	go func() {
		// The runtime poller parks this goroutine until the pidfd is
		// readable, which happens exactly when the process exits.
		raw.Read(func(fd uintptr) bool {
			fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
			n, _ := unix.Poll(fds, 0)
			return n > 0
		})
		close(p.done)
	}()
	return nil
}
