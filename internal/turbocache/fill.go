package turbocache

import (
	"github.com/ferry-server/ferry/internal/httpfield"

	"context"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Fill is a missed request whose response may be stored. It is used by the
// one goroutine that handles the request:
//
//	defer fill.Done()
//	… response head from the app …
//	if fill.Storable(status, header) {
//		… collect the body while sending it; if it stays within Limit:
//		fill.Store(status, header, body)
//	}
//
// Other requests for the same key may be waiting for this fill: Storable
// releases them as soon as the head shows the response cannot be stored,
// and Done releases them in any case. A caller that gives up on storing for
// another reason (the body grew past Limit, the app failed, the client
// left) should call Done right away rather than at the end of a long
// response.
type Fill struct {
	c      *Cache
	sh     *shard
	k      key
	ae     uint16
	aeRaw  string
	auth   bool
	plain  bool
	gen    uint64
	purge  uint64
	fl     *flight // non-nil: others wait for this fill
	offer  bool    // Store called, or Storable said no
	done   bool
	reason string
	hdr    http.Header // the request's, for the Vary values of the entry

	// stale is the stored entry this fill would replace, when it may be
	// revalidated or served on error; cond: the request to the app carries
	// its validators; bg: a background revalidation, whose response goes to
	// no client.
	stale    *entry
	cond, bg bool
}

// revalidate makes the fill one that may refresh or fall back on e (nil:
// none). When e has validators and the client sent no precondition of its
// own, they are added to r's header: the app then answers 304 if e is still
// good, and Answer refreshes e instead of the app sending the body again.
//
// It also announces Ferry to the app as a surrogate (Surrogate-Capability),
// so that Surrogate-Control directives may be aimed at it.
func (f *Fill) revalidate(r *http.Request, q *request, e *entry) {
	announce(r.Header)
	if e == nil {
		return
	}
	f.stale = e
	if q.inm != nil || q.ims != nil || (e.etagRaw == "" && e.lastModRaw == "") {
		return
	}
	f.cond = true
	setValidators(r.Header, e)
}

// announce adds Ferry's device to the request's Surrogate-Capability
// (after any a surrogate in front announced).
func announce(h http.Header) {
	vs := h["Surrogate-Capability"]
	for _, v := range vs {
		if strings.Contains(v, SurrogateDevice+"=") {
			return
		}
	}
	if len(vs) == 0 {
		h["Surrogate-Capability"] = surrogateCapability
		return
	}
	h["Surrogate-Capability"] = append(vs[:len(vs):len(vs)], surrogateCapability[0])
}

// setValidators adds e's validators to a request header (RFC 9111 §4.3.1).
func setValidators(h http.Header, e *entry) {
	if e.etagRaw != "" {
		h["If-None-Match"] = []string{e.etagRaw}
	}
	if e.lastModRaw != "" {
		h["If-Modified-Since"] = []string{e.lastModRaw}
	}
}

// Request returns the request a background revalidation sends to the app:
// a copy of r, which the caller may then reuse, with no deadline and the
// stale entry's validators.
func (f *Fill) Request(r *http.Request) *http.Request {
	r2 := r.Clone(context.Background())
	if f == nil {
		return r2
	}
	announce(r2.Header)
	if f.cond {
		setValidators(r2.Header, f.stale)
	}
	f.hdr = r2.Header
	return r2
}

// Background reports whether the fill is a background revalidation, whose
// response goes to no client.
func (f *Fill) Background() bool { return f != nil && f.bg }

// Answer lets the cache answer in the app's place, given the head of the
// app's response to a fill's request; it reports whether it wrote the
// response to w, in which case the caller discards the app's.
//
//   - 304 to a revalidation: the stored entry is refreshed with the 304's
//     header fields (RFC 9111 §4.3.4) and served as the response.
//   - 500, 502, 503, 504 when the stale entry may be served on error
//     (stale-if-error, RFC 5861 §4): the stale entry is served.
func (f *Fill) Answer(w http.ResponseWriter, status int, header http.Header) bool {
	if f == nil || f.stale == nil || f.done || f.offer {
		return false
	}
	switch {
	case status == http.StatusNotModified && f.cond:
		now := f.c.now()
		e := f.refresh(header, now)
		f.offer = true
		f.release()
		f.c.revalidated.Add(1)
		if !f.bg {
			e.serve(w, &request{}, now)
		}
		return true
	case status == 500 || status == 502 || status == 503 || status == 504:
		return f.ServeStale(w, false)
	}
	return false
}

// ServeStale serves the stale entry in place of an error, when the entry
// may be served on error (stale-if-error; or, when the app could not be
// reached at all, Options.StaleIfUnreachable); it reports whether it did.
func (f *Fill) ServeStale(w http.ResponseWriter, unreachable bool) bool {
	if f == nil || f.stale == nil || f.done || f.offer {
		return false
	}
	now := f.c.now()
	if !f.stale.onError(now, unreachable, f.c.grace) {
		return false
	}
	f.offer = true
	f.release()
	f.c.staleServed.Add(1)
	if !f.bg {
		f.stale.serve(w, &request{}, now)
	}
	return true
}

// refresh builds the entry a 304 makes of the stale one (mergeOn304); it
// is stored if the rules still allow, otherwise the old entry is dropped
// and the refreshed one only answers this request.
func (f *Fill) refresh(h304 http.Header, now time.Time) *entry {
	old := f.stale
	h, hsize := cloneHeader(mergeOn304(old.header, h304))
	v := judge(old.status, h, f.facts(), now)
	e := newEntry(old.k, old.status, h, hsize, old.body, v, old.ae, old.aeRaw, now)
	e.varyAE = old.varyAE
	e.vary = old.vary
	if v.reason != okStored || !varyEqualNames(v.vary, old.vary) || !f.c.insert(f, e, now) {
		f.c.remove(old)
	}
	return e
}

// mergeOn304 is the header of a stored response updated by a 304 (RFC 9111
// §3.2, §4.3.4): the 304's fields replace the stored ones, but for those
// that describe the stored body or pick the entry, and hop-by-hop ones. A
// 304 without Date leaves none, so that the entry is dated when refreshed.
func mergeOn304(stored []field, h304 http.Header) http.Header {
	h := make(http.Header, len(stored)+len(h304))
	for _, fl := range stored {
		h[fl.name] = fl.values
	}
	upd, _ := cloneHeader(h304)
	if len(upd["Date"]) == 0 {
		delete(h, "Date")
	}
	conn := upd["Connection"]
	for k, vs := range upd {
		if keepOn304[k] || hopByHop[k] || httpfield.HasToken(conn, k) {
			continue
		}
		h[k] = vs
	}
	return h
}

// keepOn304 are the stored fields a 304 does not replace: they describe the
// stored body (its length, coding, digest, range) or pick the entry.
var keepOn304 = map[string]bool{
	"Content-Length": true, "Content-Encoding": true, "Content-Md5": true,
	"Content-Range": true, "Etag": true, "Vary": true, "Trailer": true,
}

// varyEqualNames reports whether the selecting headers are the same.
func varyEqualNames(names []string, vv []varyValue) bool {
	if len(names) != len(vv) {
		return false
	}
	for i := range names {
		if names[i] != vv[i].name {
			return false
		}
	}
	return true
}

// Limit is the largest body Store can accept: the caller need not keep a
// copy of a larger body.
func (f *Fill) Limit() int64 { return f.c.maxEntrySize }

// Storable tells from the response head whether the response could be
// stored. When it cannot, the fill is settled at once: waiters are released
// to go to the app, Store will do nothing, and the body need not be kept.
// Calling it is optional (Store applies the same rules) but it is what keeps
// a streamed or large uncacheable response from holding up the requests
// that wait for it.
func (f *Fill) Storable(status int, header http.Header) bool {
	if f == nil || f.offer || f.done {
		return false
	}
	reason := f.precheck(status, header, -1)
	if reason == "" {
		h, _ := cloneHeader(header)
		reason = judge(status, h, f.facts(), f.c.now()).reason
	}
	if reason == okStored {
		return true
	}
	f.offer = true
	f.refused(status, reason)
	f.release()
	return false
}

// Store offers the complete response to the missed request; it is stored
// only if the rules allow. body must be the whole body (a partial one must
// not be offered; when the header has a Content-Length that differs, the
// response is refused). Store copies what it keeps: the caller may reuse
// header and body afterwards. It must be called at most once, before Done;
// further calls are ignored.
func (f *Fill) Store(status int, header http.Header, body []byte) {
	if f == nil || f.offer || f.done {
		return
	}
	f.offer = true
	f.reason = f.store(status, header, body)
	if f.reason == okStored {
		f.c.stores.Add(1)
		if f.plain {
			f.c.clearPass(f.k.primary)
		}
		return
	}
	f.refused(status, f.reason)
}

func (f *Fill) facts() reqFacts {
	return reqFacts{auth: f.auth, ae: f.ae, varyCookie: f.c.varyCookie != ""}
}

// refused counts a response that is not stored and, for a plain request,
// remembers that its key is uncacheable so that the next requests for it go
// to the app in parallel instead of queueing behind one another. Not for
// server errors: a failing app should not turn coalescing off.
func (f *Fill) refused(status int, reason string) {
	f.reason = reason
	f.c.rejected.Add(1)
	if f.plain && status < 500 && reason != rejInvalidated {
		f.c.markPass(f.k.primary, f.c.now())
	}
}

// precheck refuses the common uncacheable responses on the header as given,
// before anything is copied; "" means judge must decide. bodyLen < 0:
// unknown yet.
func (f *Fill) precheck(status int, header http.Header, bodyLen int) string {
	if !storableStatus(status) {
		return rejStatus
	}
	targeted := len(header["Cdn-Cache-Control"]) > 0 || len(header["Surrogate-Control"]) > 0
	if len(header["Cache-Control"]) == 0 && len(header["Expires"]) == 0 && !targeted {
		return rejNoFreshness
	}
	// judge checks all of this again on a canonical copy, whatever the case
	// of the keys; these are the fast refusals.
	if len(header["Set-Cookie"]) > 0 {
		return rejSetCookie
	}
	if !targeted {
		if why := forbiddingWord(header["Cache-Control"]); why != "" {
			return why
		}
	}
	limit := f.c.maxEntrySize
	if int64(bodyLen) > limit {
		return rejTooBig
	}
	if cl := header["Content-Length"]; len(cl) == 1 {
		if n, err := strconv.ParseInt(cl[0], 10, 64); err == nil && n > limit {
			return rejTooBig
		}
	}
	return ""
}

func (f *Fill) store(status int, header http.Header, body []byte) string {
	if why := f.precheck(status, header, len(body)); why != "" {
		return why
	}
	c := f.c
	now := c.now()
	h, hsize := cloneHeader(header)
	v := judge(status, h, f.facts(), now)
	if v.reason != okStored {
		return v.reason
	}
	if cl := h["Content-Length"]; len(cl) > 0 {
		n, err := strconv.ParseInt(cl[0], 10, 64)
		if len(cl) != 1 || err != nil || n != int64(len(body)) {
			return rejLength
		}
	}
	if status == http.StatusNoContent && len(body) > 0 {
		return rejLength
	}
	e := newEntry(f.k, status, h, hsize, body, v, f.ae, f.aeRaw, now)
	e.vary = varyValues(v.vary, f.hdr)
	for _, vv := range e.vary {
		e.size += int64(len(vv.name)) + 32
		for _, s := range vv.values {
			e.size += int64(len(s)) + 16
		}
	}
	if e.size > c.maxEntrySize {
		return rejTooBig
	}
	if !c.insert(f, e, now) {
		return rejInvalidated
	}
	return okStored
}

// Done ends the fill; requests waiting for it are released. Always call it
// (e.g. deferred), whether or not Store was called; later calls do nothing.
func (f *Fill) Done() {
	if f == nil || f.done {
		return
	}
	f.done = true
	f.release()
	f.sh.mu.Lock()
	if n := f.sh.fills[f.k.base] - 1; n > 0 {
		f.sh.fills[f.k.base] = n
	} else {
		delete(f.sh.fills, f.k.base)
	}
	f.sh.mu.Unlock()
}

// release lets the waiters go: they find the stored entry, or go to the app.
func (f *Fill) release() {
	fl := f.fl
	if fl == nil {
		return
	}
	f.fl = nil
	f.sh.mu.Lock()
	if f.sh.flights[f.k.primary] == fl {
		delete(f.sh.flights, f.k.primary)
	}
	f.sh.mu.Unlock()
	close(fl.done)
}

// maxWait bounds how long a request waits for another's fetch, as nginx's
// proxy_cache_lock_timeout: past it, it goes to the app itself.
const maxWait = 5 * time.Second
