package lean

import (
	"fmt"
	"github.com/ferry-server/ferry/internal/httpfield"
	"io"
	"math"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// bodyMax is how much of a response body is held to go out in the same
// write as its head; past it, the head is written and the body streamed.
const bodyMax = 64 << 10

// sniffLen is how much of a body http.DetectContentType looks at.
const sniffLen = 512

// response is the http.ResponseWriter of the lean engine. A response
// whose body fits in bodyMax goes out in one write, head and body; a
// larger one gets its head written first and its body streamed (with
// sendfile for a file when the length is known, chunked when it is not).
//
// It keeps the framing itself, as net/http does, whatever the handler
// does: the head it sent says how the body ends (a Content-Length, or
// chunked), a write past the Content-Length is refused
// (http.ErrContentLength), and a body that ends up shorter or longer than
// the Content-Length sent closes the connection after the response, so
// that the next request on it never reads the wrong bytes. Status codes
// that have no body (1xx, 204, 304) get no Content-Length and refuse a
// body (http.ErrBodyNotAllowed).
//
// Its other behaviour is net/http's too: the header as it was at
// WriteHeader is what is sent; a Content-Length that is not a
// non-negative number is dropped; Content-Type is sniffed when absent
// (unless Content-Encoding is set); Date is added; a HEAD response gets
// the Content-Length of what the handler wrote, when it wrote something
// and did not flush before the end. WriteHeader with a 1xx status other
// than 101 sends an interim response at once with the header set so far
// (which, as in net/http and RFC 8297, is not cleared: what the handler
// does not want in the final response, it deletes itself).
type response struct {
	c      *conn
	req    *http.Request
	header http.Header
	status int   // the final status; 0 until WriteHeader
	head   bool  // a HEAD request: no body goes out
	cl     int64 // the Content-Length the handler set (valid), or -1
	// written counts the body bytes the handler wrote, sent or not (HEAD,
	// past cl).
	written int64
	close   bool  // the connection ends after this response
	sent    bool  // the head is on the wire
	chunked bool  // the body goes out chunked
	err     error // a write failed: the connection is done

	// What WriteHeader saw in the header.
	hasType, hasEncoding, hasDate bool
	connValues                    []string // its Connection field
	closeAsked                    bool     // … which says close

	body  []byte // held until the head goes out (HEAD: the first sniffLen bytes, for sniffing)
	out   []byte // the head being built: from WriteHeader on, the status line and the header's fields
	keys  []string
	sniff [sniffLen]byte
}

func (w *response) reset(r *http.Request) {
	if w.header == nil {
		w.header = make(http.Header, 8)
	} else {
		clear(w.header)
	}
	w.req, w.head = r, r.Method == http.MethodHead
	w.status, w.cl, w.written, w.close, w.sent, w.chunked, w.err = 0, -1, 0, false, false, false, nil
	w.body = w.body[:0]
}

func (w *response) Header() http.Header { return w.header }

// bodyAllowed is net/http's bodyAllowedForStatus.
func bodyAllowed(status int) bool {
	return status >= 200 && status != http.StatusNoContent && status != http.StatusNotModified
}

func (w *response) WriteHeader(code int) {
	if code < 100 || code > 999 {
		panic(fmt.Sprintf("invalid WriteHeader code %v", code)) // as net/http
	}
	if w.status != 0 {
		return // superfluous: the final status is set
	}
	if code < 200 && code != http.StatusSwitchingProtocols {
		w.interim(code)
		return
	}
	w.status = code
	h := w.header
	w.cl = -1
	if v := h["Content-Length"]; len(v) > 0 {
		if n, err := strconv.ParseInt(v[0], 10, 64); err == nil && n >= 0 {
			w.cl = n
		} else {
			delete(h, "Content-Length")
		}
	}
	_, w.hasType = h["Content-Type"]
	_, w.hasDate = h["Date"]
	w.hasEncoding = h.Get("Content-Encoding") != ""
	w.connValues = append(w.connValues[:0], h["Connection"]...)
	w.closeAsked = httpfield.HasToken(w.connValues, "close")
	// A 101 without the upgrade this engine never does leaves the
	// connection in no known state.
	w.close = w.closeAsked || w.req.Close || code == http.StatusSwitchingProtocols
	w.out = appendStatusLine(w.out[:0], code)
	w.out = w.appendFields(w.out, code, false)
}

// interim sends a 1xx response with the header set so far.
func (w *response) interim(code int) {
	if w.err != nil {
		return
	}
	out := appendStatusLine(w.out[:0], code)
	out = w.appendFields(out, code, true)
	out = append(out, "\r\n"...)
	w.out = out
	if _, err := w.c.raw.Write(out); err != nil {
		w.err = err
	}
}

func appendStatusLine(out []byte, code int) []byte {
	out = append(out, "HTTP/1.1 "...)
	out = strconv.AppendInt(out, int64(code), 10)
	out = append(out, ' ')
	if text := http.StatusText(code); text != "" {
		out = append(out, text...)
	} else {
		out = append(out, "status code "...)
		out = strconv.AppendInt(out, int64(code), 10)
	}
	return append(out, "\r\n"...)
}

// appendFields writes the header's fields, sorted, leaving out those the
// engine writes itself (Content-Length, Transfer-Encoding; Connection in a
// final response), a 304's Content-Type, net/http's trailer keys and
// invalid names.
func (w *response) appendFields(out []byte, code int, interim bool) []byte {
	h := w.header
	for _, k := range w.fieldKeys(code, interim) {
		for _, v := range h[k] {
			out = appendField(out, k, v)
		}
	}
	return out
}

// fieldKeys are the names of the header's fields appendFields writes, in
// the order it writes them.
func (w *response) fieldKeys(code int, interim bool) []string {
	h := w.header
	keys := w.keys[:0]
	for k := range h {
		switch k {
		case "Content-Length", "Transfer-Encoding":
			continue
		case "Connection":
			if !interim {
				continue
			}
		case "Content-Type":
			if code == http.StatusNotModified {
				continue
			}
		}
		if strings.HasPrefix(k, http.TrailerPrefix) || !validFieldName(k) {
			continue
		}
		keys = append(keys, k)
	}
	slices.Sort(keys)
	w.keys = keys
	return keys
}

func appendField(out []byte, k, v string) []byte {
	out = append(out, k...)
	out = append(out, ": "...)
	out = appendFieldValue(out, v)
	return append(out, "\r\n"...)
}

func (w *response) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.WriteHeader(http.StatusOK)
	}
	if len(p) == 0 {
		return 0, nil
	}
	if !bodyAllowed(w.status) {
		return 0, http.ErrBodyNotAllowed
	}
	w.written += int64(len(p))
	if w.cl >= 0 && w.written > w.cl {
		return 0, http.ErrContentLength // and finish closes the connection
	}
	if w.err != nil {
		return 0, w.err
	}
	if w.head {
		if !w.sent && len(w.body) < sniffLen {
			w.body = append(w.body, p[:min(len(p), sniffLen-len(w.body))]...)
		}
		return len(p), nil
	}
	if !w.sent {
		if len(w.body)+len(p) <= bodyMax {
			w.body = append(w.body, p...)
			return len(p), nil
		}
		if err := w.sendHead(false, p); err != nil {
			return 0, err
		}
	}
	return w.writeBody(p)
}

