package turbocache

import (
	"github.com/ferry-server/ferry/internal/httpfield"
	"hash/maphash"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"time"
)

// Defaults for zero (or negative) Options fields.
const (
	DefaultMaxEntries   = 10000
	DefaultMaxBytes     = 64 << 20
	DefaultMaxEntrySize = 1 << 20
	DefaultMaxVariants  = 32
)

// Options configure a Cache.
type Options struct {
	// MaxEntries bounds the number of stored responses. Default 10000.
	MaxEntries int
	// MaxBytes bounds their approximate memory (bodies, headers, keys and
	// bookkeeping). Default 64 MiB.
	MaxBytes int64
	// MaxEntrySize: larger responses (body and headers) are never stored.
	// Default 1 MiB; never more than MaxBytes.
	MaxEntrySize int64
	// VaryByCookie is the name of a cookie (--vary-turbocache-by-cookie)
	// whose value is part of every key: users with different values get
	// their own entries, users without it share. It also allows storing
	// responses with Vary: Cookie. Other cookies are ignored.
	VaryByCookie string
	// StaleIfUnreachable is how long past its lifetime an entry may still
	// be served when the app cannot be reached (connection refused or
	// dropped, no process in time, restarting), unless the response said
	// must-revalidate, proxy-revalidate or s-maxage. 0: never, beyond what
	// the app allows with stale-if-error.
	StaleIfUnreachable time.Duration
	// MaxVariants bounds the variants kept of one resource (responses with
	// Vary, one per set of values of the selecting request headers); past
	// it, storing a variant drops the oldest. Default 32.
	MaxVariants int
	// Now is the clock, for tests. Default time.Now.
	Now func() time.Time
}

// Stats are counters since New (Entries and Bytes: now).
type Stats struct {
	Hits          int64 `json:"hits"`          // requests answered from the cache (incl. 304s)
	Misses        int64 `json:"misses"`        // GET/HEAD requests that went to the app
	Stores        int64 `json:"stores"`        // responses stored
	Rejected      int64 `json:"rejected"`      // responses offered to Store but not stored
	Evictions     int64 `json:"evictions"`     // entries dropped to stay within the bounds
	Invalidations int64 `json:"invalidations"` // entries dropped by unsafe requests
	Coalesced     int64 `json:"coalesced"`     // requests that waited for another's fetch
	Revalidated   int64 `json:"revalidated"`   // stale entries refreshed by a 304 from the app
	Stale         int64 `json:"stale"`         // stale entries served (stale-while-revalidate, stale-if-error)
	Entries       int64 `json:"entries"`
	Bytes         int64 `json:"bytes"`
}

const (
	numShards = 64
	genSlots  = 1024
	passSlots = 4096
	// passTTL is how long a key whose response was uncacheable is fetched
	// without coalescing ("hit-for-pass"), so that concurrent requests for
	// an uncacheable URL are never serialised behind each other.
	passTTL = 30 // seconds
)

// Cache is the response cache. Its methods are safe for concurrent use.
type Cache struct {
	maxEntries   int64
	maxBytes     int64
	maxEntrySize int64
	maxVariants  int
	grace        time.Duration
	varyCookie   string
	now          func() time.Time
	seed         maphash.Seed
	epoch        time.Time

	shards [numShards]shard

	// gens are bumped by invalidations (per URL hash slot) and purges; a
	// fill started before a bump does not store.
	gens   [genSlots]atomic.Uint64
	purges atomic.Uint64

	// pass remembers, per primary hash slot, until when (seconds since
	// epoch, low 32 bits) a key is not coalesced; high 32 bits: hash tag.
	pass [passSlots]atomic.Uint64

	// mu orders all changes to the stored set (taken before a shard's mu):
	// the CLOCK list and the bounds. Hits never take it.
	mu         sync.Mutex
	head, tail *entry

	// onWait, for tests, is called when a request starts waiting for
	// another's fetch.
	onWait func()

	entries, bytes                             atomic.Int64
	stores, rejected, evictions, invalidations atomic.Int64
	coalesced, otherMisses                     atomic.Int64
	revalidated, staleServed                   atomic.Int64
}

