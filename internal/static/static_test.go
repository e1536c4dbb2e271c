package static

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

const secret = "TOP-SECRET-OUTSIDE-ROOT"

// fixture lays out
//
//	tmp/secret.txt              outside the root
//	tmp/outside/other.txt       outside the root
//	tmp/public/                 the root
//
// and returns tmp and tmp/public.
func fixture(t testing.TB) (tmp, pub string) {
	t.Helper()
	tmp = t.TempDir()
	pub = filepath.Join(tmp, "public")
	mkdir(t, pub)
	mkdir(t, filepath.Join(tmp, "outside"))
	write(t, filepath.Join(tmp, "secret.txt"), secret)
	write(t, filepath.Join(tmp, "outside", "other.txt"), secret)

	write(t, filepath.Join(pub, "hello.txt"), "hello, world\n")
	write(t, filepath.Join(pub, "app.js"), "console.log(1)\n")
	write(t, filepath.Join(pub, "style.css"), "body{}\n")
	write(t, filepath.Join(pub, "noext"), "<html><body>sniff me</body></html>")
	write(t, filepath.Join(pub, "caf\u00e9.txt"), "unicode")
	write(t, filepath.Join(pub, "empty"), "")
	mkdir(t, filepath.Join(pub, "dir"))
	write(t, filepath.Join(pub, "dir", "index.html"), "<p>index</p>")
	write(t, filepath.Join(pub, "dir", "a.txt"), "nested")
	mkdir(t, filepath.Join(pub, "sub"))
	write(t, filepath.Join(pub, "sub", "b.txt"), "no index here")
	mkdir(t, filepath.Join(pub, ".git"))
	write(t, filepath.Join(pub, ".git", "config"), "[core]")
	write(t, filepath.Join(pub, ".env"), "SECRET=1")
	// Literal names that look like double-encoded traversal.
	mkdir(t, filepath.Join(pub, "%2e%2e"))
	write(t, filepath.Join(pub, "%2e%2e", "secret.txt"), secret)
	return tmp, pub
}

func mkdir(t testing.TB, p string) {
	t.Helper()
	if err := os.MkdirAll(p, 0o755); err != nil {
		t.Fatal(err)
	}
}

func write(t testing.TB, p, s string) {
	t.Helper()
	if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}

