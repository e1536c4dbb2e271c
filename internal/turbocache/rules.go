package turbocache

import (
	"github.com/ferry-server/ferry/internal/httpfield"
	"net/http"
	"net/textproto"
	"slices"
	"strings"
	"time"
)

// This file holds the rules, as pure functions of headers: which statuses,
// response headers and request headers allow storing, and for how long.

// storableStatus reports whether a response with this status may be
// stored at all: any final status but 206 (a part) and 304 (no body of its
// own), given explicit freshness, which judge requires (RFC 9111 §3).
func storableStatus(code int) bool {
	return code >= 200 && code <= 599 && code != http.StatusPartialContent && code != http.StatusNotModified
}

// understoodStatus lists the statuses whose caching requirements Ferry
// knows: a response with Cache-Control: must-understand is stored only with
// one of these (RFC 9111 §5.2.2.3).
func understoodStatus(code int) bool {
	switch code {
	case 200, 203, 204, 300, 301, 302, 303, 307, 308,
		400, 403, 404, 405, 410, 414, 421, 451, 500, 501, 502, 503, 504:
		return true
	}
	return false
}

// Reasons a response is not stored (for tests and debugging).
const (
	okStored         = ""
	rejStatus        = "status"
	rejNoFreshness   = "no explicit freshness"
	rejNotFresh      = "zero or negative freshness lifetime"
	rejPrivate       = "private"
	rejNoStore       = "no-store"
	rejNoCache       = "no-cache"
	rejSetCookie     = "Set-Cookie"
	rejAuthorization = "request Authorization without public or s-maxage"
	rejVary          = "Vary"
	rejUnknownAE     = "Vary: Accept-Encoding with an unusual request Accept-Encoding"
	rejHeader        = "response header that is never stored"
	rejBadCacheCtl   = "conflicting or invalid Cache-Control"
	rejBadAge        = "Age is not one delta-seconds"
	rejTooBig        = "too big"
	rejLength        = "Content-Length differs from body"
	rejInvalidated   = "invalidated while fetching"
)

// verdict is what judge decided about one response.
type verdict struct {
	reason     string // okStored, or why not
	lifetime   time.Duration
	initialAge time.Duration // the Age the app sent
	varyAE     bool          // the entry is only for requests with the same Accept-Encoding
	vary       []string      // other selecting request headers (canonical names), Cookie included
	stale      staleRules
}

// staleRules say what may be done with an entry once it is stale.
type staleRules struct {
	// mustRevalidate: must-revalidate, proxy-revalidate or s-maxage
	// (RFC 9111 §5.2.2.2, §5.2.2.8, §5.2.2.10): never served stale, not even
	// on error.
	mustRevalidate bool
	// whileRevalidate and ifError: RFC 5861's stale-while-revalidate and
	// stale-if-error, how long past its lifetime an entry may still be
	// served while one background revalidation runs, or when the app fails.
	whileRevalidate time.Duration
	ifError         time.Duration
}

// targetedFields are the targeted cache-control fields Ferry obeys, first
// present wins (RFC 9213 §2.2): CDN-Cache-Control, and the older
// Surrogate-Control (W3C Edge Architecture) that reverse proxies honour.
// When one is present, Cache-Control and Expires do not decide freshness.
var targetedFields = [...]string{"Cdn-Cache-Control", "Surrogate-Control"}

// reqFacts are the request facts the storing rules depend on.
type reqFacts struct {
	auth       bool
	ae         uint16 // normalised Accept-Encoding, see aeMask
	varyCookie bool   // Options.VaryByCookie is set
}

// judge applies the storing rules to a response. h must have canonical keys
// (cloneHeader makes them so). now is when the response arrived.
func judge(status int, h http.Header, rq reqFacts, now time.Time) verdict {
	var v verdict
	if v.reason = neverStored(status, h); v.reason != okStored {
		return v
	}
	cc := h["Cache-Control"]
	tcc, targeted := targetedValues(h)
	if v.reason = forbiddenByDirectives(cc, tcc, targeted, h["Pragma"]); v.reason != okStored {
		return v
	}
	public, mustUnderstand := publicDirectives(cc)
	if mustUnderstand && !understoodStatus(status) {
		v.reason = rejStatus
		return v
	}
	fr, ok := parseFreshness(cc)
	if targeted {
		fr, ok = parseFreshness(tcc)
	}
	if !ok {
		v.reason = rejBadCacheCtl
		return v
	}
	if rq.auth && !public && !fr.hasSMax {
		v.reason = rejAuthorization
		return v
	}
	if v.vary, v.varyAE, v.reason = selecting(h, rq); v.reason != okStored {
		return v
	}
	v.stale = fr.stale
	v.lifetime, v.initialAge, v.reason = lifetimeOf(fr, targeted, h, now)
	return v
}

