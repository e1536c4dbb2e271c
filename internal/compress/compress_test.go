package compress

import (
	"bytes"
	"compress/gzip"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
)

func TestAcceptsGzip(t *testing.T) {
	for _, tc := range []struct {
		ae   []string
		want bool
	}{
		{nil, false},
		{[]string{""}, false},
		{[]string{"gzip"}, true},
		{[]string{"GZip"}, true},
		{[]string{"x-gzip"}, true},
		{[]string{"gzip, deflate, br, zstd"}, true},
		{[]string{"br", "gzip"}, true},
		{[]string{"deflate, br"}, false},
		{[]string{"gzip;q=0"}, false},
		{[]string{"gzip; Q=0.000"}, false},
		{[]string{"gzip;q=0.001"}, true},
		{[]string{"gzip;q=1"}, true},
		{[]string{"gzip;q=0.5, *;q=0"}, true},
		{[]string{"*"}, true},
		{[]string{"*;q=0"}, false},
		{[]string{"gzip;q=0, *"}, false},
		{[]string{"identity"}, false},
		{[]string{"gzipx"}, false},
		{[]string{" gzip ; q=0.8 "}, true},
		{[]string{"gzip;level=1"}, true},
		{[]string{"gzip;q=garbage"}, true},
	} {
		if got := AcceptsGzip(tc.ae); got != tc.want {
			t.Errorf("AcceptsGzip(%q) = %v, want %v", tc.ae, got, tc.want)
		}
	}
}

func TestCompressible(t *testing.T) {
	p := New(Config{Types: []string{"text/html", "application/json", "text/*"}, MinSize: 100})
	for _, tc := range []struct {
		name   string
		status int
		h      http.Header
		want   bool
	}{
		{"html", 200, http.Header{"Content-Type": {"text/html; charset=utf-8"}}, true},
		{"upper case type", 200, http.Header{"Content-Type": {"Application/JSON"}}, true},
		{"wildcard", 404, http.Header{"Content-Type": {"text/x-custom"}}, true},
		{"not listed", 200, http.Header{"Content-Type": {"image/png"}}, false},
		{"no type", 200, http.Header{}, false},
		{"encoded already", 200, http.Header{"Content-Type": {"text/html"}, "Content-Encoding": {"br"}}, false},
		{"identity encoding", 200, http.Header{"Content-Type": {"text/html"}, "Content-Encoding": {"identity"}}, true},
		{"no-transform", 200, http.Header{"Content-Type": {"text/html"}, "Cache-Control": {"public, No-Transform"}}, false},
		{"206", 206, http.Header{"Content-Type": {"text/html"}}, false},
		{"Content-Range", 200, http.Header{"Content-Type": {"text/html"}, "Content-Range": {"bytes 0-1/2"}}, false},
		{"204", 204, http.Header{"Content-Type": {"text/html"}}, false},
		{"304", 304, http.Header{"Content-Type": {"text/html"}}, false},
		{"101", 101, http.Header{"Content-Type": {"text/html"}}, false},
		{"small", 200, http.Header{"Content-Type": {"text/html"}, "Content-Length": {"99"}}, false},
		{"large enough", 200, http.Header{"Content-Type": {"text/html"}, "Content-Length": {"100"}}, true},
		{"unknown length", 200, http.Header{"Content-Type": {"text/html"}}, true},
	} {
		if got := p.Compressible(tc.status, tc.h); got != tc.want {
			t.Errorf("%s: Compressible = %v, want %v", tc.name, got, tc.want)
		}
	}
	var nilPolicy *Policy
	if nilPolicy.Compressible(200, http.Header{"Content-Type": {"text/html"}}) {
		t.Error("a nil policy compresses")
	}
	h := http.Header{"Content-Type": {"text/html"}}
	if n := testing.AllocsPerRun(100, func() { p.Compressible(200, h) }); n != 0 {
		t.Errorf("Compressible allocates %v times", n)
	}
}

func TestPrepareAndVary(t *testing.T) {
	shared := []string{"Cookie"}
	h := http.Header{"Content-Length": {"5000"}, "Accept-Ranges": {"bytes"}, "Etag": {`"abc"`}, "Vary": shared}
	Prepare(h)
	want := http.Header{"Content-Encoding": {"gzip"}, "Etag": {`W/"abc"`}, "Vary": {"Cookie", "Accept-Encoding"}}
	if !equalHeader(h, want) {
		t.Fatalf("prepared header %v, want %v", h, want)
	}
	if !slices.Equal(shared, []string{"Cookie"}) {
		t.Error("the app's Vary slice was changed in place")
	}
	for _, vary := range []string{"accept-encoding", "Cookie, Accept-Encoding", "*"} {
		h := http.Header{"Vary": {vary}}
		AddVary(h)
		if len(h["Vary"]) != 1 || h["Vary"][0] != vary {
			t.Errorf("Vary %q became %q", vary, h["Vary"])
		}
	}
	h = http.Header{"Etag": {`W/"weak"`}}
	Prepare(h)
	if h.Get("Etag") != `W/"weak"` {
		t.Errorf("weak ETag became %q", h.Get("Etag"))
	}
}

