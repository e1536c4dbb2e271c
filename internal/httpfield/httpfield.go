// Package httpfield is the one home of HTTP field syntax (RFC 9110 §5.6):
// comma-separated lists with quoted strings and optional whitespace, tokens
// compared with ASCII case folding, parameters, and quality values
// (RFC 9110 §12.4.2). Its functions are pure and do not allocate (but
// Unquote, to unescape): callers on the request path (content negotiation,
// the cache's rules, hop-by-hop headers, the client's forwarding headers)
// walk lists with Next or Elements, and lists proxies append to from the
// nearest hop with Prev or Last.
//
// Malformed input never fails a call: a list always splits somewhere, and a
// malformed weight reads as the default, 1, and is reported (see Weight),
// so that each caller decides what an unreadable element means to it.
package httpfield

import "strings"

// Next cuts the first element off the list v: everything up to the first
// comma outside a quoted string, trimmed of OWS. elem is empty for empty
// elements (",," or a leading comma), which RFC 9110 §5.6.1 tells
// recipients to ignore; loop while rest (or elem) is not empty. An
// unterminated quoted string runs to the end of v.
func Next(v string) (elem, rest string) {
	// Fast path: no quote before the first comma (two vectorised scans,
	// the second only up to the comma, so a long list stays linear).
	c := strings.IndexByte(v, ',')
	head := v
	if c >= 0 {
		head = v[:c]
	}
	if strings.IndexByte(head, '"') < 0 {
		if c < 0 {
			return TrimOWS(v), ""
		}
		return TrimOWS(head), v[c+1:]
	}
	i := 0
	for i < len(v) {
		switch v[i] {
		case ',':
			return TrimOWS(v[:i]), v[i+1:]
		case '"':
			i = skipQuoted(v, i)
			continue
		}
		i++
	}
	return TrimOWS(v), ""
}

// skipQuoted returns the index just past the quoted string opening at
// v[i] (a backslash escapes the next byte), or len(v) when it is not
// closed.
func skipQuoted(v string, i int) int {
	for i++; i < len(v); i++ {
		switch v[i] {
		case '\\':
			i++
		case '"':
			return i + 1
		}
	}
	return len(v)
}

// Elements calls yield with each non-empty element of the lists vs (the
// lines of one field) until yield returns false.
func Elements(vs []string, yield func(elem string) bool) {
	for _, v := range vs {
		for v != "" {
			var e string
			e, v = Next(v)
			if e != "" && !yield(e) {
				return
			}
		}
	}
}

// Prev cuts the last element off the list v, the one appended last:
// everything after the last comma, trimmed of OWS (empty after a trailing
// comma). Loop while rest is not empty to walk a list a proxy appended to
// (X-Forwarded-For) from the nearest hop outwards. Quoted strings are not
// honoured here, unlike in Next: a proxy appends ", value" to whatever the
// hop before wrote, so a quote an earlier hop (the client) left open must
// not swallow what the nearest one wrote.
func Prev(v string) (rest, elem string) {
	i := strings.LastIndexByte(v, ',')
	if i < 0 {
		return "", TrimOWS(v)
	}
	return v[:i], TrimOWS(v[i+1:])
}

// Last returns the element of the lists vs that was appended last (see
// Prev): the last line's last element, empty when that is empty. It is
// what the nearest proxy wrote (X-Forwarded-Proto), or nothing, never
// what an earlier hop wrote.
func Last(vs []string) string {
	if len(vs) == 0 {
		return ""
	}
	_, elem := Prev(vs[len(vs)-1])
	return elem
}

// Token returns an element's leading token: the element up to its first
// ';' or '=' (parameters or a directive's value), trimmed of OWS.
func Token(elem string) string {
	if i := strings.IndexAny(elem, ";="); i >= 0 {
		elem = elem[:i]
	}
	return TrimOWS(elem)
}

