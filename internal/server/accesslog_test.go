package server

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

func TestAccessLogCombined(t *testing.T) {
	var buf bytes.Buffer
	l := NewAccessLog(AccessCombined, &buf, nil)
	r, _ := http.NewRequest("GET", "http://x/a?b=\"c\"", nil)
	r.RequestURI, r.RemoteAddr = "/a?b=\"c\"\x1b[31m", "192.0.2.1:4711"
	r.Header.Set("User-Agent", "evil\"agent\n127.0.0.1 - - fake line")
	l.log(r, &accessEntry{app: "blog", status: 200, bytes: 42, pid: 7, id: "abc", start: time.Now(), dur: 1500 * time.Microsecond})
	line := buf.String()
	re := regexp.MustCompile(`^192\.0\.2\.1 - - \[[^\]]+\] "GET /a\?b=\\x22c\\x22\\x1B\[31m HTTP/1\.1" 200 42 "-" "evil\\x22agent\\x0A127\.0\.0\.1 - - fake line" rt=0\.002 id=abc app=blog pid=7\n$`)
	if !re.MatchString(line) || strings.Count(line, "\n") != 1 {
		t.Errorf("combined line %q", line)
	}
	buf.Reset()
	l.rejected(rejection{client: "192.0.2.1:1", line: "GARBAGE \"x", status: 400, reason: "Bad Request"})
	if !strings.HasPrefix(buf.String(), `192.0.2.1 - - [`) || !strings.Contains(buf.String(), `] "GARBAGE \x22x" 400 0 "-" "-" rt=0.000 id=- app=- pid=0 error="Bad Request"`) {
		t.Errorf("rejected line %q", buf.String())
	}
}

func TestAccessLogJSONAndText(t *testing.T) {
	var buf bytes.Buffer
	l := NewAccessLog(AccessJSON, &buf, nil)
	r, _ := http.NewRequest("POST", "http://x/", nil)
	r.RequestURI, r.RemoteAddr = "/\xff\x00ü", "[2001:db8::1]:4711"
	l.log(r, &accessEntry{status: 503, start: time.Now(), reason: "queue \"full\""})
	var e map[string]any
	if err := json.Unmarshal(buf.Bytes(), &e); err != nil {
		t.Fatalf("%q: %v", buf.String(), err)
	}
	if e["uri"] != "/\ufffd\x00ü" || e["client"] != "2001:db8::1" || e["status"] != 503.0 || e["error"] != `queue "full"` {
		t.Errorf("json %v", e)
	}
	buf.Reset()
	text := NewAccessLog(AccessText, nil, slog.New(slog.NewTextHandler(&buf, nil)))
	r.RequestURI = "/p"
	r.URL.Path = "/p"
	text.log(r, &accessEntry{app: "a", status: 200, id: "rid", start: time.Now()})
	if !strings.Contains(buf.String(), `msg=request app=a client=[2001:db8::1]:4711 method=POST path=/p status=200 bytes=0 duration=0s pid=0 request_id=rid`) ||
		strings.Contains(buf.String(), "error=") {
		t.Errorf("text line %q", buf.String())
	}
}

// FuzzAccessLogJSON: whatever a client sends, a JSON access line is one
// line of valid JSON that gives back what was sent (as valid UTF-8).
func FuzzAccessLogJSON(f *testing.F) {
	for _, s := range []string{"/", "\"", "\\", "\x00\x1f\x7f", "\xff\xfe", "ü€😀", "\u2028"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		b := appendJSONLine(nil, s, s, s, s, s, s, s, &accessEntry{id: s, app: s, reason: s})
		if bytes.Count(b, []byte("\n")) != 1 || !json.Valid(b) {
			t.Fatalf("line %q", b)
		}
		var e map[string]any
		json.Unmarshal(b, &e)
		if want := strings.ToValidUTF8(s, "\ufffd"); e["uri"] != want && utf8.ValidString(s) {
			t.Fatalf("uri %q, want %q", e["uri"], want)
		}
		c := appendCombined(nil, s, s, s, s, s, s, &accessEntry{id: s, app: s})
		if bytes.Count(c, []byte("\n")) != 1 {
			t.Fatalf("combined line %q", c)
		}
	})
}