func newHandler(t testing.TB, dir string, opts Options) *Handler {
	t.Helper()
	h, err := New(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	return h
}

// do runs one request and checks the fall-through contract: when Serve
// returns false nothing at all may have been written.
func do(t *testing.T, h *Handler, r *http.Request) (*httptest.ResponseRecorder, bool) {
	t.Helper()
	// The changes a test made to files before the request are seen by it:
	// inotify's events are read now, not when the watcher's goroutine gets
	// to them (a request that races a change may get the copy before it).
	h.watch.drain()
	w := httptest.NewRecorder()
	served := h.Serve(w, r)
	if !served {
		if len(w.Header()) != 0 || w.Body.Len() != 0 || w.Flushed {
			t.Errorf("%s %q: returned false but wrote headers %v / body %q", r.Method, r.URL.Path, w.Header(), w.Body.String())
		}
	}
	return w, served
}

func get(t *testing.T, h *Handler, target string, hdr ...string) (*httptest.ResponseRecorder, bool) {
	t.Helper()
	r := httptest.NewRequest(http.MethodGet, target, nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		r.Header.Set(hdr[i], hdr[i+1])
	}
	return do(t, h, r)
}

func mtime(t testing.TB, p string) time.Time {
	t.Helper()
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	return fi.ModTime()
}

func wantETag(t testing.TB, p string) string {
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf(`"%x-%x"`, fi.Size(), fi.ModTime().UnixNano())
}

func TestServeFile(t *testing.T) {
	_, pub := fixture(t)
	for _, cached := range []bool{true, false} {
		opts := Options{}
		if !cached {
			opts.CacheMaxEntries = -1
		}
		h := newHandler(t, pub, opts)
		tests := []struct {
			path, file, ctype, body string
		}{
			{"/hello.txt", "hello.txt", "text/plain; charset=utf-8", "hello, world\n"},
			{"/app.js", "app.js", "text/javascript; charset=utf-8", "console.log(1)\n"},
			{"/style.css", "style.css", "text/css; charset=utf-8", "body{}\n"},
			{"/noext", "noext", "text/html; charset=utf-8", "<html><body>sniff me</body></html>"}, // sniffed
			{"/dir/a.txt", "dir/a.txt", "text/plain; charset=utf-8", "nested"},
			{"/caf%C3%A9.txt", "caf\u00e9.txt", "text/plain; charset=utf-8", "unicode"},
			{"/empty", "empty", "text/plain; charset=utf-8", ""},
		}
		for _, tc := range tests {
			// Twice: the second request of the cached handler hits memory.
			for round := 0; round < 2; round++ {
				t.Run(fmt.Sprintf("cached=%v/%s/%d", cached, tc.path, round), func(t *testing.T) {
					w, ok := get(t, h, tc.path)
					if !ok {
						t.Fatal("not served")
					}
					if w.Code != http.StatusOK {
						t.Fatalf("code %d", w.Code)
					}
					if got := w.Body.String(); got != tc.body {
						t.Errorf("body %q, want %q", got, tc.body)
					}
					fp := filepath.Join(pub, filepath.FromSlash(tc.file))
					hd := w.Header()
					checks := map[string]string{
						"Content-Type":   tc.ctype,
						"ETag":           wantETag(t, fp),
						"Last-Modified":  mtime(t, fp).UTC().Format(http.TimeFormat),
						"Accept-Ranges":  "bytes",
						"Content-Length": strconv.Itoa(len(tc.body)),
						"Cache-Control":  "",
					}
					for k, want := range checks {
						if got := hd.Get(k); got != want {
							t.Errorf("%s = %q, want %q", k, got, want)
						}
					}
				})
			}
		}
		if cached && len(h.entries) != len(tests) {
			t.Errorf("cache holds %d entries, want %d", len(h.entries), len(tests))
		}
	}
}

func TestConditionalAndRange(t *testing.T) {
	_, pub := fixture(t)
	body := strings.Repeat("0123456789", 10) // 100 bytes
	write(t, filepath.Join(pub, "data.bin"), body)
	big := strings.Repeat("x", 100<<10) + "TAIL" // above the cache limit
	write(t, filepath.Join(pub, "big.txt"), big)

	for _, cached := range []bool{true, false} {
		opts := Options{}
		if !cached {
			opts.CacheMaxFileSize = -1
		}
		h := newHandler(t, pub, opts)
		etag := wantETag(t, filepath.Join(pub, "data.bin"))
		lm := mtime(t, filepath.Join(pub, "data.bin")).UTC().Format(http.TimeFormat)
		past := time.Unix(1e9, 0).UTC().Format(http.TimeFormat)

		tests := []struct {
			name     string
			method   string
			path     string
			hdr      []string
			code     int
			body     string
			checkHdr map[string]string
		}{
			{"head", "HEAD", "/data.bin", nil, 200, "", map[string]string{"Content-Length": "100", "ETag": etag}},
			{"if-none-match", "GET", "/data.bin", []string{"If-None-Match", etag}, 304, "", map[string]string{"ETag": etag}},
			{"if-none-match list", "GET", "/data.bin", []string{"If-None-Match", `"nope", ` + etag}, 304, "", nil},
			{"if-none-match other", "GET", "/data.bin", []string{"If-None-Match", `"nope"`}, 200, body, nil},
			{"if-modified-since", "GET", "/data.bin", []string{"If-Modified-Since", lm}, 304, "", nil},
			{"if-modified-since old", "GET", "/data.bin", []string{"If-Modified-Since", past}, 200, body, nil},
			{"range", "GET", "/data.bin", []string{"Range", "bytes=10-19"}, 206, "0123456789", map[string]string{"Content-Range": "bytes 10-19/100", "Content-Length": "10"}},
			{"range suffix", "GET", "/data.bin", []string{"Range", "bytes=-5"}, 206, "56789", map[string]string{"Content-Range": "bytes 95-99/100"}},
			{"range open", "GET", "/data.bin", []string{"Range", "bytes=97-"}, 206, "789", nil},
			{"if-range match", "GET", "/data.bin", []string{"Range", "bytes=0-1", "If-Range", etag}, 206, "01", nil},
			{"if-range stale", "GET", "/data.bin", []string{"Range", "bytes=0-1", "If-Range", `"stale"`}, 200, body, nil},
			{"416", "GET", "/data.bin", []string{"Range", "bytes=100-"}, 416, "", map[string]string{"Content-Range": "bytes */100"}},
			{"if-match fail", "GET", "/data.bin", []string{"If-Match", `"nope"`}, 412, "", nil},
			{"big", "GET", "/big.txt", nil, 200, big, nil},
			{"big range", "GET", "/big.txt", []string{"Range", "bytes=-4"}, 206, "TAIL", nil},
			{"big head", "HEAD", "/big.txt", nil, 200, "", map[string]string{"Content-Length": strconv.Itoa(len(big))}},
		}
		for _, tc := range tests {
			t.Run(fmt.Sprintf("cached=%v/%s", cached, tc.name), func(t *testing.T) {
				r := httptest.NewRequest(tc.method, tc.path, nil)
				for i := 0; i+1 < len(tc.hdr); i += 2 {
					r.Header.Set(tc.hdr[i], tc.hdr[i+1])
				}
				w, ok := do(t, h, r)
				if !ok {
					t.Fatal("not served")
				}
				if w.Code != tc.code {
					t.Fatalf("code %d, want %d", w.Code, tc.code)
				}
				if tc.code != 416 && w.Body.String() != tc.body {
					t.Errorf("body %q, want %q", trunc(w.Body.String()), trunc(tc.body))
				}
				for k, want := range tc.checkHdr {
					if got := w.Header().Get(k); got != want {
						t.Errorf("%s = %q, want %q", k, got, want)
					}
				}
			})
		}
	}
}

func trunc(s string) string {
	if len(s) > 40 {
		return s[:40] + "..."
	}
	return s
}

func TestFallThrough(t *testing.T) {
	tmp, pub := fixture(t)
	h := newHandler(t, pub, Options{})
	tests := []struct {
		name, method, path string
	}{
		{"post", "POST", "/hello.txt"},
		{"put", "PUT", "/hello.txt"},
		{"delete", "DELETE", "/hello.txt"},
		{"options", "OPTIONS", "/hello.txt"},
		{"root without index.html", "GET", "/"},
		{"directory without index.html", "GET", "/sub"},
		{"directory without index.html, slash", "GET", "/sub/"},
		{"dot directory slash", "GET", "/.git/"},
		{"file with slash", "GET", "/hello.txt/"},
		{"missing", "GET", "/nope.txt"},
		{"missing nested", "GET", "/nope/x.txt"},
		{"file as dir", "GET", "/hello.txt/x"},
		{"dot segment", "GET", "/./hello.txt"},
		{"dot segment mid", "GET", "/dir/./a.txt"},
		{"double slash", "GET", "//hello.txt"},
		{"double slash mid", "GET", "/dir//a.txt"},
		{"dotdot back in", "GET", "/dir/../hello.txt"},
		{"encoded slash", "GET", "/dir%2fa.txt"},
		{"percent literal dir", "GET", "/%252e%252e/secret.txt"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, ok := do(t, h, httptest.NewRequest(tc.method, tc.path, nil)); ok {
				t.Fatal("served, want fall-through")
			}
		})
	}

	t.Run("missing public dir", func(t *testing.T) {
		h := newHandler(t, filepath.Join(tmp, "does-not-exist"), Options{})
		for _, p := range []string{"/", "/hello.txt", "/../secret.txt", "/secret.txt"} {
			if _, ok := get(t, h, p); ok {
				t.Errorf("%s served", p)
			}
		}
	})
	t.Run("root is a file", func(t *testing.T) {
		if _, err := New(filepath.Join(pub, "hello.txt"), Options{}); err == nil {
			t.Error("New on a regular file: want error")
		}
	})
	t.Run("after close", func(t *testing.T) {
		h := newHandler(t, pub, Options{})
		if _, ok := get(t, h, "/hello.txt"); !ok {
			t.Fatal("not served before Close")
		}
		if err := h.Close(); err != nil {
			t.Fatal(err)
		}
		if _, ok := get(t, h, "/hello.txt"); ok {
			t.Fatal("served after Close")
		}
		if err := h.Close(); err != nil {
			t.Fatal("second Close:", err)
		}
	})
	t.Run("permission denied", func(t *testing.T) {
		if os.Geteuid() == 0 {
			t.Skip("running as root: permissions are not enforced")
		}
		p := filepath.Join(pub, "locked.txt")
		write(t, p, "locked")
		if err := os.Chmod(p, 0); err != nil {
			t.Fatal(err)
		}
		if _, ok := get(t, h, "/locked.txt"); ok {
			t.Fatal("served unreadable file")
		}
	})
}