type shard struct {
	mu      shardLock
	misses  atomic.Int64
	m       map[uint64]*entry  // primary hash → chain of entries
	urls    map[uint64]*entry  // base hash → list of all entries of that URL
	flights map[uint64]*flight // primary hash → fetch in progress
	fills   map[uint64]int32   // base hash → fills under way
	_       [64]byte
}

// flight is a fetch in progress that other requests for the key wait for.
type flight struct {
	k    *key
	done chan struct{}
}

// New returns an empty cache.
func New(o Options) *Cache {
	c := &Cache{
		maxEntries:   int64(o.MaxEntries),
		maxBytes:     o.MaxBytes,
		maxEntrySize: o.MaxEntrySize,
		maxVariants:  o.MaxVariants,
		grace:        max(o.StaleIfUnreachable, 0),
		varyCookie:   o.VaryByCookie,
		now:          o.Now,
		seed:         maphash.MakeSeed(),
	}
	if c.maxEntries <= 0 {
		c.maxEntries = DefaultMaxEntries
	}
	if c.maxBytes <= 0 {
		c.maxBytes = DefaultMaxBytes
	}
	if c.maxEntrySize <= 0 {
		c.maxEntrySize = DefaultMaxEntrySize
	}
	c.maxEntrySize = min(c.maxEntrySize, c.maxBytes)
	if c.maxVariants <= 0 {
		c.maxVariants = DefaultMaxVariants
	}
	if c.now == nil {
		c.now = time.Now
	}
	c.epoch = c.now()
	for i := range c.shards {
		sh := &c.shards[i]
		sh.m = make(map[uint64]*entry)
		sh.urls = make(map[uint64]*entry)
		sh.flights = make(map[uint64]*flight)
		sh.fills = make(map[uint64]int32)
	}
	return c
}

func (c *Cache) shard(base uint64) *shard { return &c.shards[base%numShards] }

func genIndex(base uint64) uint64 { return (base >> 8) % genSlots }

