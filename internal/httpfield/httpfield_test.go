package httpfield

import (
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

func elements(vs ...string) []string {
	var out []string
	Elements(vs, func(e string) bool { out = append(out, e); return true })
	return out
}

func TestElements(t *testing.T) {
	for _, tc := range []struct {
		in   []string
		want []string
	}{
		{nil, nil},
		{[]string{""}, nil},
		{[]string{",, ,\t,"}, nil},
		{[]string{"a"}, []string{"a"}},
		{[]string{" a , b\t,c "}, []string{"a", "b", "c"}},
		{[]string{"a", "b, c"}, []string{"a", "b", "c"}},
		{[]string{`private="x, y", max-age=1`}, []string{`private="x, y"`, "max-age=1"}},
		{[]string{`a="x\", y", b`}, []string{`a="x\", y"`, "b"}},
		{[]string{`a="open, b`}, []string{`a="open, b`}},
		{[]string{"gzip;q=0.5, br"}, []string{"gzip;q=0.5", "br"}},
	} {
		if got := elements(tc.in...); !slices.Equal(got, tc.want) {
			t.Errorf("Elements(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
	// yield false stops.
	n := 0
	Elements([]string{"a, b, c"}, func(string) bool { n++; return false })
	if n != 1 {
		t.Errorf("Elements went on after false: %d calls", n)
	}
}

func TestLast(t *testing.T) {
	for _, tc := range []struct {
		in   []string
		want string
	}{
		{nil, ""},
		{[]string{""}, ""},
		{[]string{"https"}, "https"},
		{[]string{"https, http"}, "http"},
		{[]string{"http", " https\t"}, "https"},
		{[]string{"https", ""}, ""}, // the nearest hop wrote nothing: not the client's word
		{[]string{"https, "}, ""},   // nor after a trailing comma
		{[]string{"a, \t b \t"}, "b"},
		{[]string{`https, "`, "http"}, "http"},
		{[]string{`https, ", http`}, "http"}, // a quote the client left open swallows nothing
	} {
		if got := Last(tc.in); got != tc.want {
			t.Errorf("Last(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestPrev(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []string // the elements from the right
	}{
		{"", []string{""}},
		{"a", []string{"a"}},
		{" a , b\t,c ", []string{"c", "b", "a"}},
		{"a,,b,", []string{"", "b", "", "a"}},
		{`"x, 1.2.3.4`, []string{"1.2.3.4", `"x`}},
	} {
		var got []string
		for v, e := tc.in, ""; ; {
			v, e = Prev(v)
			got = append(got, e)
			if v == "" {
				break
			}
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("Prev over %q = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestUnquote(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"", ""},
		{"token", "token"},
		{`""`, ""},
		{`"abc"`, "abc"},
		{`"[2001:db8::1]:4711"`, "[2001:db8::1]:4711"},
		{`"a\"b"`, `a"b`},
		{`"a\\b"`, `a\b`},
		{`"\x"`, "x"},
		{`"`, `"`},           // unterminated
		{`"abc`, `"abc`},     // unterminated
		{`"abc\"`, `"abc\"`}, // the closing quote is escaped
		{`"a"b"`, `"a"b"`},   // bytes after the closing quote
		{`"a\"b"c"`, `"a\"b"c"`},
		{`"a"  `, `"a"  `}, // OWS is the caller's to trim
	} {
		if got := Unquote(tc.in); got != tc.want {
			t.Errorf("Unquote(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestHasToken(t *testing.T) {
	for _, tc := range []struct {
		vs   []string
		tok  string
		want bool
	}{
		{[]string{"keep-alive, Upgrade"}, "upgrade", true},
		{[]string{"close"}, "CLOSE", true},
		{[]string{"gzip, chunked"}, "chunked", true},
		{[]string{"chunkedx"}, "chunked", false},
		{[]string{"a", " b ;x=1"}, "b", true},
		{[]string{`x="close"`}, "close", false},
		{[]string{"\u212aeep-alive"}, "keep-alive", false}, // Kelvin sign: not ASCII
		{nil, "close", false},
	} {
		if got := HasToken(tc.vs, tc.tok); got != tc.want {
			t.Errorf("HasToken(%q, %q) = %v", tc.vs, tc.tok, got)
		}
	}
}

func TestQValue(t *testing.T) {
	for _, tc := range []struct {
		in string
		q  int
		ok bool
	}{
		{"0", 0, true}, {"0.", 0, true}, {"0.000", 0, true}, {"0.5", 500, true},
		{"0.001", 1, true}, {"0.999", 999, true}, {"1", 1000, true}, {"1.", 1000, true},
		{"1.000", 1000, true},
		{"1.5", 0, false}, {"1.001", 0, false}, {"0.0000", 0, false}, {"0.0001", 0, false},
		{"2", 0, false}, {"-1", 0, false}, {"", 0, false}, {" 0", 0, false}, {"0.5 ", 0, false},
		{".5", 0, false}, {"0,5", 0, false}, {`"0.5"`, 0, false}, {"1e0", 0, false},
	} {
		q, ok := QValue(tc.in)
		if q != tc.q || ok != tc.ok {
			t.Errorf("QValue(%q) = %d, %v; want %d, %v", tc.in, q, ok, tc.q, tc.ok)
		}
	}
}

func TestWeight(t *testing.T) {
	for _, tc := range []struct {
		params string
		q      int
		valid  bool
	}{
		{"", 1000, true},
		{" ", 1000, true},
		{"q=0", 0, true},
		{"Q=0.5", 500, true},
		{" q = 0.000 ", 0, true},
		{"q=1.000", 1000, true},
		// Malformed weights read as 1, reported invalid.
		{"q=1.5", 1000, false},
		{"q=0.0000", 1000, false},
		{"q=abc", 1000, false},
		{"q=", 1000, false},
		{"level=1", 1000, false},
		// The first q gives the weight; more parameters make it invalid.
		{"q=0;level=9", 0, false},
		{"q=0.3;q=0", 300, false},
		{"level=1;q=0.2", 200, false},
		{"q;q=0", 1000, false}, // a bare q is the first q, malformed
		{"q=0.5;", 500, false},
	} {
		q, valid := Weight(tc.params)
		if q != tc.q || valid != tc.valid {
			t.Errorf("Weight(%q) = %d, %v; want %d, %v", tc.params, q, valid, tc.q, tc.valid)
		}
	}
}

func TestCutAndParam(t *testing.T) {
	v, p, found := Cut(` gzip ; q=0.5`)
	if v != "gzip" || p != " q=0.5" || !found {
		t.Errorf("Cut = %q, %q, %v", v, p, found)
	}
	if v, p, found = Cut(`a="x;y"`); v != `a="x;y"` || p != "" || found {
		t.Errorf("Cut quoted = %q, %q, %v", v, p, found)
	}
	name, value, rest := Param(` charset = "a;b" ; q=1`)
	if name != "charset" || value != `"a;b"` || rest != " q=1" {
		t.Errorf("Param = %q, %q, %q", name, value, rest)
	}
}

func TestDirective(t *testing.T) {
	for _, tc := range []struct{ in, name, value string }{
		{"no-store", "no-store", ""},
		{"max-age=60", "max-age", "60"},
		{"max-age = 60", "max-age", "60"},
		{`max-age="60"`, "max-age", "60"},
		{`private="Set-Cookie, X"`, "private", "Set-Cookie, X"},
		{`a="open`, "a", "open"},
		{`a="x\"`, "a", `x\"`},
		{`a=""`, "a", ""},
		{`a="`, "a", ""},
		{"max-age=60;ferry", "max-age", "60;ferry"},
		{"no-store;ferry", "no-store;ferry", ""},
		{"max-age=1 junk", "max-age", "1"},
		{"garbage here", "garbage", ""},
		{" = 5", "", "5"},
	} {
		n, v := Directive(tc.in)
		if n != tc.name || v != tc.value {
			t.Errorf("Directive(%q) = %q, %q; want %q, %q", tc.in, n, v, tc.name, tc.value)
		}
	}
}

func TestFold(t *testing.T) {
	if !EqualFold("Accept-Encoding", "accept-ENCODING") || EqualFold("k", "\u212a") || EqualFold("a", "ab") {
		t.Error("EqualFold")
	}
	if !ContainsFold("public, NO-Store", "no-store") || ContainsFold("no-stor", "no-store") {
		t.Error("ContainsFold")
	}
	if !IsToken("Accept-Encoding") || IsToken("a b") || IsToken("") || IsToken("a,b") {
		t.Error("IsToken")
	}
}

func TestAllocs(t *testing.T) {
	vs := []string{`gzip, deflate, br;q=0.9, zstd;q=0.8, *;q=0.1`, `private="a, b", max-age=60`}
	n := testing.AllocsPerRun(100, func() {
		Elements(vs, func(e string) bool {
			v, p, _ := Cut(e)
			Weight(p)
			Directive(v)
			return true
		})
		HasToken(vs, "zstd")
		Last(vs)
		Unquote(`"[2001:db8::1]:4711"`)
	})
	if n != 0 {
		t.Errorf("allocates %v times", n)
	}
}

// The reference: RFC 9110's grammar written as regular expressions,
// plainly, for the fuzz test.
var (
	refElement = regexp.MustCompile(`^(?:[^,"]|"(?:[^"\\]|\\.)*"|"(?:[^"\\]|\\.)*\\?$)*`)
	refQValue  = regexp.MustCompile(`^(?:0(?:\.[0-9]{0,3})?|1(?:\.0{0,3})?)$`)
	refWeight  = regexp.MustCompile(`^[ \t]*[qQ][ \t]*=[ \t]*([^;]*?)[ \t]*$`)
	refQuoted  = regexp.MustCompile(`(?s)^"((?:[^"\\]|\\.)*)"$`)
	refPair    = regexp.MustCompile(`(?s)\\(.)`)
)

// refLast is what follows the last comma of the last line.
func refLast(vs []string) string {
	if len(vs) == 0 {
		return ""
	}
	parts := strings.Split(vs[len(vs)-1], ",")
	return strings.Trim(parts[len(parts)-1], " \t")
}

func refUnquote(s string) string {
	m := refQuoted.FindStringSubmatch(s)
	if m == nil {
		return s
	}
	return refPair.ReplaceAllString(m[1], "$1")
}

func refElements(vs []string) []string {
	var out []string
	for _, v := range vs {
		for {
			m := refElement.FindString(v)
			if e := strings.Trim(m, " \t"); e != "" {
				out = append(out, e)
			}
			if len(m) == len(v) {
				break
			}
			v = v[len(m)+1:] // the comma
		}
	}
	return out
}

func refQ(s string) (int, bool) {
	if !refQValue.MatchString(s) {
		return 0, false
	}
	f, err := strconv.ParseFloat(strings.TrimSuffix(s, "."), 64)
	return int(f*1000 + 0.5), err == nil
}

func FuzzGrammar(f *testing.F) {
	for _, s := range []string{"gzip, br;q=0.5", `private="a, b", max-age=60`, "q=1.5", "gzip;q=0.0000",
		`a="x\", y", b`, `a="open, b`, `"\`, ",,", "x-gzip; Q = 0.001", "gzip;q=0;level=9", "identity;q=1.000",
		"\tbr\t;\tq\t=\t0\t", "a=\"b\\\"", "no-store;ferry, max-age=6;x",
		`"[2001:db8::1]:4711"`, `"a\"b"`, `"a\\"`, `"a"b"`, "https, ", "http\n", `a, "x, y"`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		vs := strings.Split(s, "\n")
		got, want := elements(vs...), refElements(vs)
		if !slices.Equal(got, want) {
			t.Fatalf("Elements(%q) = %q, reference %q", vs, got, want)
		}
		if got, want := Last(vs), refLast(vs); got != want {
			t.Fatalf("Last(%q) = %q, reference %q", vs, got, want)
		}
		if got, want := Unquote(s), refUnquote(s); got != want {
			t.Fatalf("Unquote(%q) = %q, reference %q", s, got, want)
		}
		for _, e := range got {
			_, params, found := Cut(e)
			if !found || strings.Contains(params, `"`) {
				continue
			}
			q, valid := Weight(params)
			wq, wvalid := 1000, false
			if strings.Trim(params, " \t") == "" {
				wvalid = true
			} else if m := refWeight.FindStringSubmatch(params); m != nil {
				if v, ok := refQ(m[1]); ok {
					wq, wvalid = v, true
				}
			} else if p := strings.Split(params, ";"); true {
				// Not one weight: the first q parameter's value, if a qvalue.
				for _, x := range p {
					k, v, _ := strings.Cut(x, "=")
					if strings.ToLower(strings.Trim(k, " \t")) == "q" {
						if v, ok := refQ(strings.Trim(v, " \t")); ok {
							wq = v
						}
						break
					}
				}
			}
			if q != wq || valid != wvalid {
				t.Fatalf("Weight(%q) = %d, %v; reference %d, %v", params, q, valid, wq, wvalid)
			}
		}
	})
}

func BenchmarkElements(b *testing.B) {
	vs := []string{`public, max-age=60, s-maxage=120, stale-while-revalidate=30, private="Set-Cookie"`}
	for b.Loop() {
		Elements(vs, func(e string) bool { Directive(e); return true })
	}
}

func TestLowerString(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"", ""},
		{"chunked", "chunked"},
		{"Chunked", "chunked"},
		{"GZIP", "gzip"},
		{"chun\u212Aed", "chun\u212Aed"}, // the Kelvin sign is not a k
		{"X-\u00C9", "x-\u00C9"},
	} {
		if got := LowerString(tc.in); got != tc.want {
			t.Errorf("LowerString(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
