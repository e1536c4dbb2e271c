package instance

import (
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"
)

func TestRunning(t *testing.T) {
	self := StartTicks(os.Getpid())
	if self == 0 {
		t.Fatal("no start time for this process")
	}
	if !Running(os.Getpid(), 0) || !Running(os.Getpid(), self) {
		t.Error("this process: not running")
	}
	if Running(os.Getpid(), self-1) {
		t.Error("this process, for an instance whose core started at another time: running (a reused pid)")
	}
	if Running(0, 0) || Running(-1, 0) {
		t.Error("pid 0 or -1: running")
	}

	// A child that exited and is not reaped yet: a zombie, not running.
	cmd := exec.Command("/bin/true")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pid := cmd.Process.Pid
	for {
		state, _, ok := procStat(pid)
		if !ok {
			t.Fatal("no /proc/PID/stat for an unreaped child")
		}
		if state == 'Z' {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	if syscall.Kill(pid, 0) != nil {
		t.Fatal("kill(zombie, 0) fails: the test proves nothing")
	}
	if Running(pid, 0) {
		t.Error("a zombie: running")
	}
	cmd.Wait()
	if Running(pid, 0) {
		t.Error("a reaped process: running")
	}
}
