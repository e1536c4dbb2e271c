package lean

import "testing"

// The pieces parseHead is made of.

func TestRequestLine(t *testing.T) {
	for _, tc := range []struct {
		in     string
		method string
		target string
		next   int
		v      verdict
	}{
		{"GET / HTTP/1.1\r\n", "GET", "/", 16, taken},
		{"HEAD /a?b HTTP/1.1\r\nHost: x", "HEAD", "/a?b", 20, taken},
		{"GE", "", "", 0, more},
		{"GET /abc HTTP/1.", "", "", 0, more},
		{"POST / HTTP/1.1\r\n", "", "", 0, declined},
		{"PO", "", "", 0, declined},
		{"GET / HTTP/1.1\n", "", "", 0, declined},   // bare LF
		{"GET / HTTP/1.0\r\n", "", "", 0, declined}, // not 1.1
		{"GET * HTTP/1.1\r\n", "", "", 0, declined},
		{"GET /a b HTTP/1.1\r\n", "", "", 0, declined},
		{"GET /a#f HTTP/1.1\r\n", "", "", 0, declined},
		{"GET /\x7f HTTP/1.1\r\n", "", "", 0, declined},
		{"\r\n", "", "", 0, declined},
	} {
		m, target, next, v := requestLine([]byte(tc.in))
		if m != tc.method || string(target) != tc.target || next != tc.next || v != tc.v {
			t.Errorf("requestLine(%q) = %q, %q, %d, %v; want %q, %q, %d, %v", tc.in, m, target, next, v, tc.method, tc.target, tc.next, tc.v)
		}
	}
}

func TestSplitField(t *testing.T) {
	for _, tc := range []struct {
		in, name, value string
		ok              bool
	}{
		{"Host: x", "Host", "x", true},
		{"user-agent: \t a b \t", "User-Agent", "a b", true},
		{"x-odd-name:", "X-Odd-Name", "", true},
		{": x", "", "", false},
		{" Host: x", "", "", false}, // obs-fold
		{"Ho st: x", "", "", false},
		{"Host x", "", "", false},
		{"X: a\x00b", "", "", false},
		{"X: a\x7fb", "", "", false},
		{"X: a\tb", "X", "a\tb", true},
	} {
		name, a, b, ok := splitField([]byte(tc.in))
		value := tc.in[a:b]
		if name != tc.name || value != tc.value || ok != tc.ok {
			t.Errorf("splitField(%q) = %q, %q, %v; want %q, %q, %v", tc.in, name, value, ok, tc.name, tc.value, tc.ok)
		}
	}
}

func TestFieldAction(t *testing.T) {
	for _, tc := range []struct {
		name, value string
		want        action
	}{
		{"Accept", "*/*", keep},
		{"Host", "x", asHost},
		{"Connection", "Close", asClose},
		{"Connection", "keep-alive", keep},
		{"Connection", "upgrade", decline},
		{"Connection", "close, te", decline},
		{"Content-Length", "0", decline},
		{"Transfer-Encoding", "chunked", decline},
		{"Expect", "100-continue", decline},
		{"Upgrade", "websocket", decline},
		{"Te", "trailers", decline},
		{"Trailer", "X", decline},
	} {
		if got := fieldAction(tc.name, []byte(tc.value)); got != tc.want {
			t.Errorf("fieldAction(%q, %q) = %v, want %v", tc.name, tc.value, got, tc.want)
		}
	}
}
