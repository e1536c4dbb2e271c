package proxy

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"compress/zlib"
	"errors"
	"fmt"
	"github.com/ferry-server/ferry/internal/appwire"
	"github.com/ferry-server/ferry/internal/httpfield"
	"io"
	"net/http"
	"net/http/httputil"
	"net/textproto"
	"strconv"
	"strings"
	"syscall"
)

// This file reads the app's side of the wire: response heads and the
// framing of their bodies (RFC 9112 §6.3), and says whether a connection
// ended exactly at a message boundary and may carry another request. It
// replaces http.ReadResponse, which refuses any Transfer-Encoding but
// "chunked" and leaves the question of leftover bytes to its caller.

// InterimFunc receives an interim (1xx) response from the app, 100 and 101
// excepted, before the final one: code and fields, hop-by-hop ones
// removed. It is called on the request's goroutine.
type InterimFunc func(code int, h http.Header)

// maxInterim bounds the interim responses read before the final one: a
// protocol sanity bound on the app (a loop sending 1xx forever would
// otherwise hold the request), not a limit anyone needs to tune.
const maxInterim = 32

// framing is how a response body's end is known.
type framing uint8

const (
	bodyLength  framing = iota // Content-Length bytes
	bodyChunked                // the chunked coding's last chunk and trailer section
	bodyClose                  // the close of the connection
	bodyFramed                 // ferry-wire/1 chunks up to the empty one
)

// ErrFraming marks a response whose framing is broken or suspect; the
// connection it came on is not reused.
var ErrFraming = errors.New("app broke HTTP/1.1 framing")

// wireBody is a response body as framed on the connection. It knows
// whether the framing ended cleanly, which decides reuse.
type wireBody struct {
	br         *bufio.Reader
	kind       framing
	left       int64         // bodyLength: bytes still to come
	chunks     io.Reader     // bodyChunked
	frames     *appwire.Body // bodyFramed: &framedBody
	framedBody appwire.Body
	done       bool  // read to the framing's end
	err        error // sticky: the first error or io.EOF
}

func (b *wireBody) Read(p []byte) (int, error) {
	if b.err != nil {
		return 0, b.err
	}
	var n int
	var err error
	switch b.kind {
	case bodyLength:
		if int64(len(p)) > b.left {
			p = p[:b.left]
		}
		n, err = b.br.Read(p)
		b.left -= int64(n)
		switch {
		case b.left == 0:
			b.done, err = true, io.EOF
		case err == io.EOF:
			err = io.ErrUnexpectedEOF
		}
	case bodyChunked:
		n, err = b.chunks.Read(p)
		if err == io.EOF {
			// The last chunk: the trailer section (dropped) ends the message.
			if terr := skipTrailer(b.br); terr != nil {
				err = fmt.Errorf("read trailer section: %w", terr)
			} else {
				b.done = true
			}
		}
	case bodyClose:
		n, err = b.br.Read(p)
		if err == io.EOF {
			b.done = true
		}
	case bodyFramed:
		n, err = b.frames.Read(p)
		b.done = b.frames.Done()
	}
	if err != nil {
		b.err = err
	}
	return n, err
}

func (b *wireBody) Close() error { return nil }

// skipTrailer reads the trailer section after the last chunk, as net/http
// does: the usual empty one, or one that ends (CRLF CRLF) within the
// connection's buffer, which bounds it.
func skipTrailer(br *bufio.Reader) error {
	buf, err := br.Peek(2)
	if len(buf) == 2 && buf[0] == '\r' && buf[1] == '\n' {
		br.Discard(2)
		return nil
	}
	if len(buf) < 2 {
		if err == nil || err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return err
	}
	for peek := 4; ; peek = min(peek*2, br.Size()) {
		buf, err := br.Peek(peek)
		if bytes.Contains(buf, []byte("\r\n\r\n")) {
			break
		}
		if err != nil || peek == br.Size() {
			return fmt.Errorf("%w: trailer section longer than %d bytes or unterminated", ErrFraming, br.Size())
		}
	}
	_, err = textproto.NewReader(br).ReadMIMEHeader()
	return err
}

// message is a response head with what its framing says about the
// connection.
type message struct {
	resp *http.Response
	body *wireBody // nil: no body on the wire
	// keep: the framing allows another message on the connection after
	// this one (HTTP/1.1, no Connection: close, not delimited by close).
	keep bool
	// suspect is a framing fault that did not stop the response from being
	// read (Transfer-Encoding with Content-Length, or in HTTP/1.0): the
	// connection is not reused, and the app is told of it.
	suspect error
	// framed: the response came on ferry-wire/1.
	framed bool
}

