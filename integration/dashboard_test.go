package integration

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ferry-server/ferry/internal/admin"
)

// TestDashboardChromium drives the dashboard in real headless Chromium
// against the real ferry serving a real app: the page renders the app and
// its process, shows a second process when the pool adds one (and the
// requests in flight that made it), and a restart clicked on the page, with
// the admin token typed into it, restarts the app. With
// FERRY_DASHBOARD_SCREENSHOT=FILE it saves a screenshot (docs/dashboard.png).
func TestDashboardChromium(t *testing.T) {
	browser, err := exec.LookPath("chromium")
	if err != nil {
		t.Skip("chromium is not installed (scripts/chromium.sh installs Debian's chromium): skipping the browser test of the dashboard")
	}
	port := freePort(t)
	f := startFerry(t, fixture(t, "wsgi/echo"), "--metrics-address", "127.0.0.1:"+port,
		"--min-instances", "1", "--max-pool-size", "3", "--spawn-method", "direct", "--dashboard-refresh", "0.2")
	eventually(t, "the first process", func() bool { return len(f.pids()) == 1 })
	firstPID := f.pids()[0]

	cdp := startChromium(t, browser)
	page := cdp.open(t, "http://127.0.0.1:"+port+"/dashboard/")
	procRows := `document.querySelectorAll('[data-app="echo"] tr[data-pid]').length`
	page.waitFor(t, "the page renders the app and its process",
		fmt.Sprintf(`%s === 1 && document.querySelector('[data-app="echo"] tr[data-pid="%d"]') !== null && document.getElementById("live").textContent === "live"`, procRows, firstPID))

	// Two slow requests at once: the one process is busy, so the pool
	// adds another; the page shows it without being reloaded.
	var wg sync.WaitGroup
	for i := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Different URLs: the turbocache would coalesce equal GETs.
			f.get(fmt.Sprintf("/sleep?s=5&n=%d", i))
		}()
	}
	page.waitFor(t, "the page shows the requests in flight",
		`document.querySelector("#requests tbody").textContent.includes("/sleep?s=5&n=")`)
	page.waitFor(t, "the page shows the added process", procRows+` >= 2`)
	if out := os.Getenv("FERRY_DASHBOARD_SCREENSHOT"); out != "" {
		page.screenshot(t, out)
	}
	wg.Wait()

	// Under a name other than a loopback one (as a site that rebinds its
	// name to 127.0.0.1 would be) the page is locked until a token is
	// typed in; the read-only token shows the app but no actions.
	rebound := cdp.open(t, "http://dashboard.test:"+port+"/dashboard/")
	rebound.waitFor(t, "the page under another name is locked",
		`document.getElementById("live").textContent === "locked" && !document.getElementById("login").hidden && document.querySelector('[data-app]') === null`)
	readTok, err := os.ReadFile(filepath.Join(f.Instance, admin.ReadTokenFile))
	if err != nil {
		t.Fatal(err)
	}
	rebound.eval(t, fmt.Sprintf(`document.getElementById("token").value = %q; document.getElementById("login").requestSubmit(); true`, strings.TrimSpace(string(readTok))))
	rebound.waitFor(t, "the read-only token shows the app, live, without actions",
		`document.querySelector('[data-app="echo"] tr[data-pid]') !== null && document.getElementById("live").textContent === "live" && document.querySelector('[data-app="echo"] button[data-action="restart"]').disabled`)

	// Without a token the page may look but not act.
	if page.eval(t, `document.querySelector('[data-app="echo"] button[data-action="restart"]').disabled`) != true {
		t.Fatal("the restart button is enabled for a viewer without the admin token")
	}
	oldGen := f.pool().Apps[0].Processes[0].Generation
	var oldPIDs = map[int]bool{}
	for _, pid := range f.pids() {
		oldPIDs[pid] = true
	}
	tok, err := os.ReadFile(filepath.Join(f.Instance, admin.AdminTokenFile))
	if err != nil {
		t.Fatal(err)
	}
	page.eval(t, fmt.Sprintf(`document.getElementById("token").value = %q; document.getElementById("login").requestSubmit(); true`, strings.TrimSpace(string(tok))))
	page.waitFor(t, "the admin token unlocks the actions", `!document.querySelector('[data-app="echo"] button[data-action="restart"]').disabled`)
	page.eval(t, `document.querySelector('[data-app="echo"] button[data-action="restart"]').click(); true`)
	page.waitFor(t, "the page reports the restart", fmt.Sprintf(`document.getElementById("message").textContent === "restart echo: started, generation %d"`, oldGen+1))
	eventually(t, "the app restarted: a new generation of processes, the old ones gone", func() bool {
		st := f.pool().Apps[0]
		if st.Processes == nil || len(st.Processes) == 0 {
			return false
		}
		for _, p := range st.Processes {
			if oldPIDs[p.PID] || p.Generation <= oldGen {
				return false
			}
		}
		return true
	})
	for pid := range oldPIDs {
		eventually(t, fmt.Sprintf("old process %d exits", pid), func() bool { return !alive(pid) })
	}
	gen := f.pool().Apps[0].Processes[0].Generation
	page.waitFor(t, "the page shows the new generation",
		fmt.Sprintf(`document.querySelector('[data-app="echo"] [data-field="generation"]').textContent === "%d"`, gen))

	// Detach, as `ferry detach-process`: the process leaves the pool and
	// exits, and the pool starts another for --min-instances.
	victim := f.pids()[0]
	page.waitFor(t, "the page lists the new process", fmt.Sprintf(`document.querySelector('[data-app="echo"] tr[data-pid="%d"] button[data-action="detach"]') !== null`, victim))
	page.eval(t, fmt.Sprintf(`document.querySelector('[data-app="echo"] tr[data-pid="%d"] button[data-action="detach"]').click(); true`, victim))
	page.waitFor(t, "the page reports the detach", fmt.Sprintf(`document.getElementById("message").textContent === "detach %d: done"`, victim))
	eventually(t, "the detached process exits", func() bool { return !alive(victim) })
	eventually(t, "a replacement process", func() bool {
		pids := f.pids()
		return len(pids) >= 1 && !slices.Contains(pids, victim)
	})
}

