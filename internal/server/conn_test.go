package server

import (
	"strings"
	"testing"
)

func TestHeadScan(t *testing.T) {
	for _, tc := range []struct {
		name, head string
		http10     bool
		want       string // a substring of the problem; "" for none
	}{
		{"plain", "GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\n", false, ""},
		{"chunked", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n", false, ""},
		{"both", "POST / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n", false, "both"},
		{"both, any case", "POST / HTTP/1.1\r\ntransfer-encoding: chunked\r\nCONTENT-LENGTH: 3\r\n\r\n", false, "both"},
		{"two lengths", "POST / HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\n", false, "more than one"},
		{"fold", "GET / HTTP/1.1\r\nX: a\r\n\tb\r\n\r\n", false, "obs-fold"},
		{"TE in 1.0", "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", true, "HTTP/1.0"},
		{"bare LF lines", "POST / HTTP/1.1\nContent-Length: 1\nTransfer-Encoding: chunked\n\n", false, "both"},
		{"names that only start alike", "GET / HTTP/1.1\r\nContent-Lengthy: 1\r\nTransfer-Encodings: x\r\n\r\n", false, ""},
		{"a body that looks like headers", "POST / HTTP/1.1\r\nContent-Length: 40\r\n\r\nTransfer-Encoding: chunked\r\n folded\r\n", false, ""},
		{"request line mentions a name", "GET /Content-Length:/Transfer-Encoding: HTTP/1.1\r\nContent-Length: 1\r\n\r\n", false, ""},
		{"a long name", "GET / HTTP/1.1\r\n" + strings.Repeat("X", 300) + ": 1\r\nContent-Length: 1\r\n\r\n", false, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var s headScan
			s.feed([]byte(tc.head))
			got := s.problem(tc.http10)
			if (tc.want == "") != (got == "") || !strings.Contains(got, tc.want) {
				t.Fatalf("problem %q, want %q", got, tc.want)
			}
		})
	}
}

// scanReference reads a request head the plain way, for FuzzHeadScan.
func scanReference(head string, http10 bool) string {
	lines := strings.Split(head, "\n")
	var s headScan
	for i, line := range lines {
		if i == len(lines)-1 {
			// The last piece has no newline: a line not yet finished.
			if i > 0 && line != "" && (line[0] == ' ' || line[0] == '\t') {
				s.fold = true
			}
			if i > 0 && line != "" && line[0] != '\r' {
				if name, _, ok := strings.Cut(line, ":"); ok && len(name) <= len(s.name) && !strings.ContainsAny(name, "\n") {
					s.count([]byte(name))
				}
			}
			break
		}
		if i == 0 {
			continue
		}
		if line == "" || line == "\r" || line[0] == '\r' {
			break
		}
		if line[0] == ' ' || line[0] == '\t' {
			s.fold = true
			continue
		}
		if name, _, ok := strings.Cut(line, ":"); ok && len(name) <= len(s.name) {
			s.count([]byte(name))
		}
	}
	return s.problem(http10)
}

// FuzzHeadScan: the scan of a head fed in pieces, however split, agrees
// with the scan of it whole and with a plain line-by-line reading.
func FuzzHeadScan(f *testing.F) {
	for _, s := range []string{
		"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
		"POST / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
		"GET / HTTP/1.1\r\nX: a\r\n b\r\n\r\n",
		"POST / HTTP/1.1\ncontent-length: 1\ncontent-length: 2\n\nbody",
	} {
		f.Add(s, uint8(7), false)
	}
	f.Fuzz(func(t *testing.T, head string, step uint8, http10 bool) {
		var whole headScan
		whole.feed([]byte(head))
		var pieces headScan
		n := int(step%32) + 1
		for i := 0; i < len(head); i += n {
			pieces.feed([]byte(head[i:min(i+n, len(head))]))
		}
		if a, b := whole.problem(http10), pieces.problem(http10); a != b {
			t.Fatalf("whole %q, in pieces of %d %q", a, n, b)
		}
		// The reference is exact for heads with bare LF line ends (a CR
		// of its own is a byte net/http refuses anyway).
		if !strings.Contains(head, "\r") {
			if a, b := whole.problem(http10), scanReference(head, http10); a != b {
				t.Fatalf("scan %q, reference %q", a, b)
			}
		}
	})
}

func TestParseAnswer(t *testing.T) {
	for in, want := range map[string]struct {
		status int
		reason string
	}{
		"HTTP/1.1 400 Bad Request: malformed Host header\r\nContent-Type: text/plain\r\n\r\n400": {400, "Bad Request: malformed Host header"},
		"HTTP/1.1 431 Request Header Fields Too Large\r\n":                                       {431, "Request Header Fields Too Large"},
		"HTTP/1.1 garbage": {400, ""},
	} {
		if s, r := parseAnswer([]byte(in)); s != want.status || r != want.reason {
			t.Errorf("parseAnswer(%.30q) = %d %q, want %d %q", in, s, r, want.status, want.reason)
		}
	}
}
