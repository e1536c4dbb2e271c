package dashboard

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ferry-server/ferry/internal/admin"
	"github.com/ferry-server/ferry/internal/certs"
	"github.com/ferry-server/ferry/internal/logs"
	"github.com/ferry-server/ferry/internal/pool"
)

func TestDecide(t *testing.T) {
	for _, c := range []struct {
		name   string
		v      Viewer
		action bool
		status int // 0: allowed
	}{
		{"loopback, loopback host, no token: view", Viewer{Loopback: true, LoopbackHost: true}, false, 0},
		{"loopback, no token: no action", Viewer{Loopback: true, LoopbackHost: true}, true, 401},
		{"loopback, rebound host name, no token", Viewer{Loopback: true}, false, 403},
		{"loopback, rebound host name, read token", Viewer{Loopback: true, Token: ReadOnly}, false, 0},
		{"remote, no token", Viewer{}, false, 401},
		{"remote, loopback host header, no token", Viewer{LoopbackHost: true}, false, 401},
		{"remote, read token: view", Viewer{Token: ReadOnly}, false, 0},
		{"remote, read token: no action", Viewer{Token: ReadOnly}, true, 403},
		{"remote, admin token: view", Viewer{Token: Admin}, false, 0},
		{"remote, admin token: action", Viewer{Token: Admin}, true, 0},
		{"loopback, admin token: action", Viewer{Loopback: true, LoopbackHost: true, Token: Admin}, true, 0},
		{"loopback, wrong token: refused, not downgraded", Viewer{Loopback: true, LoopbackHost: true, Token: BadToken}, false, 401},
		{"remote, wrong token: action", Viewer{Token: BadToken}, true, 401},
	} {
		t.Run(c.name, func(t *testing.T) {
			d := Decide(c.v, c.action)
			if d.OK != (c.status == 0) || (!d.OK && d.Status != c.status) {
				t.Fatalf("Decide(%+v, action=%v) = %+v, want status %d", c.v, c.action, d, c.status)
			}
			if !d.OK && d.Why == "" {
				t.Fatalf("a refusal without a reason: %+v", d)
			}
		})
	}
}

func TestLoopback(t *testing.T) {
	for _, c := range []struct {
		in         string
		addr, host bool
	}{
		{"127.0.0.1:5000", true, true},
		{"127.8.9.10:1", true, true},
		{"[::1]:5000", true, true},
		{"[::ffff:127.0.0.1]:5000", true, true},
		{"192.0.2.1:5000", false, false},
		{"[2001:db8::1]:80", false, false},
		{"localhost:9100", false, true}, // a RemoteAddr is never a name
		{"LOCALHOST", false, true},
		{"127.0.0.1", true, true},
		{"localhost.evil.example:9100", false, false},
		{"127.0.0.1.nip.io:9100", false, false},
		{"", false, false},
	} {
		if got := isLoopbackAddr(c.in); got != c.addr {
			t.Errorf("isLoopbackAddr(%q) = %v, want %v", c.in, got, c.addr)
		}
		if got := isLoopbackHost(c.in); got != c.host {
			t.Errorf("isLoopbackHost(%q) = %v, want %v", c.in, got, c.host)
		}
	}
}

func TestCheckCSRF(t *testing.T) {
	const host = "127.0.0.1:9100"
	for _, c := range []struct {
		name string
		h    map[string]string
		ok   bool
	}{
		{"no header (an HTML form elsewhere)", map[string]string{}, false},
		{"no header, same origin", map[string]string{"Origin": "http://" + host}, false},
		{"header, no origin (curl)", map[string]string{CSRFHeader: "1"}, true},
		{"header, same origin", map[string]string{CSRFHeader: "1", "Origin": "http://" + host, "Sec-Fetch-Site": "same-origin"}, true},
		{"header, other origin", map[string]string{CSRFHeader: "1", "Origin": "http://evil.example"}, false},
		{"header, other port", map[string]string{CSRFHeader: "1", "Origin": "http://127.0.0.1:8080"}, false},
		{"header, cross-site fetch", map[string]string{CSRFHeader: "1", "Sec-Fetch-Site": "cross-site"}, false},
		{"header, same-site fetch", map[string]string{CSRFHeader: "1", "Sec-Fetch-Site": "same-site"}, false},
		{"header, null origin", map[string]string{CSRFHeader: "1", "Origin": "null"}, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			h := http.Header{}
			for k, v := range c.h {
				h.Set(k, v)
			}
			why := CheckCSRF(h, host)
			if (why == "") != c.ok {
				t.Fatalf("CheckCSRF(%v) = %q, want ok=%v", h, why, c.ok)
			}
		})
	}
}

// failing is a spawner whose app cannot start, as one with a syntax error.
type failing struct{}

