// Package appwire is ferry-wire/1, the framed binary wire between the core
// and its Rack, WSGI and ASGI loaders (docs/loader-wire.md): a request
// head already in CGI environment form, one NUL split from an environ, and
// a response of a head and length-prefixed body chunks. It is encoding and
// decoding only, pure functions over buffers and readers; the proxy owns
// connections and decides which requests go framed.
package appwire

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/textproto"
)

// Version is the newest wire version this core speaks; Versions lists
// every one, as told to loaders in FERRY_WIRE.
const (
	Version  = 1
	Versions = "1"
)

// Magic is the first byte of a ferry-wire/1 request frame: 0xF0|version.
// No HTTP/1.1 request can begin with it (a method is a token of ASCII
// letters; a loader skips only CR and LF before a request line), so one
// listening socket, and one connection, serves both wires.
const Magic byte = 0xF0 | Version

// MaxHead bounds a head (request or response) in either direction: a
// protocol sanity bound, far above any head the HTTP front lets through.
const MaxHead = 1 << 20

// SwitchHTTP, as a head frame's length, says that the rest of the response
// comes as HTTP/1.1 and the connection closes after it: the app took the
// socket over (a Rack hijack) or answered in a way the loader passes on as
// it is. ReadHead returns ErrSwitchHTTP for it.
const SwitchHTTP = 0xFFFFFFFF

// ErrSwitchHTTP is ReadHead's answer to the SwitchHTTP marker.
var ErrSwitchHTTP = errors.New("the loader switched this response to HTTP/1.1")

// ErrFraming marks a frame that breaks ferry-wire/1; the connection it
// came on is not reused.
var ErrFraming = errors.New("app broke ferry-wire/1 framing")

// Head layouts of a request frame (docs/loader-wire.md): the CGI
// environment (WSGI, Rack), or ASGI's fixed fields and field lines.
const HeadASGI = "asgi"

// KnownHead reports whether a loader's head layout is one this core
// writes ("" is the CGI environment).
func KnownHead(h string) bool { return h == "" || h == HeadASGI }

// Supported reports whether v, a version a loader says it chose, is one
// this core speaks. 0 is HTTP/1.1.
func Supported(v int) bool { return v == 0 || v == Version }

// ------------------------------------------------------------- request ---

// Request builds one request frame in a buffer that the caller reuses
// across requests: Begin, Pair for each environment variable, End.
type Request struct {
	buf   []byte
	start int
	err   error
}

// Begin starts a frame after what the buffer holds (normally nothing).
func (q *Request) Begin(buf []byte) {
	q.buf, q.start, q.err = append(buf, Magic, 0, 0, 0, 0), len(buf), nil
}

// Field adds one field alone (the ASGI layout's fixed fields).
func (q *Request) Field(v string) {
	if q.err != nil {
		return
	}
	if hasNUL(v) {
		q.err = fmt.Errorf("request field %q holds a NUL byte", clip(v))
		return
	}
	if len(q.buf) > q.start+5 {
		q.buf = append(q.buf, 0)
	}
	q.buf = append(q.buf, v...)
}

// PairBytes is Pair for a key in a byte slice, not copied to a string.
func (q *Request) PairBytes(k []byte, v string) {
	if q.err != nil {
		return
	}
	if bytes.IndexByte(k, 0) >= 0 || hasNUL(v) {
		q.err = fmt.Errorf("request field %q holds a NUL byte", clip(string(k)))
		return
	}
	if len(q.buf) > q.start+5 {
		q.buf = append(q.buf, 0)
	}
	q.buf = append(q.buf, k...)
	q.buf = append(q.buf, 0)
	q.buf = append(q.buf, v...)
}

// Pair adds one environment variable. A key or value holding NUL cannot
// be framed (it would split elsewhere): End reports it.
func (q *Request) Pair(k, v string) {
	if q.err != nil {
		return
	}
	if hasNUL(k) || hasNUL(v) {
		q.err = fmt.Errorf("request field %q holds a NUL byte", clip(k))
		return
	}
	if len(q.buf) > q.start+5 {
		q.buf = append(q.buf, 0)
	}
	q.buf = append(q.buf, k...)
	q.buf = append(q.buf, 0)
	q.buf = append(q.buf, v...)
}

// End patches the head's length and returns the whole frame head, ready
// for the body's bytes to follow.
func (q *Request) End() ([]byte, error) {
	if q.err != nil {
		return nil, q.err
	}
	n := len(q.buf) - q.start - 5
	if n > MaxHead {
		return nil, fmt.Errorf("request head of %d bytes exceeds %d", n, MaxHead)
	}
	binary.BigEndian.PutUint32(q.buf[q.start+1:], uint32(n))
	return q.buf, nil
}

func hasNUL(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] == 0 {
			return true
		}
	}
	return false
}

// ------------------------------------------------------------ response ---

