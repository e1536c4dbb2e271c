package integration

// The recipes of docs/deploying.md ("On Debian"), run against Debian's own
// nginx and apache2 as the package installs them: their configuration tree
// copied to a test directory (so the system's services and files are never
// touched) with only its paths and port changed, workers running as
// www-data, Ferry in front of an ASGI app over its Unix socket and over
// TCP. Each checks a dynamic request, a static file, a WebSocket and the
// client address the app sees; and that Debian's default site still
// answers beside Ferry's.

import (
	"bufio"
	"crypto/rand"
	"crypto/sha1"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// debianApp is the ASGI echo app with a public/ file, readable by the
// app's user (nobody: the files are root's) and by www-data.
func debianApp(t *testing.T) string {
	t.Helper()
	app := copyFixture(t, "asgi/echo")
	os.MkdirAll(filepath.Join(app, "public"), 0o755)
	os.WriteFile(filepath.Join(app, "public", "hello.txt"), []byte("static hello\n"), 0o644)
	worldReadable(t, filepath.Dir(app))
	return app
}

// worldReadable makes a test tree readable and traversable by every user,
// as a deployed app's directory is for its user and the web server.
func worldReadable(t *testing.T, dir string) {
	t.Helper()
	filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode()&os.ModeSymlink == 0 {
			extra := os.FileMode(0o044)
			if fi.IsDir() {
				extra = 0o055
			}
			os.Chmod(p, fi.Mode().Perm()|extra)
		}
		return nil
	})
}

// debianFerry writes the ferry.toml of docs/deploying.md for app: the one
// the package installs (packaging/debian/ferry.toml) with the socket in
// dir and the app appended, and starts Ferry with it. tcpPort "" serves on
// the Unix socket; else on 127.0.0.1:tcpPort, trusting 127.0.0.1 only. It
// returns the config file.
func debianFerry(t *testing.T, dir, app, tcpPort string) (*ferry, string) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "packaging", "debian", "ferry.toml"))
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, l := range strings.Split(string(b), "\n") {
		switch {
		case strings.HasPrefix(l, "socket_file = "):
			if tcpPort == "" {
				l = fmt.Sprintf("socket_file = %q", filepath.Join(dir, "ferry.sock"))
			} else {
				l = fmt.Sprintf("address = \"127.0.0.1\"\nport = %s", tcpPort)
			}
		case strings.HasPrefix(l, "socket_group = ") && tcpPort != "":
			l = ""
		case strings.HasPrefix(l, "trusted_proxies = ") && tcpPort != "":
			l = `trusted_proxies = ["127.0.0.1"]`
		case strings.HasPrefix(l, "default_user = "):
			if _, err := user.Lookup("ferry"); err != nil {
				l = "" // the package creates it; apps run as nobody here
			}
		}
		lines = append(lines, l)
	}
	// As docs/deploying.md appends it.
	toml := strings.Join(lines, "\n") + fmt.Sprintf("\n[[app]]\nroot = %q\nserver_names = [\"hello.example\"]\n", app)
	conf := filepath.Join(dir, "ferry.toml")
	if err := os.WriteFile(conf, []byte(toml), 0o644); err != nil {
		t.Fatal(err)
	}
	args := []string{"--config", conf}
	if tcpPort == "" {
		args = append(args, "--socket-and-tcp") // the harness finds Ferry by its TCP address
	} else {
		args = append(args, "--port", tcpPort) // after the harness's --port 0
	}
	return startFerryArgs(t, args...), conf
}

// copyTree copies a directory with cp -a (symlinks as they are).
func copyTree(t *testing.T, from, to string) {
	t.Helper()
	if out, err := exec.Command("cp", "-a", from, to).CombinedOutput(); err != nil {
		t.Fatalf("cp -a %s %s: %v %s", from, to, err, out)
	}
}

func rewrite(t *testing.T, path string, pairs ...string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s := strings.NewReplacer(pairs...).Replace(string(b))
	if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}

