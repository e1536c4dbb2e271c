package appwire

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"strings"
	"testing"
)

func TestRequestFrame(t *testing.T) {
	var q Request
	buf := []byte("leftover")
	q.Begin(buf[:0])
	q.Pair("REQUEST_METHOD", "GET")
	q.Pair("PATH_INFO", "/a b")
	q.Pair("HTTP_X_EMPTY", "")
	frame, err := q.End()
	if err != nil {
		t.Fatal(err)
	}
	want := "\xf1\x00\x00\x00\x2fREQUEST_METHOD\x00GET\x00PATH_INFO\x00/a b\x00HTTP_X_EMPTY\x00"
	if string(frame) != want {
		t.Fatalf("frame %q, want %q", frame, want)
	}
	env, rest, err := ParseRequest(append(frame, "body"...))
	if err != nil || string(rest) != "body" {
		t.Fatalf("ParseRequest: %q %v", rest, err)
	}
	if w := []string{"REQUEST_METHOD", "GET", "PATH_INFO", "/a b", "HTTP_X_EMPTY", ""}; !reflect.DeepEqual(env, w) {
		t.Fatalf("env %q, want %q", env, w)
	}
	// The buffer is reused: a second frame starts afresh.
	q.Begin(frame[:0])
	q.Pair("A", "1")
	frame2, _ := q.End()
	if string(frame2) != "\xf1\x00\x00\x00\x03A\x001" {
		t.Fatalf("second frame %q", frame2)
	}
	// An empty head is an empty environment.
	q.Begin(nil)
	frame3, _ := q.End()
	if env, _, err := ParseRequest(frame3); err != nil || len(env) != 0 {
		t.Fatalf("empty head: %q %v", env, err)
	}
}

func TestRequestNUL(t *testing.T) {
	var q Request
	q.Begin(nil)
	q.Pair("HTTP_X", "a\x00b")
	q.Pair("OK", "fine")
	if _, err := q.End(); err == nil || !strings.Contains(err.Error(), "NUL") {
		t.Fatalf("End: %v, want a NUL error", err)
	}
}

func TestMagicIsNoHTTP(t *testing.T) {
	// A loader tells the wires apart by the first byte: no method (a
	// token) and no CR or LF before one can be it.
	if Magic < 0x80 || Magic == '\r' || Magic == '\n' {
		t.Fatalf("magic %#x could begin an HTTP/1.1 request", Magic)
	}
}

func TestParseHead(t *testing.T) {
	for _, tc := range []struct {
		raw    string
		code   int
		status string
		header http.Header
		err    string
	}{
		{raw: "200 OK", code: 200, status: "200 OK", header: http.Header{}},
		{raw: "204", code: 204, status: "204", header: http.Header{}},
		{raw: "103 Early Hints\x00link\x00</a.css>; rel=preload\x00Link\x00</b.js>", code: 103, status: "103 Early Hints",
			header: http.Header{"Link": {"</a.css>; rel=preload", "</b.js>"}}},
		{raw: "200 OK\x00content-type\x00 text/plain \x00X-Empty\x00", code: 200, status: "200 OK",
			header: http.Header{"Content-Type": {"text/plain"}, "X-Empty": {""}}},
		{raw: "", err: "malformed status"},
		{raw: "20", err: "malformed status"},
		{raw: "099 x", err: "malformed status"},
		{raw: "2000", err: "malformed status"},
		{raw: "200 O\rK", err: "control byte"},
		{raw: "200 OK\x00X-A", err: "without a value"},
		{raw: "200 OK\x00 X\x00v", err: "malformed field name"},
		{raw: "200 OK\x00X(\x00v", err: "malformed field name"},
		{raw: "200 OK\x00legacy name\x00v", code: 200, status: "200 OK", header: http.Header{"legacy name": {"v"}}},
		{raw: "200 OK\x00\x00v", err: "malformed field name"},
		{raw: "200 OK\x00X-A\x00v\r\nX-Injected: 1", err: "malformed value"},
	} {
		h, err := ParseHead([]byte(tc.raw))
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) || !errors.Is(err, ErrFraming) {
				t.Errorf("%q: %v, want %q", tc.raw, err, tc.err)
			}
			continue
		}
		if err != nil || h.Code != tc.code || h.Status != tc.status || !reflect.DeepEqual(h.Header, tc.header) {
			t.Errorf("%q: %d %q %v %v", tc.raw, h.Code, h.Status, h.Header, err)
		}
	}
}

func TestReadHeadAndBody(t *testing.T) {
	big := strings.Repeat("v", 10000) // past the reader's buffer
	var b []byte
	b = AppendHead(b, "100 Continue")
	b = AppendHead(b, "200 OK", "Content-Length", "11", "X-Big", big)
	b = AppendChunk(b, []byte("hello "))
	b = AppendChunk(b, []byte("world"))
	b = AppendChunk(b, nil)
	b = append(b, "next"...)
	br := bufio.NewReaderSize(bytes.NewReader(b), 4096)
	h, err := ReadHead(br)
	if err != nil || h.Code != 100 {
		t.Fatalf("interim: %+v %v", h, err)
	}
	h, err = ReadHead(br)
	if err != nil || h.Code != 200 || h.Header.Get("X-Big") != big {
		t.Fatalf("final: %d %v", h.Code, err)
	}
	body := NewBody(br, 11)
	data, err := io.ReadAll(body)
	if err != nil || string(data) != "hello world" || !body.Done() {
		t.Fatalf("body %q %v done=%v", data, err, body.Done())
	}
	if rest, _ := io.ReadAll(br); string(rest) != "next" {
		t.Fatalf("after the end chunk: %q", rest)
	}
}

