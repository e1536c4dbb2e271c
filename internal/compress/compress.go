// Package compress owns response compression for the HTTP front: which
// responses may be compressed (Policy), what a client accepts
// (AcceptsGzip), the header changes a compressed response needs, and pooled
// gzip writers. It does not write responses itself; internal/server does.
//
// Only gzip is offered. Every client that sends Accept-Encoding speaks it,
// the standard library's compress/gzip is well kept and streams (Flush), and
// each other coding would add a dependency and per-stream encoder memory for
// a few percent of size.
package compress

import (
	"bytes"
	"compress/gzip"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
)

// Config says what to compress.
type Config struct {
	// Level is the gzip level, 1 to 9. Default (0): 5.
	Level int
	// Types are the media types compressed, "type/subtype" or "type/*",
	// lower case.
	Types []string
	// MinSize: responses with a Content-Length below it are not compressed.
	MinSize int64
	// MaxStreams bounds the responses being compressed at once (each gzip
	// stream holds about 800 KiB of encoder state); past it responses go
	// out uncompressed. Default (0): 128.
	MaxStreams int
	// MemoBytes bounds the memory of Whole's compressed copies. Default
	// (0): 16 MiB.
	MemoBytes int64
}

// Policy decides which responses are compressed. It is safe for concurrent
// use.
type Policy struct {
	level    int
	exact    map[string]bool
	prefixes []string // "text/" for "text/*"
	minSize  int64
	max      int64
	streams  atomic.Int64
	pool     sync.Pool // *gzip.Writer at level

	memoMax  int64
	memoMu   sync.RWMutex
	memo     map[memoKey]memoEntry
	memoSize int64
}

// New returns the policy for c.
func New(c Config) *Policy {
	p := &Policy{level: c.Level, exact: map[string]bool{}, minSize: c.MinSize, max: int64(c.MaxStreams), memoMax: c.MemoBytes}
	if p.level < gzip.BestSpeed || p.level > gzip.BestCompression {
		p.level = 5
	}
	if p.max <= 0 {
		p.max = 128
	}
	if p.memoMax <= 0 {
		p.memoMax = 16 << 20
	}
	for _, t := range c.Types {
		t = strings.ToLower(t)
		if prefix, ok := strings.CutSuffix(t, "/*"); ok {
			p.prefixes = append(p.prefixes, prefix+"/")
		} else {
			p.exact[t] = true
		}
	}
	return p
}

// Compressible reports whether a response with this status and header may
// be compressed: a body is allowed (not 1xx, 204, 304), it is not a part
// (206, Content-Range), the app has not encoded it (Content-Encoding) nor
// forbidden changes (Cache-Control: no-transform), its type is listed, and
// it is not known to be smaller than the minimum. It neither allocates nor
// changes h.
func (p *Policy) Compressible(status int, h http.Header) bool {
	if p == nil || status < 200 || status == http.StatusNoContent || status == http.StatusPartialContent ||
		status == http.StatusNotModified {
		return false
	}
	if ce := h["Content-Encoding"]; len(ce) > 0 && !(len(ce) == 1 && strings.EqualFold(ce[0], "identity")) {
		return false
	}
	if len(h["Content-Range"]) > 0 {
		return false
	}
	for _, v := range h["Cache-Control"] {
		if hasToken(v, "no-transform") {
			return false
		}
	}
	ct := h["Content-Type"]
	if len(ct) == 0 || !p.typeListed(ct[0]) {
		return false
	}
	if cl := h["Content-Length"]; len(cl) == 1 && p.minSize > 0 {
		if n, err := strconv.ParseInt(cl[0], 10, 64); err == nil && n < p.minSize {
			return false
		}
	}
	return true
}

// typeListed reports whether the media type of a Content-Type value is one
// of the policy's.
func (p *Policy) typeListed(ct string) bool {
	if i := strings.IndexByte(ct, ';'); i >= 0 {
		ct = ct[:i]
	}
	ct = strings.TrimSpace(ct)
	if isLower(ct) {
		if p.exact[ct] {
			return true
		}
	} else {
		for t := range p.exact {
			if strings.EqualFold(t, ct) {
				return true
			}
		}
	}
	for _, prefix := range p.prefixes {
		if len(ct) > len(prefix) && strings.EqualFold(ct[:len(prefix)], prefix) {
			return true
		}
	}
	return false
}

func isLower(s string) bool {
	for i := 0; i < len(s); i++ {
		if 'A' <= s[i] && s[i] <= 'Z' {
			return false
		}
	}
	return true
}

// TypeListed reports whether a media type (as from mime.TypeByExtension)
// is one the policy compresses.
func (p *Policy) TypeListed(ct string) bool { return p != nil && p.typeListed(ct) }

// varyAE is the Vary value of a response that had none. Shared: header
// values are never changed in place.
var varyAE = []string{"Accept-Encoding"}

// AddVary says in h that the response depends on Accept-Encoding, unless it
// says so already (or says "*"). It allocates only when h has a Vary of
// other fields.
func AddVary(h http.Header) {
	vs := h["Vary"]
	if len(vs) == 0 {
		h["Vary"] = varyAE
		return
	}
	for _, v := range vs {
		if hasToken(v, "accept-encoding") || hasToken(v, "*") {
			return
		}
	}
	h["Vary"] = append(vs[:len(vs):len(vs)], "Accept-Encoding")
}

