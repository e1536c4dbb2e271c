package turbocache

import (
	"github.com/ferry-server/ferry/internal/httpfield"
	"github.com/ferry-server/ferry/internal/lean"
	"net/http"
	"net/textproto"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// entry is one stored response. Everything but the links and the atomics is
// immutable once the entry is in the cache, so hits read it without a lock.
type entry struct {
	k      key
	varyAE bool
	ae     uint16 // the request's aeMask, when varyAE
	aeRaw  string // and its Accept-Encoding, when a single line

	status int
	header []field // what a hit writes; values shared, never mutated
	h304   []field // what a 304 writes
	body   []byte
	// pre is the head serialised once, for writers that take it
	// (lean.CachedWriter); nil when the head is not one that can be.
	pre *lean.CachedHead

	etag       string // opaque-tag of the ETag, W/ removed; "" if none
	lastMod    time.Time
	hasLastMod bool

	// Validators to revalidate with, as the app sent them ("" if none).
	etagRaw, lastModRaw string
	// vary holds the request's values of the headers the response varies
	// by (besides Accept-Encoding): only requests with the same values
	// match.
	vary  []varyValue
	stale staleRules

	stored     time.Time
	initialAge time.Duration
	lifetime   time.Duration
	size       int64

	ref      atomic.Bool // CLOCK reference bit, set by hits
	ageCache atomic.Pointer[ageValue]

	// Guarded by the shard's mu: the chain of entries with the same primary
	// hash, and the list of all entries of one URL (base hash).
	chain        *entry
	uprev, unext *entry
	// Guarded by Cache.mu: the CLOCK list.
	prev, next *entry
	// Guarded by both Cache.mu and the shard's mu (read under either).
	linked bool
}

// varyValue is one selecting header of a request: its values, or absent.
type varyValue struct {
	name    string
	values  []string
	present bool
}

// varyMatches reports whether the request header h selects this variant.
func (e *entry) varyMatches(h http.Header) bool {
	for i := range e.vary {
		vv := &e.vary[i]
		vs, ok := h[vv.name]
		if ok != vv.present || !listEqual(vs, vv.values, caseless(vv.name)) {
			return false
		}
	}
	return true
}

// caseless reports the selecting headers whose values compare without
// case: language tags (RFC 4647) and charsets are case-insensitive.
func caseless(name string) bool {
	return name == "Accept-Language" || name == "Accept-Charset"
}

// listEqual compares two field values as comma-separated lists, whatever
// the lines and the whitespace around the commas (RFC 9111 §4.1: the values
// are normalised before comparing); fold: in any case.
func listEqual(a, b []string, fold bool) bool {
	var ia, ib listIter
	ia.vs, ib.vs = a, b
	for {
		x, okA := ia.next()
		y, okB := ib.next()
		if okA != okB || (x != y && (!fold || !httpfield.EqualFold(x, y))) {
			return false
		}
		if !okA {
			return true
		}
	}
}

// listIter walks the elements of comma-separated field lines, trimmed of
// whitespace, empty ones skipped, without allocating.
type listIter struct {
	vs []string
	s  string
}

func (it *listIter) next() (string, bool) {
	for {
		for it.s == "" {
			if len(it.vs) == 0 {
				return "", false
			}
			it.s, it.vs = it.vs[0], it.vs[1:]
		}
		var el string
		if el, it.s = httpfield.Next(it.s); el != "" {
			return el, true
		}
	}
}

func varyEqual(a, b []varyValue) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].name != b[i].name || a[i].present != b[i].present || !listEqual(a[i].values, b[i].values, caseless(a[i].name)) {
			return false
		}
	}
	return true
}

// varyValues records the request's values of the selecting headers.
func varyValues(names []string, h http.Header) []varyValue {
	if len(names) == 0 {
		return nil
	}
	out := make([]varyValue, len(names))
	for i, name := range names {
		vs, ok := h[name]
		out[i] = varyValue{name: name, values: slices.Clone(vs), present: ok}
	}
	return out
}

type field struct {
	name   string
	values []string
}

type ageValue struct {
	sec int64
	v   []string
}

// smallAges are the Age values of the first minute, shared by all hits.
var smallAges = func() (a [64][]string) {
	for i := range a {
		s := strconv.Itoa(i)
		a[i] = []string{s}[:1:1]
	}
	return
}()

// aeMatches reports whether q's Accept-Encoding selects this variant. The
// common case, a client sending the very same line, needs no parsing.
func (e *entry) aeMatches(q *request) bool {
	if len(q.ae) == 1 && e.aeRaw != "" && q.ae[0] == e.aeRaw {
		return true
	}
	return e.ae == q.aeMask()
}

// singleValue is vs[0] when vs has exactly one value.
func singleValue(vs []string) string {
	if len(vs) == 1 {
		return vs[0]
	}
	return ""
}

