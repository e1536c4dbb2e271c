package integration

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"crypto/sha1"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// echoApps are the fixture apps that share the echo endpoints, one per app
// type, each run under Ferry the way a user would run it.
var echoApps = []struct {
	name, dir, interp string
}{
	{"wsgi", "wsgi/echo", "/usr/bin/python3"},
	{"asgi", "asgi/echo", "/usr/bin/python3"},
	{"node", "node/echo", "/usr/bin/node"},
	{"rack", "rack/echo", "/usr/bin/ruby"},
}

func needInterp(t *testing.T, path string) {
	t.Helper()
	if _, err := os.Stat(path); err != nil {
		t.Skipf("%s not installed", path)
	}
}

func needFixture(t *testing.T, dir string) string {
	t.Helper()
	p := fixture(t, dir)
	if _, err := os.Stat(p); err != nil {
		t.Skipf("fixture %s not present", dir)
	}
	return p
}

// TestEveryAppType runs the same requests against every kind of app.
func TestEveryAppType(t *testing.T) {
	for _, app := range echoApps {
		t.Run(app.name, func(t *testing.T) {
			needInterp(t, app.interp)
			f := startFerry(t, needFixture(t, app.dir), "--max-pool-size", "2")
			f.waitLog(`app_type=` + app.name)

			if code, body := f.get("/"); code != 200 || !strings.Contains(body, "hello") {
				t.Fatalf("GET / = %d %q", code, body)
			}
			data := bytes.Repeat([]byte("0123456789"), 800_000) // 8 MB
			code, out := f.do("POST", "/upload", bytes.NewReader(data), nil)
			if code != 200 || !strings.Contains(strings.ReplaceAll(out, " ", ""), `"len":8000000`) {
				t.Errorf("POST /upload of 8 MB = %d %s", code, out)
			}
			code, out = f.do("POST", "/echo?q=1", strings.NewReader("small body"), http.Header{"X-Test": {"yes"}})
			var e map[string]any
			if code != 200 || json.Unmarshal([]byte(out), &e) != nil || e["method"] != "POST" || e["body_len"] != float64(10) {
				t.Errorf("POST /echo = %d %s", code, out)
			}
			if code, _ := f.get("/error"); code != 500 {
				t.Errorf("GET /error = %d, want 500", code)
			}
			if code, _ := f.get("/"); code != 200 {
				t.Errorf("after an app error GET / = %d", code)
			}
			resp := f.request("GET", "/stream?n=2&delay=600", nil, nil)
			line, err := bufio.NewReader(resp.Body).ReadString('\n')
			resp.Body.Close()
			if err != nil || !strings.HasPrefix(line, "chunk 0") {
				t.Errorf("first streamed chunk = %q, %v", line, err)
			}
			resp = f.request("GET", "/cookies", nil, nil)
			resp.Body.Close()
			if n := len(resp.Header.Values("Set-Cookie")); n != 2 && app.name != "asgi" {
				t.Errorf("Set-Cookie headers = %d, want 2", n)
			}
		})
	}
}

// TestManyRequestsPerProcess: Node and ASGI processes serve many requests
// at once; the pool must not queue them one per process.
func TestManyRequestsPerProcess(t *testing.T) {
	for _, app := range echoApps[1:3] {
		t.Run(app.name, func(t *testing.T) {
			needInterp(t, app.interp)
			f := startFerry(t, needFixture(t, app.dir), "--max-pool-size", "1")
			f.get("/")
			var wg sync.WaitGroup
			for i := range 10 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					// Distinct URLs: identical concurrent misses would be
					// coalesced by the response cache.
					if code, _ := f.get(fmt.Sprintf("/sleep?s=2&i=%d", i)); code != 200 {
						t.Errorf("GET /sleep = %d", code)
					}
				}()
			}
			eventually(t, "ten requests in one process at once", func() bool {
				a := f.pool().Apps[0]
				return len(a.Processes) == 1 && a.Processes[0].Sessions == 10 && a.Queued == 0
			})
			wg.Wait()
		})
	}
}