func (failing) Spawn(context.Context) (pool.Proc, error) {
	return nil, errors.New("app exited before listening: SyntaxError in app.py")
}

// source is an instance with one app whose processes fail to start.
type source struct {
	apps []admin.App
	reqs []admin.RequestInfo
}

func (s *source) Info() admin.Info {
	return admin.Info{Version: "test", PID: os.Getpid(), StartedAt: time.Now(), Config: map[string]any{"port": 3000},
		Certificates: []certs.Status{{Domain: "example.org", State: certs.StateValid, DaysLeft: 60}}}
}
func (s *source) Apps() []admin.App             { return s.apps }
func (s *source) Requests() []admin.RequestInfo { return s.reqs }
func (s *source) Ready() bool                   { return true }
func (s *source) Probes() http.Handler          { return http.NotFoundHandler() }
func (s *source) Metrics() http.Handler         { return http.NotFoundHandler() }
func (s *source) ReopenLogs() error             { return nil }
func (s *source) Reload() error                 { return nil }
func (s *source) Logs() *logs.Recent            { return nil }
func readToken(t *testing.T, p string) string {
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

type fixture struct {
	srv          *httptest.Server
	dash         *Dashboard
	read, admin_ string
}

func newFixture(t *testing.T, maxViewers int) *fixture {
	t.Helper()
	log := slog.New(slog.DiscardHandler)
	g := pool.NewGroup(pool.Config{Name: "blog", Min: 1, Max: 2, StopTimeout: time.Second}, failing{}, log)
	src := &source{apps: []admin.App{{Group: g, Root: "/srv/blog", Type: "wsgi", SpawnMethod: "direct"}}}
	dir, err := os.MkdirTemp("", "dsh")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	adm, err := admin.Listen(dir, src, log)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	d := New(Options{Source: src, Auth: adm, Actions: adm.Handler(), Refresh: 20 * time.Millisecond, MaxViewers: maxViewers, Log: log})
	go d.Run(ctx)
	g.Start()
	srv := httptest.NewServer(d.Handler())
	t.Cleanup(func() {
		srv.CloseClientConnections()
		srv.Close()
		cancel()
		cctx, ccancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer ccancel()
		g.Close(cctx)
	})
	return &fixture{srv: srv, dash: d, read: readToken(t, filepath.Join(dir, admin.ReadTokenFile)), admin_: readToken(t, filepath.Join(dir, admin.AdminTokenFile))}
}

// serve runs one request through the handler, from remote (host:port).
func (f *fixture) serve(method, path, remote string, h map[string]string, body string) *httptest.ResponseRecorder {
	r := httptest.NewRequest(method, path, strings.NewReader(body))
	r.RemoteAddr = remote
	r.Host = "127.0.0.1:9100"
	for k, v := range h {
		if k == "Host" {
			r.Host = v
			continue
		}
		r.Header.Set(k, v)
	}
	w := httptest.NewRecorder()
	f.dash.Handler().ServeHTTP(w, r)
	return w
}

// The state lists the requests in flight as the admin API does, and an
// empty list (not null) when there are none.
func TestStateRequests(t *testing.T) {
	start := time.Date(2026, 12, 7, 1, 2, 3, 0, time.UTC)
	for _, tc := range []struct {
		name string
		reqs []admin.RequestInfo
		want string
	}{
		{"none", nil, `[]`},
		{"one", []admin.RequestInfo{{App: "blog", Method: "GET", Path: "/sleep?s=5", Client: "192.0.2.7:4000", State: "app", Start: start, AgeMS: 1500, PID: 42}},
			`[{"app":"blog","method":"GET","path":"/sleep?s=5","client":"192.0.2.7:4000","state":"app","started":"2026-12-07T01:02:03Z","age_ms":1500,"pid":42}]`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := New(Options{Source: &source{reqs: tc.reqs}})
			b, err := json.Marshal(d.state())
			if err != nil {
				t.Fatal(err)
			}
			var st struct {
				Requests json.RawMessage `json:"requests"`
			}
			if err := json.Unmarshal(b, &st); err != nil {
				t.Fatal(err)
			}
			if string(st.Requests) != tc.want {
				t.Errorf("requests = %s, want %s", st.Requests, tc.want)
			}
		})
	}
}