func TestBodyErrors(t *testing.T) {
	for _, tc := range []struct {
		name   string
		wire   []byte
		length int64
		err    string
	}{
		{"short of Content-Length", AppendChunk(AppendChunk(nil, []byte("abc")), nil), 4, "body of 3 bytes, Content-Length 4"},
		{"past Content-Length", AppendChunk(AppendChunk(nil, []byte("abcde")), nil), 4, "longer than its Content-Length"},
		{"cut in a chunk", AppendChunk(nil, []byte("abcde"))[:6], -1, "unexpected EOF"},
		{"no end chunk", AppendChunk(nil, []byte("abc")), -1, "unexpected EOF"},
	} {
		body := NewBody(bufio.NewReader(bytes.NewReader(tc.wire)), tc.length)
		_, err := io.ReadAll(body)
		if err == nil || !strings.Contains(err.Error(), tc.err) {
			t.Errorf("%s: %v, want %q", tc.name, err, tc.err)
		}
	}
	if err := ReadEnd(bufio.NewReader(bytes.NewReader(AppendChunk(nil, []byte("x"))))); err == nil || !errors.Is(err, ErrFraming) {
		t.Errorf("ReadEnd of a chunk: %v", err)
	}
	if err := ReadEnd(bufio.NewReader(bytes.NewReader([]byte{0, 0}))); err != io.ErrUnexpectedEOF {
		t.Errorf("ReadEnd of a cut end: %v", err)
	}
	if _, err := ReadHead(bufio.NewReader(bytes.NewReader([]byte{0xff, 0, 0, 0}))); !errors.Is(err, ErrFraming) {
		t.Errorf("huge head: %v", err)
	}
}

// FuzzResponseDifferential: a response sent framed means what the same
// response sent as HTTP/1.1 (chunked) means to net/http's reader: same
// status, fields and body, or an error from both.
func FuzzResponseDifferential(f *testing.F) {
	f.Add(200, "Content-Type: text/plain\nX-A: 1\nx-a: 2", []byte("hello world"), uint8(5))
	f.Add(404, "", []byte{}, uint8(0))
	f.Add(201, "Set-Cookie: a=1\nSet-Cookie: b=2\nX-Space:   padded  ", []byte("x"), uint8(1))
	f.Add(500, "Bad Name: v", []byte("body"), uint8(2))
	f.Add(200, "X-Ctl: a\x01b", []byte("body"), uint8(2))
	f.Add(200, "X-Tab: a\tb\nX-Utf8: héllo\nX-Del: \x7f", []byte(strings.Repeat("z", 5000)), uint8(200))
	f.Fuzz(func(t *testing.T, code int, fields string, body []byte, split uint8) {
		if code < 200 || code > 999 || strings.ContainsAny(fields, "\r\x00") {
			return
		}
		var names, values []string
		if fields != "" {
			for _, line := range strings.Split(fields, "\n") {
				name, value, ok := strings.Cut(line, ":")
				if !ok {
					return
				}
				switch strings.ToLower(strings.TrimSpace(name)) {
				case "content-length", "transfer-encoding", "trailer", "pragma":
					return // framing, which the loader owns, and net/http's fix-ups
				}
				if strings.HasPrefix(name, " ") || strings.HasPrefix(name, "\t") {
					return // a continuation line in HTTP/1.1 (obs-fold)
				}
				names, values = append(names, name), append(values, value)
			}
		}
		status := fmt.Sprintf("%03d Status", code)
		if code == 204 || code == 304 {
			body = nil // none on either wire (the proxy reads the end chunk)
		}

		var h1 bytes.Buffer
		fmt.Fprintf(&h1, "HTTP/1.1 %s\r\n", status)
		var pairs []string
		for i := range names {
			fmt.Fprintf(&h1, "%s:%s\r\n", names[i], values[i])
			pairs = append(pairs, names[i], values[i])
		}
		h1.WriteString("Transfer-Encoding: chunked\r\n\r\n")
		framed := AppendHead(nil, status, pairs...)
		cut := min(int(split), len(body))
		for _, part := range [][]byte{body[:cut], body[cut:]} {
			if len(part) > 0 {
				fmt.Fprintf(&h1, "%x\r\n%s\r\n", len(part), part)
				framed = AppendChunk(framed, part)
			}
		}
		h1.WriteString("0\r\n\r\n")
		framed = AppendChunk(framed, nil)

		ref, rerr := http.ReadResponse(bufio.NewReader(&h1), nil)
		var refBody []byte
		if rerr == nil {
			refBody, rerr = io.ReadAll(ref.Body)
		}
		br := bufio.NewReaderSize(bytes.NewReader(framed), 4096)
		got, gerr := ReadHead(br)
		var gotBody []byte
		if gerr == nil {
			b := NewBody(br, -1)
			gotBody, gerr = io.ReadAll(b)
			if gerr == nil && !b.Done() {
				t.Fatal("body read without its end chunk")
			}
		}
		if (rerr == nil) != (gerr == nil) {
			t.Fatalf("net/http: %v; framed: %v\n%q", rerr, gerr, h1.String())
		}
		if rerr != nil {
			return
		}
		delete(ref.Header, "Transfer-Encoding")
		if len(ref.Header) == 0 {
			ref.Header = http.Header{}
		}
		if ref.StatusCode != got.Code || !reflect.DeepEqual(ref.Header, got.Header) || !bytes.Equal(refBody, gotBody) {
			t.Fatalf("net/http: %d %q %q\nframed: %d %q %q", ref.StatusCode, ref.Header, refBody, got.Code, got.Header, gotBody)
		}
	})
}
