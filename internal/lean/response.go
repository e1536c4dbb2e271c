package lean

import (
	"io"
	"net/http"
	"os"
	"slices"
	"strconv"
	"sync/atomic"
	"time"
)

// bodyMax is how much of a response body is held to go out in the same
// write as its head; past it, the head is written and the body streamed.
const bodyMax = 64 << 10

// response is the http.ResponseWriter of the lean path. A response
// whose body fits in bodyMax goes out in one write, head and body; a
// larger one gets its head written first and its body streamed (with
// sendfile for a file when the length is known, chunked when it is not).
type response struct {
	c       *conn
	header  http.Header
	status  int
	head    bool // a HEAD request: no body goes out
	close   bool // the connection ends after this response
	sent    bool // the head is on the wire
	chunked bool
	err     error // a write failed: the connection is done
	body    []byte
	out     []byte
	keys    []string
}

func (w *response) reset(head bool) {
	if w.header == nil {
		w.header = make(http.Header, 8)
	} else {
		clear(w.header)
	}
	w.status, w.head, w.close, w.sent, w.chunked, w.err = 0, head, false, false, false, nil
	w.body = w.body[:0]
}

func (w *response) Header() http.Header { return w.header }

func (w *response) WriteHeader(code int) {
	if w.status != 0 || code < 200 {
		return // informational answers are not sent on this path
	}
	w.status = code
}

func (w *response) bodyAllowed() bool {
	return !w.head && w.status != http.StatusNoContent && w.status != http.StatusNotModified
}

func (w *response) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.WriteHeader(http.StatusOK)
	}
	if w.err != nil {
		return 0, w.err
	}
	if !w.bodyAllowed() {
		if w.head && !w.sent {
			w.body = append(w.body, p...) // counted for Content-Length, never sent
			if len(w.body) > bodyMax {
				w.body = w.body[:0]
				w.close = true // the length is then unknown: be safe
			}
		}
		return len(p), nil
	}
	if !w.sent && len(w.body)+len(p) <= bodyMax {
		w.body = append(w.body, p...)
		return len(p), nil
	}
	if !w.sent {
		if err := w.sendHead(false); err != nil {
			return 0, err
		}
	}
	return w.writeBody(p)
}

// ReadFrom sends a file with sendfile once the head is out, when its length
// is known; otherwise it copies through Write.
func (w *response) ReadFrom(src io.Reader) (int64, error) {
	if w.status == 0 {
		w.WriteHeader(http.StatusOK)
	}
	if w.err != nil {
		return 0, w.err
	}
	if !isFile(src) {
		return copyTo(writerOnly{w}, src) // held, to go out with the head
	}
	if w.sent && !w.chunked || !w.sent && w.bodyAllowed() && len(w.header["Content-Length"]) == 1 {
		if !w.sent {
			if err := w.sendHead(false); err != nil {
				return 0, err
			}
		}
		n, err := w.c.readFrom(src)
		if err != nil {
			w.err = err
		}
		return n, err
	}
	return copyTo(writerOnly{w}, src)
}

// readFrom sends src with the connection's ReadFrom (sendfile), if it has
// one.
func (c *conn) readFrom(src io.Reader) (int64, error) {
	if rf, ok := c.raw.(io.ReaderFrom); ok {
		return rf.ReadFrom(src)
	}
	return copyTo(c.raw, src)
}

// isFile: src is a file, or a limited reader over one, which sendfile
// takes.
func isFile(src io.Reader) bool {
	if lr, ok := src.(*io.LimitedReader); ok {
		src = lr.R
	}
	_, ok := src.(*os.File)
	return ok
}

func (w *response) writeBody(p []byte) (int, error) {
	var err error
	if w.chunked {
		w.out = strconv.AppendInt(w.out[:0], int64(len(p)), 16)
		w.out = append(w.out, "\r\n"...)
		w.out = append(w.out, p...)
		w.out = append(w.out, "\r\n"...)
		_, err = w.c.raw.Write(w.out)
	} else {
		_, err = w.c.raw.Write(p)
	}
	if err != nil {
		w.err = err
		return 0, err
	}
	return len(p), nil
}

func (w *response) SetWriteDeadline(t time.Time) error { return w.c.raw.SetWriteDeadline(t) }

func (w *response) SetReadDeadline(t time.Time) error { return w.c.raw.SetReadDeadline(t) }

func (w *response) Flush() { w.FlushError() }

func (w *response) FlushError() error {
	if w.status == 0 {
		w.WriteHeader(http.StatusOK)
	}
	if w.err != nil || w.sent {
		return w.err
	}
	return w.sendHead(false)
}