// debianNginx is a copy of Debian's /etc/nginx in dir/nginx, listening on
// port instead of 80, with its pid, logs and temporary files in dir.
func debianNginx(t *testing.T, dir, port string) string {
	t.Helper()
	if _, err := os.Stat("/etc/nginx/sites-available/default"); err != nil {
		t.Skip("Debian's nginx is not installed (apt-get install nginx)")
	}
	conf := filepath.Join(dir, "nginx")
	copyTree(t, "/etc/nginx", conf)
	rewrite(t, filepath.Join(conf, "nginx.conf"), "/etc/nginx/", conf+"/", "/run/nginx.pid", filepath.Join(dir, "nginx.pid"),
		"/var/log/nginx/", dir+"/")
	// The default site, as a file of its own: the link points into /etc.
	site := filepath.Join(conf, "sites-enabled", "default")
	os.Remove(site)
	copyTree(t, filepath.Join(conf, "sites-available", "default"), site)
	rewrite(t, site, "listen 80 ", "listen "+port+" ", "listen [::]:80 ", "listen [::]:"+port+" ")
	var temp strings.Builder
	for _, k := range []string{"client_body", "proxy", "fastcgi", "uwsgi", "scgi"} {
		fmt.Fprintf(&temp, "%s_temp_path %s;\n", k, filepath.Join(dir, k))
	}
	os.WriteFile(filepath.Join(conf, "conf.d", "test-temp.conf"), []byte(temp.String()), 0o644)
	return conf
}

// runNginx starts nginx (master as root, workers as www-data, as Debian's
// nginx.conf says) on conf, until the test ends.
func runNginx(t *testing.T, conf string) {
	t.Helper()
	cmd := exec.Command("nginx", "-c", filepath.Join(conf, "nginx.conf"), "-g", "daemon off;")
	logs := newLogBuffer()
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGQUIT)
		cmd.Wait()
		if t.Failed() {
			b, _ := os.ReadFile(filepath.Join(filepath.Dir(conf), "error.log"))
			t.Logf("nginx: %s\n%s", logs.String(), b)
		}
	})
}

// debianApache is a copy of Debian's /etc/apache2 in dir/apache2 listening
// on 127.0.0.1:port, with its run, lock, log and state directories in dir,
// and without the modules Ferry's configuration needs (as on a fresh
// install). It returns the environment Debian's tools take it from.
func debianApache(t *testing.T, dir, port string) (conf string, env []string) {
	t.Helper()
	if _, err := os.Stat("/etc/apache2/envvars"); err != nil {
		t.Skip("Debian's apache2 is not installed (apt-get install apache2)")
	}
	conf = filepath.Join(dir, "apache2")
	copyTree(t, "/etc/apache2", conf)
	f, _ := os.OpenFile(filepath.Join(conf, "envvars"), os.O_APPEND|os.O_WRONLY, 0)
	for _, v := range []string{"run", "lock", "log", "state"} {
		os.MkdirAll(filepath.Join(dir, v), 0o755)
	}
	fmt.Fprintf(f, "export APACHE_PID_FILE=%s/run/apache2.pid APACHE_RUN_DIR=%s/run APACHE_LOCK_DIR=%s/lock APACHE_LOG_DIR=%s/log\n",
		dir, dir, dir, dir)
	f.Close()
	rewrite(t, filepath.Join(conf, "ports.conf"), "Listen 80\n", "Listen "+port+"\n", "Listen 443", "#Listen 443")
	rewrite(t, filepath.Join(conf, "sites-available", "000-default.conf"), "*:80>", "*:"+port+">")
	env = append(os.Environ(), "APACHE_CONFDIR="+conf, "APACHE_STATE_DIRECTORY="+filepath.Join(dir, "state"))
	for _, m := range []string{"proxy_http", "proxy", "headers", "rewrite"} {
		cmd := exec.Command("a2dismod", "-q", "-f", m)
		cmd.Env = env
		cmd.Run() // not enabled: nothing to do
	}
	return conf, env
}

// runApache starts apache2 on conf in the foreground (children as
// www-data, from Debian's envvars), until the test ends.
func runApache(t *testing.T, conf string, env []string, url string) {
	t.Helper()
	cmd := exec.Command("/bin/sh", "-c", `. "$APACHE_CONFDIR/envvars" && exec apache2 -d "$APACHE_CONFDIR" -DFOREGROUND`)
	cmd.Env = env
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	logs := newLogBuffer()
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// Apache waits 10 s for a child still in a WebSocket tunnel before
		// it kills it; the test need not.
		cmd.Process.Signal(syscall.SIGTERM)
		kill := time.AfterFunc(3*time.Second, func() { syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) })
		cmd.Wait()
		kill.Stop()
		if t.Failed() {
			b, _ := os.ReadFile(filepath.Join(filepath.Dir(conf), "log", "error.log"))
			t.Logf("apache: %s\n%s", logs.String(), b)
		}
	})
	eventually(t, "apache to answer", func() bool {
		r, err := client.Get(url)
		if err == nil {
			r.Body.Close()
		}
		return err == nil
	})
}

