package webconfig

import (
	"bytes"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ferry-server/ferry/internal/config"
)

var update = flag.Bool("update", false, "rewrite the golden files")

func testConfig() *config.Config {
	return &config.Config{
		Server: config.Server{Address: "0.0.0.0", Port: 3000},
		Apps: []config.App{
			{Name: "blog", Root: "/srv/blog", ServerNames: []string{"blog.example.com", "www.blog.example.com"}},
			{Name: "shop", Root: "/srv/shop", ServerNames: []string{"example.com"}, BaseURI: "/shop"},
			{Name: "site", Root: "/srv/site", ServerNames: []string{"example.com"}},
			{Name: "fallback", Root: "/srv/fallback"},
		},
	}
}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		os.MkdirAll("testdata", 0o755)
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the golden file; run go test -update if the change is right\n--- got:\n%s", name, got)
	}
}

func TestNginxGolden(t *testing.T) {
	for _, tc := range []struct {
		name string
		o    Options
	}{
		{"nginx-socket.conf", Options{Socket: "/run/ferry.sock"}},
		{"nginx-tcp.conf", Options{Listen: "8080"}},
	} {
		var b bytes.Buffer
		if err := Nginx(&b, testConfig(), tc.o); err != nil {
			t.Fatal(err)
		}
		golden(t, tc.name, b.Bytes())
	}
}

func TestApacheGolden(t *testing.T) {
	var b bytes.Buffer
	if err := Apache(&b, testConfig(), Options{Socket: "/run/ferry.sock"}); err != nil {
		t.Fatal(err)
	}
	golden(t, "apache-socket.conf", b.Bytes())
}

// TestNginxAcceptsIt has the real nginx check the generated configuration.
func TestNginxAcceptsIt(t *testing.T) {
	nginx, err := exec.LookPath("nginx")
	if err != nil {
		t.Skip("nginx not installed")
	}
	dir := t.TempDir()
	var b bytes.Buffer
	if err := Nginx(&b, testConfig(), Options{Socket: filepath.Join(dir, "ferry.sock"), Listen: "127.0.0.1:18999"}); err != nil {
		t.Fatal(err)
	}
	conf := "pid " + filepath.Join(dir, "nginx.pid") + ";\nerror_log " + filepath.Join(dir, "error.log") + ";\n" +
		"events {}\nhttp {\naccess_log off;\n" + b.String() + "\n}\n"
	path := filepath.Join(dir, "nginx.conf")
	os.WriteFile(path, []byte(conf), 0o644)
	out, err := exec.Command(nginx, "-t", "-c", path, "-p", dir).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "syntax is ok") {
		t.Fatalf("nginx -t: %v\n%s\n%s", err, out, conf)
	}
}

// TestApacheAcceptsIt has the real Apache httpd check the generated
// configuration.
func TestApacheAcceptsIt(t *testing.T) {
	httpd, err := exec.LookPath("apache2")
	if err != nil {
		t.Skip("apache2 not installed")
	}
	dir := t.TempDir()
	var b bytes.Buffer
	if err := Apache(&b, testConfig(), Options{Socket: filepath.Join(dir, "ferry.sock"), Listen: "18998"}); err != nil {
		t.Fatal(err)
	}
	conf := ApacheTestConfig(dir, "18998") + b.String()
	path := filepath.Join(dir, "httpd.conf")
	os.WriteFile(path, []byte(conf), 0o644)
	out, err := exec.Command(httpd, "-t", "-f", path, "-d", dir).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "Syntax OK") {
		t.Fatalf("apache2 -t: %v\n%s\n%s", err, out, conf)
	}
}