// sendHead writes the head, with the body held so far when final (the
// whole response), or starts streaming: the held body follows the head,
// and the rest is chunked unless its length is known.
func (w *response) sendHead(final bool) error {
	h := w.header
	if !final && w.bodyAllowed() && len(h["Content-Length"]) == 0 {
		w.chunked = true
	}
	out := w.out[:0]
	out = append(out, "HTTP/1.1 "...)
	out = strconv.AppendInt(out, int64(w.status), 10)
	out = append(out, ' ')
	if text := http.StatusText(w.status); text != "" {
		out = append(out, text...)
	} else {
		out = append(out, "status code "...)
		out = strconv.AppendInt(out, int64(w.status), 10)
	}
	out = append(out, "\r\n"...)
	if final && len(h["Content-Length"]) == 0 && w.status != http.StatusNoContent && w.status != http.StatusNotModified &&
		(!w.head || len(w.body) > 0) {
		out = append(out, "Content-Length: "...)
		out = strconv.AppendInt(out, int64(len(w.body)), 10)
		out = append(out, "\r\n"...)
	}
	if _, ok := h["Content-Type"]; !ok && len(w.body) > 0 && w.status != http.StatusNoContent && w.status != http.StatusNotModified {
		out = append(out, "Content-Type: "...)
		out = append(out, http.DetectContentType(w.body)...)
		out = append(out, "\r\n"...)
	}
	if _, ok := h["Date"]; !ok {
		out = append(out, "Date: "...)
		out = appendHTTPDate(out)
		out = append(out, "\r\n"...)
	}
	if w.chunked {
		out = append(out, "Transfer-Encoding: chunked\r\n"...)
	}
	for _, v := range h["Connection"] {
		if asciiEqualFold([]byte(v), "close") {
			w.close = true
		}
	}
	if (w.close || w.c.req.Close || w.c.e.closing.Load()) && len(h["Connection"]) == 0 {
		out = append(out, "Connection: close\r\n"...)
		w.close = true
	}
	keys := w.keys[:0]
	for k := range h {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	w.keys = keys
	for _, k := range keys {
		if k == "Transfer-Encoding" || !validFieldName(k) {
			continue
		}
		for _, v := range h[k] {
			out = append(out, k...)
			out = append(out, ": "...)
			out = appendFieldValue(out, v)
			out = append(out, "\r\n"...)
		}
	}
	out = append(out, "\r\n"...)
	if w.bodyAllowed() && len(w.body) > 0 {
		if w.chunked {
			out = strconv.AppendInt(out, int64(len(w.body)), 16)
			out = append(out, "\r\n"...)
			out = append(out, w.body...)
			out = append(out, "\r\n"...)
		} else {
			out = append(out, w.body...)
		}
	}
	w.out = out
	w.sent = true
	w.body = w.body[:0]
	if _, err := w.c.raw.Write(out); err != nil {
		w.err = err
		return err
	}
	return nil
}

// finish ends the response: the whole of it when nothing was sent yet, or
// the last chunk.
func (w *response) finish() error {
	if w.status == 0 {
		w.WriteHeader(http.StatusOK)
	}
	if w.err != nil {
		return w.err
	}
	if !w.sent {
		return w.sendHead(true)
	}
	if w.chunked {
		if _, err := io.WriteString(w.c.raw, "0\r\n\r\n"); err != nil {
			w.err = err
			return err
		}
	}
	return nil
}

func validFieldName(k string) bool {
	if k == "" {
		return false
	}
	for i := 0; i < len(k); i++ {
		if !isTokenByte(k[i]) {
			return false
		}
	}
	return true
}

// appendFieldValue writes a field value with CR and LF made spaces, as
// net/http does, so that no value can start a field or a body of its own.
func appendFieldValue(out []byte, v string) []byte {
	for i := 0; i < len(v); i++ {
		b := v[i]
		if b == '\r' || b == '\n' {
			b = ' '
		}
		out = append(out, b)
	}
	return out
}

// The Date field, formatted once a second.
type httpDate struct {
	sec int64
	b   []byte
}

var currentDate atomic.Pointer[httpDate]

func appendHTTPDate(out []byte) []byte {
	now := time.Now()
	d := currentDate.Load()
	if d == nil || d.sec != now.Unix() {
		d = &httpDate{sec: now.Unix(), b: now.UTC().AppendFormat(nil, http.TimeFormat)}
		currentDate.Store(d)
	}
	return append(out, d.b...)
}

// WatchClient reads one byte from the connection until stop: EOF or an
// error means the client left, and cancels the request (its context is the
// connection's); a byte is the start of a pipelined request, kept for the
// read buffer. A pipelined request already read stops the watch at once,
// as net/http's does.
func (w *response) WatchClient() (stop func()) {
	c := w.c
	if c.br.Buffered() > 0 || c.hasPre {
		return func() {}
	}
	var stopping atomic.Bool
	done := make(chan struct{})
	go func() {
		defer close(done)
		n, err := c.raw.Read(c.pre[:])
		if n == 1 {
			c.hasPre = true
			return
		}
		if err != nil && !stopping.Load() {
			c.cancel()
		}
	}()
	return func() {
		stopping.Store(true)
		c.raw.SetReadDeadline(aLongTimeAgo)
		<-done
		c.raw.SetReadDeadline(time.Time{})
	}
}