// TestTraversal throws escape attempts at the handler, both as net/http
// parses them (decoded Path plus RawPath) and as hand-built URLs that carry
// undecoded text in Path, and checks that nothing outside the root is ever
// returned.
func TestTraversal(t *testing.T) {
	tmp, pub := fixture(t)
	// Shapes net/http actually produces, for the record.
	shapes := []struct{ target, path, raw string }{
		{"/%2e%2e/x", "/../x", "/%2e%2e/x"},
		{"/%252e%252e/secret.txt", "/%2e%2e/secret.txt", ""},
		{"/..%2fsecret.txt", "/../secret.txt", "/..%2fsecret.txt"},
		{"/a%00b", "/a\x00b", ""},
		{"/a%5cb", "/a\\b", "/a%5cb"},
	}
	for _, s := range shapes {
		r := httptest.NewRequest("GET", s.target, nil)
		if r.URL.Path != s.path || r.URL.RawPath != s.raw {
			t.Errorf("NewRequest(%q): Path=%q RawPath=%q, want %q %q", s.target, r.URL.Path, r.URL.RawPath, s.path, s.raw)
		}
	}

	parsed := []string{
		"/../secret.txt",
		"/../../secret.txt",
		"/dir/../../secret.txt",
		"/%2e%2e/secret.txt",
		"/%2E%2E/secret.txt",
		"/.%2e/secret.txt",
		"/%2e./secret.txt",
		"/%252e%252e/secret.txt",
		"/%25252e%25252e/secret.txt",
		"/..%2fsecret.txt",
		"/..%2Fsecret.txt",
		"/%2e%2e%2fsecret.txt",
		"/..%252fsecret.txt",
		"/..%5csecret.txt",
		"/..%5Csecret.txt",
		"/..\\secret.txt",
		"/..%255csecret.txt",
		"/hello.txt%00",
		"/hello.txt%00.png",
		"/%00/../secret.txt",
		"/..%00/secret.txt",
		"/..;/secret.txt",
		"/../outside/other.txt",
		"/" + filepath.Join(tmp, "secret.txt"),
		"/" + strings.Repeat("a/", 3000) + "x",
	}
	// hand-built URLs: Path as a server that does not decode might pass it,
	// and inconsistent Path/RawPath pairs.
	built := []*url.URL{
		{Path: "/%2e%2e/secret.txt"},
		{Path: "/%2e%2e/secret.txt", RawPath: "/%252e%252e/secret.txt"},
		{Path: "/..%2fsecret.txt"},
		{Path: "/../secret.txt", RawPath: "/%2e%2e/secret.txt"},
		{Path: "/hello.txt", RawPath: "/%2e%2e/secret.txt"}, // inconsistent
		{Path: "/..\\secret.txt"},
		{Path: "\\..\\secret.txt"},
		{Path: "/a\x00b"},
		{Path: "secret.txt"},
		{Path: "../secret.txt"},
		{Path: ""},
		{Opaque: "/../secret.txt"},
	}

	var reqs []*http.Request
	for _, p := range parsed {
		reqs = append(reqs, httptest.NewRequest("GET", p, nil))
	}
	for _, u := range built {
		r := httptest.NewRequest("GET", "/", nil)
		r.URL = u
		r.RequestURI = u.String()
		reqs = append(reqs, r)
	}

	configs := []struct {
		name string
		opts Options
	}{
		{"default", Options{}},
		{"follow+dotfiles", Options{FollowSymlinks: true, ServeDotfiles: true}},
		{"nocache", Options{CacheMaxEntries: -1}},
	}
	for _, cfg := range configs {
		h := newHandler(t, pub, cfg.opts)
		for _, r := range reqs {
			name := fmt.Sprintf("%s/Path=%q,RawPath=%q", cfg.name, r.URL.Path, r.URL.RawPath)
			if len(name) > 100 {
				name = name[:100]
			}
			t.Run(name, func(t *testing.T) {
				w, ok := do(t, h, r.Clone(r.Context()))
				if strings.Contains(w.Body.String(), secret) {
					t.Fatalf("leaked file content: %q", w.Body.String())
				}
				if ok {
					t.Fatalf("served (code %d body %q), want fall-through", w.Code, w.Body.String())
				}
			})
		}
	}
}