// install runs `ferry KIND-config --install` with args and returns what it
// printed.
func install(t *testing.T, env []string, args ...string) string {
	t.Helper()
	cmd := exec.Command(ferryBin, args...)
	cmd.Env = env
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("ferry %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// fromClient sends a request to the web server at base for Host host,
// from 127.0.0.2, so that the client's address differs from the proxy's
// (127.0.0.1); it claims to be 6.6.6.6, which must not be believed.
func fromClient(t *testing.T, base, host, path string) (*http.Response, string) {
	t.Helper()
	tr := &http.Transport{DialContext: (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}}).DialContext}
	defer tr.CloseIdleConnections()
	req, _ := http.NewRequest("GET", base+path, nil)
	req.Host = host
	req.Header.Set("X-Forwarded-For", "6.6.6.6")
	resp, err := (&http.Client{Transport: tr, Timeout: 60 * time.Second}).Do(req)
	if err != nil {
		t.Fatalf("GET %s (Host %s): %v", path, host, err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, string(b)
}

// checkFront checks a request, a static file, a WebSocket and the client
// address through the web server at port, and that Debian's default site
// still answers other hosts.
func checkFront(t *testing.T, f *ferry, port, server string) {
	t.Helper()
	base := "http://127.0.0.1:" + port
	resp, body := fromClient(t, base, "hello.example", "/echo?through="+server)
	var e struct {
		Client      []any  `json:"client"`
		QueryString string `json:"query_string"`
		Scheme      string `json:"scheme"`
	}
	json.Unmarshal([]byte(body), &e)
	if resp.StatusCode != 200 || len(e.Client) == 0 || e.Client[0] != "127.0.0.2" || e.QueryString != "through="+server || e.Scheme != "http" {
		t.Fatalf("GET /echo through %s = %d %s; want the app to see client 127.0.0.2", server, resp.StatusCode, body)
	}

	// Over IPv6 too: curl http://localhost/ tries ::1 first, and Debian's
	// default site listens there.
	if ln, err := net.Listen("tcp6", "[::1]:0"); err == nil {
		ln.Close()
		req, _ := http.NewRequest("GET", "http://[::1]:"+port+"/echo", nil)
		req.Host = "hello.example"
		r, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(r.Body)
		r.Body.Close()
		e.Client = nil
		json.Unmarshal(b, &e)
		if r.StatusCode != 200 || len(e.Client) == 0 || e.Client[0] != "::1" {
			t.Fatalf("GET /echo over IPv6 through %s = %d %.300s", server, r.StatusCode, b)
		}
	}

	resp, body = fromClient(t, base, "hello.example", "/hello.txt")
	if resp.StatusCode != 200 || body != "static hello\n" || !strings.HasPrefix(strings.ToLower(resp.Header.Get("Server")), server) {
		t.Fatalf("GET /hello.txt = %d %q, Server %q", resp.StatusCode, body, resp.Header.Get("Server"))
	}
	if strings.Contains(f.logs.String(), "path=/hello.txt") {
		t.Errorf("the static file reached Ferry; %s should serve it", server)
	}

	ws := dialWebSocketHost(t, "127.0.0.1:"+port, "hello.example", "/ws")
	defer ws.Close()
	ws.send(t, 1, []byte("through "+server))
	if op, got := ws.recv(t); op != 1 || string(got) != "through "+server {
		t.Fatalf("WebSocket echo through %s: %d %q", server, op, got)
	}

	// Ferry's configuration drops in beside Debian's default site.
	resp, body = fromClient(t, base, "other.test", "/")
	if resp.StatusCode != 200 || body == "hello world" || !strings.Contains(strings.ToLower(body), "<html") {
		t.Errorf("Debian's default site for another host = %d %.200q", resp.StatusCode, body)
	}
}

// dialWebSocketHost is dialWebSocket for a given address and Host.
func dialWebSocketHost(t *testing.T, addr, host, path string) *wsConn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	key := make([]byte, 16)
	rand.Read(key)
	k := base64.StdEncoding.EncodeToString(key)
	fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: %s\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: %s\r\n\r\n", path, host, k)
	c.SetDeadline(time.Now().Add(60 * time.Second))
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("websocket handshake: %v", err)
	}
	sum := sha1.Sum([]byte(k + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
	if resp.StatusCode != 101 || resp.Header.Get("Sec-Websocket-Accept") != base64.StdEncoding.EncodeToString(sum[:]) {
		t.Fatalf("websocket handshake: %d, accept %q", resp.StatusCode, resp.Header.Get("Sec-Websocket-Accept"))
	}
	return &wsConn{Conn: c, br: br}
}

func TestDebianNginx(t *testing.T) {
	if _, err := exec.LookPath("nginx"); err != nil {
		t.Skip("nginx not installed")
	}
	for _, over := range []string{"socket", "tcp"} {
		t.Run(over, func(t *testing.T) {
			dir := shortTempDir(t)
			os.Chmod(dir, 0o755)
			app := debianApp(t)
			tcpPort := ""
			if over == "tcp" {
				tcpPort = freePort(t)
			}
			f, conf := debianFerry(t, dir, app, tcpPort)
			port := freePort(t)
			nginx := debianNginx(t, dir, port)
			args := []string{"nginx-config", "--install", "--config", conf, "--listen", port, "--nginx-dir", nginx}
			if over == "tcp" {
				args = append(args, "--port", tcpPort)
			}
			out := install(t, nil, args...)
			if !strings.Contains(out, "systemctl reload nginx") {
				t.Errorf("--install does not say what to reload: %s", out)
			}
			runNginx(t, nginx)
			eventually(t, "nginx to answer", func() bool {
				r, err := client.Get("http://127.0.0.1:" + port + "/")
				if err == nil {
					r.Body.Close()
				}
				return err == nil
			})
			checkFront(t, f, port, "nginx")
		})
	}
}

// TestDebianNginxInstallRefused: a configuration nginx -t refuses is not
// left in conf.d.
func TestDebianNginxInstallRefused(t *testing.T) {
	if _, err := exec.LookPath("nginx"); err != nil {
		t.Skip("nginx not installed")
	}
	dir := shortTempDir(t)
	app := debianApp(t)
	nginx := debianNginx(t, dir, freePort(t))
	// Something else in conf.d that nginx -t refuses.
	os.WriteFile(filepath.Join(nginx, "conf.d", "clash.conf"), []byte("server { listen 1 default_server; }\nserver { listen 1 default_server; }\n"), 0o644)
	cmd := exec.Command(ferryBin, "nginx-config", "--install", app, "--nginx-dir", nginx)
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "duplicate default server") {
		t.Fatalf("install into a broken nginx: %v %s", err, out)
	}
	if _, err := os.Stat(filepath.Join(nginx, "conf.d", "ferry.conf")); !os.IsNotExist(err) {
		t.Errorf("the refused ferry.conf stayed in conf.d: %v", err)
	}
}

func TestDebianApache(t *testing.T) {
	if _, err := exec.LookPath("apache2"); err != nil {
		t.Skip("apache2 not installed")
	}
	for _, over := range []string{"socket", "tcp"} {
		t.Run(over, func(t *testing.T) {
			dir := shortTempDir(t)
			os.Chmod(dir, 0o755)
			app := debianApp(t)
			tcpPort := ""
			if over == "tcp" {
				tcpPort = freePort(t)
			}
			f, conf := debianFerry(t, dir, app, tcpPort)
			port := freePort(t)
			apache, env := debianApache(t, dir, port)
			args := []string{"apache-config", "--install", "--config", conf, "--listen", port}
			if over == "tcp" {
				args = append(args, "--port", tcpPort)
			}
			out := install(t, env, args...)
			if !strings.Contains(out, "with the modules proxy proxy_http headers rewrite") || !strings.Contains(out, "systemctl restart apache2") {
				t.Errorf("--install does not say what it enabled and what to restart: %s", out)
			}
			runApache(t, apache, env, "http://127.0.0.1:"+port+"/")
			checkFront(t, f, port, "apache")
		})
	}
}

// TestDebianApacheInstallRefused: when apache2ctl configtest refuses the
// configuration, the site is disabled again and its file removed.
func TestDebianApacheInstallRefused(t *testing.T) {
	if _, err := exec.LookPath("apache2"); err != nil {
		t.Skip("apache2 not installed")
	}
	dir := shortTempDir(t)
	app := debianApp(t)
	apache, env := debianApache(t, dir, freePort(t))
	// Something else that apache2ctl configtest refuses.
	os.WriteFile(filepath.Join(apache, "conf-enabled", "broken.conf"), []byte("NoSuchDirective on\n"), 0o644)
	cmd := exec.Command(ferryBin, "apache-config", "--install", app)
	cmd.Env = env
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "NoSuchDirective") {
		t.Fatalf("install into a broken Apache: %v %s", err, out)
	}
	for _, p := range []string{"sites-available/ferry.conf", "sites-enabled/ferry.conf"} {
		if _, err := os.Lstat(filepath.Join(apache, p)); !os.IsNotExist(err) {
			t.Errorf("%s stayed after the refusal: %v", p, err)
		}
	}
}