// chromium is headless Chromium driven over the DevTools protocol on
// its pipe (--remote-debugging-pipe: NUL-terminated JSON on fds 3 and 4),
// which needs no port and no WebSocket client.
type chromium struct {
	w       io.Writer
	mu      sync.Mutex
	next    int
	pending map[int]chan cdpMessage
	dead    chan struct{}
}

type cdpMessage struct {
	ID     int             `json:"id"`
	Result json.RawMessage `json:"result"`
	Error  *struct {
		Message string `json:"message"`
	} `json:"error"`
}

func startChromium(t *testing.T, browser string) *chromium {
	t.Helper()
	toChrome, ourW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	ourR, fromChrome, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
		"--user-data-dir="+t.TempDir(), "--remote-debugging-pipe",
		// A name that is not a loopback one, for the same loopback listener.
		"--host-resolver-rules=MAP dashboard.test 127.0.0.1", "--window-size=1280,900", "about:blank")
	cmd.ExtraFiles = []*os.File{toChrome, fromChrome} // fds 3 and 4
	stderr := newLogBuffer()
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	toChrome.Close()
	fromChrome.Close()
	c := &chromium{w: ourW, pending: map[int]chan cdpMessage{}, dead: make(chan struct{})}
	go func() {
		defer close(c.dead)
		r := bufio.NewReader(ourR)
		for {
			b, err := r.ReadBytes(0)
			if err != nil {
				return
			}
			var m cdpMessage
			if json.Unmarshal(b[:len(b)-1], &m) != nil || m.ID == 0 {
				continue // an event
			}
			c.mu.Lock()
			ch := c.pending[m.ID]
			delete(c.pending, m.ID)
			c.mu.Unlock()
			if ch != nil {
				ch <- m
			}
		}
	}()
	t.Cleanup(func() {
		c.call(context.Background(), "", "Browser.close", nil)
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-done
		}
		ourW.Close()
		ourR.Close()
		if t.Failed() {
			t.Logf("chromium stderr:\n%.4000s", stderr.String())
		}
	})
	return c
}

// call sends one command (to a page's session, or the browser's when
// session is "") and returns its result.
func (c *chromium) call(ctx context.Context, session, method string, params any) (json.RawMessage, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	c.mu.Lock()
	c.next++
	id := c.next
	ch := make(chan cdpMessage, 1)
	c.pending[id] = ch
	msg := map[string]any{"id": id, "method": method}
	if params != nil {
		msg["params"] = params
	}
	if session != "" {
		msg["sessionId"] = session
	}
	b, _ := json.Marshal(msg)
	_, err := c.w.Write(append(b, 0))
	c.mu.Unlock()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", method, err)
	}
	select {
	case m := <-ch:
		if m.Error != nil {
			return nil, fmt.Errorf("%s: %s", method, m.Error.Message)
		}
		return m.Result, nil
	case <-c.dead:
		return nil, fmt.Errorf("%s: chromium is gone", method)
	case <-ctx.Done():
		return nil, fmt.Errorf("%s: %w", method, ctx.Err())
	}
}

type chromePage struct {
	c       *chromium
	session string
}

