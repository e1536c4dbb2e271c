package compress

import (
	"fmt"

	"github.com/ferry-server/ferry/internal/httpfield"
)

// Coding is a content coding Ferry can send. The zero value is identity
// (the body as it is).
type Coding uint8

// The codings, in no particular order; a Policy's preference is its
// Config.Codings.
const (
	Identity Coding = iota
	Gzip
	Zstd
	Brotli
	numCodings
)

// DefaultCodings is the preference when Config.Codings is empty: zstd
// (fastest for its ratio), then brotli, then gzip (which every client
// takes).
var DefaultCodings = []Coding{Zstd, Brotli, Gzip}

var (
	tokens = [numCodings]string{"identity", "gzip", "zstd", "br"}
	exts   = [numCodings]string{"", ".gz", ".zst", ".br"}
	values = [numCodings][]string{nil, {"gzip"}, {"zstd"}, {"br"}} // shared Content-Encoding values
)

// String is the coding's token in Accept-Encoding and Content-Encoding.
func (c Coding) String() string {
	if c < numCodings {
		return tokens[c]
	}
	return fmt.Sprintf("coding(%d)", uint8(c))
}

// Ext is the file name suffix of a file precompressed with c (".gz",
// ".zst", ".br").
func (c Coding) Ext() string { return exts[c] }

// ParseCoding reads a coding's token ("gzip", "zstd", "br").
func ParseCoding(s string) (Coding, error) {
	for c := Gzip; c < numCodings; c++ {
		if httpfield.EqualFold(s, tokens[c]) {
			return c, nil
		}
	}
	return Identity, fmt.Errorf("unknown coding %q: want zstd, br or gzip", s)
}

// Negotiate chooses the coding of a response from the request's
// Accept-Encoding values ae and the codings offered, in the server's order
// of preference (RFC 9110 §12.5.3):
//
//   - no Accept-Encoding (or an empty one): identity;
//   - each offered coding gets the quality of its own entry ("x-gzip"
//     counts as "gzip"), else that of "*", else it is not acceptable; the
//     highest non-zero quality wins, ties going to the earlier offered;
//   - identity wins over them only when the client names it with a higher
//     quality than theirs;
//   - a malformed weight reads as 1 (httpfield.Weight: "q=1.5",
//     "q=0.0000", "q=abc"), as most servers read it, and a coding named
//     twice keeps its higher quality.
//
// It does not allocate.
func Negotiate(ae []string, offered []Coding) Coding {
	var q [numCodings]int // thousandths; -1: not named
	for i := range q {
		q[i] = -1
	}
	star := -1
	for _, v := range ae {
		for v != "" {
			var item string
			item, v = httpfield.Next(v)
			name, params, _ := httpfield.Cut(item)
			w, _ := httpfield.Weight(params)
			var c Coding
			switch {
			case name == "*":
				star = max(star, w)
				continue
			case httpfield.EqualFold(name, "gzip"), httpfield.EqualFold(name, "x-gzip"):
				c = Gzip
			case httpfield.EqualFold(name, "zstd"):
				c = Zstd
			case httpfield.EqualFold(name, "br"):
				c = Brotli
			case httpfield.EqualFold(name, "identity"):
				c = Identity
			default:
				continue
			}
			q[c] = max(q[c], w)
		}
	}
	best, bestQ := Identity, 0
	for _, c := range offered {
		if c == Identity || c >= numCodings {
			continue
		}
		cq := q[c]
		if cq < 0 {
			cq = star
		}
		if cq > bestQ {
			best, bestQ = c, cq
		}
	}
	if best != Identity && q[Identity] > bestQ {
		return Identity
	}
	return best
}