// Lookup is called for every request.
//
// For an unsafe method (anything but GET, HEAD, OPTIONS, TRACE, CONNECT:
// POST, PUT, PATCH, DELETE, …) it invalidates the entries of the request's
// URL and returns (false, nil); call Invalidate as well when its response
// arrives.
//
// For GET and HEAD it serves a fresh entry (with Age; a 304 for a matching
// If-None-Match or If-Modified-Since; HEAD from a GET entry), or a 504 for a
// Cache-Control: only-if-cached miss, and returns (true, nil). Otherwise it
// returns (false, fill): fill is nil when the response could not be stored
// anyway (HEAD; Range, Upgrade, a request body, Cache-Control: no-store, …),
// else a *Fill the caller must end with Done.
//
// A stale entry with a validator is revalidated: Lookup adds
// If-None-Match / If-Modified-Since to r's header before returning the
// fill, and the caller hands the app's response head to fill.Answer. A
// stale entry the app allows to be served while revalidating
// (stale-while-revalidate) is served, and Lookup returns (true, fill) with
// a fill for one background revalidation: the caller sends
// fill.Request(r) to the app, as for a miss, before r is reused.
//
// Coalescing: when another request is already fetching the same key, Lookup
// waits for it (bounded by r.Context(), and by 5 seconds); if that response
// was stored, it serves it, otherwise it returns a fill of its own (or nil)
// and the request goes to the app itself, without waiting again. Keys whose
// response was recently uncacheable are not coalesced at all ("hit for
// pass"), so uncacheable URLs never queue.
func (c *Cache) Lookup(w http.ResponseWriter, r *http.Request) (served bool, fill *Fill) {
	switch r.Method {
	case http.MethodGet, http.MethodHead:
	case http.MethodOptions, http.MethodTrace, http.MethodConnect:
		return false, nil
	default:
		c.invalidate(r.Host, requestURI(r))
		return false, nil
	}
	var q request
	if !c.parse(r, &q) {
		c.otherMisses.Add(1)
		return false, nil
	}
	sh := c.shard(q.base)
	now := c.now()
	var stale *entry
	if q.serve {
		stripe := sh.mu.RLock()
		e := sh.find(&q)
		var fl *flight
		if e == nil {
			fl = sh.flightFor(&q)
		}
		sh.mu.RUnlock(stripe)
		if e != nil {
			switch e.usable(now, &q) {
			case fresh:
				sh.mu.hit(stripe)
				e.serve(w, &q, now)
				return true, nil
			case expired:
				switch {
				case e.whileRevalidating(now) && q.cc.maxAge < 0 && q.cc.minFresh == 0:
					sh.mu.hit(stripe)
					c.staleServed.Add(1)
					e.serve(w, &q, now)
					return true, c.backgroundFill(&q, sh, e)
				case e.keep(now, c.grace):
					stale = e
				default:
					c.remove(e)
				}
			case tooOldFor:
				// Refresh it, without waiting for or leading others.
				q.plain = false
			}
		} else if fl != nil {
			return c.wait(w, r, &q, sh, fl)
		}
	}
	if q.cc.onlyIfCached {
		sh.misses.Add(1)
		w.WriteHeader(http.StatusGatewayTimeout)
		return true, nil
	}
	if q.plain && !c.passed(q.primary, now) {
		sh.mu.Lock()
		e := sh.find(&q)
		if e != nil && e.usable(now, &q) == fresh {
			sh.mu.Unlock()
			sh.mu.hit(-1)
			e.serve(w, &q, now)
			return true, nil
		}
		if fl := sh.flightFor(&q); fl != nil {
			sh.mu.Unlock()
			return c.wait(w, r, &q, sh, fl)
		}
		if e != nil && e.keep(now, c.grace) {
			stale = e
		}
		f := c.newFill(&q, sh)
		if _, taken := sh.flights[q.primary]; !taken { // taken: a hash collision
			f.fl = &flight{k: &f.k, done: make(chan struct{})}
			sh.flights[q.primary] = f.fl
		}
		sh.mu.Unlock()
		sh.misses.Add(1)
		f.revalidate(r, &q, stale)
		return false, f
	}
	sh.misses.Add(1)
	if !q.store {
		return false, nil
	}
	sh.mu.Lock()
	f := c.newFill(&q, sh)
	sh.mu.Unlock()
	f.revalidate(r, &q, stale)
	return false, f
}

// backgroundFill returns the fill of the one background revalidation of
// e, or nil when one (or a fetch) is already under way.
func (c *Cache) backgroundFill(q *request, sh *shard, e *entry) *Fill {
	if !q.store {
		return nil
	}
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if _, taken := sh.flights[q.primary]; taken {
		return nil
	}
	f := c.newFill(q, sh)
	f.fl = &flight{k: &f.k, done: make(chan struct{})}
	sh.flights[q.primary] = f.fl
	f.stale, f.bg = e, true
	f.cond = e.etagRaw != "" || e.lastModRaw != ""
	return f
}

