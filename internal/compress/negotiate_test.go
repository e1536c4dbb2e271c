package compress

import (
	"regexp"
	"strconv"
	"strings"
	"testing"
)

func TestNegotiate(t *testing.T) {
	all := []Coding{Zstd, Brotli, Gzip}
	gzipOnly := []Coding{Gzip}
	for _, tc := range []struct {
		ae      []string
		offered []Coding
		want    Coding
	}{
		// No or empty header: identity.
		{nil, all, Identity},
		{[]string{""}, all, Identity},
		{[]string{" , ,"}, all, Identity},
		// Equal qualities: the server's preference, zstd first.
		{[]string{"gzip, deflate, br, zstd"}, all, Zstd},
		{[]string{"gzip, deflate, br"}, all, Brotli},
		{[]string{"gzip, br"}, []Coding{Gzip, Brotli}, Gzip},
		{[]string{"br", "gzip"}, all, Brotli},
		{[]string{"GZip"}, all, Gzip},
		{[]string{"x-gzip"}, all, Gzip},
		{[]string{"ZSTD"}, all, Zstd},
		// The client's qualities win over the server's preference.
		{[]string{"zstd;q=0.5, gzip"}, all, Gzip},
		{[]string{"zstd;q=0.5, br;q=0.8, gzip;q=0.1"}, all, Brotli},
		{[]string{" gzip ; q=0.8 , br;q=0.799"}, all, Gzip},
		{[]string{"br;q=0.001"}, all, Brotli},
		// q=0 refuses.
		{[]string{"zstd;q=0, br;q=0, gzip"}, all, Gzip},
		{[]string{"gzip;q=0"}, all, Identity},
		{[]string{"gzip; Q=0.000"}, all, Identity},
		{[]string{"gzip;q=0.", "br;q=0.0"}, all, Identity},
		{[]string{"gzip;q=0.0001"}, all, Gzip}, // malformed (four decimals): 1
		{[]string{"gzip;q=0.0000"}, all, Gzip}, // malformed too, not a refusal
		{[]string{"gzip;q=1.5, br"}, all, Brotli},
		{[]string{`br;x="a,gzip;q=0", gzip;q=0.5`}, all, Brotli}, // the comma is quoted
		// A coding named twice keeps its higher quality.
		{[]string{"gzip;q=0, gzip"}, all, Gzip},
		// "*" stands for every coding not named.
		{[]string{"*"}, all, Zstd},
		{[]string{"*"}, gzipOnly, Gzip},
		{[]string{"*;q=0"}, all, Identity},
		{[]string{"zstd;q=0, *"}, all, Brotli},
		{[]string{"gzip;q=0.5, *;q=0"}, all, Gzip},
		{[]string{"gzip;q=0.5, *;q=0.6"}, all, Zstd},
		{[]string{"gzip;q=0, *"}, gzipOnly, Identity},
		// identity: chosen when the client prefers it, refused or not.
		{[]string{"identity"}, all, Identity},
		{[]string{"identity;q=1, gzip;q=0.5"}, all, Identity},
		{[]string{"identity;q=0.5, gzip"}, all, Gzip},
		{[]string{"identity;q=0, gzip;q=0"}, all, Identity}, // nothing acceptable: identity all the same
		{[]string{"identity;q=0, *"}, all, Zstd},
		// Codings not offered are not chosen.
		{[]string{"zstd, br"}, gzipOnly, Identity},
		{[]string{"deflate, compress"}, all, Identity},
		{[]string{"gzip"}, nil, Identity},
		// Malformed entries.
		{[]string{"gzipx"}, all, Identity},
		{[]string{"gzip;level=1"}, all, Gzip},
		{[]string{"gzip;q=garbage"}, all, Gzip},
		{[]string{"gzip;q=", "br;q=0.5"}, all, Gzip},
		{[]string{"gzip;q=2, br"}, all, Brotli}, // 2 reads as 1: ties go to the preference
		{[]string{"gzip;q=-1"}, all, Gzip},
		{[]string{";q=1, =, ;;;"}, all, Identity},
		{[]string{"zstd;q=0.3;q=0"}, all, Zstd}, // the first q counts
		{[]string{"\tbr\t;\tq\t=\t0\t"}, all, Identity},
	} {
		if got := Negotiate(tc.ae, tc.offered); got != tc.want {
			t.Errorf("Negotiate(%q, %v) = %v, want %v", tc.ae, tc.offered, got, tc.want)
		}
	}
}

