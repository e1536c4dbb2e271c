package lean

import (
	"bufio"
	"net/http"
	"strings"
	"testing"
)

// FuzzFastParse: a head the lean path takes is one net/http reads the same
// way: method, target, host, and every field.
func FuzzFastParse(f *testing.F) {
	for _, s := range []string{
		"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
		"HEAD /a?b=c HTTP/1.1\r\nHost: example.com:80\r\nAccept: */*\r\nUser-Agent: x y\r\n\r\n",
		"GET /%41 HTTP/1.1\r\nHost: [::1]:8080\r\nCookie: a=b\r\nCookie: c=d\r\nConnection: close\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: x\r\nx-lower: \t v \t\r\n\r\n",
		"GET / HTTP/1.1\r\nhost: x\r\nHOST: y\r\n\r\n",
		"GET /? HTTP/1.1\r\nHost: x\r\n\r\n",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, head string) {
		end := headEnd([]byte(head))
		if end < 0 {
			return
		}
		c := &conn{remote: "192.0.2.1:1"}
		c.req = new(http.Request)
		if !c.parse([]byte(head[:end])) {
			return
		}
		want, err := http.ReadRequest(bufio.NewReader(strings.NewReader(head[:end])))
		if err != nil {
			t.Fatalf("the lean path took a head net/http refuses (%v): %q", err, head)
		}
		got := c.req
		if got.Method != want.Method || got.RequestURI != want.RequestURI || got.Host != want.Host ||
			got.URL.Path != want.URL.Path || got.URL.RawQuery != want.URL.RawQuery || got.URL.RawPath != want.URL.RawPath ||
			got.Close != want.Close || got.ContentLength != want.ContentLength {
			t.Fatalf("%q: lean %s %q host %q path %q query %q close %v; net/http %s %q host %q path %q query %q close %v",
				head, got.Method, got.RequestURI, got.Host, got.URL.Path, got.URL.RawQuery, got.Close,
				want.Method, want.RequestURI, want.Host, want.URL.Path, want.URL.RawQuery, want.Close)
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