// neverStored is the reason a response with this status and header is
// never stored whatever its Cache-Control says, or okStored.
func neverStored(status int, h http.Header) string {
	switch {
	case !storableStatus(status):
		return rejStatus
	case len(h["Set-Cookie"]) > 0 || len(h["Set-Cookie2"]) > 0:
		return rejSetCookie
	// As Passenger: authentication challenges and responses whose body is
	// produced by a front server are never stored.
	case len(h["Www-Authenticate"]) > 0 || len(h["X-Sendfile"]) > 0 ||
		len(h["X-Accel-Redirect"]) > 0 || len(h["X-Lighttpd-Send-File"]) > 0 ||
		len(h["Content-Range"]) > 0 || len(h["Trailer"]) > 0:
		return rejHeader
	}
	return okStored
}

// forbiddenByDirectives is why Cache-Control (cc), the targeted field
// (tcc, when targeted) or Pragma forbid storing, or okStored. Conservative
// first: private, no-store, no-cache anywhere in Cache-Control (whatever
// the syntax around them, e.g. private="x" or a quoted extension) or
// no-cache in Pragma forbid storing. A targeted field (CDN-Cache-Control)
// overrides Cache-Control's no-store and no-cache, as RFC 9213 says, but
// never its private: a response for one user is never shared.
func forbiddenByDirectives(cc, tcc []string, targeted bool, pragma []string) string {
	if targeted {
		if why := forbiddingWord(tcc); why != "" {
			return why
		}
		for _, s := range cc {
			if httpfield.ContainsFold(s, "private") {
				return rejPrivate
			}
		}
		return okStored
	}
	if why := forbiddingWord(cc); why != "" {
		return why
	}
	for _, s := range pragma {
		if httpfield.ContainsFold(s, "no-cache") {
			return rejNoCache
		}
	}
	return okStored
}

// publicDirectives reports whether Cache-Control has public and
// must-understand.
func publicDirectives(cc []string) (public, mustUnderstand bool) {
	for it := (dirIter{vs: cc}); it.next(); {
		switch {
		case httpfield.EqualFold(it.name, "public"):
			public = true
		case httpfield.EqualFold(it.name, "must-understand"):
			mustUnderstand = true
		}
	}
	return public, mustUnderstand
}

// selecting returns the request headers the response varies by, and
// whether it varies by Accept-Encoding, or why it cannot be stored.
func selecting(h http.Header, rq reqFacts) (vary []string, varyAE bool, reason string) {
	vary, varyAE, ok := varyFields(h["Vary"], rq.varyCookie)
	if !ok {
		return nil, false, rejVary
	}
	// A compressed body without Vary: Accept-Encoding is an app bug that
	// would hand gzip to clients that cannot read it: vary anyway.
	for _, ce := range h["Content-Encoding"] {
		if ce = httpfield.TrimOWS(ce); ce != "" && !httpfield.EqualFold(ce, "identity") {
			varyAE = true
		}
	}
	if varyAE && rq.ae&aeUnknown != 0 {
		return nil, false, rejUnknownAE
	}
	return vary, varyAE, okStored
}

// lifetimeOf is the response's freshness lifetime (s-maxage, max-age, or
// Expires unless a targeted field decides) and the Age it arrived with,
// and why it cannot be stored (okStored if it can).
func lifetimeOf(fr freshness, targeted bool, h http.Header, now time.Time) (lifetime, age time.Duration, reason string) {
	switch {
	case fr.hasSMax:
		lifetime = time.Duration(fr.sMaxAge) * time.Second
	case fr.hasMaxAge:
		lifetime = time.Duration(fr.maxAge) * time.Second
	case !targeted && len(h["Expires"]) > 0:
		lifetime = expiresLifetime(h["Expires"], h["Date"], now)
	default:
		return 0, 0, rejNoFreshness
	}
	// What was found is returned with a reason too: a refreshed entry
	// that may no longer be stored still answers its one request with it.
	age, ok := initialAge(h["Age"])
	if !ok {
		return lifetime, 0, rejBadAge
	}
	lifetime = min(lifetime, maxDelta*time.Second)
	if lifetime <= 0 || age >= lifetime {
		return lifetime, age, rejNotFresh
	}
	return lifetime, age, okStored
}

