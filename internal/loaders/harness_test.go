package loaders

// The shared harness of the loader tests: start a real loader under its real
// interpreter exactly as the core does (status pipe on fd 3, lifeline on fd
// 4, own process group), read its handshake, and speak HTTP/1.1 to it over
// its Unix socket.

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/textproto"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ferry-server/ferry/internal/appwire"
	"github.com/ferry-server/ferry/internal/httpfield"
	"github.com/ferry-server/ferry/internal/proxy"
)

// wait bounds every wait on the loader; generous, since CI machines stall.
const wait = 30 * time.Second

// syncBuffer collects the loader's stdout and stderr.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// handshake is the status line.
type handshake struct {
	Status      string `json:"status"`
	Socket      string `json:"socket"`
	Concurrency int    `json:"concurrency"`
	Wire        int    `json:"wire"`
	Head        string `json:"head"`
	Summary     string `json:"summary"`
	Details     string `json:"details"`
}

// loader is one app process running a loader script.
type loader struct {
	tb       testing.TB
	cmd      *exec.Cmd
	sock     string
	hs       handshake
	rawHS    string
	lifeline *os.File // the write end, as the core holds it
	out      *syncBuffer
	done     chan struct{} // closed when the process has exited
	pid      int           // of a smart-spawned worker (cmd is nil then)
	// status reads the status pipe after the handshake (backtraces on
	// demand), as the core does.
	status *bufio.Reader
}

// kind is how to run one loader.
type kind struct {
	interpreter []string // argv before the script
	script      string   // the loader's name for Write
	startup     string   // default startup file
	env         []string
}

// kinds are the loaders the tests can start, each under the interpreter the
// core would use on Debian.
var kinds = map[string]kind{
	"wsgi": {[]string{"/usr/bin/python3"}, "wsgi.py", "passenger_wsgi.py",
		[]string{"PYTHONUNBUFFERED=1", "PYTHONDONTWRITEBYTECODE=1", "WSGI_ENV=test"}}, // keep __pycache__ out of testdata
	"asgi": {[]string{"/usr/bin/python3"}, "asgi.py", "asgi.py",
		[]string{"PYTHONUNBUFFERED=1", "PYTHONDONTWRITEBYTECODE=1"}},
	"rack": {[]string{"/usr/bin/ruby"}, "rack.rb", "config.ru", []string{"RACK_ENV=test"}},
	"node": {[]string{"/usr/bin/node"}, "node.cjs", "app.js", []string{"NODE_ENV=test"}},
}