// HasToken reports whether one of the lists vs has an element whose token
// (see Token) is tok, in any ASCII case: Connection: close, keep-alive;
// Transfer-Encoding: chunked; Vary's field names.
func HasToken(vs []string, tok string) bool {
	for _, v := range vs {
		for v != "" {
			var e string
			e, v = Next(v)
			if EqualFold(Token(e), tok) {
				return true
			}
		}
	}
	return false
}

// Cut splits an element at its first ';' (outside quoted strings): the
// value before and the parameters after, unparsed ("gzip;q=0.5" is "gzip",
// "q=0.5"). found reports whether there was a ';'.
func Cut(elem string) (value, params string, found bool) {
	for i := 0; i < len(elem); {
		switch elem[i] {
		case ';':
			return TrimOWS(elem[:i]), elem[i+1:], true
		case '"':
			i = skipQuoted(elem, i)
			continue
		}
		i++
	}
	return TrimOWS(elem), "", false
}

// Param cuts the first parameter off params (RFC 9110 §5.6.6:
// name "=" value, separated by ';'): name and value trimmed of OWS (OWS
// around '=' is tolerated), value still quoted if it was. rest is what
// follows the next ';'; loop while params is not empty.
func Param(params string) (name, value, rest string) {
	p := params
	end := len(p)
	for i := 0; i < len(p); {
		if p[i] == ';' {
			end, rest = i, p[i+1:]
			break
		}
		if p[i] == '"' {
			i = skipQuoted(p, i)
			continue
		}
		i++
	}
	p = p[:end]
	name, value, _ = strings.Cut(p, "=")
	return TrimOWS(name), TrimOWS(value), rest
}

// Directive reads a Cache-Control-style directive (RFC 9111 §5.2:
// token [ "=" ( token / quoted-string ) ]): its name, and its value with
// the quotes of a quoted-string removed (escapes kept, so that it needs no
// allocation; no directive Ferry reads has any). Malformed input reads
// leniently, the name and an unquoted value each ending at whitespace
// ("max-age=1 junk" is max-age=1, "a b" is a): what follows is ignored.
func Directive(elem string) (name, value string) {
	elem = TrimOWS(elem)
	i := 0
	for i < len(elem) && elem[i] != '=' && elem[i] != ' ' && elem[i] != '\t' {
		i++
	}
	name, elem = elem[:i], TrimOWS(elem[i:])
	if elem == "" || elem[0] != '=' {
		return name, ""
	}
	value = TrimOWS(elem[1:])
	if value != "" && value[0] == '"' {
		end := skipQuoted(value, 0)
		if end == len(value) && (len(value) < 2 || value[len(value)-1] != '"' || escapedLast(value)) {
			return name, value[1:] // unterminated: the rest
		}
		return name, value[1 : end-1]
	}
	if k := strings.IndexAny(value, " \t"); k >= 0 {
		value = value[:k]
	}
	return name, value
}

