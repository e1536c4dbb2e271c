package server

import (
	"io"
	"net"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/ferry-server/ferry/internal/compress"
)

// rawExchange writes raw to a new connection to s and returns all it
// reads until the server closes it.
func rawExchange(t *testing.T, s *Server, raw string) string {
	t.Helper()
	c, err := net.Dial("tcp", s.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, raw); err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(c)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

var ageField = regexp.MustCompile(`\r\nAge: \d+\r\n`)

// TestCachedHeadHits: a cache hit written from its entry's pre-built head
// (lean engine) is byte for byte the one the header path writes, for GET
// and HEAD, kept-alive and closing, conditional (304), another variant
// (Vary), with and without a compression policy, compressible or not (a
// compressible one keeps the header path: Vary, Content-Encoding), and a
// client's own X-Request-Id (a fresh one differs by nature; its place is
// checked by the lean tests).
func TestCachedHeadHits(t *testing.T) {
	small := "HTTP/1.1 200 OK\r\nAccept-Ranges: none\r\nContent-Type: text/html\r\nCache-Control: public, max-age=60\r\n" +
		"Etag: \"v1\"\r\nVary: Accept-Language\r\nX-Request-Id: the-app's\r\nX-Runtime: 0.1\r\nContent-Length: 11\r\n\r\nhello world"
	big := strings.Replace(small, "Content-Length: 11\r\n\r\nhello world", "Content-Length: 2048\r\n\r\n"+strings.Repeat("<p>x</p>", 256), 1)
	policy := compress.New(compress.Config{Types: []string{"text/html"}, MinSize: 512})
	const id = "X-Request-Id: client-id-1\r\n"
	for _, tc := range []struct {
		name   string
		resp   string
		policy *compress.Policy
	}{
		{"small", small, nil}, {"small, policy", small, policy}, {"big", big, nil}, {"big, policy", big, policy},
	} {
		h, _ := benchHandler(t, tc.resp, true, Options{Compression: tc.policy})
		s := listen(t, h, true)
		for _, lang := range []string{"", "Accept-Language: fr\r\n"} { // both variants stored
			fill := rawExchange(t, s, "GET /c HTTP/1.1\r\nHost: x\r\n"+id+lang+"Connection: close\r\n\r\n")
			if !strings.HasPrefix(fill, "HTTP/1.1 200 ") {
				t.Fatalf("%s: filling: %q", tc.name, fill)
			}
		}
		for _, raw := range []string{
			"GET /c HTTP/1.1\r\nHost: x\r\n" + id + "\r\nGET /c HTTP/1.1\r\nHost: x\r\n" + id + "Connection: close\r\n\r\n",
			"HEAD /c HTTP/1.1\r\nHost: x\r\n" + id + "Connection: close\r\n\r\n",
			"GET /c HTTP/1.1\r\nHost: x\r\n" + id + "Accept-Encoding: gzip\r\nConnection: close\r\n\r\n",
			"GET /c HTTP/1.1\r\nHost: x\r\n" + id + "If-None-Match: \"v1\"\r\nConnection: close\r\n\r\n",
			"GET /c HTTP/1.1\r\nHost: x\r\n" + id + "Accept-Language: fr\r\nConnection: close\r\n\r\n",
		} {
			fast := rawExchange(t, s, raw)
			cachedHeads = false
			slow := rawExchange(t, s, raw)
			cachedHeads = true
			fast, slow = ageField.ReplaceAllString(fast, "\r\nAge: N\r\n"), ageField.ReplaceAllString(slow, "\r\nAge: N\r\n")
			if fast != slow || !strings.Contains(fast, "\r\nAge: N\r\n") {
				t.Errorf("%s, %q:\npre-built head:\n%.900q\nheader path:\n%.900q", tc.name, raw, fast, slow)
			}
		}
	}
}