// TestTraversalRealServer sends raw request lines through a real net/http
// server so that the path shapes are exactly those a client can produce.
func TestTraversalRealServer(t *testing.T) {
	_, pub := fixture(t)
	h := newHandler(t, pub, Options{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !h.Serve(w, r) {
			io.WriteString(w, "APP")
		}
	}))
	defer srv.Close()

	tests := []struct{ target, want string }{
		{"/hello.txt", "hello, world\n"},
		{"/dir/a.txt", "nested"},
		{"/../secret.txt", "APP"},
		{"/%2e%2e/secret.txt", "APP"},
		{"/%252e%252e/secret.txt", "APP"},
		{"/..%2fsecret.txt", "APP"},
		{"/..%5csecret.txt", "APP"},
		{"/..\\secret.txt", "APP"},
		{"/a%00b", "APP"},
		{"/.git/config", "APP"},
		{"/%2egit/config", "APP"},
		{"/dir/", "<p>index</p>"},
		{"/sub/", "APP"},
	}
	for _, tc := range tests {
		t.Run(tc.target, func(t *testing.T) {
			c, err := net.Dial("tcp", srv.Listener.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", tc.target)
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			if resp.StatusCode == http.StatusBadRequest {
				return // rejected by net/http itself: fine
			}
			if string(b) != tc.want {
				t.Errorf("got %d %q, want %q", resp.StatusCode, b, tc.want)
			}
		})
	}
}

func TestDotfiles(t *testing.T) {
	_, pub := fixture(t)
	mkdir(t, filepath.Join(pub, ".well-known"))
	write(t, filepath.Join(pub, ".well-known", "acme"), "token")
	write(t, filepath.Join(pub, "dir", ".hidden"), "hidden")
	write(t, filepath.Join(pub, "a.b.c"), "dots")
	write(t, filepath.Join(pub, "trailing."), "trailing")
	write(t, filepath.Join(pub, "..."), "three")

	tests := []struct {
		path    string
		isDot   bool
		content string
	}{
		{"/.env", true, "SECRET=1"},
		{"/.git/config", true, "[core]"},
		{"/.well-known/acme", true, "token"},
		{"/dir/.hidden", true, "hidden"},
		{"/%2egit/config", true, "[core]"}, // decoded to /.git/config
		{"/a.b.c", false, "dots"},
		{"/trailing.", false, "trailing"},
		{"/...", true, "three"},
	}
	for _, serveDot := range []bool{false, true} {
		h := newHandler(t, pub, Options{ServeDotfiles: serveDot})
		for _, tc := range tests {
			t.Run(fmt.Sprintf("ServeDotfiles=%v%s", serveDot, tc.path), func(t *testing.T) {
				w, ok := get(t, h, tc.path)
				want := serveDot || !tc.isDot
				if ok != want {
					t.Fatalf("served=%v, want %v", ok, want)
				}
				if ok && w.Body.String() != tc.content {
					t.Errorf("body %q, want %q", w.Body.String(), tc.content)
				}
			})
		}
	}
}

