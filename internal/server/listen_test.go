package server

import (
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A listener that cannot be opened is an error, never a panic, and the
// listeners opened before it are closed again (their ports free).
func TestListenFailureClosesWhatItOpened(t *testing.T) {
	h, _ := benchHandler(t, helloResp, false, Options{})
	log := slog.New(slog.NewTextHandler(io.Discard, nil))

	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	if _, err := Listen(Config{Addr: taken.Addr().String()}, h, log); err == nil || !strings.Contains(err.Error(), "address already in use") {
		t.Errorf("taken port: err = %v, want address already in use", err)
	}

	// The TCP listener opens, then the socket path (a regular file) fails.
	free, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := free.Addr().String()
	free.Close()
	notSocket := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(notSocket, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Listen(Config{Addr: addr, Socket: notSocket, SocketMode: 0o600}, h, log); err == nil {
		t.Fatal("a socket path that is a regular file: no error")
	}
	again, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("the TCP listener opened before the failure is still open: %v", err)
	}
	again.Close()
}
