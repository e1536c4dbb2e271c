package sdnotify

import (
	"path/filepath"
	"testing"
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