// wait waits for fl, then serves what it stored or sends the request to the
// app without waiting again.
func (c *Cache) wait(w http.ResponseWriter, r *http.Request, q *request, sh *shard, fl *flight) (bool, *Fill) {
	c.coalesced.Add(1)
	if c.onWait != nil {
		c.onWait()
	}
	timer := time.NewTimer(maxWait)
	select {
	case <-fl.done:
		timer.Stop()
	case <-timer.C:
		// The fetch takes long (a slow app, or a stream): go to the app.
	case <-r.Context().Done():
		timer.Stop()
		sh.misses.Add(1)
		return false, nil
	}
	now := c.now()
	stripe := sh.mu.RLock()
	e := sh.find(q)
	sh.mu.RUnlock(stripe)
	if e != nil && e.usable(now, q) == fresh {
		sh.mu.hit(stripe)
		e.serve(w, q, now)
		return true, nil
	}
	sh.misses.Add(1)
	if q.cc.onlyIfCached {
		w.WriteHeader(http.StatusGatewayTimeout)
		return true, nil
	}
	if !q.store {
		return false, nil
	}
	q.plain = false
	sh.mu.Lock()
	f := c.newFill(q, sh)
	sh.mu.Unlock()
	if e == nil || !e.keep(now, c.grace) {
		e = nil
	}
	f.revalidate(r, q, e)
	return false, f
}

// newFill starts a fill for q. Call with sh.mu held: the fill counts as
// under way for its URL from then on (see invalidate).
func (c *Cache) newFill(q *request, sh *shard) *Fill {
	sh.fills[q.base]++
	return &Fill{
		c: c, sh: sh, k: q.makeKey(), ae: q.aeMask(), aeRaw: singleValue(q.ae), auth: q.auth, plain: q.plain,
		gen: c.gens[genIndex(q.base)].Load(), purge: c.purges.Load(), hdr: q.hdr,
	}
}

// find returns the entry for q, fresh or not. Call with sh.mu held.
func (sh *shard) find(q *request) *entry {
	for e := sh.m[q.primary]; e != nil; e = e.chain {
		if e.k.matches(q) && (!e.varyAE || e.aeMatches(q)) && (e.vary == nil || e.varyMatches(q.hdr)) {
			return e
		}
	}
	return nil
}

// flightFor returns the fetch in progress for q's key. Call with sh.mu held.
func (sh *shard) flightFor(q *request) *flight {
	if fl := sh.flights[q.primary]; fl != nil && fl.k.matches(q) {
		return fl
	}
	return nil
}

// Uncacheable keys: "hit-for-pass" marks.

func (c *Cache) sec(now time.Time) uint32 {
	d := now.Sub(c.epoch)
	if d < 0 {
		return 1
	}
	return uint32(d/time.Second) + 1
}

func (c *Cache) passed(h uint64, now time.Time) bool {
	v := c.pass[h%passSlots].Load()
	return v != 0 && v>>32 == h>>32 && uint32(v) > c.sec(now)
}

func (c *Cache) markPass(h uint64, now time.Time) {
	c.pass[h%passSlots].Store(h>>32<<32 | uint64(c.sec(now)+passTTL))
}

func (c *Cache) clearPass(h uint64) {
	s := &c.pass[h%passSlots]
	if v := s.Load(); v != 0 && v>>32 == h>>32 {
		s.CompareAndSwap(v, 0)
	}
}

// Changes to the stored set. Lock order: c.mu, then a shard's mu.

// insert stores e for f unless an invalidation or purge happened since f
// began; it supersedes the entries e replaces and evicts to stay in bounds.
func (c *Cache) insert(f *Fill, e *entry, now time.Time) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	sh := f.sh
	sh.mu.Lock()
	if c.gens[genIndex(e.k.base)].Load() != f.gen || c.purges.Load() != f.purge {
		sh.mu.Unlock()
		return false
	}
	variants := 0
	for x := sh.m[e.k.primary]; x != nil; {
		next := x.chain
		if x.k.same(&e.k) {
			if (!x.varyAE || !e.varyAE || x.ae == e.ae) && varyEqual(x.vary, e.vary) {
				c.unlinkLocked(sh, x)
			} else if variants++; variants >= c.maxVariants {
				// The chain runs newest first: this and the rest are the
				// oldest variants.
				c.unlinkLocked(sh, x)
			}
		}
		x = next
	}
	e.chain = sh.m[e.k.primary]
	sh.m[e.k.primary] = e
	if head := sh.urls[e.k.base]; head != nil {
		head.uprev = e
		e.unext = head
	}
	sh.urls[e.k.base] = e
	c.pushBack(e)
	e.linked = true
	c.entries.Add(1)
	c.bytes.Add(e.size)
	sh.mu.Unlock()
	c.evictLocked(e, now)
	return true
}