// Prepare changes h for a gzip-encoded body: Content-Encoding set, the
// length (unknown now) and Accept-Ranges (ranges of the plain body would not
// apply) removed, a strong ETag made weak (the bytes differ from the plain
// representation's), and Vary added.
func Prepare(h http.Header) {
	h["Content-Encoding"] = gzipValue
	delete(h, "Content-Length")
	delete(h, "Accept-Ranges")
	if et := h["Etag"]; len(et) == 1 && strings.HasPrefix(et[0], `"`) {
		h["Etag"] = []string{"W/" + et[0]}
	}
	AddVary(h)
}

var gzipValue = []string{"gzip"}

// hasToken reports whether the comma-separated list v has token (ASCII
// case-insensitive), ignoring parameters after ';' or '='.
func hasToken(v, token string) bool {
	for v != "" {
		var item string
		item, v, _ = strings.Cut(v, ",")
		if i := strings.IndexAny(item, ";="); i >= 0 {
			item = item[:i]
		}
		if strings.EqualFold(strings.TrimSpace(item), token) {
			return true
		}
	}
	return false
}

// AcceptsGzip reports whether Accept-Encoding values ae accept gzip: a
// "gzip" (or "x-gzip") coding with a non-zero quality, or, when neither is
// named, "*" with a non-zero quality (RFC 9110 §12.5.3). No header: no.
func AcceptsGzip(ae []string) bool {
	named, star := 0, 0 // 0: not seen; 1: accepted; -1: refused (q=0)
	for _, v := range ae {
		for v != "" {
			var item string
			item, v, _ = strings.Cut(v, ",")
			coding, params, _ := strings.Cut(item, ";")
			coding = strings.TrimSpace(coding)
			var isNamed bool
			switch {
			case strings.EqualFold(coding, "gzip"), strings.EqualFold(coding, "x-gzip"):
				isNamed = true
			case coding == "*":
			default:
				continue
			}
			verdict := 1
			if qZero(params) {
				verdict = -1
			}
			if isNamed {
				if named != 1 {
					named = verdict
				}
			} else if star != 1 {
				star = verdict
			}
		}
	}
	if named != 0 {
		return named == 1
	}
	return star == 1
}

// qZero reports whether parameters (";q=0.000") give a quality of zero.
// A malformed quality counts as not zero, as most servers read it.
func qZero(params string) bool {
	for params != "" {
		var p string
		p, params, _ = strings.Cut(params, ";")
		name, val, ok := strings.Cut(p, "=")
		if !ok || !strings.EqualFold(strings.TrimSpace(name), "q") {
			continue
		}
		val = strings.TrimSpace(val)
		if val == "" || val[0] != '0' {
			return false
		}
		val = val[1:]
		if val == "" {
			return true
		}
		if val[0] != '.' {
			return false
		}
		for i := 1; i < len(val); i++ {
			if val[i] != '0' {
				return false
			}
		}
		return true
	}
	return false
}

// Start reserves a gzip stream writing to dst, or returns nil when
// MaxStreams are in use (the response then goes out uncompressed). End
// releases it.
func (p *Policy) Start(dst io.Writer) *gzip.Writer {
	if p.streams.Add(1) > p.max {
		p.streams.Add(-1)
		return nil
	}
	if zw, _ := p.pool.Get().(*gzip.Writer); zw != nil {
		zw.Reset(dst)
		return zw
	}
	zw, _ := gzip.NewWriterLevel(dst, p.level) // the level was checked in New
	return zw
}

// StartAlways is Start without the MaxStreams bound, for a response whose
// head already says gzip.
func (p *Policy) StartAlways(dst io.Writer) *gzip.Writer {
	p.streams.Add(1)
	if zw, _ := p.pool.Get().(*gzip.Writer); zw != nil {
		zw.Reset(dst)
		return zw
	}
	zw, _ := gzip.NewWriterLevel(dst, p.level)
	return zw
}

// End releases a stream from Start. finish writes the gzip trailer (a
// complete body); without it the body ends where it is (an aborted
// response). It returns the error of writing the trailer.
func (p *Policy) End(zw *gzip.Writer, finish bool) error {
	var err error
	if finish {
		err = zw.Close()
	}
	zw.Reset(io.Discard) // drop the reference to the destination
	p.pool.Put(zw)
	p.streams.Add(-1)
	return err
}

// Whole returns the gzip encoding of body, a response body that never
// changes (a cache entry's): each is compressed once and kept, so that
// serving it again costs a lookup. The memo holds the body it was made
// from, so that its address cannot be reused for other bytes while the
// entry lives; it is bounded by MemoBytes (original and encoded together)
// and forgets entries at random to stay within it.
func (p *Policy) Whole(body []byte) []byte {
	if len(body) == 0 {
		return nil
	}
	k := memoKey{&body[0], len(body)}
	p.memoMu.RLock()
	e, ok := p.memo[k]
	p.memoMu.RUnlock()
	if ok {
		return e.gz
	}
	var buf bytes.Buffer
	buf.Grow(len(body)/3 + 64)
	zw, _ := p.pool.Get().(*gzip.Writer)
	if zw == nil {
		zw, _ = gzip.NewWriterLevel(&buf, p.level)
	} else {
		zw.Reset(&buf)
	}
	zw.Write(body)
	zw.Close()
	zw.Reset(io.Discard)
	p.pool.Put(zw)
	gz := buf.Bytes()
	size := int64(len(body) + len(gz))
	if size > p.memoMax/8 {
		return gz // too big to keep: it would crowd out the rest
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
		p.memoSize -= int64(len(e2.src) + len(e2.gz))
	}
	if _, dup := p.memo[k]; !dup {
		p.memo[k] = memoEntry{src: body, gz: gz}
		p.memoSize += size
	}
	p.memoMu.Unlock()
	return gz
}

type memoKey struct {
	p *byte
	n int
}

type memoEntry struct{ src, gz []byte }
