package server

import (
	"bytes"
	"compress/gzip"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/andybalholm/brotli"
	"github.com/klauspost/compress/zstd"

	"github.com/ferry-server/ferry/internal/compress"
)

// deadlineRecorder is a ResponseRecorder that records write deadlines.
type deadlineRecorder struct {
	*httptest.ResponseRecorder
	deadlines []time.Time
}

func (d *deadlineRecorder) SetWriteDeadline(t time.Time) error {
	d.deadlines = append(d.deadlines, t)
	return nil
}

func newTestWriter(gzipOK bool) (*respWriter, *deadlineRecorder) {
	c := compress.Identity
	if gzipOK {
		c = compress.Gzip
	}
	return newCodingWriter(c)
}

// newCodingWriter is a writer for a client that negotiated c.
func newCodingWriter(c compress.Coding) (*respWriter, *deadlineRecorder) {
	rec := &deadlineRecorder{ResponseRecorder: httptest.NewRecorder()}
	rw := &respWriter{w: rec, id: []string{"req-1"}, coding: c, dl: rec, timeout: time.Minute,
		policy: compress.New(compress.Config{Types: []string{"text/html"}, MinSize: 10})}
	rw.sink.rw = rw
	return rw, rec
}

func ungzip(t *testing.T, b []byte) (string, error) {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("not gzip: %v", err)
	}
	out, err := io.ReadAll(zr)
	return string(out), err
}

func TestRespWriterCompresses(t *testing.T) {
	page := strings.Repeat("<p>hello</p>", 100)
	rw, rec := newTestWriter(true)
	h := rw.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Content-Length", "1200")
	h.Set("X-Request-Id", "the app's")
	rw.WriteHeader(200)
	rw.Write([]byte(page))
	rw.finish(true)
	got, err := ungzip(t, rec.Body.Bytes())
	if err != nil || got != page {
		t.Fatalf("body %d bytes, %v", len(got), err)
	}
	if rec.Header().Get("Content-Encoding") != "gzip" || rec.Header().Get("Content-Length") != "" ||
		rec.Header().Get("Vary") != "Accept-Encoding" || rec.Header().Get("X-Request-Id") != "req-1" {
		t.Errorf("headers %v", rec.Header())
	}
	if rw.bytes != int64(rec.Body.Len()) || rw.status != 200 || len(rec.deadlines) == 0 {
		t.Errorf("recorded %d bytes (sent %d), status %d, %d deadlines", rw.bytes, rec.Body.Len(), rw.status, len(rec.deadlines))
	}
	if d := time.Until(rec.deadlines[0]); d < 50*time.Second || d > time.Minute {
		t.Errorf("write deadline in %s, want about a minute", d)
	}
}

func TestRespWriterLeavesAlone(t *testing.T) {
	for _, tc := range []struct {
		name   string
		gzipOK bool
		head   bool
		ct, cl string
		vary   bool
	}{
		{"client does not take gzip", false, false, "text/html", "", true},
		{"not a listed type", true, false, "image/png", "", false},
		{"smaller than the minimum", true, false, "text/html", "5", false},
		{"HEAD: not compressed, but varies like a GET", true, true, "text/html", "", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rw, rec := newTestWriter(tc.gzipOK)
			rw.head = tc.head
			rw.Header().Set("Content-Type", tc.ct)
			if tc.cl != "" {
				rw.Header().Set("Content-Length", tc.cl)
			}
			rw.Write([]byte("plain"))
			rw.finish(true)
			if rec.Body.String() != "plain" || rec.Header().Get("Content-Encoding") != "" {
				t.Errorf("body %q, encoding %q", rec.Body.String(), rec.Header().Get("Content-Encoding"))
			}
			if got := rec.Header().Get("Vary") == "Accept-Encoding"; got != tc.vary {
				t.Errorf("Vary %q", rec.Header().Get("Vary"))
			}
		})
	}
}