// targetedValues returns the values of the first targeted field present
// with at least one directive for Ferry (RFC 9213). A Surrogate-Control
// directive may be aimed at devices (max-age=60;ferry): it is for Ferry
// when one of them is the device name Ferry announces in
// Surrogate-Capability.
func targetedValues(h http.Header) ([]string, bool) {
	for _, name := range targetedFields {
		vs := h[name]
		if len(vs) == 0 {
			continue
		}
		for it := (dirIter{vs: vs}); it.next(); {
			if _, _, ok := forFerry(it.name, it.value); ok {
				return vs, true
			}
		}
	}
	return nil, false
}

// SurrogateDevice is the device name Ferry announces to apps in
// Surrogate-Capability (W3C Edge Architecture) on requests whose response
// it may store.
const SurrogateDevice = "ferry"

// surrogateCapability is the Surrogate-Capability value, shared by every
// request (never modified).
var surrogateCapability = []string{SurrogateDevice + `="Surrogate/1.0"`}

// forFerry strips a directive's device targets ("max-age=60;ferry",
// "no-store;a;b"): ok when it has none or names Ferry's.
func forFerry(name, value string) (string, string, bool) {
	targets := ""
	if n, t, found := strings.Cut(name, ";"); found {
		name, targets = n, t
	} else if v, t, found := strings.Cut(value, ";"); found {
		value, targets = v, t
	}
	if targets == "" {
		return name, value, true
	}
	for t := range strings.SplitSeq(targets, ";") {
		if strings.TrimSpace(t) == SurrogateDevice {
			return name, value, true
		}
	}
	return name, value, false
}

// freshness is what one Cache-Control-like field says about lifetime and
// staleness.
type freshness struct {
	maxAge, sMaxAge    int64
	hasMaxAge, hasSMax bool
	stale              staleRules
}

// parseFreshness reads max-age, s-maxage, must-revalidate,
// proxy-revalidate, stale-while-revalidate and stale-if-error. ok is false
// when max-age or s-maxage is invalid or given twice with different
// values. Directives aimed at other devices (Surrogate-Control's
// ";target") are skipped.
func parseFreshness(vs []string) (f freshness, ok bool) {
	for it := (dirIter{vs: vs}); it.next(); {
		name, value, mine := forFerry(it.name, it.value)
		if !mine {
			continue
		}
		it.name, it.value = name, value
		switch {
		case httpfield.EqualFold(it.name, "max-age"):
			n, ok := deltaSeconds(it.value)
			if !ok || (f.hasMaxAge && n != f.maxAge) {
				return f, false
			}
			f.maxAge, f.hasMaxAge = n, true
		case httpfield.EqualFold(it.name, "s-maxage"):
			n, ok := deltaSeconds(it.value)
			if !ok || (f.hasSMax && n != f.sMaxAge) {
				return f, false
			}
			f.sMaxAge, f.hasSMax = n, true
			f.stale.mustRevalidate = true // s-maxage implies proxy-revalidate
		case httpfield.EqualFold(it.name, "must-revalidate"), httpfield.EqualFold(it.name, "proxy-revalidate"):
			f.stale.mustRevalidate = true
		case httpfield.EqualFold(it.name, "stale-while-revalidate"):
			if n, ok := deltaSeconds(it.value); ok {
				f.stale.whileRevalidate = time.Duration(n) * time.Second
			}
		case httpfield.EqualFold(it.name, "stale-if-error"):
			if n, ok := deltaSeconds(it.value); ok {
				f.stale.ifError = time.Duration(n) * time.Second
			}
		}
	}
	if f.stale.mustRevalidate {
		f.stale.whileRevalidate, f.stale.ifError = 0, 0
	}
	return f, true
}

// expiresLifetime is Expires minus Date (or now, without a valid Date). An
// invalid Expires, or more than one, means already expired (RFC 9111
// §5.3): the result is then not positive.
func expiresLifetime(expires, date []string, now time.Time) time.Duration {
	if len(expires) != 1 {
		return 0
	}
	exp, ok := parseHTTPDate(expires[0])
	if !ok {
		return 0
	}
	d := now
	if len(date) == 1 {
		if t, ok := parseHTTPDate(date[0]); ok {
			d = t
		}
	}
	return exp.Sub(d)
}

// initialAge reads Age: absent is 0; anything but one line holding one
// delta-seconds ("7200, 0", two lines, "abc", "-1", "1.5", "60;x") is
// refused rather than guessed at, since a too-young guess would serve a
// stale response as fresh (RFC 9111 §5.1).
func initialAge(as []string) (time.Duration, bool) {
	switch len(as) {
	case 0:
		return 0, true
	case 1:
		s := httpfield.TrimOWS(as[0])
		if s == "" || s[0] == '"' {
			return 0, false
		}
		n, ok := deltaSeconds(s)
		return time.Duration(n) * time.Second, ok
	}
	return 0, false
}

