package compress

import (
	"bytes"
	"compress/gzip"
	"io"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"github.com/andybalholm/brotli"
	"github.com/klauspost/compress/zstd"
)

// decode decodes b, encoded with c, with the libraries' own decoders.
func decode(t *testing.T, c Coding, b []byte) string {
	t.Helper()
	var r io.Reader
	switch c {
	case Gzip:
		zr, err := gzip.NewReader(bytes.NewReader(b))
		if err != nil {
			t.Fatalf("not gzip: %v", err)
		}
		r = zr
	case Zstd:
		zr, err := zstd.NewReader(bytes.NewReader(b))
		if err != nil {
			t.Fatalf("not zstd: %v", err)
		}
		defer zr.Close()
		r = zr
	case Brotli:
		r = brotli.NewReader(bytes.NewReader(b))
	default:
		t.Fatalf("no decoder for %v", c)
	}
	out, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("decoding %v: %v", c, err)
	}
	return string(out)
}

func TestStreams(t *testing.T) {
	text := strings.Repeat("hello ", 1000)
	for _, c := range DefaultCodings {
		t.Run(c.String(), func(t *testing.T) {
			// Room for two streams of c.
			p := New(Config{Level: 1, MaxMemory: 2*StreamCost(c) + StreamCost(c)/2})
			var a bytes.Buffer
			za, zb := p.Start(c, &a), p.Start(c, io.Discard)
			if za == nil || zb == nil {
				t.Fatal("no stream within the limit")
			}
			if p.Start(c, io.Discard) != nil {
				t.Fatal("a stream past MaxMemory")
			}
			// Flush sends what was written as a decodable prefix: a stream
			// reaches the client in pieces.
			za.Write([]byte("first piece\n"))
			if err := za.Flush(); err != nil {
				t.Fatal(err)
			}
			if got := decodePrefix(t, c, a.Bytes()); got != "first piece\n" {
				t.Fatalf("after Flush the client can read %q", got)
			}
			za.Write([]byte(text))
			if err := p.End(c, za, true); err != nil {
				t.Fatal(err)
			}
			p.End(c, zb, false)
			if got := decode(t, c, a.Bytes()); got != "first piece\n"+text {
				t.Fatalf("round trip: %d bytes", len(got))
			}
			zc := p.Start(c, io.Discard)
			if zc == nil {
				t.Fatal("ended streams were not released")
			}
			p.End(c, zc, false)
			if p.inUse.Load() != 0 {
				t.Errorf("%d bytes still counted after every stream ended", p.inUse.Load())
			}
		})
	}
	if New(Config{}).Start(Identity, io.Discard) != nil {
		t.Error("an encoder for identity")
	}
}

func TestStartOrCheaper(t *testing.T) {
	// Room for one brotli stream and then one gzip stream.
	p := New(Config{MaxMemory: StreamCost(Brotli) + StreamCost(Gzip)})
	ae := []string{"br, gzip;q=0.5"}
	e1, c1 := p.StartOrCheaper(Brotli, ae, io.Discard)
	if e1 == nil || c1 != Brotli {
		t.Fatalf("first: %v", c1)
	}
	e2, c2 := p.StartOrCheaper(Brotli, ae, io.Discard)
	if e2 == nil || c2 != Gzip {
		t.Fatalf("no room for brotli: got %v, want gzip", c2)
	}
	if e3, c3 := p.StartOrCheaper(Brotli, ae, io.Discard); e3 != nil || c3 != Identity {
		t.Fatalf("no room at all: got %v", c3)
	}
	p.End(c2, e2, false)
	if e4, c4 := p.StartOrCheaper(Brotli, []string{"br"}, io.Discard); e4 != nil || c4 != Identity {
		t.Fatalf("a client that refuses gzip got %v", c4) // only gzip fits, and the client does not take it
	}
	p.End(c1, e1, false)
	if p.inUse.Load() != 0 {
		t.Errorf("%d bytes still counted", p.inUse.Load())
	}
}