// freshness of an entry for one request.
const (
	fresh     = iota
	expired   // never served again: removed
	tooOldFor // fresh, but not for this request's max-age/min-fresh
)

func (e *entry) age(now time.Time) time.Duration {
	resident := now.Sub(e.stored)
	if resident < 0 {
		resident = 0
	}
	return e.initialAge + resident
}

// Once stale, what may still be done with an entry.

// keep reports whether a stale entry is worth keeping: it can be
// revalidated, or served stale a while longer (grace: how long past its
// lifetime an entry may be served when the app cannot be reached).
func (e *entry) keep(now time.Time, grace time.Duration) bool {
	if e.etagRaw != "" || e.lastModRaw != "" {
		return true
	}
	if e.stale.mustRevalidate {
		grace = 0
	}
	return e.age(now) < e.lifetime+max(e.stale.whileRevalidate, e.stale.ifError, grace)
}

// whileRevalidating reports whether the stale entry may be served while a
// background revalidation runs (stale-while-revalidate).
func (e *entry) whileRevalidating(now time.Time) bool {
	return e.stale.whileRevalidate > 0 && e.age(now) < e.lifetime+e.stale.whileRevalidate
}

// onError reports whether the stale entry may be served because the app
// failed: it answered 500, 502, 503 or 504 within stale-if-error, or it
// could not be reached (unreachable) within stale-if-error or the grace
// the cache allows (RFC 9111 §4.2.4: a disconnected cache may serve stale).
// Never for must-revalidate, proxy-revalidate or s-maxage.
func (e *entry) onError(now time.Time, unreachable bool, grace time.Duration) bool {
	if e.stale.mustRevalidate {
		return false
	}
	age := e.age(now)
	return age < e.lifetime+e.stale.ifError || (unreachable && age < e.lifetime+grace)
}

func (e *entry) usable(now time.Time, q *request) int {
	age := e.age(now)
	if age >= e.lifetime {
		return expired
	}
	if q.cc.maxAge >= 0 && age > time.Duration(q.cc.maxAge)*time.Second {
		return tooOldFor
	}
	if q.cc.minFresh > 0 && e.lifetime-age < time.Duration(q.cc.minFresh)*time.Second {
		return tooOldFor
	}
	return fresh
}

func (e *entry) ageHeader(age time.Duration) []string {
	sec := int64(age / time.Second)
	if sec < int64(len(smallAges)) {
		return smallAges[sec]
	}
	if p := e.ageCache.Load(); p != nil && p.sec == sec {
		return p.v
	}
	v := []string{strconv.FormatInt(sec, 10)}[:1:1]
	e.ageCache.Store(&ageValue{sec: sec, v: v})
	return v
}

// serve writes e as the response to q.
func (e *entry) serve(w http.ResponseWriter, q *request, now time.Time) {
	if !e.ref.Load() {
		e.ref.Store(true)
	}
	h := w.Header()
	age := e.ageHeader(e.age(now))
	if e.notModified(q) {
		for _, f := range e.h304 {
			h[f.name] = f.values
		}
		h["Age"] = age
		w.WriteHeader(http.StatusNotModified)
		return
	}
	if e.pre != nil {
		if cw, ok := w.(lean.CachedWriter); ok && cw.WriteCached(e.pre, age[0], e.body) {
			return
		}
	}
	for _, f := range e.header {
		h[f.name] = f.values
	}
	h["Age"] = age
	w.WriteHeader(e.status)
	if !q.head && len(e.body) > 0 {
		w.Write(e.body)
	}
}

// notModified evaluates If-None-Match, or else If-Modified-Since, against e
// (RFC 9110 §13.2.2), for 2xx entries only.
func (e *entry) notModified(q *request) bool {
	if e.status/100 != 2 {
		return false
	}
	if q.inm != nil {
		return etagListMatches(q.inm, e.etag)
	}
	if q.ims != nil && e.hasLastMod && len(q.ims) == 1 {
		t, err := http.ParseTime(q.ims[0])
		return err == nil && !e.lastMod.After(t)
	}
	return false
}

// etagListMatches is the weak comparison of If-None-Match (a list of
// entity-tags, or "*") with an entry's opaque-tag.
func etagListMatches(inm []string, opaque string) bool {
	for _, s := range inm {
		for {
			s = strings.TrimLeft(s, " \t,")
			if s == "" {
				break
			}
			if s[0] == '*' {
				return true
			}
			s = strings.TrimPrefix(s, "W/")
			if s != "" && s[0] == '"' {
				j := strings.IndexByte(s[1:], '"')
				if j < 0 {
					break
				}
				if opaque != "" && s[:j+2] == opaque {
					return true
				}
				s = s[j+2:]
				continue
			}
			// Malformed: skip to the next element.
			i := strings.IndexByte(s, ',')
			if i < 0 {
				break
			}
			s = s[i:]
		}
	}
	return false
}

