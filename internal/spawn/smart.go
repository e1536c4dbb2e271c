package spawn

import (
	"bufio"
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
	fail := func(summary string, err error) error {
		return &Error{App: s.cfg.App, Summary: summary, Err: err}
	}
	n := s.seq.Add(1)
	work, err := s.makeWorkDir(s.cfg.App + "." + strconv.FormatUint(n, 10))
	if err != nil {
		return nil, fail("cannot create work directory", err)
	}
	socket := filepath.Join(work, "sock")
	var pipes [3][2]*os.File // stdout, stderr, status: read, write
	for i := range pipes {
		r, w, err := os.Pipe()
		if err != nil {
			for j := range i {
				pipes[j][0].Close()
				pipes[j][1].Close()
			}
			os.RemoveAll(work)
			return nil, fail("cannot create pipes", err)
		}
		pipes[i] = [2]*os.File{r, w}
	}
	statusR := pipes[2][0]
	keepStatus := false // a ready worker keeps it for backtraces
	defer func() {
		if !keepStatus {
			statusR.Close()
		}
	}()

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
	go p.pipeLines(pipes[0][0], "stdout")
	go p.pipeLines(pipes[1][0], "stderr")

	err = sendSpawn(pre.Addr().String(), socket, pipes[0][1], pipes[1][1], pipes[2][1])
	pipes[0][1].Close()
	pipes[1][1].Close()
	pipes[2][1].Close()
	if err != nil {
		os.RemoveAll(work)
		return nil, fail("cannot reach the preloader", err)
	}

	lines := make(chan []byte, 1)
	statusBuf := bufio.NewReaderSize(statusR, 4096)
	go func() {
		line, _ := statusBuf.ReadBytes('\n')
		lines <- line
	}()
	timer := time.NewTimer(s.cfg.StartTimeout)
	defer timer.Stop()
	var line []byte
	select {
	case line = <-lines:
	case <-pre.Done():
		err = errors.New("the preloader exited while forking a worker")
	case <-timer.C:
		err = fmt.Errorf("the worker did not start within %s", s.cfg.StartTimeout)
	case <-ctx.Done():
		err = ctx.Err()
	}
	forkFailed := func(summary, details string, err error) error {
		// Whatever was forked must not live on: find it by its socket —
		// but kill it only if it is the preloader's child and the app's,
		// never whatever process the app pointed its socket at. The work
		// directory is taken back first and the socket checked, so the
		// look-up never connects through a symlink the app planted there
		// (to the preloader's control socket, say, or the admin socket).
		if s.lockWorkDir(work, socket) == nil {
			if pid, pidfd, perr := s.worker(socket, pre.PID()); perr == nil {
				unix.PidfdSendSignal(int(pidfd.Fd()), syscall.SIGKILL, nil, 0)
				syscall.Kill(-pid, syscall.SIGKILL)
				pidfd.Close()
			}
		}
		p.waitReaders(time.Second)
		os.RemoveAll(work)
		s.log.Error("spawn failed", "app", s.cfg.App, "preloader", pre.PID(), "error", summary)
		return &Error{App: s.cfg.App, Summary: summary, Details: details, Output: p.out.String(), Err: err}
	}
	if err != nil {
		return nil, forkFailed(err.Error(), "", err)
	}
	if len(line) == 0 {
		return nil, forkFailed("the worker exited before it was ready", "", nil)
	}
	h, err := ParseHandshake(line)
	if err != nil {
		return nil, forkFailed(err.Error(), "", err)
	}
	if h.Status == "error" {
		return nil, forkFailed(h.Summary, h.Details, nil)
	}

	// The pid comes from the kernel, not from anything the worker said,
	// and the socket from a directory the app no longer controls.
	if err := s.lockWorkDir(work, socket); err != nil {
		return nil, forkFailed("unsafe work directory: "+err.Error(), "", err)
	}
	pid, pidfd, err := s.worker(socket, pre.PID())
	if err != nil {
		return nil, forkFailed("cannot identify the worker process: "+err.Error(), "", err)
	}
	if err := p.watchPidfd(pid, pidfd); err != nil {
		pidfd.Close()
		return nil, forkFailed("cannot watch the worker process", "", err)
	}
	p.concurrency = h.Concurrency
	p.bt = watchBacktraces(statusR, statusBuf)
	keepStatus = true
	p.log.Store(s.log.With("app", s.cfg.App, "pid", pid))
	p.output.Store(s.cfg.Output.With("app", s.cfg.App, "pid", pid))
	p.out.stopKeeping()
	p.logger().Info("process ready", "preloader", pre.PID(), "startup", time.Since(p.started).Round(time.Millisecond))
	return p, nil
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
