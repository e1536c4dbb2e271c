package server

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/ferry-server/ferry/internal/logs"
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

// slogLine is what a slog handler (text or JSON, level Info, With attrs)
// writes for the record msg at time t with attrs.
func slogLine(t *testing.T, json bool, with []slog.Attr, tm time.Time, msg string, attrs ...slog.Attr) string {
	t.Helper()
	var buf bytes.Buffer
	var h slog.Handler = slog.NewTextHandler(&buf, nil)
	if json {
		h = slog.NewJSONHandler(&buf, nil)
	}
	if len(with) > 0 {
		h = h.WithAttrs(with)
	}
	rec := slog.NewRecord(tm, slog.LevelInfo, msg, 0)
	rec.AddAttrs(attrs...)
	if err := h.Handle(context.Background(), rec); err != nil {
		t.Fatal(err)
	}
	return buf.String()
}

// checkRecords: the text lines NewTextAccessLog writes itself are the
// bytes the slog path (NewAccessLog with a logger) writes, for the request
// made of s in every field it logs.
func checkRecords(t *testing.T, s string) {
	t.Helper()
	for i, ns := range []int{987654321, 0, 5e6, 120, 999999999} {
		tm := time.Date(2026, 11, 21, 15, 4, 5+i, ns, time.Local)
		if i == 4 {
			tm = tm.UTC()
		}
		checkRecordsAt(t, s, tm)
	}
}

func checkRecordsAt(t *testing.T, s string, tm time.Time) {
	t.Helper()
	for _, js := range []bool{false, true} {
		for _, with := range [][]slog.Attr{nil, {slog.String("log", "access")}, {slog.String(s, s)}} {
			f := NewTextAccessLog(nil, Records{JSON: js, Attrs: with}).rec
			for _, target := range []string{"/" + s, "/p?" + s, "/" + s + "?" + s, "*"} {
				r, err := http.ReadRequest(bufio.NewReader(strings.NewReader("GET " + target + " HTTP/1.1\r\nHost: x\r\n\r\n")))
				if err != nil {
					r, _ = http.NewRequest("GET", "http://x/", nil)
					r.URL.Path, r.URL.RawQuery = "/"+s, s
				}
				r.RemoteAddr, r.Method = s, s
				e := &accessEntry{app: s, status: 200, bytes: 42, pid: 7, id: s, dur: 1234567 * time.Nanosecond, reason: s}
				got := string(f.appendRequest(nil, tm, r, e))
				attrs := []slog.Attr{
					slog.String("app", e.app), slog.String("client", r.RemoteAddr), slog.String("method", r.Method),
					slog.String("path", r.URL.RequestURI()), slog.Int("status", e.status), slog.Int64("bytes", e.bytes),
					slog.Duration("duration", e.dur), slog.Int("pid", e.pid), slog.String("request_id", e.id),
				}
				if s != "" {
					attrs = append(attrs, slog.String("error", e.reason))
				} else {
					e.reason = ""
					got = string(f.appendRequest(nil, tm, r, e))
				}
				if want := slogLine(t, js, with, tm, "request", attrs...); got != want {
					t.Fatalf("json=%v with=%v target %q:\n got %q\nwant %q", js, with, target, got, want)
				}
			}
			rj := rejection{client: s, line: s, status: 400, reason: s}
			got := string(f.appendRejected(nil, tm, rj))
			want := slogLine(t, js, with, tm, "request refused", slog.String("client", s), slog.String("request", s),
				slog.Int("status", 400), slog.String("error", s))
			if got != want {
				t.Fatalf("rejected json=%v:\n got %q\nwant %q", js, got, want)
			}
		}
	}
}