func TestSymlinks(t *testing.T) {
	tmp, pub := fixture(t)
	link := func(target, name string) {
		t.Helper()
		if err := os.Symlink(target, filepath.Join(pub, name)); err != nil {
			t.Skipf("symlinks unsupported: %v", err)
		}
	}
	link("../secret.txt", "rel-out.txt")                   // relative, escapes
	link(filepath.Join(tmp, "secret.txt"), "abs-out.txt")  // absolute, escapes
	link("../outside", "outdir")                           // directory, escapes
	link("hello.txt", "alias.txt")                         // relative, inside
	link("dir", "dirlink")                                 // directory, inside
	link("dir/../hello.txt", "dotdot-in.txt")              // '..' in target but stays inside
	link(filepath.Join(pub, "hello.txt"), "abs-in.txt")    // absolute, inside
	link("missing.txt", "dangling.txt")                    // dangling
	link("../public/dir/a.txt", "leave-and-return.txt")    // leaves the root by name, comes back
	link(".env", "env-alias.txt")                          // to a dotfile (the request path has no dot)
	link(filepath.Join(tmp, "outside"), "abs-outdir")      // absolute directory, escapes
	link("../../../../../../../../etc/passwd", "deep.txt") // far out

	tests := []struct {
		path          string
		strict, loose string // expected body; "" = fall through
	}{
		{"/rel-out.txt", "", secret},
		{"/abs-out.txt", "", secret},
		{"/outdir/other.txt", "", secret},
		{"/abs-outdir/other.txt", "", secret},
		{"/alias.txt", "hello, world\n", "hello, world\n"},
		{"/dirlink/a.txt", "nested", "nested"},
		{"/dotdot-in.txt", "hello, world\n", "hello, world\n"},
		{"/abs-in.txt", "", "hello, world\n"}, // os.Root refuses absolute links
		{"/dangling.txt", "", ""},
		{"/leave-and-return.txt", "", "nested"},
		{"/env-alias.txt", "SECRET=1", "SECRET=1"},
	}
	for _, follow := range []bool{false, true} {
		for _, cached := range []bool{true, false} {
			opts := Options{FollowSymlinks: follow}
			if !cached {
				opts.CacheMaxBytes = -1
			}
			h := newHandler(t, pub, opts)
			for _, tc := range tests {
				t.Run(fmt.Sprintf("follow=%v/cached=%v%s", follow, cached, tc.path), func(t *testing.T) {
					want := tc.strict
					if follow {
						want = tc.loose
					}
					w, ok := get(t, h, tc.path)
					if ok != (want != "") {
						t.Fatalf("served=%v body %q, want %q", ok, w.Body.String(), want)
					}
					if w.Body.String() != want {
						t.Errorf("body %q, want %q", w.Body.String(), want)
					}
				})
			}
			if !follow {
				if _, ok := get(t, h, "/deep.txt"); ok {
					t.Error("deep.txt served without FollowSymlinks")
				}
			}
		}
	}
}

func TestCacheRevalidation(t *testing.T) {
	_, pub := fixture(t)
	p := filepath.Join(pub, "live.txt")
	h := newHandler(t, pub, Options{})
	expect := func(want string) {
		t.Helper()
		w, ok := get(t, h, "/live.txt")
		if !ok || w.Body.String() != want {
			t.Fatalf("served=%v body %q, want %q", ok, w.Body.String(), want)
		}
		if got, want := w.Header().Get("ETag"), wantETag(t, p); got != want {
			t.Fatalf("ETag %q, want %q", got, want)
		}
	}
	t0 := time.Date(2024, 1, 2, 3, 4, 5, 6, time.UTC)
	setTime := func(tm time.Time) {
		t.Helper()
		if err := os.Chtimes(p, tm, tm); err != nil {
			t.Fatal(err)
		}
	}

	write(t, p, "first")
	setTime(t0)
	expect("first")
	if h.lookup("live.txt") == nil {
		t.Fatal("not cached")
	}

	// Same size, same mtime, different bytes: a cache hit keeps serving the
	// old bytes. This proves the cache is used (and documents that
	// validation is by size+mtime only).
	write(t, p, "FIRST")
	setTime(t0)
	expect("first")

	// Same size, new mtime.
	write(t, p, "xxxxx")
	setTime(t0.Add(time.Nanosecond))
	expect("xxxxx")

	// Different size, mtime left as written.
	write(t, p, "a longer body")
	expect("a longer body")

	// Different size, same mtime as the cached copy.
	prev := mtime(t, p)
	write(t, p, "short")
	setTime(prev)
	expect("short")

	// Grows past the cache limit: served from disk, not from memory.
	big := strings.Repeat("b", DefaultCacheMaxFileSize+1)
	write(t, p, big)
	expect(big)

	// Removed: falls through even though a copy may linger in memory.
	write(t, p, "small again")
	expect("small again")
	if err := os.Remove(p); err != nil {
		t.Fatal(err)
	}
	if _, ok := get(t, h, "/live.txt"); ok {
		t.Fatal("removed file served")
	}
	// Replaced by a directory.
	mkdir(t, p)
	if _, ok := get(t, h, "/live.txt"); ok {
		t.Fatal("directory served")
	}
}

