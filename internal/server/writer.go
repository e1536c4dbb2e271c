package server

import (
	"io"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/ferry-server/ferry/internal/compress"
	"github.com/ferry-server/ferry/internal/lean"
)

// respWriter is the ResponseWriter every response of the request path goes
// through (static files, cache hits, the app's, error pages). It records
// what reached the client for the access log, gives the client
// --client-write-timeout per write, stamps X-Request-Id, and compresses
// compressible responses with the coding negotiated for the client. It is part of the
// pooled per-request state, so it costs no allocation.
type respWriter struct {
	w http.ResponseWriter
	// dl sets the connection's (HTTP/1) or stream's (HTTP/2) write
	// deadline; nil: no write timeout.
	dl      interface{ SetWriteDeadline(time.Time) error }
	timeout time.Duration
	renew   time.Time // the deadline is pushed back once past this
	// h2: an HTTP/2 stream, whose deadline costs a message to the
	// connection's goroutine and a timer; set only past h2Free bytes.
	h2 bool

	status int
	bytes  int64 // body bytes written to the client (compressed, if so)
	id     []string

	policy *compress.Policy // nil: no compression
	coding compress.Coding  // negotiated from Accept-Encoding; Identity: none
	ae     []string         // the request's Accept-Encoding, for a cheaper coding when memory is short
	head   bool             // a HEAD request: no body, nothing to compress
	// preStatic is the media type of the plain file while a precompressed
	// static file (NAME.zst, .br, .gz) is being tried; "" otherwise.
	// preCoding is its coding.
	preStatic string
	preCoding compress.Coding
	zw        compress.Encoder // encoding the body with coding
	sink      sink
	// immutable: the body written is a cache entry's, which never changes,
	// so its compressed form is kept and reused (compress.Policy.Whole).
	immutable bool
	// pending is the status of a head held back until the body, whose
	// compressed length it will carry, is written; wholeLen is that body's
	// length.
	pending  int
	wholeLen int64
}

// sink is where the encoder writes: the client, through out.
type sink struct{ rw *respWriter }

func (s *sink) Write(p []byte) (int, error) { return s.rw.out(p) }

var _ http.Flusher = (*respWriter)(nil)

func (rw *respWriter) Header() http.Header { return rw.w.Header() }

// Unwrap lets http.ResponseController reach the connection (Hijack,
// deadlines).
func (rw *respWriter) Unwrap() http.ResponseWriter { return rw.w }

func (rw *respWriter) WriteHeader(code int) {
	if rw.status != 0 {
		return
	}
	if code < 200 {
		rw.w.WriteHeader(code) // informational: the final status follows
		return
	}
	rw.status = code
	h := rw.w.Header()
	// Ours wins over an app's (or a cached response's) own copy: the log,
	// the app and the client all know the request by the same id.
	h["X-Request-Id"] = rw.id
	switch {
	case rw.preStatic != "":
		compress.AddVary(h)
		if code == http.StatusOK {
			h["Content-Type"] = []string{rw.preStatic}
			h["Content-Encoding"] = compress.EncodingValue(rw.preCoding)
			// Ranges are served from the plain file only.
			delete(h, "Accept-Ranges")
		}
	case rw.policy != nil && rw.policy.Compressible(code, h):
		if rw.head {
			// No body to compress, but the same head as a GET's: the
			// response varies by Accept-Encoding all the same.
			compress.AddVary(h)
			break
		}
		if rw.coding != compress.Identity && rw.immutable {
			if cl := h["Content-Length"]; len(cl) == 1 {
				if n, err := strconv.ParseInt(cl[0], 10, 64); err == nil && n > 0 {
					compress.Prepare(h, rw.coding)
					rw.pending, rw.wholeLen = code, n
					return
				}
			}
		}
		if rw.coding != compress.Identity {
			if rw.zw, rw.coding = rw.policy.StartOrCheaper(rw.coding, rw.ae, &rw.sink); rw.zw != nil {
				compress.Prepare(h, rw.coding)
				break
			}
		}
		compress.AddVary(h)
	}
	rw.w.WriteHeader(code)
}

func (rw *respWriter) Write(p []byte) (int, error) {
	if rw.status == 0 {
		rw.WriteHeader(http.StatusOK)
	}
	if rw.pending != 0 {
		if int64(len(p)) == rw.wholeLen {
			// The whole body at once, as the cache writes it: compressed
			// once per entry and coding, sent with its length.
			gz := rw.policy.Whole(p, rw.coding)
			rw.w.Header()["Content-Length"] = []string{strconv.Itoa(len(gz))}
			rw.w.WriteHeader(rw.pending)
			rw.pending = 0
			if _, err := rw.out(gz); err != nil {
				return 0, err
			}
			return len(p), nil
		}
		rw.stream()
	}
	if rw.zw != nil {
		return rw.zw.Write(p)
	}
	return rw.out(p)
}

// cachedHeads: hits are written from their pre-built heads when they can
// be (a test turns it off to compare with the header path).
var cachedHeads = true

var _ lean.CachedWriter = (*respWriter)(nil)