func TestRespWriterStreamsAndAborts(t *testing.T) {
	rw, rec := newTestWriter(true)
	rw.Header().Set("Content-Type", "text/html")
	rw.Write([]byte("first chunk, "))
	rw.Flush()
	// What was flushed decodes to the first chunk, before the stream ends.
	zr, err := gzip.NewReader(bytes.NewReader(rec.Body.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64)
	n, _ := io.ReadAtLeast(zr, buf, len("first chunk, "))
	if string(buf[:n]) != "first chunk, " || !rec.Flushed {
		t.Fatalf("after Flush the client has %q (flushed %v)", buf[:n], rec.Flushed)
	}
	rw.Write([]byte("and a second that breaks off"))
	rw.finish(false)
	if _, err := ungzip(t, rec.Body.Bytes()); err == nil {
		t.Error("an aborted response decodes as complete")
	}
}

func TestRespWriterReadFrom(t *testing.T) {
	page := strings.Repeat("<b>x</b>", 5000)
	rw, rec := newTestWriter(true)
	rw.Header().Set("Content-Type", "text/html")
	n, err := rw.ReadFrom(io.LimitReader(strings.NewReader(page+"not this"), int64(len(page))))
	rw.finish(true)
	if got, _ := ungzip(t, rec.Body.Bytes()); err != nil || n != int64(len(page)) || got != page {
		t.Fatalf("ReadFrom %d, %v; client got %d bytes", n, err, len(got))
	}
	rw, rec = newTestWriter(false)
	rw.Header().Set("Content-Type", "text/html")
	n, err = rw.ReadFrom(io.LimitReader(strings.NewReader(page+"not this"), int64(len(page))))
	if err != nil || n != int64(len(page)) || rec.Body.String() != page || rw.bytes != n {
		t.Fatalf("plain ReadFrom %d, %v; client got %d bytes, counted %d", n, err, rec.Body.Len(), rw.bytes)
	}
}

func TestRespWriterInformational(t *testing.T) {
	rw, rec := newTestWriter(false)
	rw.WriteHeader(http.StatusEarlyHints) // passed on, not the final status
	rw.WriteHeader(http.StatusTeapot)
	rw.WriteHeader(http.StatusOK) // superfluous: ignored
	if rw.status != http.StatusTeapot || rec.Header().Get("X-Request-Id") != "req-1" {
		t.Errorf("status %d, header %v", rw.status, rec.Header())
	}
}

func TestRespWriterWholeBody(t *testing.T) {
	page := []byte(strings.Repeat("<i>cached</i>", 100))
	for _, tc := range []struct {
		name  string
		write func(rw *respWriter)
	}{
		{"one write", func(rw *respWriter) { rw.Write(page) }},
		{"two writes", func(rw *respWriter) { rw.Write(page[:10]); rw.Write(page[10:]) }},
		{"flush first", func(rw *respWriter) { rw.Flush(); rw.Write(page) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rw, rec := newTestWriter(true)
			rw.immutable = true
			rw.Header().Set("Content-Type", "text/html")
			rw.Header().Set("Content-Length", strconv.Itoa(len(page)))
			rw.WriteHeader(200)
			tc.write(rw)
			rw.finish(true)
			if got, err := ungzip(t, rec.Body.Bytes()); err != nil || got != string(page) {
				t.Fatalf("client got %d bytes, %v", len(got), err)
			}
			if cl := rec.Header().Get("Content-Length"); tc.name == "one write" && cl != strconv.Itoa(rec.Body.Len()) {
				t.Errorf("Content-Length %q for %d bytes", cl, rec.Body.Len())
			}
		})
	}
	rw, rec := newTestWriter(true)
	rw.immutable = true
	rw.Header().Set("Content-Type", "text/html")
	rw.Header().Set("Content-Length", "100")
	rw.WriteHeader(200)
	rw.finish(true) // the body never came
	if got, err := ungzip(t, rec.Body.Bytes()); err != nil || got != "" || rec.Code != 200 {
		t.Errorf("no body: %d, %q, %v", rec.Code, got, err)
	}
}

// decodeAs decodes b, encoded with c, with the codec libraries' decoders.
func decodeAs(t *testing.T, c compress.Coding, b []byte) string {
	t.Helper()
	var r io.Reader
	switch c {
	case compress.Gzip:
		zr, err := gzip.NewReader(bytes.NewReader(b))
		if err != nil {
			t.Fatalf("not gzip: %v", err)
		}
		r = zr
	case compress.Zstd:
		zr, err := zstd.NewReader(bytes.NewReader(b))
		if err != nil {
			t.Fatalf("not zstd: %v", err)
		}
		defer zr.Close()
		r = zr
	case compress.Brotli:
		r = brotli.NewReader(bytes.NewReader(b))
	}
	buf := make([]byte, 64<<10)
	n, _ := io.ReadAtLeast(r, buf, 1)
	for {
		m, err := r.Read(buf[n:])
		n += m
		if err != nil || m == 0 {
			break
		}
	}
	return string(buf[:n])
}

func TestRespWriterCodings(t *testing.T) {
	page := strings.Repeat("<p>hello</p>", 100)
	for _, c := range compress.DefaultCodings {
		t.Run(c.String(), func(t *testing.T) {
			// A stream: each flushed piece reaches the client decodable.
			rw, rec := newCodingWriter(c)
			rw.Header().Set("Content-Type", "text/html")
			rw.Write([]byte("first chunk, "))
			rw.Flush()
			if got := decodeAs(t, c, rec.Body.Bytes()); got != "first chunk, " {
				t.Fatalf("after Flush the client has %q", got)
			}
			rw.Write([]byte(page))
			rw.finish(true)
			if got := decodeAs(t, c, rec.Body.Bytes()); got != "first chunk, "+page ||
				rec.Header().Get("Content-Encoding") != c.String() || rec.Header().Get("Vary") != "Accept-Encoding" {
				t.Fatalf("stream: %d bytes, headers %v", len(got), rec.Header())
			}

			// A cache hit: the whole body, compressed once per coding and
			// sent with its length.
			body := []byte(page)
			var first []byte
			for range 2 {
				rw, rec := newCodingWriter(c)
				rw.immutable = true
				rw.Header().Set("Content-Type", "text/html")
				rw.Header().Set("Content-Length", strconv.Itoa(len(body)))
				rw.WriteHeader(200)
				rw.Write(body)
				rw.finish(true)
				if got := decodeAs(t, c, rec.Body.Bytes()); got != page || rec.Header().Get("Content-Encoding") != c.String() ||
					rec.Header().Get("Content-Length") != strconv.Itoa(rec.Body.Len()) {
					t.Fatalf("cache hit: %d bytes, headers %v", len(got), rec.Header())
				}
				if first == nil {
					first = rec.Body.Bytes()
				} else if !bytes.Equal(first, rec.Body.Bytes()) {
					t.Error("two hits of one entry sent different bytes")
				}
			}
		})
	}
}
