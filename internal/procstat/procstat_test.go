package procstat

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// childEnv makes the test binary, re-executed, act as a child process
// instead of running the tests (see runChild).
const childEnv = "FERRY_PROCSTAT_CHILD"

func TestMain(m *testing.M) {
	if mode, ok := os.LookupEnv(childEnv); ok {
		runChild(mode)
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// runChild allocates and dirties the number of MiB given by mode, prints
// "ready" and waits for its stdin to close.
func runChild(mode string) {
	mib, err := strconv.Atoi(mode)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bad child mode:", mode)
		os.Exit(2)
	}
	mem := make([]byte, mib<<20)
	for i := 0; i < len(mem); i += os.Getpagesize() {
		mem[i] = 1
	}
	fmt.Println("ready")
	io.Copy(io.Discard, os.Stdin)
	_ = mem[len(mem)/2] // keep it alive until here
}

// startChild starts the test binary as a child holding mib MiB of dirty
// private memory, and waits until it has. The child exits when the test
// ends (its stdin closes), or when the test binary dies (Pdeathsig).
func startChild(t *testing.T, mib int, args ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), childEnv+"="+strconv.Itoa(mib))
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		stdin.Close()
		cmd.Wait() // already reaped by a test that killed it: harmless error
	})
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || line != "ready\n" {
		t.Fatalf("child did not get ready: %q, %v", line, err)
	}
	return cmd
}

func TestReadSelf(t *testing.T) {
	before := time.Now()
	s, err := Read(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if s.PID != os.Getpid() {
		t.Errorf("PID = %d, want %d", s.PID, os.Getpid())
	}
	checkMemory(t, s.Memory)
	if s.Memory.PrivateDirty == 0 {
		t.Errorf("PrivateDirty = 0, want > 0 (the Go heap)")
	}
	if s.Threads < 2 {
		t.Errorf("Threads = %d, want ≥ 2 for a Go program", s.Threads)
	}
	// The state is the main thread's, which in a Go program may be asleep.
	if s.State != "R" && s.State != "S" {
		t.Errorf("State = %q, want R or S", s.State)
	}
	if !strings.HasPrefix(s.Command, os.Args[0]) {
		t.Errorf("Command = %q, want it to start with %q", s.Command, os.Args[0])
	}
	if s.StartTime.After(before) || s.StartTime.Before(before.Add(-time.Hour)) {
		t.Errorf("StartTime = %v, want shortly before %v", s.StartTime, before)
	}
}

func TestReadChild(t *testing.T) {
	const mib = 64
	before := time.Now()
	cmd := startChild(t, mib, "arg one", "two")
	after := time.Now()

	s, err := Read(cmd.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	checkMemory(t, s.Memory)
	if s.Memory.PrivateDirty < mib<<20 {
		t.Errorf("PrivateDirty = %d, want ≥ %d (the child dirtied %d MiB)", s.Memory.PrivateDirty, mib<<20, mib)
	}
	if want := strings.Join(cmd.Args, " "); s.Command != want {
		t.Errorf("Command = %q, want %q", s.Command, want)
	}
	if s.State != "S" && s.State != "R" {
		t.Errorf("State = %q, want S (about to block reading stdin) or R", s.State)
	}
	// The boot time has whole-second precision and start times 10ms ticks.
	const slack = 2 * time.Second
	if s.StartTime.Before(before.Add(-slack)) || s.StartTime.After(after.Add(slack)) {
		t.Errorf("StartTime = %v, want between %v and %v", s.StartTime, before, after)
	}

	again, err := Read(cmd.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	if !again.StartTime.Equal(s.StartTime) {
		t.Errorf("StartTime changed between reads: %v, then %v", s.StartTime, again.StartTime)
	}
}

// checkMemory checks what must hold of any process with memory.
func checkMemory(t *testing.T, m Memory) {
	t.Helper()
	if m.RSS <= 0 || m.PSS <= 0 || m.PSS > m.RSS {
		t.Errorf("RSS = %d, PSS = %d, want 0 < PSS ≤ RSS", m.RSS, m.PSS)
	}
	if sum := m.PrivateClean + m.PrivateDirty + m.SharedClean + m.SharedDirty; sum != m.RSS {
		t.Errorf("private + shared = %d, want RSS = %d (%+v)", sum, m.RSS, m)
	}
}

func TestReadGone(t *testing.T) {
	cmd := startChild(t, 0)
	pid := cmd.Process.Pid
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}

	// Exited but not reaped: a zombie, whose memory is already gone.
	var info unix.Siginfo
	if err := unix.Waitid(unix.P_PID, pid, &info, unix.WEXITED|unix.WNOWAIT, nil); err != nil {
		t.Fatal(err)
	}
	_, err := Read(pid)
	if !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("Read of a zombie: err = %v, want os.ErrNotExist", err)
	}
	t.Logf("zombie: %v", err)

	cmd.Wait()
	_, err = Read(pid)
	if !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("Read of a reaped process: err = %v, want os.ErrNotExist", err)
	}
	t.Logf("reaped: %v", err)
}