// ReadFrom sends a file with sendfile once the head is out, when its
// length is known; otherwise it copies through Write. As net/http's, it
// sends the first bytes through Write (for the Content-Type, and so that
// nothing goes out for a file that cannot be read), and it sets no status
// of its own for an empty src.
func (w *response) ReadFrom(src io.Reader) (int64, error) {
	if w.err != nil {
		return 0, w.err
	}
	if w.cl >= 0 && w.written > w.cl {
		return 0, http.ErrContentLength // as Write: past it once, refused from then on
	}
	var n0 int64
	if !w.sent {
		var err error
		n0, err = io.CopyN(writerOnly{w}, src, sniffLen)
		if err != nil || n0 < sniffLen {
			if err == io.EOF {
				err = nil
			}
			return n0, err
		}
	}
	if !isFile(src) || w.head || !bodyAllowed(w.status) || w.chunked || (!w.sent && w.cl < 0) {
		n, err := copyTo(writerOnly{w}, src)
		return n0 + n, err
	}
	if !w.sent {
		if err := w.sendHead(false, nil); err != nil {
			return n0, err
		}
	}
	// Sent, not chunked, with a body: its length is cl. At most what is
	// left of it goes out; one level of LimitedReader over a file is what
	// sendfile recognises.
	left := w.cl - w.written
	var f io.Reader
	limit := int64(math.MaxInt64)
	lr, limited := src.(*io.LimitedReader)
	if limited {
		f, limit = lr.R, lr.N
	} else {
		f = src
	}
	want := min(limit, left)
	n, err := w.c.readFrom(&io.LimitedReader{R: f, N: want})
	w.written += n
	if limited {
		lr.N -= n
	}
	if err != nil {
		w.err = err
		return n0 + n, err
	}
	if n == want && limit > left {
		// src may go on past the Content-Length: one byte more says so.
		var one [1]byte
		if k, _ := src.Read(one[:]); k > 0 {
			w.written++
			return n0 + n, http.ErrContentLength
		}
	}
	return n0 + n, nil
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
	return w.sendHead(false, nil)
}

