// Package turbocache owns the response cache and its rules: what may be
// stored, keys, freshness, eviction, request coalescing, invalidation. It
// does not forward requests.
//
// It is an L1 cache for the web: small, fast and conservative. It is a
// shared cache in the sense of RFC 9111 that stores a response only when the
// app says so explicitly, in the spirit of Passenger 5's turbocache after its
// security review.
//
// # On the request path
//
//	served, fill := cache.Lookup(w, r)
//	if served {
//		return // a hit, a 304 or (only-if-cached) a 504 was written
//	}
//	if fill != nil {
//		defer fill.Done()
//	}
//	… forward to the app; on the response head:
//	if fill.Answer(w, status, appHeader) {
//		return // a 304 refreshed the stale entry, or stale-if-error served it
//	}
//	keep := fill != nil && fill.Storable(status, appHeader)
//	… send the response to the client as usual; if keep, also collect the
//	body, giving up (fill.Done()) once it passes fill.Limit() …
//	if keep && body complete {
//		fill.Store(status, appHeader, body)
//	}
//	if the method is unsafe {
//		cache.Invalidate(r, status, appHeader)
//	}
//	… and where the request fails with a 5xx instead (app unreachable,
//	timeout): if fill.ServeStale(w, true) the stale entry answers.
//
// Lookup must see the request headers as the app will (after the request
// path has sanitised them), and Storable/Store the app's response header
// before the request path adds its own fields to the client's copy.
//
// # What is stored
//
// Only complete responses to GET with status 200, 203, 204, 300, 301, 404,
// 405, 410, 414 or 501 and an explicit freshness lifetime (Cache-Control
// s-maxage, which wins, or max-age, or Expires relative to the response's
// Date; an Expires that is not a valid HTTP-date means already expired),
// and never with Cache-Control private, no-store or no-cache (these words
// anywhere in the field), Pragma: no-cache, Set-Cookie, WWW-Authenticate,
// X-Sendfile/X-Accel-Redirect, Content-Range or Trailer, an Age that is not
// one delta-seconds, nor with Vary: * (or Cookie, unless
// Options.VaryByCookie is set). A response to a request with Authorization
// is stored only with public or s-maxage; to a request with Cache-Control:
// no-store, never.
//
// A targeted field (RFC 9213: CDN-Cache-Control, else Surrogate-Control
// directives for all devices or aimed at Ferry, which announces itself with
// Surrogate-Capability on requests that may be stored) replaces Cache-Control and Expires for
// freshness and storing: its private, no-store, no-cache forbid storing
// and its max-age allows it whatever Cache-Control says, except that
// Cache-Control: private still forbids.
//
// # Stale entries
//
// A stale entry is kept while it has a validator (ETag, Last-Modified) or
// may still be served. The next plain request for it sends one conditional
// request (If-None-Match / If-Modified-Since) while the others wait for it;
// a 304 refreshes the stored header fields (RFC 9111 §4.3.4) and the entry
// is fresh again. Within stale-while-revalidate the stale entry is served
// and one background revalidation runs. Within stale-if-error it is served
// when the app answers 500, 502, 503 or 504 or cannot be reached; within
// Options.StaleIfUnreachable, when the app cannot be reached at all (RFC
// 9111 §4.2.4). Never for must-revalidate, proxy-revalidate or s-maxage.
//
// A request with Cache-Control: no-cache or max-age=0, or Pragma: no-cache,
// goes to the app and its response replaces the entry. Unsafe methods
// invalidate every variant of their URL, before and after they reach the
// app; a fetch of that URL under way meanwhile does not store what it got.
//
// # Keys
//
// Host (lower-cased), the raw request-target, whether the connection is TLS
// (an app's http→https redirect must not be served on https, as in
// Passenger), the value of the vary-by cookie when configured, and the
// values of forwarding headers that frameworks trust for URLs and schemes
// (X-Forwarded-Host, -Proto, …), so that a client cannot poison other
// clients' entries with them. Entries whose response varies by
// Accept-Encoding (or is compressed) are kept per normalised
// Accept-Encoding; by other headers, per value of those headers (commas
// and whitespace normalised), at most Options.MaxVariants per URL. GET and
// HEAD share entries.
//
// # Speed
//
// A hit takes one of 64 shards' read lock, allocates nothing and does not
// copy the body: it assigns the stored header slices to w.Header() and
// writes the stored body with one Write. Those slices are shared by every
// hit and must never be modified in place by whatever wraps the
// ResponseWriter: replacing a key's slice, Set, Del, or append (stored
// slices have len == cap, so append copies) are fine; writing to
// h[k][i] is not. A miss costs one small allocation (the Fill), and
// requests for a key whose response was just found uncacheable are not
// coalesced for a while, so uncacheable traffic never queues.
package turbocache