func TestViewers(t *testing.T) {
	f := newFixture(t, 4)
	const local, remote = "127.0.0.1:40000", "192.0.2.7:40000"
	for _, c := range []struct {
		name   string
		remote string
		h      map[string]string
		status int
		token  string
	}{
		{"loopback, no token", local, nil, 200, "none"},
		{"loopback, DNS-rebound host", local, map[string]string{"Host": "evil.example:9100"}, 403, ""},
		{"remote, no token", remote, nil, 401, ""},
		{"remote, wrong token", remote, map[string]string{"Authorization": "Bearer nope"}, 401, ""},
		{"remote, read token", remote, map[string]string{"Authorization": "Bearer " + f.read}, 200, "read"},
		{"remote, admin token", remote, map[string]string{"Authorization": "Bearer " + f.admin_}, 200, "admin"},
		{"remote, read token in the cookie", remote, map[string]string{"Cookie": CookieName + "=" + f.read}, 200, "read"},
	} {
		t.Run(c.name, func(t *testing.T) {
			w := f.serve("GET", "/dashboard/api/state", c.remote, c.h, "")
			if w.Code != c.status {
				t.Fatalf("status %d, want %d: %s", w.Code, c.status, w.Body)
			}
			if c.status != 200 {
				if strings.Contains(w.Body.String(), "blog") {
					t.Fatalf("a refusal shows the apps: %s", w.Body)
				}
				return
			}
			var st State
			if err := json.Unmarshal(w.Body.Bytes(), &st); err != nil {
				t.Fatal(err)
			}
			if len(st.Apps) != 1 || st.Apps[0].Name != "blog" || st.Viewer == nil || st.Viewer.Token != c.token {
				t.Fatalf("state: %s", w.Body)
			}
			if st.Viewer.CanAct != (c.token == "admin") {
				t.Fatalf("can_act %v for token %s", st.Viewer.CanAct, c.token)
			}
		})
	}
	// The page itself carries no data, and may not be framed.
	w := f.serve("GET", "/dashboard/", remote, nil, "")
	if w.Code != 200 || !strings.Contains(w.Body.String(), "dashboard.js") || w.Header().Get("X-Frame-Options") != "DENY" ||
		!strings.Contains(w.Header().Get("Content-Security-Policy"), "frame-ancestors 'none'") {
		t.Fatalf("GET /dashboard/: %d %v\n%s", w.Code, w.Header(), w.Body)
	}
}

func TestActions(t *testing.T) {
	f := newFixture(t, 4)
	const local = "127.0.0.1:40000"
	csrf := func(h map[string]string) map[string]string {
		h[CSRFHeader] = "1"
		return h
	}
	for _, c := range []struct {
		name   string
		h      map[string]string
		status int
	}{
		{"admin token, no CSRF header", map[string]string{"Authorization": "Bearer " + f.admin_}, 403},
		{"admin token, other origin", csrf(map[string]string{"Authorization": "Bearer " + f.admin_, "Origin": "http://evil.example"}), 403},
		{"admin cookie, cross-site", csrf(map[string]string{"Cookie": CookieName + "=" + f.admin_, "Sec-Fetch-Site": "cross-site"}), 403},
		{"loopback, no token", csrf(map[string]string{}), 401},
		{"read token", csrf(map[string]string{"Authorization": "Bearer " + f.read}), 403},
		{"admin token, no such process", csrf(map[string]string{"Authorization": "Bearer " + f.admin_}), 404},
	} {
		t.Run(c.name, func(t *testing.T) {
			w := f.serve("POST", "/dashboard/api/apps/blog/processes/999999/detach", local, c.h, "")
			if w.Code != c.status {
				t.Fatalf("status %d, want %d: %s", w.Code, c.status, w.Body)
			}
		})
	}
	// A restart goes through the admin API, which answers with the
	// generation it started (without waiting: the page shows progress).
	w := f.serve("POST", "/dashboard/api/apps/blog/restart", local, csrf(map[string]string{"Cookie": CookieName + "=" + f.admin_, "Origin": "http://127.0.0.1:9100"}), "")
	var res admin.RestartResult
	if w.Code != 200 || json.Unmarshal(w.Body.Bytes(), &res) != nil || res.App != "blog" || res.Generation != 1 || res.Finished {
		t.Fatalf("restart: %d %s", w.Code, w.Body)
	}
	if w := f.serve("POST", "/dashboard/api/apps/nope/restart", local, csrf(map[string]string{"Authorization": "Bearer " + f.admin_}), ""); w.Code != 404 {
		t.Fatalf("restart of an unknown app: %d %s", w.Code, w.Body)
	}
}