// Head is one response head: its status code and reason, and its fields
// in canonical form (as net/http's reader gives them).
type Head struct {
	Code   int
	Status string // "200 OK", or "200" when the loader sent no reason
	Header http.Header
}

// ReadHead reads one response head frame.
func ReadHead(br *bufio.Reader) (Head, error) {
	var h Head
	var lenb [4]byte
	if _, err := io.ReadFull(br, lenb[:]); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return h, err
	}
	n := binary.BigEndian.Uint32(lenb[:])
	if n == SwitchHTTP {
		return h, ErrSwitchHTTP
	}
	if n > MaxHead {
		return h, fmt.Errorf("%w: response head of %d bytes exceeds %d", ErrFraming, n, MaxHead)
	}
	var raw []byte
	if int(n) <= br.Size() {
		// In the buffer: no copy but the strings made from it.
		p, err := br.Peek(int(n))
		if err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return h, err
		}
		raw = p
		defer br.Discard(int(n))
	} else {
		raw = make([]byte, n)
		if _, err := io.ReadFull(br, raw); err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return h, err
		}
	}
	return ParseHead(raw)
}

// ParseHead decodes a response head's bytes: the status, then field name
// and value pairs, all NUL-separated. Names and values are checked as
// net/http's reader checks them, and values trimmed alike, so that a head
// means here what it would mean sent as HTTP/1.1. One string holds the
// whole head; names (when already canonical), values and the status are
// pieces of it, and one slice backs every field's values.
func ParseHead(raw []byte) (Head, error) {
	var h Head
	status, rest, more := cut(raw)
	if len(status) < 3 || !digit(status[0]) || status[0] == '0' || !digit(status[1]) || !digit(status[2]) || (len(status) > 3 && status[3] != ' ') {
		return h, fmt.Errorf("%w: malformed status %q", ErrFraming, clip(string(status)))
	}
	for _, b := range status[3:] {
		if b < ' ' && b != '\t' || b == 0x7f {
			return h, fmt.Errorf("%w: control byte in status %q", ErrFraming, clip(string(status)))
		}
	}
	h.Code = int(status[0]-'0')*100 + int(status[1]-'0')*10 + int(status[2]-'0')
	all := string(raw)
	h.Status = all[:len(status)]
	pairs := bytes.Count(rest, nul) / 2
	if more {
		pairs++
	}
	h.Header = make(http.Header, pairs)
	values := make([]string, 0, pairs)
	for more {
		var name, value []byte
		name, rest, more = cut(rest)
		if !more {
			return h, fmt.Errorf("%w: field %q without a value", ErrFraming, clip(string(name)))
		}
		value, rest, more = cut(rest)
		if !validName(name) {
			return h, fmt.Errorf("%w: malformed field name %q", ErrFraming, clip(string(name)))
		}
		value = trim(value)
		if !validValue(value) {
			return h, fmt.Errorf("%w: malformed value of field %s", ErrFraming, clip(string(name)))
		}
		k := piece(all, raw, name)
		// textproto leaves a name with a space as it is (legacy).
		if bytes.IndexByte(name, ' ') < 0 && !canonical(name) {
			k = textproto.CanonicalMIMEHeaderKey(k)
		}
		v := piece(all, raw, value)
		if vs, ok := h.Header[k]; ok {
			h.Header[k] = append(vs, v)
			continue
		}
		values = append(values, v)
		h.Header[k] = values[len(values)-1 : len(values) : len(values)]
	}
	return h, nil
}

var nul = []byte{0}

// piece is the part of all (string(raw)) that sub, a subslice of raw, is.
func piece(all string, raw, sub []byte) string {
	if len(sub) == 0 {
		return ""
	}
	off := cap(raw) - cap(sub)
	return all[off : off+len(sub)]
}

// canonical reports whether name is in textproto's canonical form already:
// upper case at the start and after each '-', lower case elsewhere.
func canonical(name []byte) bool {
	upper := true
	for _, c := range name {
		switch {
		case upper && 'a' <= c && c <= 'z':
			return false
		case !upper && 'A' <= c && c <= 'Z':
			return false
		}
		upper = c == '-'
	}
	return true
}

// cut splits at the first NUL; more says there was one.
func cut(b []byte) (before, after []byte, more bool) {
	for i, c := range b {
		if c == 0 {
			return b[:i], b[i+1:], true
		}
	}
	return b, nil, false
}

func digit(b byte) bool { return '0' <= b && b <= '9' }

// validName: a token (RFC 9110 §5.6.2), as net/textproto requires, which
// for legacy reasons also lets spaces through past the first byte.
func validName(b []byte) bool {
	if len(b) == 0 || b[0] == ' ' {
		return false
	}
	for _, c := range b {
		if c >= 0x80 || !isTchar[c] && c != ' ' {
			return false
		}
	}
	return true
}