// opaqueTag is the ETag without its weakness indicator, or "" when it is
// not one well-formed entity-tag.
func opaqueTag(vs []string) string {
	if len(vs) != 1 {
		return ""
	}
	s := strings.TrimPrefix(strings.TrimSpace(vs[0]), "W/")
	if len(s) < 2 || s[0] != '"' || s[len(s)-1] != '"' || strings.IndexByte(s[1:len(s)-1], '"') >= 0 {
		return ""
	}
	return s
}

// hopByHop are never stored.
var hopByHop = map[string]bool{
	"Connection": true, "Keep-Alive": true, "Proxy-Connection": true,
	"Proxy-Authenticate": true, "Proxy-Authorization": true, "Te": true,
	"Transfer-Encoding": true, "Upgrade": true,
}

// cloneHeader copies h with canonical keys, merging case variants. Values
// are new slices of the same strings, so the caller may mutate its header
// afterwards. Everything is kept, hop-by-hop fields included, so that the
// rules see all of it (a Set-Cookie named in Connection still forbids
// storing); stripHopByHop runs after them.
func cloneHeader(h http.Header) (http.Header, int64) {
	out := make(http.Header, len(h))
	var size int64
	for k, vs := range h {
		ck := textproto.CanonicalMIMEHeaderKey(k)
		prev := out[ck]
		nv := make([]string, 0, len(prev)+len(vs))
		nv = append(append(nv, prev...), vs...)
		out[ck] = nv
		size += int64(len(ck)) + 32
		for _, v := range vs {
			size += int64(len(v)) + 16
		}
	}
	return out, size
}

// stripHopByHop removes hop-by-hop fields and those named in Connection.
func stripHopByHop(h http.Header) {
	conn := h["Connection"]
	for k := range h {
		if hopByHop[k] || httpfield.HasToken(conn, k) {
			delete(h, k)
		}
	}
}

// h304Fields are what a 304 carries (RFC 9110 §15.4.5); Last-Modified only
// without an ETag.
var h304Fields = []string{"Cache-Control", "Content-Location", "Date", "Etag", "Expires", "Vary"}

// entryOverhead approximates the memory of an entry beyond its header and
// body, for MaxBytes.
const entryOverhead = 400

// newEntry builds the entry for a response judged storable. h is a clone
// (cloneHeader) that newEntry owns.
func newEntry(k key, status int, h http.Header, hsize int64, body []byte, v verdict, ae uint16, aeRaw string, now time.Time) *entry {
	e := &entry{
		k: k, varyAE: v.varyAE, status: status,
		stored: now, initialAge: v.initialAge, lifetime: v.lifetime,
	}
	if v.varyAE {
		e.ae, e.aeRaw = ae, aeRaw
	}
	stripHopByHop(h)
	delete(h, "Age")
	delete(h, "Trailer")
	delete(h, "Content-Length")
	if status != http.StatusNoContent {
		h["Content-Length"] = []string{strconv.Itoa(len(body))}
	}
	if len(h["Date"]) == 0 {
		h["Date"] = []string{now.UTC().Format(http.TimeFormat)}
	}
	e.etag = opaqueTag(h["Etag"])
	if e.etag != "" {
		e.etagRaw = strings.TrimSpace(h["Etag"][0])
	}
	e.stale = v.stale
	if lm := h["Last-Modified"]; len(lm) == 1 {
		if t, err := http.ParseTime(lm[0]); err == nil {
			e.lastMod, e.hasLastMod = t, true
			e.lastModRaw = lm[0]
		}
	}
	e.header = make([]field, 0, len(h))
	for name, vs := range h {
		// Full slices: an append by a later handler copies instead of
		// writing into the shared array.
		e.header = append(e.header, field{name, vs[:len(vs):len(vs)]})
	}
	for _, name := range h304Fields {
		if vs := h[name]; len(vs) > 0 {
			e.h304 = append(e.h304, field{name, vs[:len(vs):len(vs)]})
		}
	}
	if vs := h["Last-Modified"]; len(vs) > 0 && e.etag == "" && len(h["Etag"]) == 0 {
		e.h304 = append(e.h304, field{"Last-Modified", vs[:len(vs):len(vs)]})
	}
	if len(body) > 0 {
		e.body = make([]byte, len(body))
		copy(e.body, body)
	}
	e.pre = lean.NewCachedHead(status, h, int64(len(e.body)))
	e.size = entryOverhead + hsize + int64(len(body)) + int64(len(k.host)+len(k.uri)+len(k.cookie)+len(k.extra)+len(e.aeRaw)) +
		int64(len(e.h304))*16
	if e.pre != nil {
		e.size += int64(e.pre.Size()) + int64(len(h))*48 // and the map it keeps
	}
	return e
}