// Unquote returns the content of the quoted-string s (RFC 9110 §5.6.4),
// each quoted-pair ("\x") read as the byte it escapes; s itself when it
// is not exactly one quoted-string (a token, an unterminated string, or
// bytes after the closing quote). It allocates only when s has a
// quoted-pair.
func Unquote(s string) string {
	if len(s) < 2 || s[0] != '"' {
		return s
	}
	body := s[1:]
	i := strings.IndexAny(body, `"\`)
	switch {
	case i < 0:
		return s // unterminated
	case body[i] == '"':
		if i != len(body)-1 {
			return s
		}
		return body[:i]
	}
	var b strings.Builder
	b.Grow(len(body))
	b.WriteString(body[:i])
	for ; i < len(body); i++ {
		switch c := body[i]; c {
		case '\\':
			if i++; i == len(body) {
				return s
			}
			b.WriteByte(body[i])
		case '"':
			if i != len(body)-1 {
				return s
			}
			return b.String()
		default:
			b.WriteByte(c)
		}
	}
	return s // unterminated
}

// escapedLast reports whether the last byte of the quoted string v is
// escaped (so v is not closed).
func escapedLast(v string) bool {
	n := 0
	for i := len(v) - 2; i >= 1 && v[i] == '\\'; i-- {
		n++
	}
	return n%2 == 1
}

// Weight reads the weight of a list element (RFC 9110 §12.4.2) from its
// parameters (what Cut returns after ';'): q in thousandths, 0 to 1000.
//
// What a malformed weight means is decided here, once: the first
// parameter named q (in any case) gives the weight; when it is not a
// qvalue ("q=1.5", "q=0.0000", "q=abc", "q=") or there is none, q is 1000,
// the default weight, as nginx and Apache read it. valid is true only when
// params is empty or exactly one weight ("q=0.5"; OWS around '=' is
// tolerated): a caller that must not guess ("the cache keys by what the
// app would decide") treats !valid as unknown.
func Weight(params string) (q int, valid bool) {
	if TrimOWS(params) == "" {
		return 1000, true
	}
	// More than one parameter (or an empty one after ';') is not a weight.
	valid = strings.IndexByte(params, ';') < 0
	q = 1000
	seen := false
	for params != "" {
		var name, value string
		name, value, params = Param(params)
		if seen || !EqualFold(name, "q") {
			valid = false
			continue
		}
		seen = true
		v, ok := QValue(value)
		if !ok {
			valid = false
			continue
		}
		q = v
	}
	return q, valid
}

// QValue parses a qvalue (RFC 9110 §12.4.2) in thousandths:
//
//	qvalue = ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] )
//
// ok is false for anything else ("1.5", "0.0000", "2", " 0").
func QValue(s string) (q int, ok bool) {
	if s == "" || len(s) > 5 || (s[0] != '0' && s[0] != '1') {
		return 0, false
	}
	whole := int(s[0] - '0')
	if len(s) == 1 {
		return whole * 1000, true
	}
	if s[1] != '.' {
		return 0, false
	}
	frac := 0
	for i := 2; i < 5; i++ {
		d := byte('0')
		if i < len(s) {
			d = s[i]
		}
		if d < '0' || d > '9' || (whole == 1 && d != '0') {
			return 0, false
		}
		frac = frac*10 + int(d-'0')
	}
	return whole*1000 + frac, true
}

// IsToken reports whether s is an RFC 9110 token (a field name, a coding,
// a directive name).
func IsToken(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte(`"(),/:;<=>?@[\]{}`, c) >= 0 {
			return false
		}
	}
	return s != ""
}

// EqualFold compares tokens in ASCII case only, as HTTP does; unlike
// strings.EqualFold, the Kelvin sign "K" is not "k" and "ſ" is not "s".
func EqualFold(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		if Lower(a[i]) != Lower(b[i]) {
			return false
		}
	}
	return true
}

// Lower is the ASCII lower case of c.
func Lower(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + ('a' - 'A')
	}
	return c
}

// LowerString is s in ASCII lower case (s itself when it has no upper
// case letter). Unlike strings.ToLower it leaves other bytes alone: "K"
// (U+212A, the Kelvin sign) does not become "k", so "chun\u212Aed" is not
// "chunked".
func LowerString(s string) string {
	for i := 0; i < len(s); i++ {
		if 'A' <= s[i] && s[i] <= 'Z' {
			b := []byte(s)
			for j := i; j < len(b); j++ {
				b[j] = Lower(b[j])
			}
			return string(b)
		}
	}
	return s
}

// ContainsFold reports whether s contains sub in any ASCII case: the
// cache's conservative reading of "no-store" anywhere in a field.
func ContainsFold(s, sub string) bool {
	n := len(sub)
	if n == 0 {
		return true
	}
	c0 := Lower(sub[0])
	for i := 0; i+n <= len(s); i++ {
		if Lower(s[i]) == c0 && EqualFold(s[i:i+n], sub) {
			return true
		}
	}
	return false
}

// TrimOWS removes optional whitespace (spaces and tabs, RFC 9110 §5.6.3)
// around s.
func TrimOWS(s string) string {
	for s != "" && (s[0] == ' ' || s[0] == '\t') {
		s = s[1:]
	}
	for s != "" && (s[len(s)-1] == ' ' || s[len(s)-1] == '\t') {
		s = s[:len(s)-1]
	}
	return s
}