func TestLogin(t *testing.T) {
	f := newFixture(t, 4)
	const remote = "192.0.2.7:40000"
	if w := f.serve("POST", "/dashboard/api/login", remote, nil, `{"token":"`+f.admin_+`"}`); w.Code != 403 {
		t.Fatalf("login without the CSRF header: %d %s", w.Code, w.Body)
	}
	if w := f.serve("POST", "/dashboard/api/login", remote, map[string]string{CSRFHeader: "1"}, `{"token":"nope"}`); w.Code != 401 || len(w.Result().Cookies()) != 0 {
		t.Fatalf("login with a wrong token: %d %s", w.Code, w.Body)
	}
	if w := f.serve("POST", "/dashboard/api/login", remote, map[string]string{CSRFHeader: "1"}, `not json`); w.Code != 400 {
		t.Fatalf("login with a bad body: %d %s", w.Code, w.Body)
	}
	w := f.serve("POST", "/dashboard/api/login", remote, map[string]string{CSRFHeader: "1"}, `{"token":"`+f.read+`"}`)
	cs := w.Result().Cookies()
	if w.Code != 200 || len(cs) != 1 || cs[0].Name != CookieName || !cs[0].HttpOnly || cs[0].SameSite != http.SameSiteStrictMode || cs[0].Path != "/dashboard/" {
		t.Fatalf("login: %d %v %s", w.Code, cs, w.Body)
	}
	if w := f.serve("GET", "/dashboard/api/state", remote, map[string]string{"Cookie": cs[0].String()}, ""); w.Code != 200 {
		t.Fatalf("state with the login cookie: %d %s", w.Code, w.Body)
	}
	// A cookie of an earlier run of the core is refused and dropped.
	w = f.serve("GET", "/dashboard/api/state", "127.0.0.1:1", map[string]string{"Cookie": CookieName + "=stale"}, "")
	if cs := w.Result().Cookies(); w.Code != 401 || len(cs) != 1 || cs[0].MaxAge >= 0 {
		t.Fatalf("stale cookie: %d %v %s", w.Code, cs, w.Body)
	}
	w = f.serve("POST", "/dashboard/api/logout", remote, map[string]string{CSRFHeader: "1"}, "")
	if cs := w.Result().Cookies(); w.Code != 200 || len(cs) != 1 || cs[0].MaxAge >= 0 {
		t.Fatalf("logout: %d %v %s", w.Code, cs, w.Body)
	}
}

func TestRollingRestart(t *testing.T) {
	f := newFixture(t, 4)
	w := f.serve("POST", "/dashboard/api/apps/blog/restart?rolling=true", "127.0.0.1:1", map[string]string{CSRFHeader: "1", "Authorization": "Bearer " + f.admin_}, "")
	var res admin.RestartResult
	if w.Code != 200 || json.Unmarshal(w.Body.Bytes(), &res) != nil || !res.Rolling {
		t.Fatalf("rolling restart: %d %s", w.Code, w.Body)
	}
}

// readEvent reads one SSE event's data.
func readEvent(t *testing.T, r *bufio.Reader) State {
	t.Helper()
	var event, data string
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("read event: %v", err)
		}
		line = strings.TrimRight(line, "\n")
		switch {
		case strings.HasPrefix(line, "event: "):
			event = line[len("event: "):]
		case strings.HasPrefix(line, "data: "):
			data = line[len("data: "):]
		case line == "" && data != "":
			if event != "state" {
				t.Fatalf("event %q", event)
			}
			var st State
			if err := json.Unmarshal([]byte(data), &st); err != nil {
				t.Fatalf("event data: %v: %s", err, data)
			}
			return st
		}
	}
}

func TestEvents(t *testing.T) {
	f := newFixture(t, 1)
	resp, err := http.Get(f.srv.URL + "/dashboard/api/events")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("events: %s %v", resp.Status, resp.Header)
	}
	r := bufio.NewReader(resp.Body)
	first := readEvent(t, r)
	if len(first.Apps) != 1 || first.Apps[0].Name != "blog" || first.Viewer != nil {
		t.Fatalf("first event: %+v", first)
	}
	if c := first.Certificates; len(c) != 1 || c[0].Domain != "example.org" || first.Server.Certificates != nil || first.Server.Config != nil {
		t.Fatalf("certificates: %+v; server: %+v", c, first.Server)
	}
	// Events keep coming, and the failing spawns show up in them.
	var st State
	for i := 0; ; i++ {
		st = readEvent(t, r)
		if !st.At.After(first.At) {
			t.Fatalf("event %d not newer than the first: %v <= %v", i, st.At, first.At)
		}
		if len(st.SpawnErrors) > 0 {
			break
		}
	}
	if e := st.SpawnErrors[0]; e.App != "blog" || !strings.Contains(e.Error, "SyntaxError") || e.Failures == 0 {
		t.Fatalf("spawn error: %+v", e)
	}
	// One viewer at most here: a second live view is refused.
	resp2, err := http.Get(f.srv.URL + "/dashboard/api/events")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp2.Body)
	resp2.Body.Close()
	if resp2.StatusCode != 503 || !strings.Contains(string(b), "--dashboard-max-viewers") {
		t.Fatalf("second viewer: %s %s", resp2.Status, b)
	}
	// A viewer from elsewhere without a token gets no stream.
	w := f.serve("GET", "/dashboard/api/events", "192.0.2.7:1", nil, "")
	if w.Code != 401 || w.Header().Get("Content-Type") == "text/event-stream" {
		t.Fatalf("remote events without token: %d %v", w.Code, w.Header())
	}
}
