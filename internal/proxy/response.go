package proxy

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
)

// ResponseOptions bound how much of one response Ferry holds for a client.
type ResponseOptions struct {
	// Memory is kept in memory before the rest spills to a file in Dir.
	Memory int64
	// HighWatermark is the most held (memory plus file) before reading from
	// the app pauses until the client catches up.
	HighWatermark int64
	// Dir holds spill files.
	Dir string
}

// smallBody is the size up to which a response with a known length is read
// in one go before anything is written to the client: no goroutine, no spool.
const smallBody = 64 << 10

const chunkSize = 32 << 10

var chunkPool = sync.Pool{New: func() any { b := make([]byte, chunkSize); return &b }}

// Capture receives a copy of a complete response body of at most Limit
// bytes (for the response cache). Done's argument is valid only during the
// call.
type Capture struct {
	Limit int64
	Done  func(body []byte)
}

// Result is what WriteTo did, for the access log.
type Result struct {
	Status int
	Bytes  int64
	// Wrote says the status line was written to the client.
	Wrote bool
	// AppErr is set when the app's response broke off.
	AppErr error
	// ClientErr is set when the client went away.
	ClientErr error
}

// WriteTo sends the response to the client. The upstream is released as
// soon as the app has sent all of its response, before the client has
// necessarily read it.
func (x *Exchange) WriteTo(w http.ResponseWriter, opts ResponseOptions, capture *Capture) Result {
	resp := x.Resp
	copyResponseHeader(w.Header(), resp.Header)
	res := Result{Status: resp.StatusCode}

	if resp.ContentLength == 0 || resp.Body == http.NoBody {
		x.finish(nil)
		if capture != nil {
			capture.Done(nil)
		}
		w.WriteHeader(resp.StatusCode)
		res.Wrote = true
		return res
	}
	if resp.ContentLength > 0 && resp.ContentLength <= smallBody {
		return x.writeSmall(w, capture, res)
	}
	return x.writeStreamed(w, opts, capture, res)
}

// writeSmall reads a body of at most smallBody bytes whole, releases the
// upstream, and writes head and body at once.
func (x *Exchange) writeSmall(w http.ResponseWriter, capture *Capture, res Result) Result {
	resp := x.Resp
	bp := chunkPool.Get().(*[]byte)
	buf := *bp
	if int64(cap(buf)) < resp.ContentLength {
		buf = make([]byte, resp.ContentLength)
	}
	buf = buf[:resp.ContentLength]
	_, err := io.ReadFull(resp.Body, buf)
	x.finish(err)
	if err != nil {
		res.AppErr = err
		// Nothing written yet: the caller can still send an error page.
		chunkPool.Put(bp)
		return res
	}
	if capture != nil && int64(len(buf)) <= capture.Limit {
		capture.Done(buf)
	}
	w.WriteHeader(resp.StatusCode)
	res.Wrote = true
	n, werr := w.Write(buf)
	res.Bytes, res.ClientErr = int64(n), werr
	chunkPool.Put(bp)
	return res
}

// writeStreamed sends a large or open-ended body: the app is read by a
// pump goroutine into a spool while this one writes to the client at the
// client's pace.
func (x *Exchange) writeStreamed(w http.ResponseWriter, opts ResponseOptions, capture *Capture, res Result) Result {
	resp := x.Resp
	sp := newSpool(opts)
	pumped := make(chan struct{})
	go func() {
		defer close(pumped)
		err := sp.fill(resp.Body)
		x.finish(err)
	}()
	w.WriteHeader(resp.StatusCode)
	res.Wrote = true
	flusher, _ := w.(http.Flusher)
	// Headers go out at once so that a streaming app's client sees them.
	if flusher != nil {
		flusher.Flush()
	}
	buf := chunkPool.Get().(*[]byte)
	defer chunkPool.Put(buf)
	var kept []byte // for capture, until it passes the limit
	keeping := capture != nil
	for {
		chunk, pooled, caughtUp, err := sp.next(*buf)
		if keeping {
			if int64(len(kept)+len(chunk)) > capture.Limit {
				keeping, kept = false, nil
			} else {
				kept = append(kept, chunk...)
			}
		}
		var werr error
		if len(chunk) > 0 {
			var n int
			n, werr = w.Write(chunk)
			res.Bytes += int64(n)
		}
		if pooled != nil {
			chunkPool.Put(pooled)
		}
		if werr != nil {
			// The client is gone; the pump still drains the app, on its
			// own: nothing waits for it.
			res.ClientErr = werr
			sp.abandon()
			break
		}
		if err != nil {
			if !errors.Is(err, io.EOF) {
				res.AppErr = err
			} else if keeping {
				capture.Done(kept)
			}
			if sp.ended() {
				// The pump has read the app's end: once it has released
				// the upstream (finish), the exchange is over for the
				// caller too.
				<-pumped
			} else {
				sp.abandon() // the spool failed, not the app: drain it
			}
			break
		}
		if caughtUp && flusher != nil {
			flusher.Flush()
		}
	}
	sp.release()
	return res
}

// finish releases the upstream once the app's body has been read. The
// connection is kept only when the response ended exactly at its message
// boundary with nothing after it: bytes past the end (more body than
// Content-Length said, a body after HEAD, 204 or 304) would be read as the
// next request's response, another client's. Those are the app's framing
// error: the connection is closed and the app told.
func (x *Exchange) finish(err error) {
	if err != nil {
		x.c.Close()
		x.up.ReleaseConn(nil, false)
		return
	}
	m := x.msg
	if m.suspect != nil {
		x.up.FramingError(m.suspect)
	}
	keep := m.keep && m.suspect == nil && (m.body == nil || m.body.done)
	if keep {
		// Nothing may follow: not in the buffer, nor (when the last read
		// filled its buffer, so the socket may hold more) in the socket.
		// On ferry-wire/1 too, where only a broken loader could send
		// more; a small response costs no syscall here either way.
		if x.c.br.Buffered() > 0 || x.c.full {
			if data, closed := x.c.unread(); data {
				x.up.FramingError(fmt.Errorf("%w: bytes after the end of a %d response to %s", ErrFraming, m.resp.StatusCode, m.resp.Request.Method))
				keep = false
			} else if closed {
				keep = false
			}
		}
	}
	if !keep {
		x.c.Close()
		x.up.ReleaseConn(nil, true)
		return
	}
	x.up.ReleaseConn(x.c, true)
}

