package sdnotify

import (
	"errors"
	"os"
	"os/exec"
	"testing"
	"time"
)

// childEnv makes this test binary a child for TestStartChild: "ready"
// notifies READY=1 and stays, "exit" exits 3 first, "silent" never says
// anything.
const childEnv = "SDNOTIFY_TEST_CHILD"

func TestMain(m *testing.M) {
	switch os.Getenv(childEnv) {
	case "":
		os.Exit(m.Run())
	case "ready":
		if os.Getenv("KEPT") != "yes" {
			os.Exit(4) // cmd.Env was not kept
		}
		Notify("STATUS=starting")
		Notify("READY=1")
	case "exit":
		os.Exit(3)
	}
	time.Sleep(time.Minute)
	os.Exit(0)
}

func TestStartChild(t *testing.T) {
	start := func(t *testing.T, mode string) *Child {
		cmd := exec.Command(os.Args[0])
		// An inherited NOTIFY_SOCKET (systemd's) must not win over the child's own.
		cmd.Env = append(os.Environ(), "NOTIFY_SOCKET=/nonexistent", childEnv+"="+mode, "KEPT=yes")
		c, err := StartChild(cmd)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	t.Run("ready", func(t *testing.T) {
		c := start(t, "ready")
		if err := c.WaitReady(time.Minute); err != nil {
			t.Fatal(err)
		}
		select {
		case err := <-c.Exited:
			t.Fatalf("the child exited: %v", err)
		default:
		}
		if _, err := os.Stat(c.dir); !os.IsNotExist(err) {
			t.Errorf("notify socket's directory left behind: %v", err)
		}
		c.Cmd.Process.Kill()
		<-c.Exited
	})
	t.Run("exited", func(t *testing.T) {
		c := start(t, "exit")
		err := c.WaitReady(time.Minute)
		ee, ok := errors.AsType[*ExitError](err)
		if !ok {
			t.Fatalf("got %v, want an *ExitError", err)
		}
		if xe, ok := errors.AsType[*exec.ExitError](ee.Err); !ok || xe.ExitCode() != 3 {
			t.Fatalf("got %v, want exit status 3", ee.Err)
		}
	})
	t.Run("timeout kills", func(t *testing.T) {
		c := start(t, "silent")
		if err := c.WaitReady(50 * time.Millisecond); !errors.Is(err, ErrTimeout) {
			t.Fatalf("got %v, want ErrTimeout", err)
		}
		select {
		case err := <-c.Exited:
			if xe, ok := errors.AsType[*exec.ExitError](err); !ok || xe.ExitCode() != -1 {
				t.Fatalf("child ended with %v, want killed", err)
			}
		case <-time.After(time.Minute):
			t.Fatal("the child was not killed")
		}
	})
}
