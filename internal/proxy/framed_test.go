package proxy

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/ferry-server/ferry/internal/appwire"
)

func envOf(t *testing.T, r *http.Request, size int64, scheme string) map[string]string {
	t.Helper()
	var q appwire.Request
	q.Begin(nil)
	AppendEnv(&q, r, size, scheme)
	frame, err := q.End()
	if err != nil {
		t.Fatal(err)
	}
	pairs, _, err := appwire.ParseRequest(frame)
	if err != nil {
		t.Fatal(err)
	}
	env := map[string]string{}
	for i := 0; i < len(pairs); i += 2 {
		if _, dup := env[pairs[i]]; dup {
			t.Fatalf("%s twice", pairs[i])
		}
		env[pairs[i]] = pairs[i+1]
	}
	return env
}

func TestFramedEnv(t *testing.T) {
	r := httptest.NewRequest("POST", "/app/x%20y?a=1&b=2", nil)
	r.Host = "example.org:8443"
	r.RemoteAddr = "[2001:db8::1]:5555"
	r.Header = http.Header{
		"Cookie":       {"a=1", "b=2"},
		"Accept":       {"text/html", "*/*"},
		"Content-Type": {"text/plain"},
		"Connection":   {"keep-alive, X-Hop"},
		"X-Hop":        {"gone"},
		"Expect":       {"100-continue"},
		"X-Custom-One": {"v"},
	}
	got := envOf(t, r, 3, "https")
	want := map[string]string{
		"REQUEST_METHOD": "POST", "REQUEST_URI": "/app/x%20y?a=1&b=2", "PATH_INFO": "/app/x%20y", "QUERY_STRING": "a=1&b=2",
		"SERVER_PROTOCOL": "HTTP/1.1", "HTTPS": "on", "SERVER_NAME": "example.org", "SERVER_PORT": "8443",
		"REMOTE_ADDR": "2001:db8::1", "REMOTE_PORT": "5555", "CONTENT_LENGTH": "3", "HTTP_HOST": "example.org:8443",
		"HTTP_COOKIE": "a=1; b=2", "HTTP_ACCEPT": "text/html, */*", "CONTENT_TYPE": "text/plain", "HTTP_X_CUSTOM_ONE": "v",
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("env\n%v\nwant\n%v", got, want)
	}
	g := httptest.NewRequest("GET", "/", nil)
	g.Host, g.RemoteAddr = "", "10.0.0.1:80"
	got = envOf(t, g, 0, "http")
	if got["SERVER_NAME"] != "localhost" || got["SERVER_PORT"] != "80" || got["REMOTE_ADDR"] != "10.0.0.1" || got["HTTPS"] != "" {
		t.Fatalf("GET env %v", got)
	}
	if _, ok := got["CONTENT_LENGTH"]; ok {
		t.Fatalf("GET without a body has CONTENT_LENGTH: %v", got)
	}
}

func TestSplitHostPeer(t *testing.T) {
	for _, tc := range []struct{ host, name, port string }{
		{"a", "a", "80"}, {"a:81", "a", "81"}, {"[::1]", "[::1]", "80"}, {"[::1]:82", "[::1]", "82"}, {"[::1", "[::1", "80"}, {"a:", "a", "80"},
	} {
		if n, p := splitHost(tc.host, false); n != tc.name || p != tc.port {
			t.Errorf("splitHost(%q) = %q %q", tc.host, n, p)
		}
	}
	for _, tc := range []struct{ addr, ip, port string }{
		{"1.2.3.4:5", "1.2.3.4", "5"}, {"[::1]:6", "::1", "6"}, {"::1", "::1", ""}, {"host", "host", ""}, {"[::1]", "::1", ""},
	} {
		if ip, p := splitPeer(tc.addr); ip != tc.ip || p != tc.port {
			t.Errorf("splitPeer(%q) = %q %q", tc.addr, ip, p)
		}
	}
}

// framedUp is oneConn on a process that chose ferry-wire/1.
type framedUp struct{ oneConn }

func (*framedUp) Wire() int { return appwire.Version }

