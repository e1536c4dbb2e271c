package integration

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestSocketActivation passes Ferry its listening socket the way systemd
// does (fd 3, LISTEN_FDS=1, LISTEN_PID = its pid), and shows what that is
// for: a client that connects before Ferry has even started is answered.
func TestSocketActivation(t *testing.T) {
	needPython(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	lnFile, err := ln.(*net.TCPListener).File()
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // the socket lives on in lnFile

	// A client connects first, while nothing serves yet: the kernel queues it.
	early, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer early.Close()
	fmt.Fprint(early, "GET /osenv HTTP/1.1\r\nHost: x\r\n\r\n")

	reg := shortTempDir(t)
	logs := newLogBuffer()
	script := `LISTEN_PID=$$ LISTEN_FDS=1 exec "$0" "$@"`
	cmd := exec.Command("/bin/sh", "-c", script, ferryBin, "start", fixture(t, "wsgi/echo"),
		"--port", "0", "--python", python, "--instance-registry-dir", reg)
	cmd.ExtraFiles = []*os.File{lnFile} // fd 3, as systemd passes it
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lnFile.Close()
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(60 * time.Second):
			cmd.Process.Kill()
		}
		if t.Failed() {
			t.Logf("ferry log:\n%s", logs.String())
		}
	})

	early.SetDeadline(time.Now().Add(60 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(early), nil)
	if err != nil {
		t.Fatalf("the early client got no answer: %v", err)
	}
	body := new(strings.Builder)
	ioCopy(body, resp)
	if resp.StatusCode != 200 {
		t.Fatalf("early client: %d %s", resp.StatusCode, body)
	}
	// The app never sees the supervisor's variables.
	if strings.Contains(body.String(), "LISTEN_FDS") || strings.Contains(body.String(), "LISTEN_PID") {
		t.Errorf("LISTEN_* reached the app: %s", body)
	}
	if _, ok := logs.wait(regexp.MustCompile(`using listening sockets passed by the supervisor.*count=1`), 10*time.Second, exited); !ok {
		t.Error("no log line about the inherited socket")
	}
	// And it keeps serving on that socket.
	r2, err := client.Get("http://" + addr + "/")
	if err != nil || r2.StatusCode != 200 {
		t.Fatalf("second request: %v %v", r2, err)
	}
	r2.Body.Close()
}
