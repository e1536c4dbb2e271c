package turbocache

import (
	"net/http"
	"strconv"
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
	if len(header["Cache-Control"]) == 0 && len(header["Expires"]) == 0 {
		return rejNoFreshness
	}
	// judge checks all of this again on a canonical copy, whatever the case
	// of the keys; these are the fast refusals.
	if len(header["Set-Cookie"]) > 0 {
		return rejSetCookie
	}
	if why := forbiddingWord(header["Cache-Control"]); why != "" {
		return why
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