var recordSeeds = []string{"", "a", "a b", "a=b", `"`, `\`, "\x00\x1f\x7f", "\xff\xfe", "ü€😀", "\u2028\u2029",
	"\u00a0", "\u200b", "<&>", "%41%20", "a\tb\nc\r", "\xe2\x82", "/x?y", "[::1]:80"}

func TestAccessLogRecordsAsSlog(t *testing.T) {
	for _, s := range recordSeeds {
		checkRecords(t, s)
	}
	// A level above Info writes nothing, as slog would.
	var buf bytes.Buffer
	l := NewTextAccessLog(&buf, Records{Level: slog.LevelWarn})
	r, _ := http.NewRequest("GET", "http://x/", nil)
	l.log(r, &accessEntry{})
	l.rejected(rejection{})
	if buf.Len() != 0 {
		t.Errorf("logged above its level: %q", buf.String())
	}
	// And one line through the writer otherwise.
	l = NewTextAccessLog(&buf, Records{Attrs: []slog.Attr{slog.String("log", "access")}})
	r.RemoteAddr = "192.0.2.1:1"
	l.log(r, &accessEntry{app: "a", status: 200, id: "rid"})
	if !regexp.MustCompile(`^time=\S+ level=INFO msg=request log=access app=a client=192\.0\.2\.1:1 method=GET path=/ status=200 bytes=0 duration=0s pid=0 request_id=rid\n$`).MatchString(buf.String()) {
		t.Errorf("text line %q", buf.String())
	}
}

func FuzzAccessLogRecords(f *testing.F) {
	for _, s := range recordSeeds {
		f.Add(s)
	}
	f.Fuzz(checkRecords)
}

// Many goroutines logging into a buffered access log file: every line is
// there, whole, once the log is closed.
func TestAccessLogBufferedFile(t *testing.T) {
	for _, format := range []string{AccessText, AccessCombined, AccessJSON} {
		t.Run(format, func(t *testing.T) {
			dir := t.TempDir()
			out, err := logs.New(logs.Options{File: filepath.Join(dir, "ferry.log")})
			if err != nil {
				t.Fatal(err)
			}
			defer out.Close()
			path := filepath.Join(dir, "access.log")
			w, closeW, err := out.Access(path)
			if err != nil {
				t.Fatal(err)
			}
			l := NewAccessLog(format, w, nil)
			if format == AccessText {
				l = NewTextAccessLog(w, Records{})
			}
			const goroutines, each = 8, 2000
			var wg sync.WaitGroup
			for g := range goroutines {
				wg.Add(1)
				go func() {
					defer wg.Done()
					r, _ := http.NewRequest("GET", "http://x/", nil)
					r.RemoteAddr = "192.0.2.1:1"
					for i := range each {
						r.RequestURI = fmt.Sprintf("/%d/%d", g, i)
						r.URL.Path = r.RequestURI
						l.log(r, &accessEntry{status: 200, start: time.Now(), id: "x"})
					}
				}()
			}
			wg.Wait()
			if err := closeW(); err != nil {
				t.Fatal(err)
			}
			b, _ := os.ReadFile(path)
			lines := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
			seen := map[string]bool{}
			re := regexp.MustCompile(`/\d+/\d+`)
			for _, line := range lines {
				target := re.FindString(line)
				if target == "" || seen[target] || strings.Count(line, "status") > 1 {
					t.Fatalf("bad or repeated line %q", line)
				}
				seen[target] = true
			}
			if len(seen) != goroutines*each {
				t.Fatalf("%d lines, want %d", len(seen), goroutines*each)
			}
		})
	}
}

func benchAccessRequest() (*http.Request, *accessEntry) {
	r, _ := http.NewRequest("GET", "http://example.com/hello?name=world", nil)
	r.RequestURI, r.RemoteAddr = "/hello?name=world", "192.0.2.1:4711"
	r.Header.Set("User-Agent", "wrk/4.2.0")
	return r, &accessEntry{app: "hello", status: 200, bytes: 13, pid: 4242, id: "0123456789abcdef0123456789abcdef",
		start: time.Now(), dur: 850 * time.Microsecond}
}

// BenchmarkAccessLog: one line per request into a file, as a core writes
// it: text (the default, in Ferry's own log with log=access), combined and
// json (in a file of their own).
func BenchmarkAccessLog(b *testing.B) {
	for _, format := range []string{AccessText, AccessCombined, AccessJSON} {
		b.Run(format, func(b *testing.B) {
			l, done := benchAccessLog(b, format)
			defer done()
			r, e := benchAccessRequest()
			b.ReportAllocs()
			for b.Loop() {
				l.log(r, e)
			}
		})
	}
}

// BenchmarkAccessLogParallel: the default text access log, from as many
// goroutines as CPUs.
func BenchmarkAccessLogParallel(b *testing.B) {
	l, done := benchAccessLog(b, AccessText)
	defer done()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		r, e := benchAccessRequest()
		for pb.Next() {
			l.log(r, e)
		}
	})
}

func benchAccessLog(b *testing.B, format string) (*AccessLog, func()) {
	dir := b.TempDir()
	out, err := logs.New(logs.Options{File: filepath.Join(dir, "ferry.log")})
	if err != nil {
		b.Fatal(err)
	}
	if format == AccessText {
		w, _, _ := out.Access("")
		return NewTextAccessLog(w, Records{Attrs: []slog.Attr{slog.String("log", "access")}}), out.Close
	}
	w, _, err := out.Access(filepath.Join(dir, "access.log"))
	if err != nil {
		b.Fatal(err)
	}
	return NewAccessLog(format, w, nil), out.Close
}