func (k *key) same(o *key) bool {
	return k.primary == o.primary && k.host == o.host && k.uri == o.uri && k.tls == o.tls &&
		k.hasCookie == o.hasCookie && k.cookie == o.cookie && k.extra == o.extra
}

// unlinkLocked removes e from its shard and the CLOCK list. Call with c.mu
// and sh.mu held.
func (c *Cache) unlinkLocked(sh *shard, e *entry) {
	if p := sh.m[e.k.primary]; p == e {
		if e.chain == nil {
			delete(sh.m, e.k.primary)
		} else {
			sh.m[e.k.primary] = e.chain
		}
	} else {
		for p != nil && p.chain != e {
			p = p.chain
		}
		if p != nil {
			p.chain = e.chain
		}
	}
	e.chain = nil
	switch {
	case e.uprev != nil:
		e.uprev.unext = e.unext
	case e.unext != nil:
		sh.urls[e.k.base] = e.unext
	default:
		delete(sh.urls, e.k.base)
	}
	if e.unext != nil {
		e.unext.uprev = e.uprev
	}
	e.uprev, e.unext = nil, nil
	c.listRemove(e)
	e.linked = false
	c.entries.Add(-1)
	c.bytes.Add(-e.size)
}

// remove drops e if it is still stored (an expired entry found by a hit).
func (c *Cache) remove(e *entry) {
	c.mu.Lock()
	sh := c.shard(e.k.base)
	sh.mu.Lock()
	if e.linked {
		c.unlinkLocked(sh, e)
	}
	sh.mu.Unlock()
	c.mu.Unlock()
}

// evictLocked drops entries until the bounds hold: CLOCK (second chance),
// starting with the least recently stored; expired entries first come,
// first dropped whatever their reference bit. just (the entry being
// stored) is spared. Call with c.mu held.
func (c *Cache) evictLocked(just *entry, now time.Time) {
	for c.entries.Load() > c.maxEntries || c.bytes.Load() > c.maxBytes {
		e := c.head
		if e == nil {
			return
		}
		if e == just {
			if e.next == nil {
				return
			}
			c.moveToBack(e)
			continue
		}
		if e.ref.Load() && e.age(now) < e.lifetime {
			e.ref.Store(false)
			c.moveToBack(e)
			continue
		}
		sh := c.shard(e.k.base)
		sh.mu.Lock()
		c.unlinkLocked(sh, e)
		sh.mu.Unlock()
		c.evictions.Add(1)
	}
}

func (c *Cache) pushBack(e *entry) {
	e.prev, e.next = c.tail, nil
	if c.tail != nil {
		c.tail.next = e
	} else {
		c.head = e
	}
	c.tail = e
}

func (c *Cache) listRemove(e *entry) {
	if e.prev != nil {
		e.prev.next = e.next
	} else {
		c.head = e.next
	}
	if e.next != nil {
		e.next.prev = e.prev
	} else {
		c.tail = e.prev
	}
	e.prev, e.next = nil, nil
}

func (c *Cache) moveToBack(e *entry) {
	c.listRemove(e)
	c.pushBack(e)
}

