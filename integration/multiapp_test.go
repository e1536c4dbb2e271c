package integration

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// getHost does a GET with the given Host header.
func (f *ferry) getHost(host, path string) (int, string) {
	f.t.Helper()
	req, _ := http.NewRequest("GET", f.URL+path, nil)
	req.Host = host
	resp, err := client.Do(req)
	if err != nil {
		f.t.Fatalf("GET %s%s: %v", host, path, err)
	}
	defer resp.Body.Close()
	b := new(strings.Builder)
	ioCopy(b, resp)
	return resp.StatusCode, b.String()
}

func writeConfig(t *testing.T, dir, body string) string {
	t.Helper()
	p := filepath.Join(dir, "ferry.toml")
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestMultiAppRouting(t *testing.T) {
	needInterp(t, "/usr/bin/node")
	dir := shortTempDir(t)
	site := filepath.Join(dir, "site")
	helloApp(t, site, "site")
	file := writeConfig(t, dir, `
max_pool_size = 1

[[app]]
name = "blog"
root = "`+fixture(t, "wsgi/echo")+`"
server_names = ["blog.test", "*.blog.test"]

[[app]]
name = "shop"
root = "`+fixture(t, "wsgi/echo")+`"
server_names = ["site.test"]
base_uri = "/shop"

[[app]]
name = "api"
root = "`+fixture(t, "node/echo")+`"
server_names = ["site.test"]
base_uri = "/api"

[[app]]
name = "site"
root = "`+site+`"
`)
	f := startFerryArgs(t, "--config", file)

	decode := func(body string) map[string]any {
		var m map[string]any
		if err := json.Unmarshal([]byte(body), &m); err != nil {
			t.Fatalf("not JSON: %q", body)
		}
		return m
	}
	// Host, exact and wildcard.
	for _, host := range []string{"blog.test", "www.blog.test", "BLOG.test:80"} {
		code, body := f.getHost(host, "/echo")
		if e := decode(body); code != 200 || e["script_name"] != "" || e["path_info"] != "/echo" {
			t.Errorf("%s/echo = %d %v", host, code, e)
		}
	}
	// A WSGI app under a base URI gets it as SCRIPT_NAME.
	code, body := f.getHost("site.test", "/shop/echo")
	if e := decode(body); code != 200 || e["script_name"] != "/shop" || e["path_info"] != "/echo" {
		t.Errorf("site.test/shop/echo = %d %v", code, e)
	}
	// A Node app under a base URI sees the path below it.
	code, body = f.getHost("site.test", "/api/echo?x=1")
	if e := decode(body); code != 200 || e["path"] != "/echo" {
		t.Errorf("site.test/api/echo = %d %v", code, e)
	}
	// Everything else goes to the catch-all app.
	for _, tc := range []struct{ host, path string }{{"site.test", "/"}, {"site.test", "/shopping"}, {"other.test", "/"}} {
		if code, body := f.getHost(tc.host, tc.path); code != 200 || !strings.HasPrefix(body, "hello site") {
			t.Errorf("%s%s = %d %q, want the catch-all app", tc.host, tc.path, code, body)
		}
	}
	// Status lists every app.
	var st struct {
		Apps []struct{ Name string } `json:"apps"`
	}
	rawPool(t, f, &st)
	if len(st.Apps) != 4 {
		t.Errorf("status lists %d apps, want 4", len(st.Apps))
	}
}

func TestMultiAppUnknownHost(t *testing.T) {
	dir := shortTempDir(t)
	file := writeConfig(t, dir, `
[[app]]
root = "`+fixture(t, "wsgi/echo")+`"
server_names = ["only.test"]
`)
	f := startFerryArgs(t, "--config", file)
	if code, _ := f.getHost("only.test", "/"); code != 200 {
		t.Fatalf("known host = %d", code)
	}
	if code, body := f.getHost("nobody.test", "/"); code != 404 || !strings.Contains(body, "No app is configured") {
		t.Fatalf("unknown host = %d %q", code, body)
	}
}

func TestReload(t *testing.T) {
	dir := shortTempDir(t)
	one, two := filepath.Join(dir, "one"), filepath.Join(dir, "two")
	helloApp(t, one, "one")
	helloApp(t, two, "two")
	app := func(name, root string) string {
		return "[[app]]\nname = \"" + name + "\"\nroot = \"" + root + "\"\nserver_names = [\"" + name + ".test\"]\n"
	}
	file := writeConfig(t, dir, app("one", one))
	f := startFerryArgs(t, "--config", file)
	_, before := f.getHost("one.test", "/")
	if code, _ := f.getHost("two.test", "/"); code != 404 {
		t.Fatalf("two.test before the reload = %d", code)
	}

	writeConfig(t, dir, app("one", one)+app("two", two))
	f.cmd.Process.Signal(syscall.SIGHUP)
	f.waitLog(`msg="configuration reloaded" apps=2 started=1 stopped=0 unchanged=1`)
	if code, body := f.getHost("two.test", "/"); code != 200 || !strings.HasPrefix(body, "hello two") {
		t.Fatalf("two.test after the reload = %d %q", code, body)
	}
	if _, after := f.getHost("one.test", "/"); after != before {
		t.Errorf("the unchanged app was restarted: %q then %q", before, after)
	}

	// ferry reload does the same; a removed app stops serving.
	writeConfig(t, dir, app("two", two))
	if out, err := f.run("reload"); err != nil {
		t.Fatalf("ferry reload: %v\n%s", err, out)
	}
	if code, _ := f.getHost("one.test", "/"); code != 404 {
		t.Errorf("removed app still served: %d", code)
	}
	// A broken configuration leaves the running one alone.
	writeConfig(t, dir, "[[app]]\nroot = \"/nonexistent\"\n")
	if out, err := f.run("reload"); err == nil || !strings.Contains(out, "APP_DIR /nonexistent: no such directory") {
		t.Errorf("reload of a broken file: %v %s", err, out)
	}
	if code, _ := f.getHost("two.test", "/"); code != 200 {
		t.Errorf("after a failed reload two.test = %d", code)
	}
}

func rawPool(t *testing.T, f *ferry, v any) {
	t.Helper()
	if err := json.Unmarshal([]byte(f.poolRaw()), v); err != nil {
		t.Fatal(err)
	}
}
