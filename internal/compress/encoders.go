package compress

import (
	"bytes"
	"compress/gzip"
	"io"
	"slices"

	"github.com/andybalholm/brotli"
	"github.com/klauspost/compress/zstd"
)

// Encoder is a streaming encoder of one coding: what *gzip.Writer,
// *zstd.Encoder and *brotli.Writer have in common. Flush sends what was
// written so far as a complete block, so that a streamed response reaches
// the client in pieces.
type Encoder interface {
	io.Writer
	Flush() error
	Close() error
	Reset(io.Writer)
}

// Defaults of the levels, chosen for dynamic content: each costs about the
// same CPU per byte (bench/results/compression.txt).
const (
	DefaultGzipLevel   = 5
	DefaultZstdLevel   = 3
	DefaultBrotliLevel = 4
)

// The zstd and brotli windows, with the encoder's tables what each
// stream's memory is: 512 KiB and 256 KiB lose nothing measurable on web
// responses (bench/compression.sh) and are well under the 8 MiB that
// RFC 9659 lets a client refuse beyond.
const (
	zstdWindow   = 512 << 10
	brotliLGWin  = 18
	zstdMaxLevel = 22
)

// streamCost is the heap an encoder of each coding holds while it
// streams, measured at the default levels (TestStreamCost checks it);
// higher levels take more.
var streamCost = [numCodings]int64{Gzip: 800 << 10, Zstd: 2200 << 10, Brotli: 6600 << 10}

// StreamCost is what a stream of c counts against Config.MaxMemory.
func StreamCost(c Coding) int64 { return streamCost[c] }

// encoderMakers returns the constructors of c's encoders, levels checked.
func encoderMakers(c Config) [numCodings]func() Encoder {
	gl := c.Level
	if gl < gzip.BestSpeed || gl > gzip.BestCompression {
		gl = DefaultGzipLevel
	}
	zl := c.ZstdLevel
	if zl < 1 || zl > zstdMaxLevel {
		zl = DefaultZstdLevel
	}
	bl := c.BrotliLevel
	if bl < 1 || bl > brotli.BestCompression {
		bl = DefaultBrotliLevel
	}
	zopts := []zstd.EOption{
		// One goroutine-free encoder per stream: concurrency 1 makes
		// Write synchronous, so a pooled encoder holds no goroutines.
		zstd.WithEncoderConcurrency(1),
		zstd.WithEncoderLevel(zstd.EncoderLevelFromZstd(zl)),
		zstd.WithWindowSize(zstdWindow),
		zstd.WithLowerEncoderMem(true),
	}
	return [numCodings]func() Encoder{
		Gzip: func() Encoder {
			zw, _ := gzip.NewWriterLevel(nil, gl) // the level is checked above
			return zw
		},
		Zstd: func() Encoder {
			zw, err := zstd.NewWriter(nil, zopts...)
			if err != nil {
				panic("compress: zstd options: " + err.Error()) // constant options: a programming error
			}
			return zw
		},
		Brotli: func() Encoder {
			return brotli.NewWriterOptions(nil, brotli.WriterOptions{Quality: bl, LGWin: brotliLGWin})
		},
	}
}

// get takes an idle encoder of c from the pool, or makes one, writing to
// dst.
func (p *Policy) get(c Coding, dst io.Writer) Encoder {
	if e, _ := p.pools[c].Get().(Encoder); e != nil {
		e.Reset(dst)
		return e
	}
	e := p.newEnc[c]()
	e.Reset(dst)
	return e
}

// put returns an encoder to its pool, without a reference to its last
// destination.
func (p *Policy) put(c Coding, e Encoder) {
	e.Reset(io.Discard)
	p.pools[c].Put(e)
}

// Start reserves an encoder of c writing to dst, or returns nil when
// MaxMemory is in use (the response then goes out uncompressed) or c is
// Identity. End releases it.
func (p *Policy) Start(c Coding, dst io.Writer) Encoder {
	if c == Identity || c >= numCodings {
		return nil
	}
	if p.inUse.Add(streamCost[c]) > p.maxMem {
		p.inUse.Add(-streamCost[c])
		return nil
	}
	return p.get(c, dst)
}

// StartOrCheaper is Start for c, the coding negotiated from ae; when
// MaxMemory has no room for c, it tries the offered codings whose streams
// cost less and the client takes (gzip, for a client that wanted brotli
// or zstd), so that a busy server sends gzip rather than nothing. It
// returns the encoder and its coding, or nil and Identity.
func (p *Policy) StartOrCheaper(c Coding, ae []string, dst io.Writer) (Encoder, Coding) {
	if e := p.Start(c, dst); e != nil || c == Identity {
		return e, c
	}
	var buf [numCodings]Coding
	cheaper := buf[:0]
	for _, o := range p.codings {
		if streamCost[o] < streamCost[c] {
			cheaper = append(cheaper, o)
		}
	}
	for len(cheaper) > 0 {
		c2 := Negotiate(ae, cheaper)
		if c2 == Identity {
			break
		}
		if e := p.Start(c2, dst); e != nil {
			return e, c2
		}
		cheaper = slices.DeleteFunc(cheaper, func(o Coding) bool { return o == c2 })
	}
	return nil, Identity
}

// StartAlways is Start without the MaxMemory bound, for a response whose
// head already names the coding.
func (p *Policy) StartAlways(c Coding, dst io.Writer) Encoder {
	p.inUse.Add(streamCost[c])
	return p.get(c, dst)
}

// End releases an encoder of c from Start. finish writes the coding's
// trailer (a complete body); without it the body ends where it is (an
// aborted response). It returns the error of writing the trailer.
func (p *Policy) End(c Coding, e Encoder, finish bool) error {
	var err error
	if finish {
		err = e.Close()
	}
	p.put(c, e)
	p.inUse.Add(-streamCost[c])
	return err
}

// Whole returns the encoding with c of body, a response body that never
// changes (a cache entry's): each is compressed once per coding and kept,
// so that serving it again costs a lookup. The memo holds the body it was
// made from, so that its address cannot be reused for other bytes while
// the entry lives; it is bounded by MemoBytes (original and encoded
// together, per coding) and forgets entries at random to stay within it.
func (p *Policy) Whole(body []byte, c Coding) []byte {
	if len(body) == 0 || c == Identity || c >= numCodings {
		return nil
	}
	k := memoKey{&body[0], len(body), c}
	p.memoMu.RLock()
	e, ok := p.memo[k]
	p.memoMu.RUnlock()
	if ok {
		return e.enc
	}
	var buf bytes.Buffer
	buf.Grow(len(body)/3 + 64)
	enc := p.get(c, &buf)
	enc.Write(body)
	enc.Close()
	p.put(c, enc)
	out := buf.Bytes()
	size := int64(len(body) + len(out))
	if size > p.memoMax/8 {
		return out // too big to keep: it would crowd out the rest
	}
	p.memoMu.Lock()
	if p.memo == nil {
		p.memo = make(map[memoKey]memoEntry)
	}
	for k2, e2 := range p.memo {
		if p.memoSize+size <= p.memoMax {
			break
		}
		delete(p.memo, k2)
		p.memoSize -= int64(len(e2.src) + len(e2.enc))
	}
	if _, dup := p.memo[k]; !dup {
		p.memo[k] = memoEntry{src: body, enc: out}
		p.memoSize += size
	}
	p.memoMu.Unlock()
	return out
}

type memoKey struct {
	p *byte
	n int
	c Coding
}

type memoEntry struct{ src, enc []byte }