// statLine is a /proc/PID/stat line for pid and comm, with utime 150,
// stime 50, 3 threads and a start time 12345 ticks after boot.
func statLine(pid int, comm, state string) string {
	return fmt.Sprintf("%d (%s) %s 1 %d %d 0 -1 4194560 100 0 0 0 150 50 0 0 20 0 3 0 12345 "+
		"1000000 512 18446744073709551615 1 1 0 0 0 0 0 4096 0 0 0 0 17 0 0 0 0 0 0 0 0 0 0 0 0 0\n",
		pid, comm, state, pid, pid)
}

const smapsRollup = `55d1c0a6e000-7ffd3a1f2000 ---p 00000000 00:00 0                          [rollup]
Rss:                2048 kB
Pss:                1024 kB
Pss_Anon:            640 kB
Pss_File:            384 kB
Pss_Shmem:             0 kB
Shared_Clean:        512 kB
Shared_Dirty:          0 kB
Private_Clean:       256 kB
Private_Dirty:      1280 kB
Referenced:         2048 kB
Anonymous:          1280 kB
KSM:                   0 kB
LazyFree:              0 kB
AnonHugePages:         0 kB
Swap:                 64 kB
SwapPss:              32 kB
Locked:                0 kB
`

// smaps is smapsRollup's totals split over two mappings, as a kernel before
// 4.15 (without smaps_rollup) shows them.
const smaps = `55d1c0a6e000-55d1c0a70000 r--p 00000000 08:01 1234                       /usr/bin/app
Size:               1024 kB
Rss:                1024 kB
Pss:                 512 kB
Shared_Clean:        512 kB
Shared_Dirty:          0 kB
Private_Clean:       256 kB
Private_Dirty:       256 kB
Referenced:         1024 kB
Anonymous:             0 kB
Swap:                  0 kB
SwapPss:               0 kB
THPeligible:    0
VmFlags: rd mr mw me sd
7ffd3a1d1000-7ffd3a1f2000 rw-p 00000000 00:00 0                          [stack]
Size:               1024 kB
Rss:                1024 kB
Pss:                 512 kB
Shared_Clean:          0 kB
Shared_Dirty:          0 kB
Private_Clean:         0 kB
Private_Dirty:      1024 kB
Referenced:         1024 kB
Anonymous:          1024 kB
Swap:                 64 kB
SwapPss:              32 kB
THPeligible:    0
VmFlags: rd wr mr mw me gd ac
`

