// Package compress owns response compression for the HTTP front: which
// responses may be compressed (Policy), which coding a client gets
// (Negotiate), the header changes a compressed response needs, pooled
// encoders (encoders.go) and the memo of cache entries' compressed forms.
// It does not write responses itself; internal/server does.
//
// zstd, brotli and gzip are offered, zstd first: at its default level it
// compresses about as well as brotli's and gzip's dynamic-content levels at
// a fraction of their CPU (bench/results/compression.txt). gzip is the
// standard library's; zstd is github.com/klauspost/compress/zstd and brotli
// github.com/andybalholm/brotli, both pure Go (see the README's
// dependencies).
package compress

import (
	"github.com/ferry-server/ferry/internal/httpfield"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
)

// Config says what to compress.
type Config struct {
	// Codings are the codings offered, in order of preference at equal
	// quality. Default (empty): DefaultCodings.
	Codings []Coding
	// Level is the gzip level, 1 to 9. Default (0): 5.
	Level int
	// ZstdLevel is the zstd level on the C library's scale, 1 to 22,
	// mapped to the nearest of the Go encoder's four. Default (0): 3.
	ZstdLevel int
	// BrotliLevel is the brotli quality, 1 to 11. Default (0): 4.
	BrotliLevel int
	// Types are the media types compressed, "type/subtype" or "type/*",
	// lower case.
	Types []string
	// MinSize: responses with a Content-Length below it are not compressed.
	MinSize int64
	// MaxMemory bounds the encoder state of the responses being compressed
	// at once, each stream counted at its coding's StreamCost; past it
	// responses go out uncompressed. Default (0): 128 MiB.
	MaxMemory int64
	// MemoBytes bounds the memory of Whole's compressed copies. Default
	// (0): 16 MiB.
	MemoBytes int64
}

// Policy decides which responses are compressed. It is safe for concurrent
// use.
type Policy struct {
	codings  []Coding
	exact    map[string]bool
	prefixes []string // "text/" for "text/*"
	minSize  int64
	maxMem   int64
	inUse    atomic.Int64          // StreamCost of the streams started, not ended
	pools    [numCodings]sync.Pool // idle Encoders, per coding
	newEnc   [numCodings]func() Encoder

	memoMax  int64
	memoMu   sync.RWMutex
	memo     map[memoKey]memoEntry
	memoSize int64
}

// New returns the policy for c.
func New(c Config) *Policy {
	p := &Policy{codings: c.Codings, exact: map[string]bool{}, minSize: c.MinSize, maxMem: c.MaxMemory, memoMax: c.MemoBytes}
	if len(p.codings) == 0 {
		p.codings = DefaultCodings
	}
	p.newEnc = encoderMakers(c)
	if p.maxMem <= 0 {
		p.maxMem = 128 << 20
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
	if ce := h["Content-Encoding"]; len(ce) > 0 && !(len(ce) == 1 && httpfield.EqualFold(httpfield.TrimOWS(ce[0]), "identity")) {
		return false
	}
	if len(h["Content-Range"]) > 0 {
		return false
	}
	if httpfield.HasToken(h["Cache-Control"], "no-transform") {
		return false
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
	ct, _, _ = httpfield.Cut(ct) // the media type, without its parameters
	if isLower(ct) {
		if p.exact[ct] {
			return true
		}
	} else {
		for t := range p.exact {
			if httpfield.EqualFold(t, ct) {
				return true
			}
		}
	}
	for _, prefix := range p.prefixes {
		if len(ct) > len(prefix) && httpfield.EqualFold(ct[:len(prefix)], prefix) {
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
	if httpfield.HasToken(vs, "accept-encoding") || httpfield.HasToken(vs, "*") {
		return
	}
	h["Vary"] = append(vs[:len(vs):len(vs)], "Accept-Encoding")
}

// Codings are the codings the policy offers, in its order of preference.
// The slice is the policy's: do not change it.
func (p *Policy) Codings() []Coding {
	if p == nil {
		return nil
	}
	return p.codings
}

// Negotiate is Negotiate over the policy's codings; Identity for a nil
// policy.
func (p *Policy) Negotiate(ae []string) Coding {
	if p == nil || len(ae) == 0 {
		return Identity
	}
	return Negotiate(ae, p.codings)
}

// Prepare changes h for a body encoded with c: Content-Encoding set, the
// length (unknown now) and Accept-Ranges (ranges of the plain body would not
// apply) removed, a strong ETag made weak (the bytes differ from the plain
// representation's), and Vary added.
func Prepare(h http.Header, c Coding) {
	h["Content-Encoding"] = values[c]
	delete(h, "Content-Length")
	delete(h, "Accept-Ranges")
	if et := h["Etag"]; len(et) == 1 && strings.HasPrefix(et[0], `"`) {
		h["Etag"] = []string{"W/" + et[0]}
	}
	AddVary(h)
}

// EncodingValue is the Content-Encoding header value for c, shared: never
// change it.
func EncodingValue(c Coding) []string { return values[c] }
