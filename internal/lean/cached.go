package lean

import (
	"net/http"
	"strconv"
)

// CachedHead is a stored response's head serialised once, byte for byte as
// this engine's WriteHeader and finish write it for the same status and
// header, so that a cache hit costs a copy instead of assigning, sorting
// and formatting its fields. It is split where a hit's own fields go in
// their sorted places: Age (the entry's age) and X-Request-Id (the
// request's id). Immutable once made: hits share it.
type CachedHead struct {
	// Status and Header are the response's, Header read only: for what a
	// writer decides on them (compression).
	Status int
	Header http.Header
	// before: the status line and the fields sorted before "Age"; middle:
	// those between "Age" and "X-Request-Id"; after: those past it, then
	// Content-Length.
	before, middle, after []byte
	length                int64
}

// Size is the memory the head holds beyond its header.
func (h *CachedHead) Size() int { return len(h.before) + len(h.middle) + len(h.after) }

// CachedWriter is a ResponseWriter that can write a response from a
// CachedHead. WriteCached writes the head with "Age: age" and the
// X-Request-Id already in the writer's Header (its only field) in place,
// then body (not for HEAD), and reports true; false: it wrote nothing, and
// the response must go through Header, WriteHeader and Write as usual.
type CachedWriter interface {
	WriteCached(h *CachedHead, age string, body []byte) bool
}

var _ CachedWriter = (*response)(nil)

// NewCachedHead serialises the head of a stored response with status and
// header h (which the head keeps, read only) whose body is length bytes;
// nil when the engine's own rules would make it depend on more than Age
// and X-Request-Id: no valid Content-Length equal to length, no Date, no
// Content-Type (it would be sniffed from the body), a Connection field, a
// status without a body.
func NewCachedHead(status int, h http.Header, length int64) *CachedHead {
	if status < 200 || status > 999 || !bodyAllowed(status) {
		return nil
	}
	if cl := h["Content-Length"]; len(cl) == 0 || cl[0] != strconv.FormatInt(length, 10) {
		return nil
	}
	if _, ok := h["Date"]; !ok {
		return nil
	}
	if _, ok := h["Content-Type"]; !ok && h.Get("Content-Encoding") == "" {
		return nil
	}
	if _, ok := h["Connection"]; ok {
		return nil
	}
	w := response{header: h}
	keys := w.fieldKeys(status, false)
	out := appendStatusLine(nil, status)
	c := &CachedHead{Status: status, Header: h, length: length}
	part := 0
	for _, k := range keys {
		if k == "Age" || k == "X-Request-Id" {
			continue // the hit's own
		}
		for part < 2 && k > [...]string{"Age", "X-Request-Id"}[part] {
			if part == 0 {
				c.before, out = out, nil
			} else {
				c.middle, out = out, nil
			}
			part++
		}
		for _, v := range h[k] {
			out = appendField(out, k, v)
		}
	}
	for ; part < 2; part++ {
		if part == 0 {
			c.before, out = out, nil
		} else {
			c.middle, out = out, nil
		}
	}
	c.after = appendLength(out, length)
	return c
}

// WriteCached writes a response from h (see CachedWriter): what WriteHeader
// and finish would have written had the header held h's fields, Age and
// the X-Request-Id, in one write.
func (w *response) WriteCached(h *CachedHead, age string, body []byte) bool {
	id := w.header["X-Request-Id"]
	if w.status != 0 || w.err != nil || len(w.header) != 1 || len(id) != 1 || int64(len(body)) != h.length {
		return false
	}
	w.status, w.cl = h.Status, h.length
	w.hasType, w.hasDate, w.hasEncoding = true, true, h.Header.Get("Content-Encoding") != ""
	w.connValues, w.closeAsked = w.connValues[:0], false
	w.close = w.req.Close || w.c.e.closing.Load() || w.c.e.draining.Load()
	out := append(w.out[:0], h.before...)
	out = appendField(out, "Age", age)
	out = append(out, h.middle...)
	out = appendField(out, "X-Request-Id", id[0])
	out = append(out, h.after...)
	if w.close {
		out = append(out, "Connection: close\r\n"...)
	}
	out = append(out, "\r\n"...)
	send := !w.head && len(body) > 0
	if send {
		w.written = int64(len(body))
		if len(body) <= bodyMax {
			out, send = append(out, body...), false
		}
	}
	w.out, w.sent = out, true
	if _, err := w.c.raw.Write(out); err != nil {
		w.err = err
		return true
	}
	if send {
		if _, err := w.c.raw.Write(body); err != nil {
			w.err = err
		}
	}
	return true
}
