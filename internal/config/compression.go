package config

import (
	"flag"

	"github.com/ferry-server/ferry/internal/compress"
)

// Compression holds the settings of response compression beyond --gzip's:
// which codings are offered and in what order, zstd's and brotli's levels,
// and the bounds on the memory compression takes. It is embedded in Front;
// --gzip=false still turns all compression off, and --gzip-types and
// --gzip-min-size apply to every coding. Its options are registered in
// init below.
type Compression struct {
	// CompressionCodings are the codings offered, in order of preference
	// when the client takes several equally (--compression-codings):
	// zstd, br, gzip. Default: all three, in that order.
	CompressionCodings []string
	// ZstdLevel is the zstd level on the reference library's scale, 1 to
	// 22, mapped to the nearest of the Go encoder's four speeds
	// (--zstd-level). Default 3.
	ZstdLevel int
	// BrotliLevel is the brotli quality, 1 to 11 (--brotli-level).
	// Default 4: near gzip's speed at a better ratio; 11 is for
	// precompressing, far too slow per request.
	BrotliLevel int
	// CompressionMaxMemory bounds the encoder state of the responses being
	// compressed at once (a gzip stream counts 800 KiB, zstd 2.2 MiB,
	// brotli 6.6 MiB); past it a response gets a cheaper coding the
	// client takes, or none (--compression-max-memory). Default 128m.
	CompressionMaxMemory int64
	// CompressionMemoSize bounds the memory of the compressed copies of
	// cache entries, one per coding (--compression-memo-size). Default 16m.
	CompressionMemoSize int64

	// codings are CompressionCodings parsed.
	codings []compress.Coding
}

func init() {
	register(
		frontOpt("compression-codings", "zstd,br,gzip", "content `CODING`s offered, preferred first where the client takes several equally: zstd, br, gzip (repeatable or comma-separated)", func(f *Front) flag.Value { return (*listValue)(&f.CompressionCodings) }),
		frontOpt("zstd-level", "3", "zstd compression `LEVEL`, 1 (fastest) to 22 (smallest), mapped to the encoder's four speeds", func(f *Front) flag.Value { return (*intValue)(&f.ZstdLevel) }),
		frontOpt("brotli-level", "4", "brotli compression `LEVEL`, 1 (fastest) to 11 (smallest; for precompressing, too slow per request)", func(f *Front) flag.Value { return (*intValue)(&f.BrotliLevel) }),
		frontOpt("compression-max-memory", "128m", "encoder memory (`BYTES`) of the responses compressed at once (a gzip stream counts 800k, zstd 2.2m, brotli 6.6m); past it a response gets a cheaper coding the client takes, or none", func(f *Front) flag.Value { return (*bytesValue)(&f.CompressionMaxMemory) }),
		frontOpt("compression-memo-size", "16m", "memory for compressed copies of cache entries, one per coding (`BYTES`)", func(f *Front) flag.Value { return (*bytesValue)(&f.CompressionMemoSize) }),
	)
}

// finishCompression validates the compression settings and parses the
// codings.
func (f *Front) finishCompression(p *problems) {
	c := &f.Compression
	c.codings = nil
	seen := map[compress.Coding]bool{}
	for _, s := range splitList(c.CompressionCodings) {
		coding, err := compress.ParseCoding(s)
		if err != nil {
			p.bad("compression-codings", "%v", err)
			continue
		}
		if !seen[coding] {
			seen[coding] = true
			c.codings = append(c.codings, coding)
		}
	}
	if len(c.codings) == 0 && len(splitList(c.CompressionCodings)) == 0 {
		p.bad("compression-codings", "lists no coding: name at least one of zstd, br, gzip (or turn compression off with --gzip=false)")
	}
	if c.ZstdLevel < 1 || c.ZstdLevel > 22 {
		p.bad("zstd-level", "must be between 1 and 22 (got %d)", c.ZstdLevel)
	}
	if c.BrotliLevel < 1 || c.BrotliLevel > 11 {
		p.bad("brotli-level", "must be between 1 and 11 (got %d)", c.BrotliLevel)
	}
	if c.CompressionMaxMemory < 1<<20 {
		p.bad("compression-max-memory", "must be at least 1m (got %d)", c.CompressionMaxMemory)
	}
	if c.CompressionMemoSize < 0 {
		p.bad("compression-memo-size", "must be 0 or more (got %d)", c.CompressionMemoSize)
	}
}

// CompressionConfig is the compress package's configuration from the
// front's settings.
func (f *Front) CompressionConfig() compress.Config {
	memo := f.CompressionMemoSize
	if memo == 0 {
		memo = 1 // compress.Config reads 0 as its default; 1 keeps nothing
	}
	return compress.Config{
		Codings:     f.codings,
		Level:       f.GzipLevel,
		ZstdLevel:   f.ZstdLevel,
		BrotliLevel: f.BrotliLevel,
		Types:       f.GzipTypes,
		MinSize:     f.GzipMinSize,
		MaxMemory:   f.CompressionMaxMemory,
		MemoBytes:   memo,
	}
}