var isTchar = func() (t [128]bool) {
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c] = true
		t[c-'a'+'A'] = true
	}
	for _, c := range "!#$%&'*+-.^_`|~" {
		t[c] = true
	}
	return
}()

// validValue: no control bytes but HTAB (RFC 9110 §5.5), as
// net/textproto requires.
func validValue(b []byte) bool {
	for _, c := range b {
		if c < ' ' && c != '\t' || c == 0x7f {
			return false
		}
	}
	return true
}

func trim(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t') {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\t') {
		b = b[:len(b)-1]
	}
	return b
}

// Body reads a response body's chunks (u32 length, bytes) up to the empty
// chunk that ends it. With a length it checks the chunks add up to it.
type Body struct {
	br   *bufio.Reader
	left int64 // bytes of the current chunk still to read
	want int64 // the head's Content-Length, or -1
	got  int64
	done bool  // the end chunk was read
	err  error // sticky
}

// NewBody reads the chunks on br; length is the head's Content-Length, or
// -1 when it has none.
func NewBody(br *bufio.Reader, length int64) *Body {
	return &Body{br: br, want: length}
}

// Reset makes b read a new body, as NewBody does, without allocating.
func (b *Body) Reset(br *bufio.Reader, length int64) {
	*b = Body{br: br, want: length}
}

// Done reports that the body was read to its end chunk: the connection is
// at a frame boundary.
func (b *Body) Done() bool { return b.done }

func (b *Body) Read(p []byte) (int, error) {
	if b.err != nil {
		return 0, b.err
	}
	for b.left == 0 {
		var lenb [4]byte
		if _, err := io.ReadFull(b.br, lenb[:]); err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			b.err = err
			return 0, err
		}
		n := int64(binary.BigEndian.Uint32(lenb[:]))
		if n == 0 {
			b.done = true
			if b.want >= 0 && b.got != b.want {
				b.err = fmt.Errorf("%w: body of %d bytes, Content-Length %d", ErrFraming, b.got, b.want)
			} else {
				b.err = io.EOF
			}
			return 0, b.err
		}
		if b.want >= 0 && b.got+n > b.want {
			b.err = fmt.Errorf("%w: body longer than its Content-Length %d", ErrFraming, b.want)
			return 0, b.err
		}
		b.left = n
	}
	if int64(len(p)) > b.left {
		p = p[:b.left]
	}
	n, err := b.br.Read(p)
	b.left -= int64(n)
	b.got += int64(n)
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	if err == nil && b.left == 0 && b.got == b.want {
		// All that Content-Length said: the end chunk must follow, and
		// reading it now ends the body with its last bytes, as a
		// length-delimited HTTP/1.1 body ends (the loader sends it with
		// them).
		if err = ReadEnd(b.br); err == nil {
			b.done, err = true, io.EOF
		}
	}
	if err != nil {
		b.err = err
	}
	return n, err
}

// ReadEnd reads the end chunk of a response that has no body (HEAD, 1xx,
// 204, 304): anything else there is a framing error.
func ReadEnd(br *bufio.Reader) error {
	var lenb [4]byte
	if _, err := io.ReadFull(br, lenb[:]); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return err
	}
	if n := binary.BigEndian.Uint32(lenb[:]); n != 0 {
		return fmt.Errorf("%w: a body of %d bytes where none may be", ErrFraming, n)
	}
	return nil
}

// ------------------------------------------------- encoding responses ---

// AppendHead appends a response head frame (for loaders written in Go,
// tests and fuzzing): status, then name and value pairs.
func AppendHead(dst []byte, status string, fields ...string) []byte {
	start := len(dst)
	dst = append(dst, 0, 0, 0, 0)
	dst = append(dst, status...)
	for _, f := range fields {
		dst = append(dst, 0)
		dst = append(dst, f...)
	}
	binary.BigEndian.PutUint32(dst[start:], uint32(len(dst)-start-4))
	return dst
}

// AppendChunk appends one body chunk; an empty one ends the body.
func AppendChunk(dst, data []byte) []byte {
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(data)))
	return append(dst, data...)
}

// ParseRequest splits a request frame's head into its environment pairs
// (for tests and for loaders written in Go).
func ParseRequest(frame []byte) (env []string, rest []byte, err error) {
	if len(frame) < 5 || frame[0] != Magic {
		return nil, nil, fmt.Errorf("%w: not a ferry-wire/1 request", ErrFraming)
	}
	n := binary.BigEndian.Uint32(frame[1:5])
	if uint64(len(frame)-5) < uint64(n) {
		return nil, nil, io.ErrUnexpectedEOF
	}
	head := frame[5 : 5+n]
	for more := len(head) > 0; more; {
		var f []byte
		f, head, more = cut(head)
		env = append(env, string(f))
	}
	if len(env)%2 != 0 {
		return nil, nil, fmt.Errorf("%w: odd number of request fields", ErrFraming)
	}
	return env, frame[5+n:], nil
}

func clip(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}