// readMessage reads the app's final response to r, handing interim ones to
// interim, and frames its body.
func readMessage(br *bufio.Reader, r *http.Request, interim InterimFunc) (*message, error) {
	for i := 0; ; i++ {
		resp, err := readHead(br, r)
		if err != nil {
			return nil, err
		}
		if code := resp.StatusCode; code >= 200 || code == http.StatusSwitchingProtocols {
			m, err := frame(br, resp, r.Method)
			if err == nil {
				resp.Close = !m.keep
			}
			return m, err
		}
		if i == maxInterim {
			return nil, fmt.Errorf("%w: more than %d interim (1xx) responses", ErrFraming, maxInterim)
		}
		// 100 Continue answers an Expect the core never sends (it has
		// buffered the body): nothing for the client.
		if interim != nil && resp.StatusCode != http.StatusContinue {
			h := make(http.Header, len(resp.Header))
			copyResponseHeader(h, resp.Header)
			interim(resp.StatusCode, h)
		}
	}
}

// readHead reads a status line and header section, as http.ReadResponse
// does, and no further.
func readHead(br *bufio.Reader, r *http.Request) (*http.Response, error) {
	tp := textproto.NewReader(br)
	line, err := tp.ReadLine()
	if err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	resp := &http.Response{Request: r}
	proto, status, ok := strings.Cut(line, " ")
	if !ok {
		return nil, fmt.Errorf("%w: malformed status line %q", ErrFraming, clip(line))
	}
	resp.Proto = proto
	resp.Status = strings.TrimLeft(status, " ")
	code, _, _ := strings.Cut(resp.Status, " ")
	if len(code) != 3 || code[0] < '1' || code[0] > '9' || code[1] < '0' || code[1] > '9' || code[2] < '0' || code[2] > '9' {
		return nil, fmt.Errorf("%w: malformed status code %q", ErrFraming, clip(code))
	}
	resp.StatusCode, _ = strconv.Atoi(code)
	if resp.ProtoMajor, resp.ProtoMinor, ok = http.ParseHTTPVersion(proto); !ok || resp.ProtoMajor != 1 {
		return nil, fmt.Errorf("%w: malformed HTTP version %q", ErrFraming, clip(proto))
	}
	h, err := tp.ReadMIMEHeader()
	if err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	resp.Header = http.Header(h)
	// As http.ReadResponse does (RFC 9111 §5.4).
	if p := h["Pragma"]; len(p) > 0 && p[0] == "no-cache" {
		if _, ok := h["Cache-Control"]; !ok {
			h["Cache-Control"] = []string{"no-cache"}
		}
	}
	return resp, nil
}

// frame decides where the body of resp ends (RFC 9112 §6.3) and whether
// the connection may carry another message after it.
func frame(br *bufio.Reader, resp *http.Response, method string) (*message, error) {
	h := resp.Header
	m := &message{resp: resp, keep: resp.ProtoMinor >= 1 && !httpfield.HasToken(h["Connection"], "close")}
	n := int64(-1)
	if cls := h["Content-Length"]; len(cls) > 0 {
		first := textproto.TrimString(cls[0])
		for _, v := range cls[1:] {
			if textproto.TrimString(v) != first {
				return nil, fmt.Errorf("%w: conflicting Content-Length fields %q", ErrFraming, cls)
			}
		}
		v, err := strconv.ParseUint(first, 10, 63)
		if err != nil || first == "" || first[0] == '+' {
			return nil, fmt.Errorf("%w: bad Content-Length %q", ErrFraming, clip(first))
		}
		n = int64(v)
		if len(cls) > 1 {
			h["Content-Length"] = []string{first}
		}
	}
	te, hasTE := h["Transfer-Encoding"]
	delete(h, "Transfer-Encoding") // hop-by-hop; the body goes on decoded
	code := resp.StatusCode
	resp.Body, resp.ContentLength = http.NoBody, 0
	switch {
	case method == http.MethodHead || code < 200 || code == http.StatusNoContent || code == http.StatusNotModified:
		// No body, whatever the fields say (they describe what a GET
		// would get). Anything after the head is the app's error.
		if method == http.MethodHead {
			resp.ContentLength = n
		}
		return m, nil
	case hasTE && resp.ProtoMinor == 0:
		// RFC 9112 §6.1: faulty framing; Content-Length, else the close.
		m.suspect = fmt.Errorf("%w: Transfer-Encoding in an HTTP/1.0 response", ErrFraming)
	case hasTE:
		codings := transferCodings(te)
		if _, ok := h["Content-Length"]; ok {
			// RFC 9112 §6.3: Transfer-Encoding wins; Content-Length goes.
			delete(h, "Content-Length")
			m.suspect = fmt.Errorf("%w: both Transfer-Encoding and Content-Length", ErrFraming)
		}
		m.body = &wireBody{br: br}
		if len(codings) > 0 && codings[len(codings)-1] == "chunked" {
			m.body.kind = bodyChunked
			m.body.chunks = httputil.NewChunkedReader(br)
			codings = codings[:len(codings)-1]
		} else {
			// Chunked is not the final coding: the close ends the body.
			m.body.kind = bodyClose
			m.keep = false
		}
		resp.ContentLength = -1
		resp.Body = decode(m.body, codings)
		return m, nil
	}
	switch {
	case n == 0:
		return m, nil
	case n > 0:
		m.body = &wireBody{br: br, kind: bodyLength, left: n}
		resp.Body, resp.ContentLength = m.body, n
	default:
		m.body = &wireBody{br: br, kind: bodyClose}
		resp.Body, resp.ContentLength = m.body, -1
		m.keep = false
	}
	return m, nil
}

