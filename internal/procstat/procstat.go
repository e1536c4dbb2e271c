package procstat

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/procfs"
)

// Parsing is github.com/prometheus/procfs's: Proc.Stat finds the comm field
// by its last ')' (a command may contain spaces and parentheses), and
// Proc.ProcSMapsRollup reads smaps_rollup or, on kernels before 4.15, sums
// smaps. It is already in the build through client_golang, and the style
// guide picks it over gopsutil. What it lacks is written here: the statm
// fallback, the boot time read once (StartTime is then stable across reads,
// which Tracker relies on), and the mapping of "process gone" errors to
// os.ErrNotExist. The boot time is the btime line of /proc/stat, picked out
// here rather than with procfs's FS.Stat, which parses every line (per-CPU
// times, all interrupt counters) and fails on any it does not understand.

// userHZ is USER_HZ, the unit of the tick counts in /proc/PID/stat. It is part
// of the /proc ABI and is 100 on every architecture Go supports (procfs makes
// the same assumption).
const userHZ = 100

// Memory is the memory of one process, in bytes.
//
// All fields come from /proc/PID/smaps_rollup (or smaps). When neither can be
// read, because the process belongs to another user and we lack
// CAP_SYS_PTRACE, or because the kernel is built without
// CONFIG_PROC_PAGE_MONITOR, only RSS is set (from /proc/PID/statm) and the
// other fields are zero: a caller wanting "the memory this process costs"
// should use PSS, and RSS when PSS is zero.
type Memory struct {
	// RSS is the resident set size: every resident page mapped, shared or not.
	RSS int64
	// PSS is the proportional set size: private pages plus each shared page
	// divided by the number of processes sharing it. Summed over a preloader
	// and its forked workers it gives their true total.
	PSS int64
	// PrivateClean and PrivateDirty are resident pages mapped by this process
	// only; PrivateDirty is what killing the process frees for sure.
	PrivateClean, PrivateDirty int64
	// SharedClean and SharedDirty are resident pages also mapped by others
	// (libraries, copy-on-write pages from a preloader not yet written).
	SharedClean, SharedDirty int64
	// Swap is anonymous memory swapped out.
	Swap int64
}

// Sample is one reading of one process.
type Sample struct {
	PID    int
	Memory Memory
	// CPUTime is user plus system time consumed so far (utime+stime), at the
	// kernel's resolution of 10ms; children's time is not included.
	CPUTime time.Duration
	// Threads is the number of threads in the process.
	Threads int
	// StartTime is when the process started, to about a second (the kernel
	// gives the boot time in whole seconds). Two samples with the same PID
	// but different StartTime are of different processes.
	StartTime time.Time
	// State is the one-letter state from /proc/PID/stat: R running, S
	// sleeping, D uninterruptible wait, T stopped, t traced, ... (Z, zombie,
	// is never returned: Read reports it as gone).
	State string
	// Command is the command line, arguments separated by spaces, as the
	// process currently shows it (a process may rewrite its argv). It is the
	// kernel's short name (comm, at most 15 bytes) when the command line is
	// empty.
	Command string
}

// Read reads one sample of process pid.
//
// An error for which errors.Is(err, os.ErrNotExist) holds means the process
// is gone: it has exited, whether or not its parent has reaped it yet.
//
// The kernel has no atomic read of several /proc files, so a process that
// exits during Read is reported as gone by whichever file is read next; a pid
// reused between two of Read's file reads (which needs the exit, the reaping
// and pid wrap-around in those microseconds) would mix two processes.
func Read(pid int) (Sample, error) {
	src, err := system()
	if err != nil {
		return Sample{}, fmt.Errorf("read process %d: %w", pid, err)
	}
	return src.read(pid)
}

// system is the real /proc, opened on first use.
var system = sync.OnceValues(func() (*source, error) {
	return newSource(procfs.DefaultMountPoint)
})

// source reads processes under one proc mount; tests point it at a fake tree.
type source struct {
	root string
	fs   procfs.FS
	// boot is the boot time, read once from ROOT/stat.
	boot func() (time.Time, error)
}

func newSource(root string) (*source, error) {
	fs, err := procfs.NewFS(root)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", root, err)
	}
	s := &source{root: root, fs: fs}
	s.boot = sync.OnceValues(func() (time.Time, error) {
		return bootTime(filepath.Join(root, "stat"))
	})
	return s, nil
}

