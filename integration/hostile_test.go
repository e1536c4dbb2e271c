package integration

import (
	"fmt"
	"regexp"
	"strings"
	"testing"
)

// TestHostileInput sends, each on a connection of its own, requests that are
// malformed or try to smuggle a second request past a proxy in front. Each
// must get a 400-class answer or a closed connection, never reach the app,
// leave a line in the log, and the server must serve the next good request.
func TestHostileInput(t *testing.T) {
	f := startFerry(t, fixture(t, "wsgi/echo"))
	addr := addrOf(f)
	const h = "Host: x\r\n"
	// refused: net/http answered (logged as "request refused" with the
	// request line); ours: the request path answered (logged as a request).
	refused := func(path string, status int) string {
		p := regexp.QuoteMeta(path)
		return fmt.Sprintf(`msg="request refused" .*request=("[^"]*%s[^"]*"|\S*%s\S*) status=%d`, p, p, status)
	}
	ours := func(path string, status int) string {
		return fmt.Sprintf(`msg=request .*path=%s status=%d .*error=`, regexp.QuoteMeta(path), status)
	}
	for _, tc := range []struct {
		name, raw string
		status    string // expected status; "" for a closed connection without an answer
		log       string
	}{
		// Request smuggling: framing a proxy in front could read differently.
		{"Content-Length and Transfer-Encoding", "POST /h1 HTTP/1.1\r\n" + h + "Content-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nX", "400", ours("/h1", 400)},
		{"Transfer-Encoding and Content-Length", "POST /h2 HTTP/1.1\r\n" + h + "Transfer-Encoding: chunked\r\nContent-Length: 6\r\n\r\n0\r\n\r\nX", "400", ours("/h2", 400)},
		{"two different Content-Lengths", "POST /h3 HTTP/1.1\r\n" + h + "Content-Length: 4\r\nContent-Length: 5\r\n\r\nabcde", "400", refused("/h3", 400)},
		{"the same Content-Length twice", "POST /h4 HTTP/1.1\r\n" + h + "Content-Length: 4\r\ncontent-length: 4\r\n\r\nabcd", "400", ours("/h4", 400)},
		{"a Content-Length list", "POST /h5 HTTP/1.1\r\n" + h + "Content-Length: 4, 4\r\n\r\nabcd", "400", refused("/h5", 400)},
		{"a signed Content-Length", "POST /h6 HTTP/1.1\r\n" + h + "Content-Length: +4\r\n\r\nabcd", "400", refused("/h6", 400)},
		{"a negative Content-Length", "POST /h7 HTTP/1.1\r\n" + h + "Content-Length: -1\r\n\r\n", "400", refused("/h7", 400)},
		{"an unknown transfer coding", "POST /h8 HTTP/1.1\r\n" + h + "Transfer-Encoding: identity\r\n\r\n", "501", refused("/h8", 501)},
		{"chunked not last", "POST /h9 HTTP/1.1\r\n" + h + "Transfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n", "501", refused("/h9", 501)},
		{"two Transfer-Encodings", "POST /h10 HTTP/1.1\r\n" + h + "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", "501", refused("/h10", 501)},
		{"Transfer-Encoding in HTTP/1.0", "POST /h11 HTTP/1.0\r\n" + h + "Connection: keep-alive\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", "400", ours("/h11", 400)},
		{"space before the colon", "POST /h12 HTTP/1.1\r\n" + h + "Transfer-Encoding : chunked\r\n\r\n0\r\n\r\n", "400", refused("/h12", 400)},
		{"obs-fold", "GET /h13 HTTP/1.1\r\n" + h + "X-A: one\r\n Transfer-Encoding: chunked\r\n\r\n", "400", ours("/h13", 400)},
		{"obs-fold after the request line", "GET /h14 HTTP/1.1\r\n " + h + "\r\n", "400", refused("/h14", 400)},
		{"a malformed chunk size", "POST /h15 HTTP/1.1\r\n" + h + "Transfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n", "400", ours("/h15", 400)},
		{"chunks ended by bare LF", "POST /h16 HTTP/1.1\r\n" + h + "Transfer-Encoding: chunked\r\n\r\n3\nabc\n0\n\n", "400", ours("/h16", 400)},
		// Bytes that have no place in a header.
		{"NUL in a value", "GET /h17 HTTP/1.1\r\n" + h + "X-A: a\x00b\r\n\r\n", "400", refused("/h17", 400)},
		{"bare CR in a value", "GET /h18 HTTP/1.1\r\n" + h + "X-A: a\rInjected: b\r\n\r\n", "400", refused("/h18", 400)},
		{"LF in a value", "GET /h19 HTTP/1.1\r\n" + h + "X-A: a\nInjected b\r\n\r\n", "400", refused("/h19", 400)},
		{"space in a name", "GET /h20 HTTP/1.1\r\n" + h + "X A: b\r\n\r\n", "400", refused("/h20", 400)},
		{"no Host", "GET /h21 HTTP/1.1\r\n\r\n", "400", refused("/h21", 400)},
		{"two Hosts", "GET /h22 HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", "400", refused("/h22", 400)},
		{"a malformed Host", "GET /h23 HTTP/1.1\r\nHost: a b\r\n\r\n", "400", refused("/h23", 400)},
		// Targets that are not a resource of the app.
		{"CONNECT", "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n", "400", `msg=request .*method=CONNECT .*status=400`},
		{"absolute form, not HTTP", "GET ftp://example.com/h25 HTTP/1.1\r\n" + h + "\r\n", "400", `msg=request .*path=/h25 status=400`},
		{"* for GET", "GET * HTTP/1.1\r\n" + h + "Connection: close\r\n\r\n", "400", `msg=request .*method=GET path=\* status=400`},
		{"the HTTP/2 preface", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", "400", `msg=request .*method=PRI .*status=400`},
		{"unknown Expect", "POST /h28 HTTP/1.1\r\n" + h + "Expect: teapot\r\nContent-Length: 1\r\n\r\na", "417", refused("/h28", 417)},
		// Not HTTP at all.
		{"HTTP/0.9", "GET /h29\r\n\r\n", "400", refused("/h29", 400)},
		{"an unknown version", "GET /h30 HTTP/9.9\r\n" + h + "\r\n", "505", refused("/h30", 505)},
		{"a TLS hello", "\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03h31\r\n\r\n", "400", refused("h31", 400)},
		{"garbage", "\x00\xff\xfe h32 \x01\x02\r\n\r\n", "400", refused("h32", 400)},
		{"a line without a method", "/h33\r\n\r\n", "400", refused("/h33", 400)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := rawExchange(t, addr, tc.raw)
			if tc.status == "" {
				if got != "" {
					t.Errorf("answer %.80q, want a closed connection", got)
				}
			} else if !strings.HasPrefix(got, "HTTP/1.1 "+tc.status) && !strings.HasPrefix(got, "HTTP/1.0 "+tc.status) {
				t.Errorf("answer %.80q, want %s", got, tc.status)
			}
			if strings.Contains(got, "\r\n\r\n") && strings.Contains(got, `"method"`) {
				t.Errorf("the request reached the app: %q", got)
			}
			f.waitLog(tc.log)
			// The server goes on serving.
			if got := rawExchange(t, addr, "GET / HTTP/1.1\r\n"+h+"Connection: close\r\n\r\n"); !strings.HasPrefix(got, "HTTP/1.1 200") {
				t.Fatalf("the next good request got %.80q", got)
			}
		})
	}

	t.Run("a smuggled request never reaches the app", func(t *testing.T) {
		got := rawExchange(t, addr, "POST /upload HTTP/1.1\r\n"+h+"Content-Length: 44\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\n"+h+"\r\n")
		if !strings.HasPrefix(got, "HTTP/1.1 400") || strings.Count(got, "HTTP/1.1 ") != 1 || !strings.Contains(got, "Connection: close") {
			t.Errorf("answer %q: want one 400 and the connection closed", got)
		}
		f.get("/") // a line after it in the log
		f.waitLog(`msg=request .*method=GET path=/ status=200`)
		if strings.Contains(f.logs.String(), "/smuggled") {
			t.Error("the smuggled request was served")
		}
	})

	t.Run("OPTIONS * is answered, not refused", func(t *testing.T) {
		if got := rawExchange(t, addr, "OPTIONS * HTTP/1.1\r\n"+h+"Connection: close\r\n\r\n"); !strings.HasPrefix(got, "HTTP/1.1 200") {
			t.Errorf("answer %.60q", got)
		}
		f.get("/")
		f.waitLog(`msg=request .*method=GET path=/ status=200`)
		if strings.Contains(f.logs.String(), `request="OPTIONS * HTTP/1.1"`) {
			t.Error("OPTIONS * logged as refused")
		}
	})

	t.Run("absolute form is read as origin form with its host", func(t *testing.T) {
		got := rawExchange(t, addr, "GET http://other.example/echo?q=1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
		_, body, _ := strings.Cut(got, "\r\n\r\n")
		if !strings.HasPrefix(got, "HTTP/1.1 200") {
			t.Fatalf("answer %.80q", got)
		}
		e := decodeEcho(t, body)
		if e.PathInfo != "/echo" || e.QueryString != "q=1" || e.Headers["HTTP_HOST"] != "other.example" {
			t.Errorf("the app saw %q %q host %q", e.PathInfo, e.QueryString, e.Headers["HTTP_HOST"])
		}
	})
}