func equalHeader(a, b http.Header) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if !slices.Equal(v, b[k]) {
			return false
		}
	}
	return true
}

func TestStreams(t *testing.T) {
	p := New(Config{Level: 1, MaxStreams: 2})
	var a, b bytes.Buffer
	za, zb := p.Start(&a), p.Start(&b)
	if za == nil || zb == nil {
		t.Fatal("no stream within the limit")
	}
	if p.Start(io.Discard) != nil {
		t.Fatal("a stream past MaxStreams")
	}
	za.Write([]byte(strings.Repeat("hello ", 1000)))
	if err := p.End(za, true); err != nil {
		t.Fatal(err)
	}
	p.End(zb, false)
	zr, err := gzip.NewReader(&a)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(zr)
	if err != nil || string(got) != strings.Repeat("hello ", 1000) {
		t.Fatalf("round trip: %d bytes, %v", len(got), err)
	}
	zc := p.Start(io.Discard)
	if zc == nil {
		t.Fatal("ended streams were not released")
	}
	p.End(zc, false)
}

// acceptsGzipReference is AcceptsGzip written plainly, for the fuzz test.
func acceptsGzipReference(ae []string) bool {
	named, star := 0, 0
	for _, v := range ae {
		for _, item := range strings.Split(v, ",") {
			parts := strings.Split(item, ";")
			coding := strings.ToLower(strings.TrimSpace(parts[0]))
			if coding != "gzip" && coding != "x-gzip" && coding != "*" {
				continue
			}
			verdict := 1
			for _, p := range parts[1:] {
				name, val, ok := strings.Cut(p, "=")
				if !ok || strings.ToLower(strings.TrimSpace(name)) != "q" {
					continue
				}
				val = strings.TrimSpace(val)
				if q, err := strconv.ParseFloat(val, 64); err == nil && q == 0 && isZeroLiteral(val) {
					verdict = -1
				}
				break
			}
			if coding == "*" {
				if star != 1 {
					star = verdict
				}
			} else if named != 1 {
				named = verdict
			}
		}
	}
	if named != 0 {
		return named == 1
	}
	return star == 1
}

// isZeroLiteral is RFC 9110's "0" [ "." 0*3DIGIT ] with zero digits (any
// number of them, as AcceptsGzip reads it).
func isZeroLiteral(s string) bool {
	if s == "0" {
		return true
	}
	return strings.HasPrefix(s, "0.") && strings.Trim(s[2:], "0") == ""
}

func FuzzAcceptsGzip(f *testing.F) {
	for _, s := range []string{"gzip", "gzip;q=0", "*;q=0, gzip;q=0.5", "br, gzip;q=0.000", "x-gzip; q=1.0",
		"identity;q=1, *;q=0", "gzip;q=0;level=9", "gzip;Q=0.", "\tgzip\t;\tq\t=\t0\t", ",,,"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ae := strings.Split(s, "\n")
		if got, want := AcceptsGzip(ae), acceptsGzipReference(ae); got != want {
			t.Fatalf("AcceptsGzip(%q) = %v, reference %v", ae, got, want)
		}
	})
}

func TestWhole(t *testing.T) {
	p := New(Config{MemoBytes: 64 << 10})
	body := []byte(strings.Repeat("cached page ", 500))
	gz := p.Whole(body)
	zr, err := gzip.NewReader(bytes.NewReader(gz))
	if err != nil {
		t.Fatal(err)
	}
	if got, err := io.ReadAll(zr); err != nil || string(got) != string(body) {
		t.Fatalf("round trip: %v", err)
	}
	if again := p.Whole(body); &again[0] != &gz[0] {
		t.Error("the same body was compressed twice")
	}
	if n := testing.AllocsPerRun(100, func() { p.Whole(body) }); n != 0 {
		t.Errorf("a memo hit allocates %v times", n)
	}
	// Many bodies: the memo stays within its bound.
	for i := range 200 {
		p.Whole([]byte(strings.Repeat(strconv.Itoa(i), 1000)))
	}
	if p.memoSize > 64<<10 {
		t.Errorf("memo holds %d bytes, bound 64 KiB", p.memoSize)
	}
	if p.Whole(nil) != nil {
		t.Error("an empty body has an encoding")
	}
}