func (c *chromium) open(t *testing.T, url string) *chromePage {
	t.Helper()
	var target struct {
		TargetID string `json:"targetId"`
	}
	var attached struct {
		SessionID string `json:"sessionId"`
	}
	res, err := c.call(context.Background(), "", "Target.createTarget", map[string]any{"url": "about:blank"})
	if err == nil {
		err = json.Unmarshal(res, &target)
	}
	if err == nil {
		res, err = c.call(context.Background(), "", "Target.attachToTarget", map[string]any{"targetId": target.TargetID, "flatten": true})
	}
	if err == nil {
		err = json.Unmarshal(res, &attached)
	}
	if err != nil {
		t.Fatalf("open a page: %v", err)
	}
	p := &chromePage{c: c, session: attached.SessionID}
	for _, step := range []struct {
		method string
		params any
	}{
		{"Emulation.setDeviceMetricsOverride", map[string]any{"width": 1280, "height": 900, "deviceScaleFactor": 1, "mobile": false}},
		{"Page.navigate", map[string]any{"url": url}},
	} {
		if _, err := c.call(context.Background(), p.session, step.method, step.params); err != nil {
			t.Fatalf("open %s: %v", url, err)
		}
	}
	return p
}

// eval evaluates a JavaScript expression in the page and returns its value.
func (p *chromePage) eval(t *testing.T, expr string) any {
	t.Helper()
	v, err := p.tryEval(expr)
	if err != nil {
		t.Fatalf("evaluate %s: %v", expr, err)
	}
	return v
}

func (p *chromePage) tryEval(expr string) (any, error) {
	res, err := p.c.call(context.Background(), p.session, "Runtime.evaluate", map[string]any{"expression": expr, "returnByValue": true, "awaitPromise": true})
	if err != nil {
		return nil, err
	}
	var out struct {
		Result struct {
			Value any `json:"value"`
		} `json:"result"`
		Exception *struct {
			Text      string `json:"text"`
			Exception struct {
				Description string `json:"description"`
			} `json:"exception"`
		} `json:"exceptionDetails"`
	}
	if err := json.Unmarshal(res, &out); err != nil {
		return nil, err
	}
	if out.Exception != nil {
		return nil, errors.New(out.Exception.Text + " " + out.Exception.Exception.Description)
	}
	return out.Result.Value, nil
}

// waitFor waits until expr is true in the page; it fails with the page's
// text when that does not happen.
func (p *chromePage) waitFor(t *testing.T, what, expr string) {
	t.Helper()
	var last error
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		v, err := p.tryEval(expr)
		if v == true {
			return
		}
		last = err
		time.Sleep(100 * time.Millisecond)
	}
	text, _ := p.tryEval(`document.body ? document.body.innerText : "(no body)"`)
	t.Fatalf("timed out waiting for: %s (%s); last error: %v; page:\n%v", what, expr, last, text)
}

func (p *chromePage) screenshot(t *testing.T, path string) {
	t.Helper()
	res, err := p.c.call(context.Background(), p.session, "Page.captureScreenshot", map[string]any{"format": "png"})
	var shot struct {
		Data string `json:"data"`
	}
	if err == nil {
		err = json.Unmarshal(res, &shot)
	}
	var png []byte
	if err == nil {
		png, err = base64.StdEncoding.DecodeString(shot.Data)
	}
	if err == nil {
		err = os.WriteFile(path, png, 0o644)
	}
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	t.Logf("screenshot written to %s", path)
}

// TestDashboardCertificates: the certificates automatic HTTPS manages
// (here from Pebble) are in the dashboard's state and on its page.
func TestDashboardCertificates(t *testing.T) {
	needPython(t)
	browser, err := exec.LookPath("chromium")
	if err != nil {
		t.Skip("chromium is not installed (scripts/chromium.sh installs Debian's chromium): skipping the browser test of the dashboard")
	}
	p := startPebble(t, 90*24*time.Hour)
	port := freePort(t)
	state := filepath.Join(t.TempDir(), "acme")
	f := startFerry(t, fixture(t, "wsgi/echo"), append(p.ferryArgs(state), "--domain", "dash.test",
		"--metrics-address", "127.0.0.1:"+port, "--dashboard-refresh", "0.2")...)
	waitFor(t, 60*time.Second, "a valid certificate", func() bool { return f.certState("dash.test").State == "valid" })

	resp, err := client.Get("http://127.0.0.1:" + port + "/dashboard/api/state")
	if err != nil {
		t.Fatal(err)
	}
	var st struct {
		Certificates []struct {
			Domain   string  `json:"domain"`
			State    string  `json:"state"`
			DaysLeft float64 `json:"days_left"`
		} `json:"certificates"`
	}
	err = json.NewDecoder(resp.Body).Decode(&st)
	resp.Body.Close()
	if err != nil || len(st.Certificates) != 1 || st.Certificates[0].Domain != "dash.test" || st.Certificates[0].State != "valid" || st.Certificates[0].DaysLeft < 80 {
		t.Fatalf("dashboard state certificates: %+v %v", st.Certificates, err)
	}

	page := startChromium(t, browser).open(t, "http://127.0.0.1:"+port+"/dashboard/")
	page.waitFor(t, "the page shows the certificate",
		`!document.getElementById("certificates-section").hidden && document.querySelector('#certificates tr[data-domain="dash.test"]') !== null && document.querySelector('#certificates tr[data-domain="dash.test"]').textContent.includes("valid")`)
}
