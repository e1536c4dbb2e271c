package integration

import (
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

func TestDaemonizeAndStop(t *testing.T) {
	needPython(t)
	dir := shortTempDir(t)
	reg := shortTempDir(t)
	port := freePort(t)
	logFile, pidFile := filepath.Join(dir, "ferry.log"), filepath.Join(dir, "ferry.pid")
	out, err := exec_(ferryBin, "start", fixture(t, "wsgi/echo"), "--daemonize", "--port", port,
		"--address", "127.0.0.1", "--python", python, "--instance-registry-dir", reg,
		"--log-file", logFile, "--pid-file", pidFile, "--user", "root", "--allow-root-apps")
	if err != nil || !strings.Contains(out, "running in the background") {
		t.Fatalf("ferry start --daemonize: %v\n%s", err, out)
	}
	// It returned only once serving: the first request succeeds at once.
	f := &ferry{t: t, URL: "http://127.0.0.1:" + port}
	if code, body := f.get("/"); code != 200 || body != "hello world" {
		t.Fatalf("GET / = %d %q", code, body)
	}
	b, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	if !alive(pid) {
		t.Fatalf("pid %d from the pid file is not running", pid)
	}
	out, err = exec_(ferryBin, "stop", "--pid-file", pidFile)
	if err != nil || !strings.Contains(out, "stopped") {
		t.Fatalf("ferry stop: %v\n%s", err, out)
	}
	if alive(pid) {
		t.Fatalf("pid %d still running after ferry stop", pid)
	}
	if log, _ := os.ReadFile(logFile); !strings.Contains(string(log), `msg="ferry stopped"`) {
		t.Errorf("log file lacks the clean stop:\n%s", log)
	}
}

func TestDaemonizeReportsFailure(t *testing.T) {
	dir := shortTempDir(t)
	port := freePort(t)
	// Something already listens there: the child cannot start.
	ln, err := net.Listen("tcp", "127.0.0.1:"+port)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	out, err := exec_(ferryBin, "start", fixture(t, "wsgi/echo"), "-d", "--port", port,
		"--address", "127.0.0.1", "--instance-registry-dir", shortTempDir(t), "--log-file", filepath.Join(dir, "f.log"))
	if err == nil || !strings.Contains(out, "did not start") {
		t.Fatalf("daemonize onto a taken port: %v\n%s", err, out)
	}
	// The child's own reason, in one line; never its panic.
	noPanic(t, "start -d onto a taken port", out)
	if lines := messageLines(out); len(lines) != 1 || !strings.Contains(lines[0], "--port: 127.0.0.1:"+port+" is already in use") {
		t.Errorf("want one line naming --port; got:\n%s", out)
	}
}

func TestMetricsAddress(t *testing.T) {
	port := freePort(t)
	f := startFerry(t, fixture(t, "wsgi/echo"), "--metrics-address", "127.0.0.1:"+port)
	f.get("/")
	resp, err := client.Get("http://127.0.0.1:" + port + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b := new(strings.Builder)
	ioCopy(b, resp)
	if resp.StatusCode != 200 || !strings.Contains(b.String(), `ferry_http_requests_total{app="echo",class="2xx"}`) {
		t.Fatalf("GET /metrics = %d\n%.2000s", resp.StatusCode, b.String())
	}
	// Nothing else is served there.
	if resp, err := client.Get("http://127.0.0.1:" + port + "/pool"); err != nil || resp.StatusCode != 404 {
		t.Fatalf("GET /pool on the metrics address: %v %v", resp, err)
	}
}