func TestNodeGrowsPastConcurrencyTarget(t *testing.T) {
	needInterp(t, "/usr/bin/node")
	f := startFerry(t, needFixture(t, "node/echo"), "--max-pool-size", "3", "--min-instances", "1", "--concurrency-target", "4")
	f.get("/")
	// Sustained load: nine clients, each sending one slow request after
	// another. Sessions already open stay where they are, so growth shows as
	// new requests arrive: one process at 4+, then two, then three.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for i := range 9 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				if resp, err := client.Get(fmt.Sprintf("%s/sleep?s=0.3&i=%d", f.URL, i)); err == nil {
					resp.Body.Close()
				}
			}
		}()
	}
	eventually(t, "three processes under load past the target", func() bool { return len(f.pids()) == 3 })
	close(stop)
	wg.Wait()
	if n := len(f.pids()); n > 3 {
		t.Fatalf("%d processes, past --max-pool-size 3", n)
	}
}

func TestWebSocketThroughFerry(t *testing.T) {
	for _, app := range []struct{ name, dir, interp string }{
		{"node", "node/echo", "/usr/bin/node"},
		{"asgi", "asgi/echo", "/usr/bin/python3"},
		{"rack", "rack/echo", "/usr/bin/ruby"},
	} {
		t.Run(app.name, func(t *testing.T) {
			needInterp(t, app.interp)
			f := startFerry(t, needFixture(t, app.dir), "--max-pool-size", "1")
			ws := dialWebSocket(t, f, "/ws")
			defer ws.Close()
			for _, msg := range []string{"hello", strings.Repeat("x", 70000), "ünïcødé"} {
				ws.send(t, 1, []byte(msg))
				op, got := ws.recv(t)
				if op != 1 || string(got) != msg {
					t.Fatalf("echo of %d bytes: opcode %d, %d bytes back", len(msg), op, len(got))
				}
			}
			// The tunnel counts as a busy session while it lives.
			if s := sessions(f); s != 1 {
				t.Errorf("sessions during a WebSocket = %d, want 1", s)
			}
			ws.send(t, 8, []byte{3, 232}) // close, 1000
			if op, _ := ws.recv(t); op != 8 {
				t.Errorf("close answered with opcode %d", op)
			}
			eventually(t, "the session released after close", func() bool { return sessions(f) == 0 })
		})
	}
}

