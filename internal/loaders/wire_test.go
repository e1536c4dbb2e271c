//go:build unix

package loaders

import (
	"encoding/json"
	"io"
	"net/http"
	"reflect"
	"strings"
	"testing"

	"github.com/ferry-server/ferry/internal/appwire"
)

// TestRackResponsesOnBothWires: every kind of Rack response (array, each,
// a Rack 3 streaming body, a file, cookies as lines and as an Array,
// bodiless statuses, HEAD, a partial hijack, the whole env) reaches the
// core the same on ferry-wire/1 as on HTTP/1.1; what the app writes itself
// (streaming call bodies, hijacks) goes after the switch marker, and that
// connection then closes.
func TestRackResponsesOnBothWires(t *testing.T) {
	l := startKind(t, "rack", "../../testdata/rack/echo", "FERRY_WIRE="+appwire.Versions)
	if l.hs.Status != "ready" || l.hs.Wire != appwire.Version {
		t.Fatalf("handshake %q; output:\n%s", l.rawHS, l.out)
	}
	bothWires(t, l, []wireCase{
		{"GET", "/", false},
		{"HEAD", "/", false},
		{"GET", "/cookies", false},
		{"GET", "/cookies-array", false},
		{"GET", "/big?n=200000", false},
		{"GET", "/stream?n=3", false},
		{"GET", "/closing", false},
		{"GET", "/file", false},
		{"GET", "/status/204", false},
		{"GET", "/status/304", false},
		{"GET", "/status/404", false},
		{"GET", "/error", false},
		{"GET", "/stream-call?n=3", true},
		{"GET", "/partial-hijack", true},
	})

	// The whole env (all its String, Integer and boolean values), with
	// Ferry's own headers on HTTP/1.1 as the core sends them.
	envOf := func(framed bool) map[string]any {
		c := l.dial()
		defer c.c.Close()
		c.framed = false
		headers := []string{"X-Ferry-Client-Addr: 192.0.2.1:1234", "X-Ferry-Scheme: https", "Cookie: a=1", "Cookie: b=2"}
		if framed {
			c.framed, c.remote, c.scheme = true, "192.0.2.1:1234", "https"
			headers = headers[2:]
		}
		_, body := c.do("GET", "/env?x=%20y", headers, nil)
		var m map[string]any
		if err := json.Unmarshal([]byte(body), &m); err != nil {
			t.Fatalf("/env: %v in %q", err, body)
		}
		return m
	}
	plain, framed := envOf(false), envOf(true)
	if !reflect.DeepEqual(plain, framed) {
		var diff []string
		for k := range plain {
			if !reflect.DeepEqual(plain[k], framed[k]) {
				diff = append(diff, k)
			}
		}
		for k := range framed {
			if _, ok := plain[k]; !ok {
				diff = append(diff, k)
			}
		}
		t.Errorf("env differs in %s:\nHTTP/1.1:     %v\nferry-wire/1: %v", strings.Join(diff, ", "), plain, framed)
	}
}

// TestLoadersKeepHTTPForUnknownWire: offered only versions a loader does
// not know (a newer core), it keeps to HTTP/1.1 and says nothing of a
// wire; offered several, it picks the one it knows.
func TestLoadersKeepHTTPForUnknownWire(t *testing.T) {
	for _, kind := range []string{"wsgi", "rack", "asgi"} {
		for offer, want := range map[string]int{"2": 0, "": 0, "2,1": 1} {
			l := startKind(t, kind, "../../testdata/"+kind+"/echo", "FERRY_WIRE="+offer)
			if l.hs.Status != "ready" || l.hs.Wire != want {
				t.Errorf("%s offered %q: handshake %q, want wire %d", kind, offer, l.rawHS, want)
				continue
			}
			if body := l.dial().get("/", 200); body != "hello world" {
				t.Errorf("%s offered %q: GET / = %q", kind, offer, body)
			}
		}
	}
}

// wireCase is one request for bothWires; switched: on ferry-wire/1 it goes
// after the switch marker (and the connection closes).
type wireCase struct {
	method, target string
	switched       bool
}

// bothWires sends each case on a new connection on each wire and insists
// that the client sees the same status, fields and body.
func bothWires(t *testing.T, l *loader, cases []wireCase) {
	t.Helper()
	type answer struct {
		Code   int
		Header http.Header
		Body   string
		Close  bool
	}
	do := func(framed bool, method, target string) answer {
		c := l.dial()
		defer c.c.Close()
		c.framed = framed
		c.send(method, target, nil, nil)
		resp := c.head(method)
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatalf("%s %s (framed %v): %v", method, target, framed, err)
		}
		h := http.Header{}
		for _, k := range []string{"Content-Type", "Set-Cookie", "Content-Length"} {
			if v := resp.Header.Values(k); len(v) > 0 {
				h[k] = v
			}
		}
		return answer{resp.StatusCode, h, string(body), resp.Close}
	}
	for _, tc := range cases {
		plain := do(false, tc.method, tc.target)
		framed := do(true, tc.method, tc.target)
		if tc.switched {
			if !framed.Close {
				t.Errorf("%s %s: the connection stays open after the switch", tc.method, tc.target)
			}
			framed.Close = plain.Close
		}
		// Content-Length the core derives from the chunks on
		// ferry-wire/1 where HTTP/1.1 had chunked: the client sees
		// the same body either way.
		if plain.Header["Content-Length"] == nil {
			delete(framed.Header, "Content-Length")
		}
		if !reflect.DeepEqual(plain, framed) {
			t.Errorf("%s %s:\nHTTP/1.1:     %+v\nferry-wire/1: %+v", tc.method, tc.target, plain, framed)
		}
	}
}

// TestASGIResponsesOnBothWires: the ASGI loader's responses (whole,
// streamed, bodiless, HEAD, the app's error) are the same on both wires,
// and a response the app breaks off breaks off on both.
func TestASGIResponsesOnBothWires(t *testing.T) {
	l := startKind(t, "asgi", "../../testdata/asgi/echo", "FERRY_WIRE="+appwire.Versions)
	if l.hs.Status != "ready" || l.hs.Wire != appwire.Version || l.hs.Head != appwire.HeadASGI {
		t.Fatalf("handshake %q; output:\n%s", l.rawHS, l.out)
	}
	bothWires(t, l, []wireCase{
		{"GET", "/", false},
		{"HEAD", "/", false},
		{"GET", "/cookies", false},
		{"GET", "/stream?n=3", false},
		{"GET", "/status/204", false},
		{"GET", "/status/304", false},
		{"GET", "/status/404", false},
		{"GET", "/error", false},
	})
	for _, framed := range []bool{false, true} {
		c := l.dial()
		c.framed = framed
		c.send("GET", "/late-error", nil, nil)
		resp := c.head("GET")
		body, err := io.ReadAll(resp.Body)
		if err == nil {
			t.Errorf("late error (framed %v): the body %q ended cleanly", framed, body)
		}
		c.c.Close()
	}
}