// TestReadFake reads fake /proc trees for what a live process cannot be made
// to show here: old kernels, unreadable smaps, odd command names.
func TestReadFake(t *testing.T) {
	const btime = 1700000000
	full := Memory{
		RSS: 2048 << 10, PSS: 1024 << 10,
		SharedClean: 512 << 10, PrivateClean: 256 << 10, PrivateDirty: 1280 << 10,
		Swap: 64 << 10,
	}
	tests := []struct {
		name    string
		files   map[string]string // under ROOT/42/
		want    Sample
		wantErr error // nil: want no error
	}{{
		name: "smaps_rollup",
		files: map[string]string{
			"stat":         statLine(42, "ruby", "S"),
			"smaps_rollup": smapsRollup,
			"cmdline":      "Passenger AppPreloader: /srv/app\x00\x00\x00",
		},
		want: Sample{
			PID: 42, Memory: full, CPUTime: 2 * time.Second, Threads: 3,
			StartTime: time.Unix(btime, 0).Add(123450 * time.Millisecond),
			State:     "S", Command: "Passenger AppPreloader: /srv/app",
		},
	}, {
		name: "smaps without smaps_rollup",
		files: map[string]string{
			"stat":    statLine(42, "python3", "R"),
			"smaps":   smaps,
			"cmdline": "python3\x00wsgi.py\x00",
		},
		want: Sample{
			PID: 42, Memory: full, CPUTime: 2 * time.Second, Threads: 3,
			StartTime: time.Unix(btime, 0).Add(123450 * time.Millisecond),
			State:     "R", Command: "python3 wsgi.py",
		},
	}, {
		name: "statm only, and comm when cmdline is empty",
		files: map[string]string{
			"stat":    statLine(42, "we(ird) )name", "D"),
			"statm":   "5000 300 100 10 0 2000 0\n",
			"cmdline": "",
		},
		want: Sample{
			PID: 42, Memory: Memory{RSS: 300 * int64(os.Getpagesize())}, CPUTime: 2 * time.Second, Threads: 3,
			StartTime: time.Unix(btime, 0).Add(123450 * time.Millisecond),
			State:     "D", Command: "we(ird) )name",
		},
	}, {
		name: "zombie",
		files: map[string]string{
			"stat":         statLine(42, "node", "Z"),
			"smaps_rollup": "",
			"cmdline":      "",
		},
		wantErr: os.ErrNotExist,
	}, {
		name:    "no such pid",
		wantErr: os.ErrNotExist,
	}, {
		name: "gone before statm",
		files: map[string]string{
			"stat": statLine(42, "node", "S"),
		},
		wantErr: os.ErrNotExist,
	}, {
		name: "bad statm",
		files: map[string]string{
			"stat":  statLine(42, "node", "S"),
			"statm": "5000\n",
		},
		wantErr: errAny,
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			writeFile(t, filepath.Join(root, "stat"), fmt.Sprintf("cpu  1 2 3 4\nbtime %d\nprocesses 7\n", btime))
			if tc.files != nil {
				for name, content := range tc.files {
					writeFile(t, filepath.Join(root, "42", name), content)
				}
			}
			src, err := newSource(root)
			if err != nil {
				t.Fatal(err)
			}
			got, err := src.read(42)
			switch {
			case tc.wantErr == errAny && err != nil:
				t.Logf("err = %v", err)
				if errors.Is(err, os.ErrNotExist) {
					t.Errorf("err = %v, want one that is not os.ErrNotExist", err)
				}
				return
			case tc.wantErr != nil:
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("err = %v, want %v", err, tc.wantErr)
				}
				t.Logf("err = %v", err)
				return
			case err != nil:
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("got  %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

// errAny as a wantErr means any error that is not os.ErrNotExist.
var errAny = errors.New("any error")

func TestBootTimeErrors(t *testing.T) {
	for name, content := range map[string]string{
		"no btime":  "cpu 1 2 3 4\n",
		"bad btime": "btime soon\n",
	} {
		t.Run(name, func(t *testing.T) {
			root := t.TempDir()
			writeFile(t, filepath.Join(root, "stat"), content)
			writeFile(t, filepath.Join(root, "42", "stat"), statLine(42, "x", "S"))
			src, err := newSource(root)
			if err != nil {
				t.Fatal(err)
			}
			_, err = src.read(42)
			if err == nil || errors.Is(err, os.ErrNotExist) {
				t.Fatalf("err = %v, want a boot time error", err)
			}
			t.Logf("err = %v", err)
		})
	}
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func BenchmarkRead(b *testing.B) {
	pid := os.Getpid()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Read(pid); err != nil {
			b.Fatal(err)
		}
	}
}