func TestFrameworks(t *testing.T) {
	t.Run("flask", func(t *testing.T) {
		needInterp(t, "/usr/bin/python3")
		if exec.Command("/usr/bin/python3", "-c", "import flask").Run() != nil {
			t.Skip("python3-flask not installed")
		}
		f := startFerry(t, needFixture(t, "wsgi/flask"))
		if code, body := f.get("/"); code != 200 || body != "hello from flask" {
			t.Fatalf("GET / = %d %q", code, body)
		}
		if code, body := f.do("POST", "/form", strings.NewReader("name=ferry"), http.Header{"Content-Type": {"application/x-www-form-urlencoded"}}); code != 200 || body != "hello ferry" {
			t.Errorf("POST /form = %d %q", code, body)
		}
		var buf bytes.Buffer
		mw := multipart.NewWriter(&buf)
		fw, _ := mw.CreateFormFile("file", "data.bin")
		fw.Write(bytes.Repeat([]byte{7}, 3<<20))
		mw.Close()
		code, body := f.do("POST", "/upload", &buf, http.Header{"Content-Type": {mw.FormDataContentType()}})
		if code != 200 || !strings.Contains(body, `"size":3145728`) && !strings.Contains(body, `"size": 3145728`) {
			t.Errorf("file upload = %d %s", code, body)
		}
		if code, body := f.get("/stream?n=3"); code != 200 || strings.Count(body, "chunk") != 3 {
			t.Errorf("GET /stream = %d %q", code, body)
		}
		if code, _ := f.get("/error"); code != 500 {
			t.Errorf("GET /error = %d", code)
		}
	})

	t.Run("starlette", func(t *testing.T) {
		needInterp(t, "/usr/bin/python3")
		if exec.Command("/usr/bin/python3", "-c", "import starlette").Run() != nil {
			t.Skip("python3-starlette not installed")
		}
		f := startFerry(t, needFixture(t, "asgi/starlette"))
		if code, body := f.get("/"); code != 200 || body != "hello from starlette" {
			t.Fatalf("GET / = %d %q (the lifespan state is what answers)", code, body)
		}
		code, body := f.do("POST", "/items", strings.NewReader(`{"items":[1,2,3]}`), http.Header{"Content-Type": {"application/json"}})
		if code != 201 || !strings.Contains(body, `"count":3`) {
			t.Errorf("POST /items = %d %s", code, body)
		}
		if code, body := f.get("/stream?n=3"); code != 200 || body != "part 0\npart 1\npart 2\n" {
			t.Errorf("GET /stream = %d %q", code, body)
		}
		ws := dialWebSocket(t, f, "/ws")
		ws.send(t, 1, []byte("ping"))
		if _, got := ws.recv(t); !strings.Contains(string(got), "ping") {
			t.Errorf("starlette ws echo = %q", got)
		}
		ws.Close()
	})

	t.Run("express", func(t *testing.T) {
		needInterp(t, "/usr/bin/node")
		dir := needFixture(t, "node/express")
		npmInstall(t, dir)
		f := startFerry(t, dir)
		if code, body := f.get("/"); code != 200 || body != "hello from express" {
			t.Fatalf("GET / = %d %q", code, body)
		}
		code, body := f.do("POST", "/json", strings.NewReader(`{"a":1}`), http.Header{"Content-Type": {"application/json"}})
		if code != 200 || !strings.Contains(body, `"a":1`) {
			t.Errorf("POST /json = %d %s", code, body)
		}
		if code, body := f.get("/stream"); code != 200 || strings.Count(body, "chunk") != 3 {
			t.Errorf("GET /stream = %d %q", code, body)
		}
		if code, _ := f.get("/error"); code != 500 {
			t.Errorf("GET /error = %d", code)
		}
		// Express sees the real client.
		if _, body := f.get("/whoami"); !strings.Contains(body, `"ip":"127.0.0.1"`) && !strings.Contains(body, `"ip":"::ffff:127.0.0.1"`) {
			t.Errorf("GET /whoami = %s", body)
		}
	})

	t.Run("node esm", func(t *testing.T) {
		needInterp(t, "/usr/bin/node")
		f := startFerry(t, needFixture(t, "node/esm"))
		if code, body := f.get("/"); code != 200 || body != "hello from esm" {
			t.Fatalf("GET / = %d %q", code, body)
		}
	})

	t.Run("sinatra", func(t *testing.T) {
		needInterp(t, "/usr/bin/ruby")
		if exec.Command("/usr/bin/ruby", "-e", "require 'sinatra/base'").Run() != nil {
			t.Skip("ruby-sinatra not installed")
		}
		f := startFerry(t, needFixture(t, "rack/sinatra"))
		if code, body := f.get("/"); code != 200 || body != "hello from sinatra" {
			t.Fatalf("GET / = %d %q", code, body)
		}
		if code, body := f.do("POST", "/form", strings.NewReader("name=ferry"), http.Header{"Content-Type": {"application/x-www-form-urlencoded"}}); code != 200 || !strings.Contains(body, "ferry") {
			t.Errorf("POST /form = %d %q", code, body)
		}
		if code, _ := f.get("/stream"); code != 200 {
			t.Errorf("GET /stream = %d", code)
		}
		if code, _ := f.get("/error"); code != 500 {
			t.Errorf("GET /error = %d", code)
		}
	})
}

var npmOnce sync.Map

