package compress

import (
	"net/http"
	"slices"
	"testing"
)

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
		{"upper case wildcard", 200, http.Header{"Content-Type": {"TEXT/Plain ;charset=utf-8"}}, true},
		{"OWS and parameters", 200, http.Header{"Content-Type": {"\tapplication/json\t; charset=utf-8"}}, true},
		{"a long s is not s", 200, http.Header{"Content-Type": {"Application/J\u017fON"}}, false},
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
	Prepare(h, Gzip)
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
	Prepare(h, Zstd)
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