// startKind starts the loader of kind k (see kinds) for the app in appDir
// following the loader contract, and reads its handshake line. env entries
// override the defaults (e.g. FERRY_STARTUP_FILE=…).
func startKind(tb testing.TB, k, appDir string, env ...string) *loader {
	tb.Helper()
	kd, ok := kinds[k]
	if !ok {
		tb.Fatalf("unknown loader kind %q", k)
	}
	if _, err := os.Stat(kd.interpreter[0]); err != nil {
		tb.Skipf("skipping: the %s loader tests need %s: %v", k, kd.interpreter[0], err)
	}
	root, err := filepath.Abs(appDir)
	if err != nil {
		tb.Fatal(err)
	}
	// Not tb.TempDir: Unix socket paths are limited to 107 bytes.
	dir, err := os.MkdirTemp("", "fl")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { os.RemoveAll(dir) })
	script, err := Write(dir, kd.script)
	if err != nil {
		tb.Fatal(err)
	}
	sock := filepath.Join(dir, "sock")

	statusR, statusW, err := os.Pipe()
	if err != nil {
		tb.Fatal(err)
	}
	lifeR, lifeW, err := os.Pipe()
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { statusR.Close() })

	l := &loader{tb: tb, sock: sock, lifeline: lifeW, out: &syncBuffer{}, done: make(chan struct{}), status: bufio.NewReader(statusR)}
	cmd := exec.Command(kd.interpreter[0], append(kd.interpreter[1:], script)...)
	cmd.Dir = root
	base := []string{
		"PATH=/usr/bin:/bin",
		"LANG=C.UTF-8",
		"HOME=" + dir,
		"FERRY_APP_ROOT=" + root,
		"FERRY_STARTUP_FILE=" + kd.startup,
		"FERRY_SOCKET=" + sock,
		"FERRY_STATUS_FD=3",
		"FERRY_LIFELINE_FD=4",
		"FERRY_APP_ENV=test",
		"PASSENGER_APP_ENV=test",
	}
	// Later entries win: exec.Cmd keeps the last value of a repeated key.
	cmd.Env = append(append(base, kd.env...), env...)
	cmd.ExtraFiles = []*os.File{statusW, lifeR} // fds 3 and 4
	cmd.Stdout = l.out
	cmd.Stderr = l.out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		statusW.Close()
		lifeR.Close()
		lifeW.Close()
		tb.Fatal(err)
	}
	statusW.Close()
	lifeR.Close()
	l.cmd = cmd
	go func() {
		cmd.Wait()
		close(l.done)
	}()
	tb.Cleanup(func() {
		lifeW.Close()
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		select {
		case <-l.done:
		case <-time.After(wait):
			tb.Errorf("loader pid %d did not exit", cmd.Process.Pid)
		}
	})

	line := make(chan string, 1)
	go func() {
		b, _ := l.status.ReadString('\n')
		line <- b
	}()
	select {
	case l.rawHS = <-line:
	case <-time.After(wait):
		tb.Fatalf("no handshake line after %v; output:\n%s", wait, l.out)
	}
	if err := json.Unmarshal([]byte(l.rawHS), &l.hs); err != nil {
		tb.Fatalf("handshake %q: %v; output:\n%s", l.rawHS, err, l.out)
	}
	return l
}

// startReady starts a loader and insists that it is ready.
func startReady(tb testing.TB, appDir string, env ...string) *loader {
	tb.Helper()
	l := startLoader(tb, appDir, env...)
	if l.hs.Status != "ready" {
		tb.Fatalf("handshake %q, want ready; output:\n%s", l.rawHS, l.out)
	}
	return l
}

// exitCode waits for the loader to exit and returns its exit code.
func (l *loader) exitCode() int {
	l.tb.Helper()
	select {
	case <-l.done:
	case <-time.After(wait):
		l.tb.Fatalf("loader still running after %v; output:\n%s", wait, l.out)
	}
	return l.cmd.ProcessState.ExitCode()
}

// stop closes the lifeline and waits for the exit, so that all output has
// been collected.
func (l *loader) stop() int {
	l.tb.Helper()
	l.lifeline.Close()
	return l.exitCode()
}

// client is one persistent connection to the loader.
type client struct {
	tb testing.TB
	c  net.Conn
	br *bufio.Reader
	// framed: requests go on ferry-wire/1 (the loader chose it), framed
	// by the core's own code (proxy.AppendEnv); remote and scheme are the
	// client's address and scheme the core would tell ("" and "http" are
	// what the HTTP/1.1 requests of these tests tell: nothing).
	framed bool
	layout string // the loader's head layout ("": CGI, "asgi")
	remote string
	scheme string
}

func (l *loader) dial() *client {
	l.tb.Helper()
	c, err := net.Dial("unix", l.sock)
	if err != nil {
		l.tb.Fatal(err)
	}
	l.tb.Cleanup(func() { c.Close() })
	return &client{tb: l.tb, c: c, br: bufio.NewReaderSize(c, 64<<10), framed: l.hs.Wire == appwire.Version, layout: l.hs.Head, scheme: "http"}
}