// bootTime reads the btime line ("btime 1700000000", seconds since the
// epoch) of /proc/stat.
func bootTime(path string) (time.Time, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return time.Time{}, fmt.Errorf("read boot time: %w", err)
	}
	for line := range strings.Lines(string(b)) {
		v, ok := strings.CutPrefix(line, "btime ")
		if !ok {
			continue
		}
		sec, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		if err != nil {
			return time.Time{}, fmt.Errorf("read boot time: parse %s: %w", path, err)
		}
		return time.Unix(sec, 0), nil
	}
	return time.Time{}, fmt.Errorf("read boot time: no btime line in %s", path)
}

func (s *source) read(pid int) (Sample, error) {
	smp, err := s.readProc(pid)
	if err != nil {
		return Sample{}, fmt.Errorf("read process %d: %w", pid, err)
	}
	return smp, nil
}

func (s *source) readProc(pid int) (Sample, error) {
	boot, err := s.boot()
	if err != nil {
		return Sample{}, err
	}
	p, err := s.fs.Proc(pid)
	if err != nil {
		return Sample{}, classify(err)
	}
	st, err := p.Stat()
	if err != nil {
		return Sample{}, classify(err)
	}
	if st.State == "Z" {
		return Sample{}, &goneError{errZombie}
	}
	mem, err := s.memory(p)
	if err != nil {
		return Sample{}, err
	}
	args, err := p.CmdLine()
	if err != nil {
		return Sample{}, classify(err)
	}
	cmd := strings.Join(args, " ")
	if cmd == "" {
		cmd = st.Comm
	}
	return Sample{
		PID:       pid,
		Memory:    mem,
		CPUTime:   ticks(uint64(st.UTime) + uint64(st.STime)),
		Threads:   st.NumThreads,
		StartTime: boot.Add(ticks(st.Starttime)),
		State:     st.State,
		Command:   cmd,
	}, nil
}

// memory reads smaps_rollup (procfs falls back to smaps itself), and statm
// for RSS alone when neither may or can be read.
func (s *source) memory(p procfs.Proc) (Memory, error) {
	r, err := p.ProcSMapsRollup()
	switch {
	case err == nil:
		return Memory{
			RSS:          int64(r.Rss),
			PSS:          int64(r.Pss),
			PrivateClean: int64(r.PrivateClean),
			PrivateDirty: int64(r.PrivateDirty),
			SharedClean:  int64(r.SharedClean),
			SharedDirty:  int64(r.SharedDirty),
			Swap:         int64(r.Swap),
		}, nil
	case errors.Is(err, syscall.ESRCH):
		// The task exists no more, or has no memory left (exiting).
		return Memory{}, &goneError{err}
	case errors.Is(err, os.ErrPermission), errors.Is(err, os.ErrNotExist):
		// ENOENT is either a kernel without smaps or a process that just
		// exited; statm tells which.
		rss, err := s.statmRSS(p.PID)
		if err != nil {
			return Memory{}, classify(err)
		}
		return Memory{RSS: rss}, nil
	default:
		return Memory{}, err
	}
}

// statmRSS reads the resident field (in pages) of /proc/PID/statm, which
// anyone may read.
func (s *source) statmRSS(pid int) (int64, error) {
	path := filepath.Join(s.root, strconv.Itoa(pid), "statm")
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	f := strings.Fields(string(b))
	if len(f) < 2 {
		return 0, fmt.Errorf("parse %s: %d fields, want at least 2", path, len(f))
	}
	pages, err := strconv.ParseInt(f[1], 10, 64)
	if err != nil || pages < 0 {
		return 0, fmt.Errorf("parse %s: bad resident field %q", path, f[1])
	}
	return pages * int64(os.Getpagesize()), nil
}

func ticks(n uint64) time.Duration {
	return time.Duration(n) * (time.Second / userHZ)
}

var errZombie = errors.New("exited, not yet reaped (zombie)")

// goneError is a read that failed because the process has exited.
type goneError struct{ err error }

func (e *goneError) Error() string        { return "process gone: " + e.err.Error() }
func (e *goneError) Unwrap() error        { return e.err }
func (e *goneError) Is(target error) bool { return target == os.ErrNotExist }

// classify turns the errors a vanished process produces into a goneError:
// ENOENT once /proc/PID is removed, ESRCH when the task goes away between
// open and read.
func classify(err error) error {
	if errors.Is(err, os.ErrNotExist) || errors.Is(err, syscall.ESRCH) {
		return &goneError{err}
	}
	return err
}