// npmInstall installs a fixture's npm dependencies once, or skips.
func npmInstall(t *testing.T, dir string) {
	t.Helper()
	if _, err := os.Stat(filepath.Join(dir, "node_modules")); err == nil {
		return
	}
	v, _ := npmOnce.LoadOrStore(dir, &sync.Once{})
	v.(*sync.Once).Do(func() {
		cmd := exec.Command("npm", "install", "--no-audit", "--no-fund")
		cmd.Dir = dir
		cmd.CombinedOutput()
	})
	if _, err := os.Stat(filepath.Join(dir, "node_modules")); err != nil {
		t.Skipf("npm install in %s failed; the registry may be unreachable", dir)
	}
}

// wsConn is a minimal WebSocket client (RFC 6455) for tests.
type wsConn struct {
	net.Conn
	br *bufio.Reader
}

func dialWebSocket(t *testing.T, f *ferry, path string) *wsConn {
	t.Helper()
	c, err := net.Dial("tcp", strings.TrimPrefix(f.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	key := make([]byte, 16)
	rand.Read(key)
	k := base64.StdEncoding.EncodeToString(key)
	fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: %s\r\n\r\n", path, k)
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

func (w *wsConn) send(t *testing.T, opcode byte, payload []byte) {
	t.Helper()
	var hdr []byte
	hdr = append(hdr, 0x80|opcode)
	switch n := len(payload); {
	case n < 126:
		hdr = append(hdr, 0x80|byte(n))
	case n < 65536:
		hdr = append(hdr, 0x80|126, byte(n>>8), byte(n))
	default:
		hdr = append(hdr, 0x80|127)
		hdr = binary.BigEndian.AppendUint64(hdr, uint64(n))
	}
	mask := make([]byte, 4)
	rand.Read(mask)
	hdr = append(hdr, mask...)
	masked := make([]byte, len(payload))
	for i := range payload {
		masked[i] = payload[i] ^ mask[i%4]
	}
	if _, err := w.Write(append(hdr, masked...)); err != nil {
		t.Fatalf("websocket send: %v", err)
	}
}

func (w *wsConn) recv(t *testing.T) (byte, []byte) {
	t.Helper()
	var msg []byte
	var opcode byte
	for {
		h := make([]byte, 2)
		if _, err := io.ReadFull(w.br, h); err != nil {
			t.Fatalf("websocket recv: %v", err)
		}
		fin, op := h[0]&0x80 != 0, h[0]&0x0f
		n := uint64(h[1] & 0x7f)
		switch n {
		case 126:
			b := make([]byte, 2)
			io.ReadFull(w.br, b)
			n = uint64(binary.BigEndian.Uint16(b))
		case 127:
			b := make([]byte, 8)
			io.ReadFull(w.br, b)
			n = binary.BigEndian.Uint64(b)
		}
		p := make([]byte, n)
		if _, err := io.ReadFull(w.br, p); err != nil {
			t.Fatalf("websocket recv payload: %v", err)
		}
		if op == 9 { // ping: answer and go on
			w.send(t, 10, p)
			continue
		}
		if op != 0 {
			opcode = op
		}
		msg = append(msg, p...)
		if fin {
			return opcode, msg
		}
	}
}

// TestExamples runs every example the README shows, the way it shows them.
func TestExamples(t *testing.T) {
	for _, ex := range []struct {
		dir, interp string
		args        []string
	}{
		{"hello-wsgi", "/usr/bin/python3", nil},
		{"hello-asgi", "/usr/bin/python3", nil},
		{"hello-rack", "/usr/bin/ruby", nil},
		{"hello-node", "/usr/bin/node", nil},
		{"hello-generic", "/usr/bin/python3", []string{"--app-start-command", "/usr/bin/python3 server.py"}},
	} {
		t.Run(ex.dir, func(t *testing.T) {
			needInterp(t, ex.interp)
			dir, _ := filepath.Abs(filepath.Join("..", "examples", ex.dir))
			f := startFerry(t, dir, ex.args...)
			if code, body := f.get("/"); code != 200 || !strings.Contains(strings.ToLower(body), "hello") {
				t.Fatalf("GET / = %d %q", code, body)
			}
		})
	}
}
