package compress

import (
	"fmt"
	"strings"
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
		if strings.EqualFold(s, tokens[c]) {
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
//   - a malformed quality reads as 1, as most servers read it, and a coding
//     named twice keeps its higher quality.
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
			item, v, _ = strings.Cut(v, ",")
			name, params, _ := strings.Cut(item, ";")
			name = strings.TrimSpace(name)
			var c Coding
			switch {
			case name == "*":
				star = max(star, quality(params))
				continue
			case strings.EqualFold(name, "gzip"), strings.EqualFold(name, "x-gzip"):
				c = Gzip
			case strings.EqualFold(name, "zstd"):
				c = Zstd
			case strings.EqualFold(name, "br"):
				c = Brotli
			case strings.EqualFold(name, "identity"):
				c = Identity
			default:
				continue
			}
			q[c] = max(q[c], quality(params))
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

// quality reads the q parameter of an Accept-Encoding entry's parameters
// (";q=0.5") in thousandths: 1000 when there is none or it is malformed.
// A value with non-zero digits past the third decimal is at least 1, so
// that only a true zero refuses.
func quality(params string) int {
	for params != "" {
		var p string
		p, params, _ = strings.Cut(params, ";")
		name, val, ok := strings.Cut(p, "=")
		if !ok || !strings.EqualFold(strings.TrimSpace(name), "q") {
			continue
		}
		return parseQ(strings.TrimSpace(val))
	}
	return 1000
}

func parseQ(s string) int {
	if s == "" || (s[0] != '0' && s[0] != '1') {
		return 1000
	}
	whole := int(s[0] - '0')
	s = s[1:]
	if s == "" {
		return whole * 1000
	}
	if s[0] != '.' {
		return 1000
	}
	frac, rest := 0, false
	for i := 1; i < len(s); i++ {
		d := s[i]
		if d < '0' || d > '9' {
			return 1000
		}
		switch {
		case i <= 3:
			frac = frac*10 + int(d-'0')
		case d != '0':
			rest = true
		}
	}
	for i := len(s) - 1; i < 3; i++ {
		frac *= 10 // "0.5" is 500
	}
	if whole == 1 {
		return 1000 // "1.5" is malformed; read as 1 too
	}
	if frac == 0 && rest {
		return 1
	}
	return frac
}