func TestNegotiateAllocs(t *testing.T) {
	ae := []string{"gzip, deflate, br;q=0.9, zstd;q=0.8, *;q=0.1"}
	if n := testing.AllocsPerRun(100, func() { Negotiate(ae, DefaultCodings) }); n != 0 {
		t.Errorf("Negotiate allocates %v times", n)
	}
}

func TestParseCoding(t *testing.T) {
	for _, c := range DefaultCodings {
		if got, err := ParseCoding(strings.ToUpper(c.String())); err != nil || got != c {
			t.Errorf("ParseCoding(%q) = %v, %v", c, got, err)
		}
	}
	for _, s := range []string{"identity", "deflate", "", "x-gzip"} {
		if _, err := ParseCoding(s); err == nil {
			t.Errorf("ParseCoding(%q) took it", s)
		}
	}
}

// refQValue is RFC 9110's qvalue.
var refQValue = regexp.MustCompile(`^(?:0(?:\.[0-9]{0,3})?|1(?:\.0{0,3})?)$`)

// refSplit splits s at sep outside quoted strings (an unclosed one runs to
// the end).
func refSplit(s string, sep byte) []string {
	var out []string
	quoted, start := false, 0
	for i := 0; i < len(s); i++ {
		switch {
		case quoted && s[i] == '\\':
			i++
		case s[i] == '"':
			quoted = !quoted
		case !quoted && s[i] == sep:
			out = append(out, s[start:i])
			start = i + 1
		}
	}
	return append(out, s[start:])
}

// negotiateReference is Negotiate written plainly, for the fuzz test.
func negotiateReference(ae []string, offered []Coding) Coding {
	q := map[string]float64{}
	for _, v := range ae {
		for _, item := range refSplit(v, ',') {
			parts := refSplit(item, ';')
			name := strings.ToLower(ows(parts[0]))
			if name == "x-gzip" {
				name = "gzip"
			}
			if name == "" {
				continue
			}
			quality := 1.0
			for _, p := range parts[1:] {
				k, val, _ := strings.Cut(p, "=")
				if strings.ToLower(ows(k)) != "q" { // "q" alone is a malformed q
					continue
				}
				val = ows(val)
				if refQValue.MatchString(val) { // else malformed: 1
					quality, _ = strconv.ParseFloat(strings.TrimSuffix(val, "."), 64)
				}
				break
			}
			if old, ok := q[name]; !ok || quality > old {
				q[name] = quality
			}
		}
	}
	best, bestQ := Identity, 0.0
	for _, c := range offered {
		cq, ok := q[c.String()]
		if !ok {
			cq, ok = q["*"]
		}
		if ok && cq > bestQ && !nearlySame(cq, bestQ) {
			best, bestQ = c, cq
		}
	}
	if iq, ok := q["identity"]; ok && best != Identity && iq > bestQ && !nearlySame(iq, bestQ) {
		return Identity
	}
	return best
}

// nearlySame: Negotiate reads qualities to three decimals.
func nearlySame(a, b float64) bool { return int(a*1000+1e-9) == int(b*1000+1e-9) && b != 0 }

func FuzzNegotiate(f *testing.F) {
	for _, s := range []string{"gzip", "gzip;q=0", "*;q=0, gzip;q=0.5", "br, gzip;q=0.000", "x-gzip; q=1.0",
		"identity;q=1, *;q=0", "gzip;q=0;level=9", "gzip;Q=0.", "\tgzip\t;\tq\t=\t0\t", ",,,",
		"zstd;q=0.5, br;q=0.8", "identity;q=0.9, zstd;q=0.3", "*;q=0.2, br;q=0.1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ae := strings.Split(s, "\n")
		if got, want := Negotiate(ae, DefaultCodings), negotiateReference(ae, DefaultCodings); got != want {
			t.Fatalf("Negotiate(%q) = %v, reference %v", ae, got, want)
		}
	})
}

func BenchmarkNegotiate(b *testing.B) {
	ae := []string{"gzip, deflate, br;q=0.9, zstd;q=0.8, *;q=0.1"}
	for b.Loop() {
		Negotiate(ae, DefaultCodings)
	}
}

// ows trims RFC 9110's optional whitespace: spaces and tabs only.
func ows(s string) string { return strings.Trim(s, " \t") }
