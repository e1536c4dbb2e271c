package pool

import (
	"os/exec"
	"syscall"
	"testing"
	"unsafe"
)

func TestParseStat(t *testing.T) {
	for _, tc := range []struct {
		line  string
		state byte
		flags uint64
		ok    bool
	}{
		{"123 (ruby) S 1 123 123 0 -1 4194560 100 0", 'S', 4194560, true},
		{"123 (a) b) (c) R 1 123 123 0 -1 4194308 100 0", 'R', 4194308, true},
		{"123 (node) Z 1 123 123 0 -1 4228108 0 0", 'Z', 4228108, true},
		{"123 (x) S 1 2", 0, 0, false},
		{"garbage", 0, 0, false},
	} {
		state, flags, ok := parseStat([]byte(tc.line))
		if state != tc.state || flags != tc.flags || ok != tc.ok {
			t.Errorf("%q: %c %d %v", tc.line, state, flags, ok)
		}
	}
}

// TestPidExiting asks the kernel about a real process: alive, killed but
// not yet reaped (what the watcher has not seen yet), and reaped.
func TestPidExiting(t *testing.T) {
	cmd := exec.Command("sleep", "60")
	if err := cmd.Start(); err != nil {
		t.Skip(err)
	}
	pid := cmd.Process.Pid
	if pidExiting(pid) {
		t.Fatal("a running process is seen exiting")
	}
	cmd.Process.Kill()
	// Wait for the exit without reaping: the process stays a zombie.
	var info [128]byte
	if _, _, e := syscall.Syscall6(syscall.SYS_WAITID, 1 /* P_PID */, uintptr(pid), uintptr(unsafe.Pointer(&info)), syscall.WEXITED|0x01000000 /* WNOWAIT */, 0, 0); e != 0 {
		t.Fatal(e)
	}
	if !pidExiting(pid) {
		t.Fatal("a killed, unreaped process is not seen exiting")
	}
	cmd.Wait()
	if !pidExiting(pid) {
		t.Fatal("a reaped process is not seen exiting")
	}
}
