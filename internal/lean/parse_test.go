package lean

import (
	"bufio"
	"context"
	"net/http"
	"strings"
	"testing"
)

// FuzzLeanParse: a head the lean engine takes is one net/http reads the
// same way (method, target, host, every field), and every part of it that
// arrives first is waited on, never taken or declined.
func FuzzLeanParse(f *testing.F) {
	for _, s := range []string{
		"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
		"HEAD /a?b=c HTTP/1.1\r\nHost: example.com:80\r\nAccept: */*\r\nUser-Agent: x y\r\n\r\n",
		"GET /%41 HTTP/1.1\r\nHost: [::1]:8080\r\nCookie: a=b\r\nCookie: c=d\r\nConnection: close\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: x\r\nx-lower: \t v \t\r\n\r\n",
		"GET / HTTP/1.1\r\nhost: x\r\nHOST: y\r\n\r\n",
		"GET /? HTTP/1.1\r\nHost: x\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: x\r\n\r\nGET /next HTTP/1.1\r\n",
		"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\nx",
		"GET / HTTP/1.1\nHost: x\n\n",
	} {
		f.Add(s)
	}
	tmpl := new(http.Request).WithContext(context.Background())
	f.Fuzz(func(t *testing.T, head string) {
		got, n, v := parseHead([]byte(head), tmpl, "192.0.2.1:1")
		if v != taken {
			return
		}
		for k := range n {
			if _, _, pv := parseHead([]byte(head[:k]), tmpl, "192.0.2.1:1"); pv != more {
				t.Fatalf("%q: the first %d bytes of a head it takes: %v, want more", head, k, pv)
			}
		}
		want, err := http.ReadRequest(bufio.NewReader(strings.NewReader(head[:n])))
		if err != nil {
			t.Fatalf("the lean engine took a head net/http refuses (%v): %q", err, head)
		}
		if got.Method != want.Method || got.RequestURI != want.RequestURI || got.Host != want.Host ||
			got.URL.Path != want.URL.Path || got.URL.RawQuery != want.URL.RawQuery || got.URL.RawPath != want.URL.RawPath ||
			got.Close != want.Close || got.ContentLength != want.ContentLength || got.Proto != want.Proto {
			t.Fatalf("%q: lean %s %q host %q path %q query %q close %v; net/http %s %q host %q path %q query %q close %v",
				head, got.Method, got.RequestURI, got.Host, got.URL.Path, got.URL.RawQuery, got.Close,
				want.Method, want.RequestURI, want.Host, want.URL.Path, want.URL.RawQuery, want.Close)
		}
		if got.RemoteAddr != "192.0.2.1:1" || got.Context() != tmpl.Context() || got.Body != http.NoBody {
			t.Fatalf("%q: remote %q, body %v, context not the connection's", head, got.RemoteAddr, got.Body)
		}
		if len(got.Header) != len(want.Header) {
			t.Fatalf("%q: fields %v, net/http %v", head, got.Header, want.Header)
		}
		for k, v := range want.Header {
			if strings.Join(got.Header[k], "\x00") != strings.Join(v, "\x00") {
				t.Fatalf("%q: field %s = %q, net/http %q", head, k, got.Header[k], v)
			}
		}
	})
}

// TestParseDeclinesEarly: a request this engine does not take is handed
// over at its first bytes, without waiting for its head to end.
func TestParseDeclinesEarly(t *testing.T) {
	tmpl := new(http.Request)
	for _, c := range []struct {
		in   string
		want verdict
	}{
		{"", more},
		{"G", more},
		{"GET", more},
		{"HEAD /x", more},
		{"GET /x HTTP/1.1\r\nHost: x\r\n", more},
		{"P", declined},
		{"POST /", declined},
		{"GETS", declined},
		{"GET http://x/ HTTP/1.1\r\n", declined},
		{"GET / HTTP/1.0\r\n", declined},
		{"GET / HTTP/1.1\n", declined},
		{"GET / HTTP/1.1\r\nContent-Length: 0\r\n", declined},
		{"GET / HTTP/1.1\r\n Folded: x\r\n", declined},
		{"GET / HTTP/1.1\r\nHost: x\r\n\r\n", taken},
	} {
		if _, _, v := parseHead([]byte(c.in), tmpl, ""); v != c.want {
			t.Errorf("%q: %v, want %v", c.in, v, c.want)
		}
	}
}

// TestParseNewRequestEach: every request is a new *http.Request with its
// own URL and header, so that one still read after its response (a
// --max-request-time timer, a log line) never sees the next one.
func TestParseNewRequestEach(t *testing.T) {
	tmpl := new(http.Request)
	a, _, _ := parseHead([]byte("GET /a HTTP/1.1\r\nHost: x\r\nX: 1\r\n\r\n"), tmpl, "")
	b, _, _ := parseHead([]byte("GET /b HTTP/1.1\r\nHost: x\r\nX: 2\r\n\r\n"), tmpl, "")
	if a == b || a.URL == b.URL || a.URL.Path != "/a" || a.Header.Get("X") != "1" || b.URL.Path != "/b" {
		t.Fatalf("requests share state: a %p %s %v, b %p %s %v", a, a.URL, a.Header, b, b.URL, b.Header)
	}
}
