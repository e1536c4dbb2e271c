package lean

import (
	"bytes"
	"maps"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

// pipeConn reads one request, then EOF, and keeps what is written.
type pipeConn struct {
	in  *strings.Reader
	out bytes.Buffer
}

func (c *pipeConn) Read(p []byte) (int, error)       { return c.in.Read(p) }
func (c *pipeConn) Write(p []byte) (int, error)      { return c.out.Write(p) }
func (c *pipeConn) Close() error                     { return nil }
func (c *pipeConn) LocalAddr() net.Addr              { return &net.TCPAddr{} }
func (c *pipeConn) RemoteAddr() net.Addr             { return &net.TCPAddr{} }
func (c *pipeConn) SetDeadline(time.Time) error      { return nil }
func (c *pipeConn) SetReadDeadline(time.Time) error  { return nil }
func (c *pipeConn) SetWriteDeadline(time.Time) error { return nil }

// wire is what the engine writes for one request raw to handler h.
func wire(h http.HandlerFunc, raw string) string {
	e := New(h, Options{})
	c := &pipeConn{in: strings.NewReader(raw)}
	e.Serve(c, func(net.Conn) {})
	return c.out.String()
}

// TestCachedHeadSameBytes: a response written from a CachedHead is, byte
// for byte, the one the same status, fields, Age, X-Request-Id and body
// give through Header, WriteHeader and Write: field order, values with CR
// or LF, names the engine drops, the stored Age and X-Request-Id replaced,
// HEAD, a request that closes, a body past what goes in one write.
func TestCachedHeadSameBytes(t *testing.T) {
	const date = "Mon, 07 Dec 2026 01:00:00 GMT"
	big := bytes.Repeat([]byte("b"), bodyMax+1)
	for _, tc := range []struct {
		name   string
		status int
		h      http.Header
		body   []byte
	}{
		{"plain", 200, http.Header{"Content-Type": {"text/plain"}, "Cache-Control": {"max-age=60"}}, []byte("hello world")},
		{"around", 200, http.Header{"Accept-Ranges": {"bytes"}, "Content-Type": {"text/html"}, "Etag": {`"x"`},
			"Set-Cookie": {"a=1", "b=2"}, "Vary": {"Cookie"}, "X-Powered-By": {"p"}, "X-Runtime": {"0.1"}, "x-lower": {"l"},
			"Age": {"999"}, "X-Request-Id": {"the-filler"}, "Bad Name": {"v"}, http.TrailerPrefix + "T": {"t"},
			"Injected": {"a\r\nEvil: 1"}}, []byte("<p>hi</p>")},
		{"empty body", 200, http.Header{"Content-Type": {"text/plain"}}, nil},
		{"encoded, no type", 200, http.Header{"Content-Encoding": {"gzip"}}, []byte{0x1f, 0x8b}},
		{"not found", 404, http.Header{"Content-Type": {"text/plain"}}, []byte("gone")},
		{"big", 200, http.Header{"Content-Type": {"application/octet-stream"}}, big},
		{"only early names", 200, http.Header{"A": {"1"}, "Content-Type": {"t/t"}}, []byte("x")},
		{"only late names", 200, http.Header{"Content-Type": {"t/t"}, "Zz": {"1"}, "X-Z": {"2"}}, []byte("x")},
	} {
		h := maps.Clone(tc.h)
		h["Date"] = []string{date}
		h["Content-Length"] = []string{strconv.Itoa(len(tc.body))}
		ch := NewCachedHead(tc.status, h, int64(len(tc.body)))
		if ch == nil {
			t.Fatalf("%s: no CachedHead", tc.name)
		}
		for _, raw := range []string{
			"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
			"HEAD / HTTP/1.1\r\nHost: x\r\n\r\n",
			"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
		} {
			for _, age := range []string{"0", "12345"} {
				slow := wire(func(w http.ResponseWriter, r *http.Request) {
					wh := w.Header()
					for k, vs := range h {
						wh[k] = vs
					}
					wh["Age"], wh["X-Request-Id"] = []string{age}, []string{"req-1"}
					w.WriteHeader(tc.status)
					if r.Method != http.MethodHead {
						w.Write(tc.body)
					}
				}, raw)
				var took bool
				fast := wire(func(w http.ResponseWriter, r *http.Request) {
					w.Header()["X-Request-Id"] = []string{"req-1"}
					took = w.(CachedWriter).WriteCached(ch, age, tc.body)
				}, raw)
				if !took {
					t.Fatalf("%s, %q: WriteCached declined", tc.name, raw)
				}
				if fast != slow {
					t.Errorf("%s, %q, age %s:\nfrom the CachedHead:\n%.600q\nthrough the header:\n%.600q", tc.name, raw, age, fast, slow)
				}
			}
		}
	}
}

// TestCachedHeadDeclined: heads the engine would complete from more than
// Age and X-Request-Id are not pre-built, and a writer whose header holds
// more than the X-Request-Id (or not one) declines and writes nothing.
func TestCachedHeadDeclined(t *testing.T) {
	ok := func() http.Header {
		return http.Header{"Content-Type": {"text/plain"}, "Date": {"d"}, "Content-Length": {"2"}}
	}
	for name, edit := range map[string]func(http.Header) int{
		"no type (sniffed)":   func(h http.Header) int { delete(h, "Content-Type"); return 200 },
		"no date":             func(h http.Header) int { delete(h, "Date"); return 200 },
		"length differs":      func(h http.Header) int { h["Content-Length"] = []string{"3"}; return 200 },
		"no length":           func(h http.Header) int { delete(h, "Content-Length"); return 200 },
		"connection":          func(h http.Header) int { h["Connection"] = []string{"close"}; return 200 },
		"no content (204)":    func(h http.Header) int { return 204 },
		"not modified (304)":  func(h http.Header) int { return 304 },
		"interim (103)":       func(h http.Header) int { return 103 },
		"switching (101)":     func(h http.Header) int { return 101 },
		"length not a number": func(h http.Header) int { h["Content-Length"] = []string{"02"}; return 200 },
	} {
		h := ok()
		if ch := NewCachedHead(edit(h), h, 2); ch != nil {
			t.Errorf("%s: pre-built", name)
		}
	}
	ch := NewCachedHead(200, ok(), 2)
	if ch == nil {
		t.Fatal("the plain head was not pre-built")
	}
	for name, set := range map[string]func(http.Header){
		"no id":       func(http.Header) {},
		"two ids":     func(h http.Header) { h["X-Request-Id"] = []string{"a", "b"} },
		"more fields": func(h http.Header) { h["X-Request-Id"] = []string{"a"}; h["Connection"] = []string{"close"} },
	} {
		var took bool
		out := wire(func(w http.ResponseWriter, r *http.Request) {
			set(w.Header())
			took = w.(CachedWriter).WriteCached(ch, "0", []byte("ok"))
			if !took {
				w.Header()["Content-Type"] = []string{"text/plain"}
				w.Write([]byte("ok"))
			}
		}, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
		if took || !strings.HasSuffix(out, "\r\n\r\nok") || strings.Count(out, "HTTP/1.1 200") != 1 {
			t.Errorf("%s: took %v, wrote %q", name, took, out)
		}
	}
}