// sendFramed is send on ferry-wire/1.
func (c *client) sendFramed(method, target string, headers []string, body []byte) {
	c.tb.Helper()
	r := &http.Request{Method: method, RequestURI: target, Host: "app.test", Header: http.Header{}, RemoteAddr: c.remote, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1}
	for _, h := range headers {
		k, v, _ := strings.Cut(h, ":")
		k, v = textproto.CanonicalMIMEHeaderKey(strings.TrimSpace(k)), strings.TrimSpace(v)
		if k == "Host" {
			r.Host = v
			continue
		}
		r.Header[k] = append(r.Header[k], v)
	}
	var q appwire.Request
	q.Begin(nil)
	if c.layout == appwire.HeadASGI {
		proxy.AppendASGI(&q, r, int64(len(body)), c.scheme)
	} else {
		proxy.AppendEnv(&q, r, int64(len(body)), c.scheme)
	}
	frame, err := q.End()
	if err != nil {
		c.tb.Fatalf("%s %s: frame: %v", method, target, err)
	}
	c.c.SetDeadline(time.Now().Add(wait))
	if _, err := c.c.Write(append(frame, body...)); err != nil {
		c.tb.Fatalf("%s %s: write: %v", method, target, err)
	}
}

// headFramed is head on ferry-wire/1: 1xx heads skipped, the body read
// to its end chunk.
func (c *client) headFramed(method string) *http.Response {
	c.tb.Helper()
	c.c.SetDeadline(time.Now().Add(wait))
	for i := 0; ; i++ {
		h, err := appwire.ReadHead(c.br)
		if err == appwire.ErrSwitchHTTP {
			// The loader passes this one on as HTTP/1.1, then closes.
			resp, err := http.ReadResponse(c.br, &http.Request{Method: method})
			if err != nil {
				c.tb.Fatalf("%s: read response after the switch: %v", method, err)
			}
			resp.Close = true
			return resp
		}
		if err != nil {
			c.tb.Fatalf("%s: read framed response: %v", method, err)
		}
		if h.Code < 200 && i < 32 {
			continue
		}
		resp := &http.Response{Status: h.Status, StatusCode: h.Code, Header: h.Header, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
			Close: httpfield.HasToken(h.Header["Connection"], "close"), Body: http.NoBody, ContentLength: -1}
		cl := int64(-1)
		if v := h.Header.Get("Content-Length"); v != "" {
			cl, _ = strconv.ParseInt(v, 10, 64)
			resp.ContentLength = cl
		}
		if method == "HEAD" || h.Code == 204 || h.Code == 304 {
			if err := appwire.ReadEnd(c.br); err != nil {
				c.tb.Fatalf("%s: read end chunk: %v", method, err)
			}
			return resp
		}
		resp.Body = io.NopCloser(appwire.NewBody(c.br, cl))
		return resp
	}
}

// send writes one request: the request line with target as is, a Host
// header unless headers has one, headers ("Name: value"), a Content-Length
// when body is non-nil, and the body.
func (c *client) send(method, target string, headers []string, body []byte) {
	c.tb.Helper()
	if c.framed {
		c.sendFramed(method, target, headers, body)
		return
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "%s %s HTTP/1.1\r\n", method, target)
	host := false
	for _, h := range headers {
		host = host || strings.HasPrefix(strings.ToLower(h), "host:")
	}
	if !host {
		b.WriteString("Host: app.test\r\n")
	}
	for _, h := range headers {
		b.WriteString(h + "\r\n")
	}
	if body != nil {
		fmt.Fprintf(&b, "Content-Length: %d\r\n", len(body))
	}
	b.WriteString("\r\n")
	b.Write(body)
	c.c.SetDeadline(time.Now().Add(wait))
	if _, err := c.c.Write(b.Bytes()); err != nil {
		c.tb.Fatalf("%s %s: write: %v", method, target, err)
	}
}

// head reads a response head; the caller reads and closes the body.
func (c *client) head(method string) *http.Response {
	c.tb.Helper()
	if c.framed {
		return c.headFramed(method)
	}
	c.c.SetDeadline(time.Now().Add(wait))
	resp, err := http.ReadResponse(c.br, &http.Request{Method: method})
	if err != nil {
		c.tb.Fatalf("%s: read response: %v", method, err)
	}
	return resp
}

