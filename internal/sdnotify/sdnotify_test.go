package sdnotify

import (
	"errors"
	"path/filepath"
	"testing"
	"time"
)

func TestNotify(t *testing.T) {
	l, err := Listen(filepath.Join(t.TempDir(), "notify.sock"))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	t.Setenv("NOTIFY_SOCKET", l.Path())
	if err := Notify("READY=1\nSTATUS=serving 2 apps"); err != nil {
		t.Fatal(err)
	}
	f, err := l.Next()
	if err != nil || f["READY"] != "1" || f["STATUS"] != "serving 2 apps" {
		t.Fatalf("got %v, %v", f, err)
	}
}

func TestNoSocketIsFine(t *testing.T) {
	t.Setenv("NOTIFY_SOCKET", "")
	if err := Notify("READY=1"); err != nil {
		t.Fatal(err)
	}
}

// TestWaitReady: READY=1 ends the wait (other notifications do not); a
// child's exit or the timeout ends it with their errors.
func TestWaitReady(t *testing.T) {
	listen := func(t *testing.T) *Listener {
		l, err := Listen(filepath.Join(t.TempDir(), "n"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { l.Close() })
		return l
	}
	t.Run("ready", func(t *testing.T) {
		l := listen(t)
		NotifySocket(l.Path(), "STATUS=starting")
		NotifySocket(l.Path(), "READY=1")
		if err := l.WaitReady(make(chan error), time.Minute); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("exited", func(t *testing.T) {
		l := listen(t)
		exited := make(chan error, 1)
		exited <- errors.New("exit status 1")
		var ee *ExitError
		if err := l.WaitReady(exited, time.Minute); !errors.As(err, &ee) || ee.Err.Error() != "exit status 1" {
			t.Fatalf("got %v, want the exit", err)
		}
	})
	t.Run("timeout", func(t *testing.T) {
		l := listen(t)
		NotifySocket(l.Path(), "STATUS=still starting")
		if err := l.WaitReady(make(chan error), 10*time.Millisecond); !errors.Is(err, ErrTimeout) {
			t.Fatalf("got %v, want ErrTimeout", err)
		}
	})
}