func TestCacheBounds(t *testing.T) {
	_, pub := fixture(t)
	for i := range 50 {
		write(t, filepath.Join(pub, fmt.Sprintf("f%02d.txt", i)), strings.Repeat("z", 100+i))
	}
	write(t, filepath.Join(pub, "large.txt"), strings.Repeat("L", 2000))
	tests := []struct {
		name            string
		opts            Options
		maxN            int
		maxBytes        int64
		wantLargeCached bool
	}{
		{"entries", Options{CacheMaxEntries: 10}, 10, 1 << 30, true},
		{"bytes", Options{CacheMaxBytes: 1000}, 1 << 30, 1000, false},
		{"file size", Options{CacheMaxFileSize: 120}, 1 << 30, 1 << 30, false},
		{"disabled", Options{CacheMaxEntries: -1}, 0, 0, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newHandler(t, pub, tc.opts)
			for round := range 2 {
				for i := range 50 {
					want := strings.Repeat("z", 100+i)
					w, ok := get(t, h, fmt.Sprintf("/f%02d.txt", i))
					if !ok || w.Body.String() != want {
						t.Fatalf("round %d f%02d: served=%v len %d", round, i, ok, w.Body.Len())
					}
				}
				if w, ok := get(t, h, "/large.txt"); !ok || w.Body.Len() != 2000 {
					t.Fatal("large.txt not served")
				}
			}
			h.mu.RLock()
			defer h.mu.RUnlock()
			var sum int64
			for _, e := range h.entries {
				sum += int64(len(e.data))
			}
			if sum != h.used {
				t.Errorf("used=%d, entries sum to %d", h.used, sum)
			}
			if len(h.entries) > tc.maxN || h.used > tc.maxBytes {
				t.Errorf("cache has %d entries / %d bytes, bounds %d / %d", len(h.entries), h.used, tc.maxN, tc.maxBytes)
			}
			if _, ok := h.entries["large.txt"]; ok != tc.wantLargeCached {
				t.Errorf("large.txt cached=%v, want %v", ok, tc.wantLargeCached)
			}
		})
	}
}

// TestConcurrent hammers the cache from many goroutines while files change;
// run with -race.
func TestConcurrent(t *testing.T) {
	_, pub := fixture(t)
	for i := range 8 {
		write(t, filepath.Join(pub, fmt.Sprintf("c%d.txt", i)), "v0")
	}
	h := newHandler(t, pub, Options{CacheMaxEntries: 4})
	var wg sync.WaitGroup
	stop := make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for v := 1; ; v++ {
			select {
			case <-stop:
				return
			default:
			}
			if err := os.WriteFile(filepath.Join(pub, fmt.Sprintf("c%d.txt", v%8)), fmt.Appendf(nil, "v%d", v), 0o644); err != nil {
				t.Error(err)
				return
			}
			time.Sleep(100 * time.Microsecond)
		}
	}()
	var readers sync.WaitGroup
	for g := range 8 {
		readers.Add(1)
		go func() {
			defer readers.Done()
			for i := range 300 {
				r := httptest.NewRequest("GET", fmt.Sprintf("/c%d.txt", (g+i)%8), nil)
				w := httptest.NewRecorder()
				if h.Serve(w, r) && !bytes.HasPrefix(w.Body.Bytes(), []byte("v")) && w.Body.Len() != 0 {
					t.Errorf("bad body %q", w.Body.String())
					return
				}
			}
		}()
	}
	readers.Wait()
	close(stop)
	wg.Wait()
}

func TestCleanPath(t *testing.T) {
	tests := []struct {
		in, rel string
		ok      bool
	}{
		{"/a", "a", true},
		{"/a/b.txt", "a/b.txt", true},
		{"/.git/config", ".git/config", true}, // dotfiles are a separate policy
		{"/...", "...", true},
		{"/a..b", "a..b", true},
		{"/caf\u00e9", "caf\u00e9", true},
		{"/100%", "100%", true},
		{"/100%.txt", "100%.txt", true},
		{"/a%zz", "a%zz", true},
		{"", "", false},
		{"/", "", false},
		{"a", "", false},
		{"/..", "", false},
		{"/../x", "", false},
		{"/a/..", "", false},
		{"/a/../b", "", false},
		{"/.", "", false},
		{"/./a", "", false},
		{"/a/.", "", false},
		{"//a", "", false},
		{"/a//b", "", false},
		{"/a/", "", false},
		{"/a\\b", "", false},
		{"\\a", "", false},
		{"/a\x00b", "", false},
		{"/a\nb", "", false},
		{"/a\x7fb", "", false},
		{"/%2e%2e/x", "", false},
		{"/a%2Fb", "", false},
		{"/a%00", "", false},
		{"/a%20b", "", false},
		{"/" + strings.Repeat("a", maxPathLen), "", false},
	}
	for _, tc := range tests {
		rel, ok := cleanPath(tc.in)
		if rel != tc.rel || ok != tc.ok {
			t.Errorf("cleanPath(%q) = %q, %v; want %q, %v", tc.in, rel, ok, tc.rel, tc.ok)
		}
	}
}

func TestRawOK(t *testing.T) {
	tests := []struct {
		raw string
		ok  bool
	}{
		{"/a/b", true},
		{"/caf%C3%A9", true},
		{"/%2e%2e/x", true}, // decoded Path has "..": cleanPath rejects that
		{"/a%2fb", false},
		{"/a%2Fb", false},
		{"/a%5cb", false},
		{"/a%5Cb", false},
		{"/a%00b", false},
		{"/a%2", true},
	}
	for _, tc := range tests {
		if got := rawOK(tc.raw); got != tc.ok {
			t.Errorf("rawOK(%q) = %v, want %v", tc.raw, got, tc.ok)
		}
	}
}