// Layouts of the three HTTP-date forms a recipient must accept (RFC 9110
// §5.6.7).
const (
	imfFixdate  = "Mon, 02 Jan 2006 15:04:05 GMT"
	rfc850Date  = "Monday, 02-Jan-06 15:04:05 GMT"
	asctimeDate = "Mon Jan _2 15:04:05 2006"
)

// parseHTTPDate parses an HTTP-date strictly: the value must be what its
// layout prints (time.Parse alone takes one-digit hours, extra spaces and
// any case of names, which RFC 9110 does not), but for the day name, which
// must be one, with its case, yet need not be that date's (recipients
// compute the day from the date).
func parseHTTPDate(s string) (time.Time, bool) {
	for _, layout := range [...]string{imfFixdate, rfc850Date, asctimeDate} {
		t, err := time.Parse(layout, s)
		if err != nil {
			continue
		}
		f := t.Format(layout)
		i := strings.IndexAny(s, ", ")
		j := strings.IndexAny(f, ", ")
		if i > 0 && j > 0 && s[i:] == f[j:] && dayName(s[:i], layout == rfc850Date) {
			return t, true
		}
	}
	return time.Time{}, false
}

// dayName reports whether s is a day name as HTTP-dates spell it: "Mon",
// or in rfc850-date "Monday".
func dayName(s string, long bool) bool {
	for d := time.Sunday; d <= time.Saturday; d++ {
		name := d.String()
		if !long {
			name = name[:3]
		}
		if s == name {
			return true
		}
	}
	return false
}

// forbiddingWord returns the reason when private, no-store or no-cache
// appears anywhere in the Cache-Control values.
func forbiddingWord(cc []string) string {
	for _, s := range cc {
		switch {
		case httpfield.ContainsFold(s, "private"):
			return rejPrivate
		case httpfield.ContainsFold(s, "no-store"):
			return rejNoStore
		case httpfield.ContainsFold(s, "no-cache"):
			return rejNoCache
		}
	}
	return ""
}

// varyFields reads Vary: the selecting request headers (canonical names,
// sorted, without duplicates) other than Accept-Encoding, which has its own
// normalised matching, and whether Accept-Encoding is one of them. ok is
// false for "*" (never stored) and for Cookie unless the cache varies by a
// cookie: a response keyed by whole Cookie headers is one user's, and a
// variant per user would be a cache of private responses.
func varyFields(vary []string, varyCookie bool) (fields []string, varyAE, ok bool) {
	for _, s := range vary {
		for s != "" {
			var f string
			f, s = httpfield.Next(s)
			switch {
			case f == "":
			case f == "*" || !httpfield.IsToken(f):
				return nil, false, false
			case httpfield.EqualFold(f, "Accept-Encoding"):
				varyAE = true
			case httpfield.EqualFold(f, "Cookie") && !varyCookie:
				return nil, false, false
			case httpfield.EqualFold(f, "Cookie"):
				// The key holds the vary-by cookie already.
			default:
				name := textproto.CanonicalMIMEHeaderKey(f)
				if setByFront(name) {
					return nil, false, false
				}
				if i, found := slices.BinarySearch(fields, name); !found {
					fields = slices.Insert(fields, i, name)
				}
			}
		}
	}
	return fields, varyAE, true
}

// setByFront reports a request header the app gets from Ferry rather than
// from the client (the client's address and scheme, the request id, the
// internal ones): the request header the cache sees is not what the app
// varied on, so a response varying by it is not stored.
func setByFront(name string) bool {
	switch name {
	case "X-Forwarded-For", "X-Forwarded-Proto", "X-Forwarded-Host", "X-Real-Ip", "Forwarded", "X-Request-Id":
		return true
	}
	return strings.HasPrefix(name, "X-Ferry-") || strings.IndexByte(name, '_') >= 0
}

// maxDelta is where delta-seconds are clamped (RFC 9111 §1.2.2).
const maxDelta = 1 << 31

// deltaSeconds parses a non-negative number of seconds (optionally quoted).
func deltaSeconds(s string) (int64, bool) {
	if len(s) >= 2 && s[0] == '"' && s[len(s)-1] == '"' {
		s = s[1 : len(s)-1]
	}
	if s == "" {
		return 0, false
	}
	var n int64
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		if n < maxDelta {
			n = n*10 + int64(c-'0')
		}
	}
	return min(n, maxDelta), true
}