// do makes one round trip and returns the response with its whole body.
func (c *client) do(method, target string, headers []string, body []byte) (*http.Response, string) {
	c.tb.Helper()
	c.send(method, target, headers, body)
	resp := c.head(method)
	data, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		c.tb.Fatalf("%s %s: read body: %v", method, target, err)
	}
	return resp, string(data)
}

// get is do for a GET that must answer want.
func (c *client) get(target string, want int) string {
	c.tb.Helper()
	resp, body := c.do("GET", target, nil, nil)
	if resp.StatusCode != want {
		c.tb.Fatalf("GET %s: status %d, want %d; body %q", target, resp.StatusCode, want, body)
	}
	return body
}

// echoed is what /echo answers.
type echoed struct {
	Method         string            `json:"method"`
	ScriptName     string            `json:"script_name"`
	PathInfo       string            `json:"path_info"`
	QueryString    string            `json:"query_string"`
	ContentType    *string           `json:"content_type"`
	ContentLength  *string           `json:"content_length"`
	Headers        map[string]string `json:"headers"`
	BodyLen        int               `json:"body_len"`
	BodySHA256     string            `json:"body_sha256"`
	Body           *string           `json:"body"`
	RemoteAddr     string            `json:"remote_addr"`
	RemotePort     string            `json:"remote_port"`
	URLScheme      string            `json:"url_scheme"`
	ServerName     string            `json:"server_name"`
	ServerPort     string            `json:"server_port"`
	ServerProtocol string            `json:"server_protocol"`
	PID            int               `json:"pid"`
}

func (c *client) echo(method, target string, headers []string, body []byte) echoed {
	c.tb.Helper()
	resp, data := c.do(method, target, headers, body)
	if resp.StatusCode != 200 {
		c.tb.Fatalf("%s %s: status %d; body %q", method, target, resp.StatusCode, data)
	}
	var e echoed
	if err := json.Unmarshal([]byte(data), &e); err != nil {
		c.tb.Fatalf("%s %s: %v in %q", method, target, err, data)
	}
	return e
}

func sum(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// payload is n deterministic, incompressible-looking bytes.
func payload(n int) []byte {
	b := make([]byte, n)
	x := uint32(2463534242)
	for i := range b {
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		b[i] = byte(x)
	}
	return b
}

// workerSeq names worker sockets.
var workerSeq struct {
	sync.Mutex
	n int
}

// spawnWorker asks a preloader (a loader started with
// FERRY_SPAWN_METHOD=smart) for a worker exactly as the core does: one JSON
// line on a fresh connection to the control socket, with the worker's
// stdout, stderr and status pipe write ends as SCM_RIGHTS. It returns the
// worker once its handshake arrived; the handshake may be an error. Its pid
// comes from the kernel (SO_PEERCRED), never from what the loader says.
func (l *loader) spawnWorker() *loader {
	tb := l.tb
	tb.Helper()
	workerSeq.Lock()
	workerSeq.n++
	n := workerSeq.n
	workerSeq.Unlock()
	wsock := filepath.Join(filepath.Dir(l.sock), fmt.Sprintf("w%d", n))

	outR, outW, err := os.Pipe()
	if err != nil {
		tb.Fatal(err)
	}
	statusR, statusW, err := os.Pipe()
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { statusR.Close() })
	w := &loader{tb: tb, sock: wsock, out: &syncBuffer{}, done: make(chan struct{}), status: bufio.NewReader(statusR)}
	go func() {
		io.Copy(w.out, outR)
		outR.Close()
	}()

	conn, err := net.DialUnix("unix", nil, &net.UnixAddr{Name: l.sock, Net: "unix"})
	if err != nil {
		tb.Fatalf("connect to the preloader's control socket: %v", err)
	}
	line := fmt.Sprintf(`{"command":"spawn","socket":%q}`+"\n", wsock)
	rights := syscall.UnixRights(int(outW.Fd()), int(outW.Fd()), int(statusW.Fd()))
	if _, _, err := conn.WriteMsgUnix([]byte(line), rights, nil); err != nil {
		tb.Fatalf("send spawn command: %v", err)
	}
	conn.Close()
	outW.Close()
	statusW.Close()

	hs := make(chan string, 1)
	go func() {
		b, _ := w.status.ReadString('\n')
		hs <- b
	}()
	select {
	case w.rawHS = <-hs:
	case <-time.After(wait):
		tb.Fatalf("no worker handshake after %v; preloader output:\n%s", wait, l.out)
	}
	if err := json.Unmarshal([]byte(w.rawHS), &w.hs); err != nil {
		tb.Fatalf("worker handshake %q: %v; preloader output:\n%s\nworker output:\n%s", w.rawHS, err, l.out, w.out)
	}
	if w.hs.Status != "ready" {
		close(w.done)
		return w
	}
	w.pid = peerPID(tb, wsock)
	go func() {
		// Not our child: watch /proc until the preloader has reaped it.
		for alive(w.pid) {
			time.Sleep(20 * time.Millisecond)
		}
		close(w.done)
	}()
	tb.Cleanup(func() {
		syscall.Kill(-w.pid, syscall.SIGKILL)
		syscall.Kill(w.pid, syscall.SIGKILL)
		select {
		case <-w.done:
		case <-time.After(wait):
			tb.Errorf("worker pid %d did not exit", w.pid)
		}
	})
	return w
}