func FuzzCleanPath(f *testing.F) {
	for _, s := range []string{
		"/../x", "/%2e%2e/", "/a/./b", "/a//b", "/.git/config", "/x\\..\\y",
		"/a\x00b", "/caf\u00e9/\u65e5\u672c.txt", "/\xff\xfe", "/", "", "/a/b/c.txt",
		"/..", "/...", "/a/..", "/%252e%252e/secret.txt", "/..%2f", "\\..\\x",
		// The shapes issue 9 names: encoded and double-encoded dots,
		// backslashes (raw and encoded), NUL, dotfiles.
		"/%2e%2e/secret.txt", "/.%2e/x", "/%2E%2E%2Fx", "/..%5cx", "/..%255cx", "/x%00.png",
		"/.env", "/.git/HEAD", "/a/.htaccess", "/%2egit/config", "/..;/x", "/\u2024\u2024/x",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, p string) {
		rel, ok := cleanPath(p)
		if !ok {
			if rel != "" {
				t.Fatalf("cleanPath(%q) = %q, false: want empty rel", p, rel)
			}
			return
		}
		if rel != p[1:] {
			t.Fatalf("cleanPath(%q) rewrote the path to %q", p, rel)
		}
		if rel == "" || rel[0] == '/' {
			t.Fatalf("cleanPath(%q) = %q: empty or absolute", p, rel)
		}
		if strings.ContainsAny(rel, "\x00\\") {
			t.Fatalf("cleanPath(%q) = %q: contains NUL or backslash", p, rel)
		}
		for _, seg := range strings.Split(rel, "/") {
			if seg == "" || seg == "." || seg == ".." {
				t.Fatalf("cleanPath(%q) = %q: bad segment %q", p, rel, seg)
			}
			// One more round of decoding must not produce anything new.
			if d, err := url.PathUnescape(seg); err == nil && d != seg {
				t.Fatalf("cleanPath(%q) = %q: segment %q still decodes to %q", p, rel, seg, d)
			}
		}
		if !filepath.IsLocal(rel) {
			t.Fatalf("cleanPath(%q) = %q: not filepath.IsLocal", p, rel)
		}
		if filepath.Clean(rel) != filepath.FromSlash(rel) {
			t.Fatalf("cleanPath(%q) = %q: not clean", p, rel)
		}
	})
}

// discardWriter is a reusable ResponseWriter that, like net/http's own,
// implements io.ReaderFrom; it keeps the benchmark measuring the handler
// rather than httptest.ResponseRecorder.
type discardWriter struct {
	h    http.Header
	code int
	n    int64
}

func (w *discardWriter) Header() http.Header { return w.h }
func (w *discardWriter) WriteHeader(c int)   { w.code = c }
func (w *discardWriter) Write(p []byte) (int, error) {
	w.n += int64(len(p))
	return len(p), nil
}
func (w *discardWriter) ReadFrom(r io.Reader) (int64, error) {
	n, err := io.Copy(io.Discard, r)
	w.n += n
	return n, err
}
func (w *discardWriter) reset() {
	clear(w.h)
	w.code, w.n = 0, 0
}

func benchSetup(b *testing.B, size int, opts Options) (*Handler, *http.Request) {
	dir := b.TempDir()
	write(b, filepath.Join(dir, "file.js"), strings.Repeat("x", size))
	h := newHandler(b, dir, opts)
	return h, httptest.NewRequest("GET", "/file.js", nil)
}

func BenchmarkServe4K(b *testing.B) {
	h, r := benchSetup(b, 4096, Options{})
	w := &discardWriter{h: make(http.Header)}
	if !h.Serve(w, r) || w.n != 4096 { // warm the cache
		b.Fatal("not served")
	}
	b.ReportAllocs()
	b.SetBytes(4096)
	for b.Loop() {
		w.reset()
		if !h.Serve(w, r) {
			b.Fatal("not served")
		}
	}
	if w.code != 200 || w.n != 4096 {
		b.Fatalf("code %d n %d", w.code, w.n)
	}
}

func BenchmarkServe4KParallel(b *testing.B) {
	h, r := benchSetup(b, 4096, Options{})
	b.ReportAllocs()
	b.SetBytes(4096)
	b.RunParallel(func(pb *testing.PB) {
		w := &discardWriter{h: make(http.Header)}
		for pb.Next() {
			w.reset()
			if !h.Serve(w, r) {
				b.Error("not served")
				return
			}
		}
	})
}

func BenchmarkServe4KNotModified(b *testing.B) {
	h, r := benchSetup(b, 4096, Options{})
	w := &discardWriter{h: make(http.Header)}
	h.Serve(w, r)
	r.Header.Set("If-None-Match", w.h.Get("Etag"))
	b.ReportAllocs()
	for b.Loop() {
		w.reset()
		h.Serve(w, r)
	}
	if w.code != 304 {
		b.Fatalf("code %d", w.code)
	}
}

func BenchmarkServe4KUncached(b *testing.B) {
	h, r := benchSetup(b, 4096, Options{CacheMaxEntries: -1})
	w := &discardWriter{h: make(http.Header)}
	b.ReportAllocs()
	b.SetBytes(4096)
	for b.Loop() {
		w.reset()
		h.Serve(w, r)
	}
	if w.code != 200 || w.n != 4096 {
		b.Fatalf("code %d n %d", w.code, w.n)
	}
}

func BenchmarkMiss(b *testing.B) {
	h, _ := benchSetup(b, 16, Options{})
	r := httptest.NewRequest("GET", "/users/42/edit", nil)
	w := &discardWriter{h: make(http.Header)}
	b.ReportAllocs()
	for b.Loop() {
		if h.Serve(w, r) {
			b.Fatal("served")
		}
	}
}