// framedApp reads one request frame (and its body) on c and answers resp.
func framedApp(t *testing.T, c net.Conn, resp []byte) (env []string, body string) {
	br := bufio.NewReader(c)
	hdr := make([]byte, 5)
	if _, err := io.ReadFull(br, hdr); err != nil {
		t.Error(err)
		return
	}
	n := int(hdr[1])<<24 | int(hdr[2])<<16 | int(hdr[3])<<8 | int(hdr[4])
	head := make([]byte, n)
	io.ReadFull(br, head)
	env, _, err := appwire.ParseRequest(append(hdr, head...))
	if err != nil {
		t.Error(err)
	}
	for i := 0; i < len(env); i += 2 {
		if env[i] == "CONTENT_LENGTH" {
			b := make([]byte, len(env[i+1])) // small bodies in this test
			_ = b
		}
	}
	c.Write(resp)
	return env, ""
}

func TestFramedExchange(t *testing.T) {
	core, app := socketPair(t)
	defer core.Close()
	defer app.Close()
	c := newConn(core)
	var resp []byte
	resp = appwire.AppendHead(resp, "103 Early Hints", "Link", "</a.css>; rel=preload")
	resp = appwire.AppendHead(resp, "200 OK", "Content-Type", "text/plain", "Content-Length", "11")
	resp = appwire.AppendChunk(resp, []byte("hello "))
	resp = appwire.AppendChunk(resp, []byte("world"))
	resp = appwire.AppendChunk(resp, nil)
	done := make(chan []string)
	go func() { env, _ := framedApp(t, app, resp); done <- env }()

	up := &framedUp{oneConn{released: make(chan struct{})}}
	var hints []int
	m, _, err := (&Transport{}).send(c, up, httptest.NewRequest("GET", "/x?y", nil), nil, "http", func(code int, h http.Header) {
		if h.Get("Link") == "" {
			t.Errorf("interim %d without its Link", code)
		}
		hints = append(hints, code)
	})
	if err != nil {
		t.Fatal(err)
	}
	env := <-done
	sort.Strings(env)
	if !strings.Contains(strings.Join(env, "\n"), "PATH_INFO") || !reflect.DeepEqual(hints, []int{103}) {
		t.Fatalf("env %q hints %v", env, hints)
	}
	x := &Exchange{Resp: m.resp, up: up, c: c, msg: m}
	rec := httptest.NewRecorder()
	res := x.WriteTo(rec, ResponseOptions{Memory: 1 << 20, HighWatermark: 1 << 20, Dir: t.TempDir()}, nil)
	<-up.released
	if res.AppErr != nil || rec.Code != 200 || rec.Body.String() != "hello world" || rec.Header().Get("Content-Type") != "text/plain" {
		t.Fatalf("client got %d %q %v", rec.Code, rec.Body, res.AppErr)
	}
	if up.kept == nil || up.framing != 0 {
		t.Fatalf("connection not kept after a clean framed response (framing errors %d)", up.framing)
	}
}