// TestStreamCost checks that StreamCost is near what an encoder at the
// default level holds while it streams, so that MaxMemory means what it
// says.
func TestStreamCost(t *testing.T) {
	if testing.Short() {
		t.Skip("measures the heap")
	}
	n := 10
	if raceEnabled {
		n = 3 // the race detector slows the codecs many times
	}
	body := htmlPage(2 << 20) // larger than the windows: the most a stream holds
	for _, c := range DefaultCodings {
		p := New(Config{MaxMemory: 1 << 40})
		var m0, m1 runtime.MemStats
		runtime.GC()
		runtime.GC() // the last round's pooled encoders, twice: sync.Pool's victim cache
		runtime.ReadMemStats(&m0)
		es := make([]Encoder, n)
		for i := range es {
			es[i] = p.Start(c, io.Discard)
			es[i].Write(body)
			es[i].Flush()
		}
		runtime.GC()
		runtime.ReadMemStats(&m1)
		per := (int64(m1.HeapInuse) - int64(m0.HeapInuse)) / int64(n)
		t.Logf("%v: %d KiB per stream, counted %d KiB", c, per>>10, StreamCost(c)>>10)
		if per > StreamCost(c)*3/2 || per < StreamCost(c)/3 {
			t.Errorf("%v: a stream holds %d KiB, StreamCost says %d KiB", c, per>>10, StreamCost(c)>>10)
		}
		for _, e := range es {
			p.End(c, e, false)
		}
	}
}

// decodePrefix reads what a decoder gives from an unfinished stream.
func decodePrefix(t *testing.T, c Coding, b []byte) string {
	t.Helper()
	var r io.Reader
	switch c {
	case Gzip:
		zr, err := gzip.NewReader(bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		r = zr
	case Zstd:
		zr, err := zstd.NewReader(bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		defer zr.Close()
		r = zr
	case Brotli:
		r = brotli.NewReader(bytes.NewReader(b))
	}
	buf := make([]byte, 100)
	n, _ := io.ReadAtLeast(r, buf, 1)
	return string(buf[:n])
}

func TestLevels(t *testing.T) {
	// Out-of-range levels fall back to the defaults rather than failing.
	p := New(Config{Level: 42, ZstdLevel: -3, BrotliLevel: 99})
	body := []byte(strings.Repeat("levels ", 300))
	for _, c := range DefaultCodings {
		if got := decode(t, c, p.Whole(body, c)); got != string(body) {
			t.Errorf("%v: round trip failed", c)
		}
	}
	// Higher levels make smaller output on compressible text.
	text := []byte(strings.Repeat("<li class=\"item\">"+strings.Repeat("x", 7)+"</li>\n", 2000))
	for i := range text {
		if text[i] == 'x' {
			text[i] = byte('a' + i*7%26)
		}
	}
	fast, best := New(Config{ZstdLevel: 1, BrotliLevel: 1}), New(Config{ZstdLevel: 19, BrotliLevel: 11})
	for _, c := range []Coding{Zstd, Brotli} {
		if f, b := len(fast.Whole(text, c)), len(best.Whole(text, c)); b >= f {
			t.Errorf("%v: level made no difference (%d vs %d bytes)", c, f, b)
		}
	}
}

func TestWhole(t *testing.T) {
	p := New(Config{MemoBytes: 64 << 10})
	body := []byte(strings.Repeat("cached page ", 500))
	encs := map[Coding][]byte{}
	for _, c := range DefaultCodings {
		enc := p.Whole(body, c)
		if got := decode(t, c, enc); got != string(body) {
			t.Fatalf("%v: round trip", c)
		}
		encs[c] = enc
	}
	// One variant per coding, each kept.
	for _, c := range DefaultCodings {
		if again := p.Whole(body, c); &again[0] != &encs[c][0] {
			t.Errorf("%v: the same body was compressed twice", c)
		}
	}
	if bytes.Equal(encs[Gzip], encs[Zstd]) || bytes.Equal(encs[Zstd], encs[Brotli]) {
		t.Error("codings share a variant")
	}
	if n := testing.AllocsPerRun(100, func() { p.Whole(body, Brotli) }); n != 0 {
		t.Errorf("a memo hit allocates %v times", n)
	}
	// Many bodies: the memo stays within its bound.
	for i := range 200 {
		p.Whole([]byte(strings.Repeat(strconv.Itoa(i), 1000)), DefaultCodings[i%3])
	}
	if p.memoSize > 64<<10 {
		t.Errorf("memo holds %d bytes, bound 64 KiB", p.memoSize)
	}
	if p.Whole(nil, Gzip) != nil || p.Whole(body, Identity) != nil {
		t.Error("an empty body or identity has an encoding")
	}
}