// sendHead writes the head, with the body held so far when final (the
// whole response, the handler having returned), or starts streaming: the
// held body follows the head, and the rest is chunked unless its length
// is known. next is what is about to be written, for sniffing.
func (w *response) sendHead(final bool, next []byte) error {
	out := w.out
	bodyOK := bodyAllowed(w.status)
	switch {
	case !bodyOK:
	case w.cl >= 0:
		out = appendLength(out, w.cl)
	case final && !w.head:
		out = appendLength(out, int64(len(w.body)))
	case final && w.written > 0: // HEAD: what a GET would have had
		out = appendLength(out, w.written)
	case !final && !w.head:
		w.chunked = true
	}
	if bodyOK && !w.hasType && !w.hasEncoding {
		sniff := w.body
		if len(sniff) < sniffLen && len(next) > 0 {
			sniff = append(w.sniff[:0], w.body...)
			sniff = append(sniff, next[:min(len(next), sniffLen-len(sniff))]...)
		}
		if len(sniff) > 0 {
			out = appendField(out, "Content-Type", http.DetectContentType(sniff))
		}
	}
	if !w.hasDate {
		out = append(out, "Date: "...)
		out = appendHTTPDate(out)
		out = append(out, "\r\n"...)
	}
	if w.chunked {
		out = append(out, "Transfer-Encoding: chunked\r\n"...)
	}
	if w.c.e.closing.Load() || w.c.e.draining.Load() {
		w.close = true
	}
	switch {
	case w.close && !w.closeAsked:
		out = append(out, "Connection: close\r\n"...)
	default:
		for _, v := range w.connValues {
			out = appendField(out, "Connection", v)
		}
	}
	out = append(out, "\r\n"...)
	if bodyOK && !w.head && len(w.body) > 0 {
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

func appendLength(out []byte, n int64) []byte {
	out = append(out, "Content-Length: "...)
	out = strconv.AppendInt(out, n, 10)
	return append(out, "\r\n"...)
}

// finish ends the response once the handler has returned: the whole of it
// when nothing was sent yet, or the last chunk. It reports whether the
// connection must close: a failed write, a body that does not match the
// Content-Length, or a close asked for.
func (w *response) finish() (closeConn bool) {
	if w.status == 0 {
		w.WriteHeader(http.StatusOK)
	}
	if !w.head && bodyAllowed(w.status) && w.cl >= 0 && w.written != w.cl {
		w.close = true // the body does not match its length: never read past it
	}
	if w.err != nil {
		return true
	}
	if !w.sent {
		if err := w.sendHead(true, nil); err != nil {
			return true
		}
	} else if w.chunked {
		if _, err := io.WriteString(w.c.raw, "0\r\n\r\n"); err != nil {
			w.err = err
			return true
		}
	}
	return w.close
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

// WatchClient watches the connection until stop for a client that leaves,
// which cancels the request (see watcher), once the wait has lasted
// Options.WatchDelay. A pipelined request already read stops the watch at
// once, as net/http's does.
func (w *response) WatchClient() (stop func()) {
	c := w.c
	if c.br.Buffered() > 0 || c.hasPre {
		return noWatch
	}
	c.e.sweepOnce.Do(func() { go c.e.waits.sweep() })
	c.e.waits.start(c)
	return c.stopWatch
}

func noWatch() {}