func TestFramedBroken(t *testing.T) {
	for _, tc := range []struct {
		name   string
		resp   []byte
		method string
		// head: the head reads fine and the body breaks.
		head bool
	}{
		{"garbage", []byte("HTTP/1.1 200 OK\r\n\r\n"), "GET", false},
		{"101", appwire.AppendHead(nil, "101 Switching Protocols"), "GET", false},
		{"body after HEAD", appwire.AppendChunk(appwire.AppendHead(nil, "200 OK"), []byte("x")), "HEAD", false},
		{"short body", appwire.AppendChunk(appwire.AppendChunk(appwire.AppendHead(nil, "200 OK", "Content-Length", "5"), []byte("abc")), nil), "GET", true},
		{"cut", appwire.AppendChunk(appwire.AppendHead(nil, "200 OK"), []byte("abc")), "GET", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			core, app := socketPair(t)
			defer core.Close()
			c := newConn(core)
			go func() {
				framedApp(t, app, tc.resp)
				app.Close()
			}()
			up := &framedUp{oneConn{released: make(chan struct{})}}
			m, _, err := (&Transport{}).send(c, up, httptest.NewRequest(tc.method, "/", nil), nil, "http", nil)
			if !tc.head {
				if err == nil {
					t.Fatalf("no error for %q", tc.resp)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			x := &Exchange{Resp: m.resp, up: up, c: c, msg: m}
			res := x.WriteTo(httptest.NewRecorder(), ResponseOptions{Memory: 1 << 20, HighWatermark: 1 << 20, Dir: t.TempDir()}, nil)
			<-up.released
			if res.AppErr == nil || up.kept != nil {
				t.Fatalf("broken body: AppErr %v, kept %v", res.AppErr, up.kept != nil)
			}
		})
	}
}

// TestFramedSwitchHTTP: after the SwitchHTTP marker the response is read as
// HTTP/1.1, and the connection is not reused.
func TestFramedSwitchHTTP(t *testing.T) {
	core, app := socketPair(t)
	defer core.Close()
	defer app.Close()
	c := newConn(core)
	resp := append([]byte{0xff, 0xff, 0xff, 0xff}, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi"...)
	go framedApp(t, app, resp)
	up := &framedUp{oneConn{released: make(chan struct{})}}
	m, _, err := (&Transport{}).send(c, up, httptest.NewRequest("GET", "/", nil), nil, "http", nil)
	if err != nil {
		t.Fatal(err)
	}
	x := &Exchange{Resp: m.resp, up: up, c: c, msg: m}
	rec := httptest.NewRecorder()
	res := x.WriteTo(rec, ResponseOptions{Memory: 1 << 20, HighWatermark: 1 << 20, Dir: t.TempDir()}, nil)
	<-up.released
	if res.AppErr != nil || rec.Code != 200 || rec.Body.String() != "hi" || up.kept != nil {
		t.Fatalf("client got %d %q %v; kept %v", rec.Code, rec.Body, res.AppErr, up.kept != nil)
	}
}

// FuzzFramedResponse: whatever a loader sends on ferry-wire/1, the core
// does not panic, and a connection it keeps ended exactly where the
// loader's bytes did, with the client given the whole, clean response.
func FuzzFramedResponse(f *testing.F) {
	ok := appwire.AppendChunk(appwire.AppendChunk(appwire.AppendHead(nil, "200 OK", "Content-Length", "2"), []byte("hi")), nil)
	f.Add(ok, false)
	f.Add(ok, true)
	f.Add(appwire.AppendChunk(appwire.AppendHead(appwire.AppendHead(nil, "103 Early Hints", "Link", "</x>"), "204"), nil), false)
	f.Add(appwire.AppendChunk(appwire.AppendChunk(appwire.AppendHead(nil, "200 OK"), []byte("abc")), nil), false)
	f.Add(append(ok, 'x'), false)
	f.Add(append([]byte{0xff, 0xff, 0xff, 0xff}, "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx"...), false)
	f.Add([]byte{0, 0, 0, 3, '2', '0', '0', 0, 0, 0, 1}, false)
	f.Fuzz(func(t *testing.T, data []byte, head bool) {
		if len(data) > 64<<10 {
			return
		}
		method := "GET"
		if head {
			method = "HEAD"
		}
		core, app := socketPair(t)
		defer core.Close()
		defer app.Close()
		go func() {
			// The request frame, drained; then the loader's bytes and its close.
			io.CopyN(io.Discard, app, 5)
			app.Write(data)
			app.(*net.UnixConn).CloseWrite()
		}()
		c := newConn(core)
		up := &framedUp{oneConn{released: make(chan struct{})}}
		m, _, err := (&Transport{}).send(c, up, httptest.NewRequest(method, "/", nil), nil, "http", nil)
		if err != nil {
			return
		}
		x := &Exchange{Resp: m.resp, up: up, c: c, msg: m}
		rec := httptest.NewRecorder()
		res := x.WriteTo(rec, ResponseOptions{Memory: 1 << 20, HighWatermark: 1 << 20, Dir: t.TempDir()}, nil)
		<-up.released
		if up.kept == nil {
			return
		}
		if res.AppErr != nil {
			t.Fatalf("connection kept after a broken response: %v\n%q", res.AppErr, data)
		}
		if c.read != int64(len(data)) || c.br.Buffered() != 0 {
			t.Fatalf("connection kept with %d of %d bytes read, %d buffered:\n%q", c.read, len(data), c.br.Buffered(), data)
		}
	})
}