// invalidate drops every entry of host+uri (all variants) and keeps fills
// already under way for it from storing. It returns how many it dropped.
func (c *Cache) invalidate(host, uri string) int {
	base := c.baseHash(host, uri)
	sh := c.shard(base)
	stripe := sh.mu.RLock()
	some, filling := sh.urls[base] != nil, sh.fills[base] > 0
	if filling {
		// Fills of this URL under way must not store what they got. The
		// generation slot is shared by many URLs, so it moves only when
		// one of this URL is under way: a busy write-heavy URL does not
		// keep others' fills from storing.
		c.gens[genIndex(base)].Add(1)
	}
	sh.mu.RUnlock(stripe)
	if !some {
		return 0
	}
	c.mu.Lock()
	sh.mu.Lock()
	n := 0
	for e := sh.urls[base]; e != nil; {
		next := e.unext
		if e.k.uri == uri && equalLower(e.k.host, host) {
			c.unlinkLocked(sh, e)
			n++
		}
		e = next
	}
	sh.mu.Unlock()
	c.mu.Unlock()
	c.invalidations.Add(int64(n))
	return n
}

// Invalidate is called with the response to an unsafe request (Lookup has
// already invalidated the URL when the request arrived). It invalidates the
// URL again, closing the window in which a GET that overlapped the write
// could have stored the old state, and, for a non-error status, the
// same-host URLs in Location and Content-Location (RFC 9111 §4.4). It does
// nothing for safe methods.
func (c *Cache) Invalidate(r *http.Request, status int, header http.Header) {
	switch r.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace, http.MethodConnect:
		return
	}
	uri := requestURI(r)
	c.invalidate(r.Host, uri)
	if status < 200 || status >= 400 {
		return
	}
	for _, name := range [...]string{"Location", "Content-Location"} {
		for _, v := range header[name] {
			if u := sameHostTarget(r, v); u != "" && u != uri {
				c.invalidate(r.Host, u)
			}
		}
	}
}

// sameHostTarget resolves a Location-like value against the request and
// returns its request-target when it is on the request's host.
func sameHostTarget(r *http.Request, v string) string {
	u, err := url.Parse(v)
	if err != nil {
		return ""
	}
	if u.Scheme != "" && u.Scheme != "http" && u.Scheme != "https" {
		return ""
	}
	if u.Host != "" && !equalLower(lowerASCII(u.Host), r.Host) {
		return ""
	}
	base := &url.URL{Path: r.URL.Path, RawPath: r.URL.RawPath, RawQuery: r.URL.RawQuery}
	ref := base.ResolveReference(&url.URL{Path: u.Path, RawPath: u.RawPath, RawQuery: u.RawQuery, ForceQuery: u.ForceQuery})
	return ref.RequestURI()
}

func lowerASCII(s string) string {
	if !hasUpper(s) {
		return s
	}
	b := []byte(s)
	for i := range b {
		b[i] = httpfield.Lower(b[i])
	}
	return string(b)
}

// Purge drops every entry; fills under way do not store.
func (c *Cache) Purge() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.purges.Add(1)
	for i := range c.shards {
		sh := &c.shards[i]
		sh.mu.Lock()
		for _, e := range sh.m {
			for ; e != nil; e = e.chain {
				e.linked = false
			}
		}
		clear(sh.m)
		clear(sh.urls)
		sh.mu.Unlock()
	}
	c.head, c.tail = nil, nil
	c.entries.Store(0)
	c.bytes.Store(0)
	for i := range c.pass {
		c.pass[i].Store(0)
	}
}

// Stats returns the counters.
func (c *Cache) Stats() Stats {
	s := Stats{
		Misses:        c.otherMisses.Load(),
		Stores:        c.stores.Load(),
		Rejected:      c.rejected.Load(),
		Evictions:     c.evictions.Load(),
		Invalidations: c.invalidations.Load(),
		Coalesced:     c.coalesced.Load(),
		Revalidated:   c.revalidated.Load(),
		Stale:         c.staleServed.Load(),
		Entries:       c.entries.Load(),
		Bytes:         c.bytes.Load(),
	}
	for i := range c.shards {
		s.Hits += c.shards[i].mu.hits()
		s.Misses += c.shards[i].misses.Load()
	}
	return s
}