// peerPID is the pid of the process listening on a Unix socket, from the
// kernel.
func peerPID(tb testing.TB, sock string) int {
	tb.Helper()
	c, err := net.Dial("unix", sock)
	if err != nil {
		tb.Fatalf("connect to worker: %v", err)
	}
	defer c.Close()
	raw, err := c.(*net.UnixConn).SyscallConn()
	if err != nil {
		tb.Fatal(err)
	}
	var cred *syscall.Ucred
	var serr error
	raw.Control(func(fd uintptr) {
		cred, serr = syscall.GetsockoptUcred(int(fd), syscall.SOL_SOCKET, syscall.SO_PEERCRED)
	})
	if serr != nil {
		tb.Fatalf("SO_PEERCRED: %v", serr)
	}
	return int(cred.Pid)
}

// alive reports whether pid runs (a zombie does not count).
func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || s[i+2] != 'Z'
}

// backtraces asks the process for its backtraces on demand (SIGWINCH) and
// reads them from the status pipe up to their end marker, as the core does.
func (l *loader) backtraces() string {
	l.tb.Helper()
	if err := syscall.Kill(oobPID(l), syscall.SIGWINCH); err != nil {
		if l.cmd != nil {
			<-l.done // the loader is gone: say how, and what it printed
			l.tb.Fatalf("signal the loader: %v (%v); output:\n%s", err, l.cmd.ProcessState, l.out)
		}
		l.tb.Fatal(err)
	}
	dump := make(chan string, 1)
	go func() {
		var b strings.Builder
		for {
			line, err := l.status.ReadString('\n')
			b.WriteString(line)
			if err != nil || line == btEnd {
				dump <- b.String()
				return
			}
		}
	}()
	select {
	case d := <-dump:
		return d
	case <-time.After(wait):
		l.tb.Fatalf("no backtraces on the status pipe after %v; output:\n%s", wait, l.out)
		return ""
	}
}

// btEnd ends each dump of backtraces on demand (spawn.BacktraceEnd).
const btEnd = "-- ferry: end of backtraces --\n"

// gone waits until a worker has exited.
func (l *loader) gone() {
	l.tb.Helper()
	select {
	case <-l.done:
	case <-time.After(wait):
		l.tb.Fatalf("pid %d still running after %v", l.pid, wait)
	}
}