// transferCodings lists the codings of Transfer-Encoding fields in the
// order they were applied, lower-cased, parameters dropped (a quoted
// parameter's comma does not split, RFC 9110 §5.6).
func transferCodings(fields []string) []string {
	var out []string
	httpfield.Elements(fields, func(e string) bool {
		if c, _, _ := httpfield.Cut(e); c != "" {
			out = append(out, httpfield.LowerString(c))
		}
		return true
	})
	return out
}

// decode undoes the transfer codings left once the framing is removed,
// last applied first, so the client gets the content itself: transfer
// codings are hop-by-hop, and nothing downstream asked for these. At a
// coding it does not know, it stops and the rest goes on as it is.
func decode(r io.ReadCloser, codings []string) io.ReadCloser {
	for i := len(codings) - 1; i >= 0; i-- {
		switch codings[i] {
		case "identity":
		case "gzip", "x-gzip":
			r = &lazyDecoder{src: r, open: func(src io.Reader) (io.Reader, error) { return gzip.NewReader(src) }}
		case "deflate":
			r = &lazyDecoder{src: r, open: func(src io.Reader) (io.Reader, error) { return zlib.NewReader(src) }}
		case "chunked":
			r = &lazyDecoder{src: r, open: func(src io.Reader) (io.Reader, error) {
				return httputil.NewChunkedReader(bufio.NewReader(src)), nil
			}}
		default:
			return r
		}
	}
	return r
}

// lazyDecoder opens its decoder at the first read, so that reading the
// head never waits for body bytes.
type lazyDecoder struct {
	src  io.ReadCloser
	open func(io.Reader) (io.Reader, error)
	dec  io.Reader
	err  error
}

func (d *lazyDecoder) Read(p []byte) (int, error) {
	if d.dec == nil && d.err == nil {
		if d.dec, d.err = d.open(d.src); d.err != nil {
			d.err = fmt.Errorf("decode transfer coding: %w", d.err)
		}
	}
	if d.err != nil {
		return 0, d.err
	}
	return d.dec.Read(p)
}

func (d *lazyDecoder) Close() error { return d.src.Close() }

// clip shortens what the app sent for an error message.
func clip(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}

// unread reports what the app sent on c that nobody has read yet: data
// (bytes past the end of its last response), or its close (or a reset).
// It looks without consuming or waiting: what is buffered, then a
// non-blocking peek at the socket.
func (c *conn) unread() (data, closed bool) {
	if c.br.Buffered() > 0 {
		return true, false
	}
	if c.rc == nil {
		return false, false
	}
	if err := c.rc.Read(c.peek); err != nil {
		return false, true
	}
	switch {
	case c.peekN > 0:
		return true, false
	case c.peekErr == nil:
		return false, true // EOF: the app closed it
	case c.peekErr == syscall.EAGAIN || c.peekErr == syscall.EINTR:
		return false, false
	}
	return false, true
}

// peekFD is c.peek: one non-blocking MSG_PEEK of a byte.
func (c *conn) peekFD(fd uintptr) bool {
	var b [1]byte
	c.peekN, _, c.peekErr = syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
	return true
}
