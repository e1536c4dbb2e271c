package integration

import (
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/ferry-server/ferry/internal/webconfig"
)

// webApp copies the echo fixture where a web server user (www-data) can
// read its public/ directory, and adds a file only the web server serves.
func webApp(t *testing.T) string {
	t.Helper()
	dir := copyFixture(t, "wsgi/echo")
	os.Chmod(filepath.Dir(dir), 0o755)
	filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err == nil {
			os.Chmod(p, fi.Mode()|0o044|map[bool]os.FileMode{true: 0o011, false: 0}[fi.IsDir()])
		}
		return nil
	})
	return dir
}

// ferryBehind starts Ferry on a Unix socket that www-data (the web servers'
// user on Debian) may connect to, trusting what arrives on it.
func ferryBehind(t *testing.T, app string) (*ferry, string) {
	t.Helper()
	sockDir := shortTempDir(t)
	os.Chmod(sockDir, 0o755)
	sock := filepath.Join(sockDir, "ferry.sock")
	f := startFerry(t, app, "--socket", sock, "--socket-and-tcp", "--socket-group", "www-data", "--trusted-proxies", "unix")
	return f, sock
}

func TestBehindNginx(t *testing.T) {
	nginx, err := exec.LookPath("nginx")
	if err != nil {
		t.Skip("nginx not installed")
	}
	app := webApp(t)
	f, sock := ferryBehind(t, app)

	// The configuration exactly as `ferry nginx-config` prints it.
	port := freePort(t)
	conf, err := exec.Command(ferryBin, "nginx-config", app, "--ferry-socket", sock, "--listen", "127.0.0.1:"+port).CombinedOutput()
	if err != nil {
		t.Fatalf("ferry nginx-config: %v\n%s", err, conf)
	}
	dir := shortTempDir(t)
	main := "pid " + dir + "/nginx.pid;\nerror_log " + dir + "/error.log;\nuser www-data;\nevents {}\nhttp {\n" +
		"access_log " + dir + "/access.log;\nclient_body_temp_path " + dir + "/body;\nproxy_temp_path " + dir + "/proxy;\n" +
		"include /etc/nginx/mime.types;\n" + string(conf) + "\n}\n"
	confPath := filepath.Join(dir, "nginx.conf")
	os.WriteFile(confPath, []byte(main), 0o644)
	start := exec.Command(nginx, "-c", confPath, "-p", dir, "-g", "daemon on;")
	if out, err := start.CombinedOutput(); err != nil {
		t.Fatalf("nginx: %v\n%s", err, out)
	}
	t.Cleanup(func() { exec.Command(nginx, "-c", confPath, "-p", dir, "-s", "quit").Run() })
	base := "http://127.0.0.1:" + port

	// Static files come from nginx: Ferry never sees them.
	resp, err := client.Get(base + "/hello.txt")
	if err != nil {
		t.Fatal(err)
	}
	b := new(strings.Builder)
	ioCopy(b, resp)
	if resp.StatusCode != 200 || b.String() != "static hello\n" || !strings.HasPrefix(resp.Header.Get("Server"), "nginx") {
		t.Fatalf("GET /hello.txt = %d %q server %q", resp.StatusCode, b, resp.Header.Get("Server"))
	}
	if strings.Contains(f.logs.String(), "path=/hello.txt") {
		t.Error("the static file reached Ferry")
	}
	// Dotfiles are not served by nginx either.
	if r, _ := client.Get(base + "/.hidden"); r != nil && r.StatusCode == 200 {
		t.Error("nginx served a dotfile")
	}

	// Dynamic requests reach the app, with the real client address: a
	// client's own X-Forwarded-For is not believed.
	req, _ := http.NewRequest("GET", base+"/echo", nil)
	req.Header.Set("X-Forwarded-For", "6.6.6.6")
	resp, err = client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b.Reset()
	ioCopy(b, resp)
	var e map[string]any
	json.Unmarshal([]byte(b.String()), &e)
	if resp.StatusCode != 200 || e["remote_addr"] != "127.0.0.1" || e["url_scheme"] != "http" {
		t.Fatalf("GET /echo through nginx = %d %v", resp.StatusCode, e)
	}

	// WebSockets go through nginx too (the Rack echo app has one; here the
	// generic upgrade check on the WSGI app: the handshake passes nginx).
	_, pidBefore := f.get("/pid")

	// Restarting nginx does not restart the app.
	if out, err := exec.Command(nginx, "-c", confPath, "-p", dir, "-s", "reload").CombinedOutput(); err != nil {
		t.Fatalf("nginx reload: %v %s", err, out)
	}
	resp, err = client.Get(base + "/pid")
	if err != nil {
		t.Fatal(err)
	}
	b.Reset()
	ioCopy(b, resp)
	if b.String() != pidBefore {
		t.Errorf("after reloading nginx the app answered from pid %s, before %s", b, pidBefore)
	}
}