// WriteCached writes a cache hit from its pre-built head when the client's
// writer takes one (the lean engine's) and this writer has nothing to add
// to it but the request id: no compression or Vary for it (the policy
// finds the response not compressible), no precompressed static file, no
// field set beforehand (a draining core's Connection: close).
func (rw *respWriter) WriteCached(h *lean.CachedHead, age string, body []byte) bool {
	cw, ok := rw.w.(lean.CachedWriter)
	if !ok || !cachedHeads || rw.status != 0 || rw.preStatic != "" || len(rw.id) != 1 ||
		rw.policy.Compressible(h.Status, h.Header) {
		return false
	}
	hdr := rw.w.Header()
	if len(hdr) > 1 || (len(hdr) == 1 && hdr["X-Request-Id"] == nil) {
		return false
	}
	hdr["X-Request-Id"] = rw.id
	n := len(body)
	if rw.head {
		n = 0
	}
	rw.extend(n)
	if !cw.WriteCached(h, age, body) {
		return false
	}
	rw.status = h.Status
	rw.bytes += int64(n)
	return true
}

// stream sends a held-back head and compresses what follows as a stream.
func (rw *respWriter) stream() {
	rw.zw = rw.policy.StartAlways(rw.coding, &rw.sink)
	rw.w.WriteHeader(rw.pending)
	rw.pending = 0
}

// out writes to the client, pushing the write deadline back first.
func (rw *respWriter) out(p []byte) (int, error) {
	rw.extend(len(p))
	n, err := rw.w.Write(p)
	rw.bytes += int64(n)
	return n, err
}

// h2Free is how much of a response may go to an HTTP/2 client before its
// stream gets a write deadline: what any flow-control window takes at once
// (the initial one is 64 KiB), so that small responses, which never wait
// for the client, spare the deadline's cost. A client that stops reading
// altogether is dropped by the connection's own write timeout
// (http.HTTP2Config.WriteByteTimeout).
const h2Free = 16 << 10

// extend pushes the write deadline back to now + timeout before n more
// bytes are written. To spare the timer, it does so only when a sixteenth
// of the timeout has passed since the last time, so a client is dropped
// after between 15/16 and all of the timeout without taking a byte.
func (rw *respWriter) extend(n int) {
	if rw.dl == nil || (rw.h2 && rw.bytes+int64(n) <= h2Free) {
		return
	}
	now := time.Now()
	if now.Before(rw.renew) {
		return
	}
	rw.dl.SetWriteDeadline(now.Add(rw.timeout))
	rw.renew = now.Add(rw.timeout / 16)
}

// Flush sends what is buffered, compressed data included: the proxy calls
// it whenever the app's response is caught up, so streams stay streams.
func (rw *respWriter) Flush() { rw.FlushError() }

func (rw *respWriter) FlushError() error {
	if rw.status == 0 {
		rw.WriteHeader(http.StatusOK)
	}
	if rw.pending != 0 {
		rw.stream()
	}
	if rw.zw != nil {
		if err := rw.zw.Flush(); err != nil {
			return err
		}
	}
	rw.extend(0)
	switch f := rw.w.(type) {
	case interface{ FlushError() error }:
		return f.FlushError()
	case http.Flusher:
		f.Flush()
		return nil
	}
	return http.ErrNotSupported
}

// sendfileChunk bounds one sendfile call, so that the write deadline is
// pushed back between chunks: a client that takes 128 KiB per
// --client-write-timeout keeps its download.
const sendfileChunk = 128 << 10

var copyBufs = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

// ReadFrom keeps sendfile for static files sent as they are, and otherwise
// copies through Write (compression) with a pooled buffer.
func (rw *respWriter) ReadFrom(src io.Reader) (int64, error) {
	if rw.status == 0 {
		rw.WriteHeader(http.StatusOK)
	}
	if rw.pending != 0 {
		rw.stream()
	}
	rf, ok := rw.w.(io.ReaderFrom)
	if rw.zw != nil || !ok {
		bp := copyBufs.Get().(*[]byte)
		n, err := io.CopyBuffer(writerOnly{rw}, src, *bp)
		copyBufs.Put(bp)
		return n, err
	}
	// One level of LimitedReader over a file is what sendfile recognises.
	limit := int64(-1)
	if lr, ok := src.(*io.LimitedReader); ok {
		src, limit = lr.R, lr.N
		defer func() { lr.N = limit }()
	}
	chunk := &io.LimitedReader{R: src}
	var total int64
	for limit != 0 {
		chunk.N = sendfileChunk
		if limit > 0 {
			chunk.N = min(limit, sendfileChunk)
		}
		want := chunk.N
		rw.extend(int(want))
		n, err := rf.ReadFrom(chunk)
		total += n
		rw.bytes += n
		if limit > 0 {
			limit -= n
		}
		if err != nil || n < want {
			return total, err
		}
	}
	return total, nil
}

// writerOnly hides ReadFrom, so that io.CopyBuffer does not call it back.
type writerOnly struct{ io.Writer }

// finish ends the compressed stream: with its trailer when the response is
// complete, without when it is being aborted (the client must see a
// truncated body, not a short valid one).
func (rw *respWriter) finish(complete bool) {
	if rw.pending != 0 {
		rw.stream() // no body came: an empty compressed stream
	}
	if rw.zw != nil {
		rw.policy.End(rw.coding, rw.zw, complete)
		rw.zw = nil
	}
}