// BenchmarkMissUnique: a new path every request (an app's ids), below a
// directory that does not exist: what the cache of absent paths cannot
// spare, and must not make dearer than the one Stat.
func BenchmarkMissUnique(b *testing.B) {
	h, _ := benchSetup(b, 16, Options{})
	w := &discardWriter{h: make(http.Header)}
	rs := make([]*http.Request, 4096)
	for i := range rs {
		rs[i] = httptest.NewRequest("GET", fmt.Sprintf("/users/%d/edit", i), nil)
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if h.Serve(w, rs[i%len(rs)]) {
			b.Fatal("served")
		}
		i++
		if i%len(rs) == 0 {
			b.StopTimer()
			for i := range h.absent {
				h.absent[i].Store(nil) // new paths again
			}
			b.StartTimer()
		}
	}
}

// BenchmarkServe4KHTTP measures whole requests through a real net/http server
// on loopback, client included (both share the benchmark's CPUs), as a rough
// requests-per-second figure.
func BenchmarkServe4KHTTP(b *testing.B) {
	h, _ := benchSetup(b, 4096, Options{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !h.Serve(w, r) {
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	tr := &http.Transport{MaxIdleConnsPerHost: 64, DisableCompression: true}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr}
	u := srv.URL + "/file.js"
	b.ReportAllocs()
	b.SetParallelism(4)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			resp, err := client.Get(u)
			if err != nil {
				b.Error(err)
				return
			}
			n, _ := io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 || n != 4096 {
				b.Errorf("code %d n %d", resp.StatusCode, n)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "req/s")
}

// FuzzServe checks the whole handler, not just cleanPath: whatever request
// target a client sends, nothing outside public/ is served, and no dotfile.
func FuzzServe(f *testing.F) {
	for _, s := range []string{
		"/hello.txt", "/../secret.txt", "/%2e%2e/secret.txt", "/%252e%252e/secret.txt",
		"/..%2fsecret.txt", "/..%5csecret.txt", "/..\\secret.txt", "/hello.txt%00", "/.env",
		"/.git/config", "/%2egit/config", "/%2e%2e/secret.txt?x=1", "/dir/..%2f..%2fsecret.txt",
		"/rel-out.txt", "/outdir/other.txt", "/alias.txt",
	} {
		f.Add(s)
	}
	_, pub := fixture(f)
	for name, target := range map[string]string{
		"rel-out.txt": "../secret.txt", "outdir": "../outside", "alias.txt": "hello.txt",
	} {
		if err := os.Symlink(target, filepath.Join(pub, name)); err != nil {
			f.Skip(err)
		}
	}
	h := newHandler(f, pub, Options{})
	f.Fuzz(func(t *testing.T, target string) {
		u, err := url.ParseRequestURI(target)
		if err != nil {
			return
		}
		r := httptest.NewRequest("GET", "/", nil)
		r.URL, r.RequestURI = u, target
		w := httptest.NewRecorder()
		if !h.Serve(w, r) {
			return
		}
		if strings.Contains(w.Body.String(), secret) {
			t.Fatalf("%q served a file outside public/: %q", target, w.Body.String())
		}
		if strings.Contains(u.Path, "/.") {
			t.Fatalf("%q served a dotfile", target)
		}
	})
}

// A directory's index.html answers DIR/; DIR redirects there when it has
// one. Nothing is ever listed.
func TestDirectoryIndex(t *testing.T) {
	_, pub := fixture(t)
	write(t, filepath.Join(pub, "index.html"), "<p>home</p>")
	for _, cached := range []bool{true, false} {
		opts := Options{}
		if !cached {
			opts.CacheMaxEntries = -1
		}
		h := newHandler(t, pub, opts)
		for _, tc := range []struct{ path, body string }{{"/dir/", "<p>index</p>"}, {"/", "<p>home</p>"}} {
			w, ok := get(t, h, tc.path)
			if !ok || w.Code != 200 || w.Body.String() != tc.body || w.Header().Get("Content-Type") != "text/html; charset=utf-8" {
				t.Errorf("GET %s: served %v, %d %q %q", tc.path, ok, w.Code, w.Header().Get("Content-Type"), w.Body.String())
			}
		}
		w, ok := do(t, h, httptest.NewRequest(http.MethodHead, "/dir/", nil))
		if !ok || w.Code != 200 || w.Header().Get("Content-Length") != "12" {
			t.Errorf("HEAD /dir/: served %v, %d %v", ok, w.Code, w.Header())
		}
		for target, loc := range map[string]string{"/dir": "./dir/", "/dir?a=1&b": "./dir/?a=1&b"} {
			w, ok := get(t, h, target)
			if !ok || w.Code != http.StatusMovedPermanently || w.Header().Get("Location") != loc {
				t.Errorf("GET %s: served %v, %d Location %q, want 301 to %s", target, ok, w.Code, w.Header().Get("Location"), loc)
			}
		}
		for _, p := range []string{"/sub", "/sub/", "/hello.txt/", "/nope/"} {
			if w, ok := get(t, h, p); ok {
				t.Errorf("GET %s: served %d %q, want fall-through (no index.html: never a listing)", p, w.Code, w.Body.String())
			}
		}
	}
}