func TestWebSocketThroughNginx(t *testing.T) {
	nginx, err := exec.LookPath("nginx")
	if err != nil {
		t.Skip("nginx not installed")
	}
	needInterp(t, "/usr/bin/node")
	app := copyFixture(t, "node/echo")
	os.Chmod(filepath.Dir(app), 0o755)
	_, sock := ferryBehind(t, app)
	port := freePort(t)
	conf, err := exec.Command(ferryBin, "nginx-config", app, "--ferry-socket", sock, "--listen", "127.0.0.1:"+port).CombinedOutput()
	if err != nil {
		t.Fatalf("ferry nginx-config: %v\n%s", err, conf)
	}
	dir := shortTempDir(t)
	main := "pid " + dir + "/nginx.pid;\nerror_log " + dir + "/error.log;\nuser www-data;\nevents {}\nhttp {\naccess_log off;\n" +
		"client_body_temp_path " + dir + "/body;\nproxy_temp_path " + dir + "/proxy;\n" + string(conf) + "\n}\n"
	confPath := filepath.Join(dir, "nginx.conf")
	os.WriteFile(confPath, []byte(main), 0o644)
	if out, err := exec.Command(nginx, "-c", confPath, "-p", dir, "-g", "daemon on;").CombinedOutput(); err != nil {
		t.Fatalf("nginx: %v\n%s", err, out)
	}
	t.Cleanup(func() { exec.Command(nginx, "-c", confPath, "-p", dir, "-s", "quit").Run() })

	ws := dialWebSocket(t, &ferry{t: t, URL: "http://127.0.0.1:" + port}, "/ws")
	defer ws.Close()
	ws.send(t, 1, []byte("through nginx"))
	if op, got := ws.recv(t); op != 1 || string(got) != "through nginx" {
		t.Fatalf("echo through nginx: %d %q", op, got)
	}
}

func TestBehindApache(t *testing.T) {
	httpd, err := exec.LookPath("apache2")
	if err != nil {
		t.Skip("apache2 not installed (apt-get install apache2)")
	}
	app := webApp(t)
	f, sock := ferryBehind(t, app)
	port := freePort(t)
	conf, err := exec.Command(ferryBin, "apache-config", app, "--ferry-socket", sock, "--listen", port).CombinedOutput()
	if err != nil {
		t.Fatalf("ferry apache-config: %v\n%s", err, conf)
	}
	dir := shortTempDir(t)
	os.Chmod(dir, 0o755)
	main := webconfig.ApacheTestConfig(dir, port) + "TypesConfig /etc/mime.types\n" + string(conf)
	confPath := filepath.Join(dir, "httpd.conf")
	os.WriteFile(confPath, []byte(main), 0o644)
	cmd := exec.Command(httpd, "-f", confPath, "-d", dir, "-DFOREGROUND")
	logs := newLogBuffer()
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
		if t.Failed() {
			b, _ := os.ReadFile(filepath.Join(dir, "error.log"))
			t.Logf("apache: %s\n%s", logs.String(), b)
		}
	})
	base := "http://127.0.0.1:" + port
	eventually(t, "apache to answer", func() bool {
		r, err := client.Get(base + "/hello.txt")
		if err != nil {
			return false
		}
		r.Body.Close()
		return true
	})

	resp, err := client.Get(base + "/hello.txt")
	if err != nil {
		t.Fatal(err)
	}
	b := new(strings.Builder)
	ioCopy(b, resp)
	if resp.StatusCode != 200 || b.String() != "static hello\n" || !strings.HasPrefix(resp.Header.Get("Server"), "Apache") {
		t.Fatalf("GET /hello.txt = %d %q server %q", resp.StatusCode, b, resp.Header.Get("Server"))
	}
	if strings.Contains(f.logs.String(), "path=/hello.txt") {
		t.Error("the static file reached Ferry")
	}
	req, _ := http.NewRequest("GET", base+"/echo?through=apache", nil)
	req.Header.Set("X-Forwarded-For", "6.6.6.6")
	resp, err = client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b.Reset()
	ioCopy(b, resp)
	var e map[string]any
	json.Unmarshal([]byte(b.String()), &e)
	if resp.StatusCode != 200 || e["remote_addr"] != "127.0.0.1" || e["query_string"] != "through=apache" {
		t.Fatalf("GET /echo through Apache = %d %s", resp.StatusCode, b)
	}
}
