package pid1

import (
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"testing"
)

func TestParent(t *testing.T) {
	if got := parent("/proc/" + strconv.Itoa(os.Getpid())); got != os.Getppid() {
		t.Errorf("parent of self = %d, want %d", got, os.Getppid())
	}
	if got := parent("/proc/nonexistent"); got != 0 {
		t.Errorf("parent of nothing = %d", got)
	}
}

// The successor is found among our children by its arguments; a child
// with other arguments is not it.
func TestSuccessor(t *testing.T) {
	other := exec.Command("sleep", "60")
	same := exec.Command("sleep", "61")
	for _, c := range []*exec.Cmd{other, same} {
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Process.Kill(); c.Wait() })
	}
	if got := successor([]string{"61"}); got != same.Process.Pid {
		t.Errorf("successor = %d, want %d", got, same.Process.Pid)
	}
	if got := successor([]string{"62"}); got != 0 {
		t.Errorf("successor with no such child = %d", got)
	}
}

func TestExitStatus(t *testing.T) {
	c := exec.Command("sh", "-c", "exit 3")
	c.Run()
	if got := exitStatus(c.ProcessState.Sys().(syscall.WaitStatus)); got != 3 {
		t.Errorf("exit 3 → %d", got)
	}
	c = exec.Command("sh", "-c", "kill -TERM $$")
	c.Run()
	if got := exitStatus(c.ProcessState.Sys().(syscall.WaitStatus)); got != 128+15 {
		t.Errorf("SIGTERM → %d", got)
	}
}