// Discard releases the upstream without sending the response anywhere.
func (x *Exchange) Discard() {
	x.c.Close()
	x.up.ReleaseConn(nil, false)
}

// spool is a buffer between the pump (app side) and the writer (client
// side): chunks in memory up to a limit, then an unlinked temp file, and
// back-pressure on the pump past the high watermark.
type spool struct {
	opts ResponseOptions

	mu       sync.Mutex
	cond     sync.Cond
	chunks   []*[]byte // each a pooled buffer, sliced to its data
	lens     []int
	memBytes int64
	file     *os.File
	fileW    int64 // written by the pump
	fileR    int64 // read by the writer
	done     bool
	err      error
	gone     bool // the client side gave up: discard
	refs     atomic.Int32
}

func newSpool(opts ResponseOptions) *spool {
	s := &spool{opts: opts}
	s.cond.L = &s.mu
	s.refs.Store(2)
	return s
}

func (s *spool) buffered() int64 { return s.memBytes + s.fileW - s.fileR }

// fill reads r to its end (or error) into the spool.
func (s *spool) fill(r io.Reader) error {
	defer s.release()
	for {
		bp := chunkPool.Get().(*[]byte)
		n, err := r.Read(*bp)
		if n > 0 {
			if perr := s.put(bp, n); perr != nil {
				err = perr
			}
		} else {
			chunkPool.Put(bp)
		}
		if err != nil {
			if err == io.EOF {
				err = nil
			}
			s.mu.Lock()
			s.done, s.err = true, err
			s.cond.Broadcast()
			s.mu.Unlock()
			return err
		}
	}
}

func (s *spool) put(bp *[]byte, n int) error {
	s.mu.Lock()
	for !s.gone && s.buffered() >= s.opts.HighWatermark {
		s.cond.Wait()
	}
	if s.gone {
		s.mu.Unlock()
		chunkPool.Put(bp)
		return nil
	}
	if s.file == nil && s.memBytes+int64(n) <= s.opts.Memory {
		s.chunks = append(s.chunks, bp)
		s.lens = append(s.lens, n)
		s.memBytes += int64(n)
		s.cond.Broadcast()
		s.mu.Unlock()
		return nil
	}
	if s.file == nil {
		f, err := os.CreateTemp(s.opts.Dir, "resp-")
		if err != nil {
			s.mu.Unlock()
			chunkPool.Put(bp)
			return err
		}
		os.Remove(f.Name())
		s.file = f
	}
	f, off := s.file, s.fileW
	s.mu.Unlock()
	// Only the pump writes, and only past fileW, which the writer never reads.
	_, err := f.WriteAt((*bp)[:n], off)
	chunkPool.Put(bp)
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.fileW += int64(n)
	s.cond.Broadcast()
	s.mu.Unlock()
	return nil
}

// next returns the next piece of the response: either a pooled chunk (to be
// returned to chunkPool by the caller) or data read into buf. caughtUp says
// the spool is now empty, so the caller should flush. err is io.EOF at the
// clean end.
func (s *spool) next(buf []byte) (data []byte, pooled *[]byte, caughtUp bool, err error) {
	s.mu.Lock()
	for len(s.chunks) == 0 && s.fileR == s.fileW && !s.done {
		s.cond.Wait()
	}
	if len(s.chunks) > 0 {
		bp, n := s.chunks[0], s.lens[0]
		s.chunks[0] = nil
		s.chunks, s.lens = s.chunks[1:], s.lens[1:]
		s.memBytes -= int64(n)
		caughtUp = s.buffered() == 0
		s.cond.Broadcast()
		s.mu.Unlock()
		return (*bp)[:n], bp, caughtUp, nil
	}
	if s.fileR < s.fileW {
		f, off, n := s.file, s.fileR, min(int64(len(buf)), s.fileW-s.fileR)
		s.mu.Unlock()
		m, rerr := f.ReadAt(buf[:n], off)
		s.mu.Lock()
		s.fileR += int64(m)
		caughtUp = s.buffered() == 0
		s.cond.Broadcast()
		s.mu.Unlock()
		if rerr != nil && m < int(n) {
			return buf[:m], nil, caughtUp, rerr
		}
		return buf[:m], nil, caughtUp, nil
	}
	err = s.err
	if err == nil {
		err = io.EOF
	}
	s.mu.Unlock()
	return nil, nil, true, err
}

// ended reports whether the pump has seen the end of the app's body (or
// its error) and is returning.
func (s *spool) ended() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.done
}

// abandon makes the pump discard the rest: the client is gone, but the app's
// response is still read to its end so the process stays usable.
func (s *spool) abandon() {
	s.mu.Lock()
	s.gone = true
	for _, bp := range s.chunks {
		chunkPool.Put(bp)
	}
	s.chunks, s.lens, s.memBytes = nil, nil, 0
	s.fileR = s.fileW
	s.cond.Broadcast()
	s.mu.Unlock()
}

// release drops one side's hold; the last closes the spill file.
func (s *spool) release() {
	if s.refs.Add(-1) == 0 && s.file != nil {
		s.file.Close()
	}
}
