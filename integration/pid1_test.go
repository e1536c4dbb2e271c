package integration

import (
	"bytes"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// orphanApp makes an orphan on GET /orphan: a shell that starts `sleep`
// in the background and exits at once, so sleep's parent is gone and it
// belongs to PID 1, which must reap it when it exits.
const orphanApp = `import subprocess

def application(environ, start_response):
    if environ["PATH_INFO"] == "/orphan":
        subprocess.run(["/bin/sh", "-c", "sleep 0.3 >/dev/null 2>&1 &"])
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok"]
`

// pidNS is a process's pid namespace, as /proc shows it.
func pidNS(pid int) string {
	s, _ := os.Readlink("/proc/" + strconv.Itoa(pid) + "/ns/pid")
	return s
}

// inNamespace lists the processes of namespace ns by pid and their
// /proc/PID/stat ("pid (comm) state ...").
func inNamespace(ns string) map[int]string {
	out := map[int]string{}
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	for _, d := range dirs {
		pid, _ := strconv.Atoi(filepath.Base(d))
		if pidNS(pid) != ns {
			continue
		}
		if b, err := os.ReadFile(d + "/stat"); err == nil {
			out[pid] = string(b)
		}
	}
	return out
}

// Ferry as PID 1 (a container without tini), here in a new pid namespace:
// it reaps orphans that exit, and passes SIGTERM on to the core, which
// drains and exits with status 0.
func TestPID1ReapsAndForwards(t *testing.T) {
	needPython(t)
	if os.Geteuid() != 0 {
		t.Skip("unshare --pid needs root")
	}
	unshare, err := exec.LookPath("unshare")
	if err != nil {
		t.Skip("unshare not installed")
	}
	app := shortTempDir(t)
	os.WriteFile(filepath.Join(app, "passenger_wsgi.py"), []byte(orphanApp), 0o644)
	port := freePort(t)
	cmd := exec.Command(unshare, "--pid", "--fork", "--mount-proc", ferryBin, "start", app,
		"--port", port, "--address", "127.0.0.1", "--python", python, "--spawn-method", "direct",
		"--instance-registry-dir", shortTempDir(t))
	logs := newLogBuffer()
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	var init int
	t.Cleanup(func() {
		if init != 0 {
			// PID 1's death ends every process of its namespace.
			syscall.Kill(init, syscall.SIGKILL)
		}
		cmd.Process.Kill()
		if t.Failed() {
			t.Logf("ferry log:\n%s", logs.String())
		}
	})
	f := &ferry{t: t, logs: logs, exited: make(chan struct{})}
	f.waitLog(`msg="ferry started"`)

	// PID 1 of the namespace is unshare's child: Ferry's init.
	children, _ := os.ReadFile("/proc/" + strconv.Itoa(cmd.Process.Pid) + "/task/" + strconv.Itoa(cmd.Process.Pid) + "/children")
	if fs := strings.Fields(string(children)); len(fs) == 1 {
		init, _ = strconv.Atoi(fs[0])
	}
	status, _ := os.ReadFile("/proc/" + strconv.Itoa(init) + "/status")
	if init == 0 || !bytes.Contains(status, []byte("NSpid:\t"+strconv.Itoa(init)+"\t1\n")) {
		t.Fatalf("no PID 1 under unshare (%d): %s", init, status)
	}
	ns := pidNS(init)
	base := "http://127.0.0.1:" + port
	resp, err := client.Get(base + "/orphan")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("GET /orphan: %v %v", resp, err)
	}
	resp.Body.Close()

	// The orphaned sleep exits; PID 1 must reap it. Before Ferry reaped
	// orphans it stayed there as a zombie for good.
	deadline := time.Now().Add(20 * time.Second)
	for {
		var sleeping []string
		for _, stat := range inNamespace(ns) {
			if strings.Contains(stat, "(sleep)") {
				sleeping = append(sleeping, stat)
			}
		}
		if len(sleeping) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the orphan was not reaped: %q", sleeping)
		}
		time.Sleep(50 * time.Millisecond)
	}

	// SIGTERM to PID 1 reaches the core: it drains and exits, and so does
	// the namespace, with status 0.
	syscall.Kill(init, syscall.SIGTERM)
	select {
	case err := <-exited:
		if err != nil {
			t.Errorf("unshare (ferry as PID 1) exited with %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("ferry as PID 1 did not stop on SIGTERM")
	}
	if !strings.Contains(logs.String(), `msg="ferry stopped"`) {
		t.Error("the core did not stop gracefully")
	}
	if _, err := (&http.Client{Timeout: time.Second}).Get(base + "/"); err == nil {
		t.Error("still serving after SIGTERM")
	}
}