// dirIter walks the directives of Cache-Control values without allocating:
// name, and value (unquoted when it was a quoted-string, escapes kept), as
// httpfield reads them.
type dirIter struct {
	vs          []string
	s           string
	name, value string
}

func (it *dirIter) next() bool {
	for {
		if it.s == "" {
			if len(it.vs) == 0 {
				return false
			}
			it.s, it.vs = it.vs[0], it.vs[1:]
			continue
		}
		var e string
		e, it.s = httpfield.Next(it.s)
		if e == "" {
			continue
		}
		it.name, it.value = httpfield.Directive(e)
		if it.name != "" {
			return true
		}
	}
}

// reqCacheControl is what the request's Cache-Control and Pragma ask for.
type reqCacheControl struct {
	bypass       bool  // no-cache, max-age=0, Pragma: no-cache: go to the app, refresh
	noStore      bool  // do not store the response
	onlyIfCached bool  // 504 rather than going to the app
	maxAge       int64 // -1: none
	minFresh     int64 // 0: none
}

func parseReqCacheControl(cc, pragma []string) reqCacheControl {
	r := reqCacheControl{maxAge: -1}
	for it := (dirIter{vs: cc}); it.next(); {
		switch {
		case httpfield.EqualFold(it.name, "no-cache"):
			r.bypass = true
		case httpfield.EqualFold(it.name, "no-store"):
			r.noStore = true
		case httpfield.EqualFold(it.name, "only-if-cached"):
			r.onlyIfCached = true
		case httpfield.EqualFold(it.name, "max-age"):
			n, ok := deltaSeconds(it.value)
			if !ok || n == 0 {
				r.bypass = true
			} else if r.maxAge < 0 || n < r.maxAge {
				r.maxAge = n
			}
		case httpfield.EqualFold(it.name, "min-fresh"):
			n, ok := deltaSeconds(it.value)
			if !ok {
				r.bypass = true
			} else {
				r.minFresh = max(r.minFresh, n)
			}
		}
	}
	// As for responses, erring on the side of not storing: these words
	// anywhere count.
	for _, s := range cc {
		if httpfield.ContainsFold(s, "no-store") {
			r.noStore = true
		}
		if httpfield.ContainsFold(s, "no-cache") {
			r.bypass = true
		}
	}
	for _, p := range pragma {
		if httpfield.ContainsFold(p, "no-cache") {
			r.bypass = true
		}
	}
	return r
}

// Accept-Encoding, normalised to a set of codings (q=0 ones left out).
const (
	aeAbsent uint16 = 1 << iota // no Accept-Encoding header at all
	aeIdentity
	aeGzip
	aeDeflate
	aeBr
	aeZstd
	aeCompress
	aeStar
	aeUnknown // a coding or syntax not understood: no Vary: Accept-Encoding entry is used or stored
)

// aeMask normalises Accept-Encoding values so that "gzip, deflate, br" and
// "br;q=1.0, gzip, deflate" share a key. Order and non-zero q-values are
// ignored: they express preference, and the variant the app picked for one
// such request is acceptable to the other. It runs on every hit of an entry
// that varies by Accept-Encoding, so it scans bytes without allocating.
func aeMask(vs []string) uint16 {
	if vs == nil {
		return aeAbsent
	}
	var m uint16
	for _, s := range vs {
		for s != "" {
			var el string
			el, s = httpfield.Next(s)
			coding, params, found := httpfield.Cut(el)
			if coding == "" {
				continue
			}
			if found {
				// A weight the app may read otherwise (httpfield.Weight's
				// "not valid") makes the request's choice unknown.
				q, valid := httpfield.Weight(params)
				if !valid {
					m |= aeUnknown
				}
				if q == 0 {
					continue
				}
			}
			m |= codingBit(coding)
		}
	}
	return m
}

func codingBit(coding string) uint16 {
	var buf [10]byte
	if len(coding) > len(buf) {
		return aeUnknown
	}
	for i := 0; i < len(coding); i++ {
		buf[i] = httpfield.Lower(coding[i])
	}
	switch string(buf[:len(coding)]) {
	case "gzip", "x-gzip":
		return aeGzip
	case "br":
		return aeBr
	case "deflate":
		return aeDeflate
	case "zstd":
		return aeZstd
	case "identity":
		return aeIdentity
	case "compress", "x-compress":
		return aeCompress
	case "*":
		return aeStar
	}
	return aeUnknown
}
