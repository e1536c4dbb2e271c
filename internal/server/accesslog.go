package server

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode"
	"unicode/utf8"
)

// Access log formats.
const (
	// AccessText is a slog record ("request") with key=value attributes, in
	// whatever format the logger writes.
	AccessText = "text"
	// AccessCombined is the NCSA combined format (as nginx and Apache
	// write it), followed by rt=SECONDS id=REQUEST_ID app=NAME pid=PID.
	AccessCombined = "combined"
	// AccessJSON is one JSON object per line.
	AccessJSON = "json"
)

// AccessLog writes one line per request, formatted into a pooled buffer
// and handed to its writer in one Write. The writer is expected to buffer
// (internal/logs does): the access log itself never waits for a file.
type AccessLog struct {
	format string
	w      io.Writer     // one Write per line
	text   *slog.Logger  // AccessText through a logger (NewAccessLog)
	rec    *recordFormat // AccessText formatted here (NewTextAccessLog)
}

// NewAccessLog returns an access log in format: text lines go to text,
// combined and json lines to w.
func NewAccessLog(format string, w io.Writer, text *slog.Logger) *AccessLog {
	return &AccessLog{format: format, text: text, w: w}
}

// Records says how the lines of an AccessText log look: as the records
// slog's TextHandler (JSONHandler with JSON) writes with no option but its
// level, for a logger made with With(Attrs...).
type Records struct {
	JSON bool
	// Level is the handler's minimum level: above Info, nothing is
	// written.
	Level slog.Level
	// Attrs come after msg in every line; their values are written as
	// strings.
	Attrs []slog.Attr
}

// NewTextAccessLog returns an access log in AccessText format that writes
// its lines to w itself, one Write per line, byte for byte as a slog
// handler of format r would, without slog's cost.
func NewTextAccessLog(w io.Writer, r Records) *AccessLog {
	f := &recordFormat{json: r.JSON, off: r.Level > slog.LevelInfo}
	for _, a := range r.Attrs {
		f.pre = f.attr(f.pre, a.Key, a.Value.String())
	}
	return &AccessLog{format: AccessText, w: w, rec: f}
}

// accessEntry is what the request path knows of a request when it logs it.
type accessEntry struct {
	app    string
	status int
	bytes  int64
	pid    int
	id     string
	start  time.Time
	dur    time.Duration
	reason string // why the front refused the request, if it did
}

var lineBufs = sync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }}

// maxPooledLine: a line buffer that grew past it (a huge request target)
// is not kept in the pool.
const maxPooledLine = 16 << 10

// write hands line *bp to the writer and the buffer back to the pool.
func (l *AccessLog) write(bp *[]byte, b []byte) {
	l.w.Write(b)
	if cap(b) <= maxPooledLine {
		*bp = b
		lineBufs.Put(bp)
	}
}

// log writes the line of request r.
func (l *AccessLog) log(r *http.Request, e *accessEntry) {
	switch {
	case l.format == AccessCombined || l.format == AccessJSON:
		bp := lineBufs.Get().(*[]byte)
		b := (*bp)[:0]
		if l.format == AccessJSON {
			b = appendJSONLine(b, r.RemoteAddr, r.Method, r.RequestURI, r.Proto, r.Host,
				r.Header.Get("Referer"), r.Header.Get("User-Agent"), e)
		} else {
			b = appendCombined(b, r.RemoteAddr, r.Method, r.RequestURI, r.Proto,
				r.Header.Get("Referer"), r.Header.Get("User-Agent"), e)
		}
		l.write(bp, b)
	case l.rec != nil:
		if l.rec.off {
			return
		}
		bp := lineBufs.Get().(*[]byte)
		// The record's time: when the request ended, which is now.
		t := e.start.Add(e.dur)
		if e.start.IsZero() {
			t = time.Now()
		}
		l.write(bp, l.rec.appendRequest((*bp)[:0], t, r, e))
	default:
		attrs := [...]slog.Attr{
			slog.String("app", e.app),
			slog.String("client", r.RemoteAddr),
			slog.String("method", r.Method),
			slog.String("path", r.URL.RequestURI()),
			slog.Int("status", e.status),
			slog.Int64("bytes", e.bytes),
			slog.Duration("duration", e.dur),
			slog.Int("pid", e.pid),
			slog.String("request_id", e.id),
			slog.String("error", e.reason),
		}
		n := len(attrs)
		if e.reason == "" {
			n--
		}
		l.text.LogAttrs(context.Background(), slog.LevelInfo, "request", attrs[:n]...)
	}
}

// rejected writes the line of a request net/http refused or that never
// arrived whole; only its client and first bytes are known.
func (l *AccessLog) rejected(rj rejection) {
	e := &accessEntry{status: rj.status, start: time.Now(), reason: rj.reason}
	switch {
	case l.format == AccessCombined || l.format == AccessJSON:
		bp := lineBufs.Get().(*[]byte)
		b := (*bp)[:0]
		if l.format == AccessJSON {
			b = appendJSONLine(b, rj.client, "", rj.line, "", "", "", "", e)
		} else {
			b = appendCombinedRaw(b, rj.client, rj.line, "", "", e)
		}
		l.write(bp, b)
	case l.rec != nil:
		if l.rec.off {
			return
		}
		bp := lineBufs.Get().(*[]byte)
		l.write(bp, l.rec.appendRejected((*bp)[:0], e.start, rj))
	default:
		l.text.LogAttrs(context.Background(), slog.LevelInfo, "request refused",
			slog.String("client", rj.client),
			slog.String("request", rj.line),
			slog.Int("status", rj.status),
			slog.String("error", rj.reason),
		)
	}
}

// hostOnly is addr without its port, as net.SplitHostPort splits it; addr
// itself when it has none.
func hostOnly(addr string) string {
	if strings.IndexByte(addr, ':') < 0 {
		return addr // nothing to split: spare SplitHostPort's error
	}
	if h, _, err := net.SplitHostPort(addr); err == nil {
		return h
	}
	return addr
}

// appendCombined writes `client - - [time] "METHOD target PROTO" status
// bytes "referer" "user-agent" rt=… id=… app=… pid=…`.
func appendCombined(b []byte, client, method, target, proto, referer, ua string, e *accessEntry) []byte {
	b = appendEscaped(b, hostOnly(client))
	b = append(b, " - - ["...)
	b = appendCLFTime(b, e.start)
	b = append(b, "] \""...)
	b = appendEscaped(b, method)
	b = append(b, ' ')
	b = appendEscaped(b, target)
	b = append(b, ' ')
	b = appendEscaped(b, proto)
	b = append(b, "\" "...)
	return appendCombinedTail(b, referer, ua, e)
}

// appendCombinedRaw is appendCombined for a request whose line is only
// known raw.
func appendCombinedRaw(b []byte, client, line, referer, ua string, e *accessEntry) []byte {
	b = appendEscaped(b, hostOnly(client))
	b = append(b, " - - ["...)
	b = appendCLFTime(b, e.start)
	b = append(b, "] \""...)
	b = appendEscaped(b, line)
	b = append(b, "\" "...)
	return appendCombinedTail(b, referer, ua, e)
}

func appendCombinedTail(b []byte, referer, ua string, e *accessEntry) []byte {
	b = strconv.AppendInt(b, int64(e.status), 10)
	b = append(b, ' ')
	b = strconv.AppendInt(b, e.bytes, 10)
	b = append(b, " \""...)
	b = appendDash(b, referer)
	b = append(b, "\" \""...)
	b = appendDash(b, ua)
	b = append(b, "\" rt="...)
	b = strconv.AppendFloat(b, e.dur.Seconds(), 'f', 3, 64)
	b = append(b, " id="...)
	b = appendDash(b, e.id)
	b = append(b, " app="...)
	b = appendDash(b, e.app)
	b = append(b, " pid="...)
	b = strconv.AppendInt(b, int64(e.pid), 10)
	if e.reason != "" {
		b = append(b, " error=\""...)
		b = appendEscaped(b, e.reason)
		b = append(b, '"')
	}
	return append(b, '\n')
}

func appendDash(b []byte, s string) []byte {
	if s == "" {
		return append(b, '-')
	}
	return appendEscaped(b, s)
}

// appendEscaped writes s with '"', '\\', control bytes and bytes past
// ASCII as \xHH, as nginx escapes log fields: one request, one line, and
// nothing a client sends can forge another.
func appendEscaped(b []byte, s string) []byte {
	const hexDigits = "0123456789ABCDEF"
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c >= 0x7f || c == '"' || c == '\\' {
			b = append(b, '\\', 'x', hexDigits[c>>4], hexDigits[c&15])
			continue
		}
		b = append(b, c)
	}
	return b
}

// clfTime caches the formatted time of the current second.
var clfTime atomic.Pointer[struct {
	sec int64
	s   []byte
}]

func appendCLFTime(b []byte, t time.Time) []byte {
	sec := t.Unix()
	if c := clfTime.Load(); c != nil && c.sec == sec {
		return append(b, c.s...)
	}
	s := t.Local().AppendFormat(nil, "02/Jan/2006:15:04:05 -0700")
	clfTime.Store(&struct {
		sec int64
		s   []byte
	}{sec, s})
	return append(b, s...)
}

func appendJSONLine(b []byte, client, method, target, proto, host, referer, ua string, e *accessEntry) []byte {
	b = append(b, `{"time":"`...)
	b = e.start.UTC().AppendFormat(b, "2006-01-02T15:04:05.000Z07:00")
	b = append(b, `","app":`...)
	b = appendJSONString(b, e.app)
	b = append(b, `,"client":`...)
	b = appendJSONString(b, hostOnly(client))
	b = append(b, `,"method":`...)
	b = appendJSONString(b, method)
	b = append(b, `,"uri":`...)
	b = appendJSONString(b, target)
	b = append(b, `,"proto":`...)
	b = appendJSONString(b, proto)
	b = append(b, `,"host":`...)
	b = appendJSONString(b, host)
	b = append(b, `,"status":`...)
	b = strconv.AppendInt(b, int64(e.status), 10)
	b = append(b, `,"bytes":`...)
	b = strconv.AppendInt(b, e.bytes, 10)
	b = append(b, `,"duration_ms":`...)
	b = strconv.AppendFloat(b, float64(e.dur)/float64(time.Millisecond), 'f', 3, 64)
	b = append(b, `,"pid":`...)
	b = strconv.AppendInt(b, int64(e.pid), 10)
	b = append(b, `,"request_id":`...)
	b = appendJSONString(b, e.id)
	b = append(b, `,"referer":`...)
	b = appendJSONString(b, referer)
	b = append(b, `,"user_agent":`...)
	b = appendJSONString(b, ua)
	if e.reason != "" {
		b = append(b, `,"error":`...)
		b = appendJSONString(b, e.reason)
	}
	return append(b, "}\n"...)
}

// appendJSONString writes s as a JSON string; invalid UTF-8 becomes
// U+FFFD, as encoding/json does.
func appendJSONString(b []byte, s string) []byte {
	const hexDigits = "0123456789abcdef"
	b = append(b, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				b = append(b, '\\', c)
			case c < 0x20 || c == 0x7f:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&15])
			default:
				b = append(b, c)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, `\ufffd`...)
		} else {
			b = append(b, s[i:i+size]...)
		}
		i += size
	}
	return append(b, '"')
}

// recordFormat writes AccessText lines as slog's TextHandler or
// JSONHandler would (HandlerOptions with a level only), byte for byte:
// the tests compare the two.
type recordFormat struct {
	json bool
	off  bool   // the level is above Info
	pre  []byte // the With attributes, each after its separator
}

// appendRequest appends the record "request" of r at time t, with the
// attributes the slog path logs.
func (f *recordFormat) appendRequest(b []byte, t time.Time, r *http.Request, e *accessEntry) []byte {
	b = f.begin(b, t, "request")
	b = f.attr(b, "app", e.app)
	b = f.attr(b, "client", r.RemoteAddr)
	b = f.attr(b, "method", r.Method)
	// r.URL.RequestURI(), without building the string.
	if path, query, ok := requestURI(r.URL); ok {
		b = f.attr3(b, "path", path, "?", query)
	} else {
		b = f.attr(b, "path", path)
	}
	b = f.int(b, "status", int64(e.status))
	b = f.int(b, "bytes", e.bytes)
	b = f.key(b, "duration")
	if f.json {
		b = strconv.AppendInt(b, int64(e.dur), 10)
	} else {
		b = append(b, e.dur.String()...)
	}
	b = f.int(b, "pid", int64(e.pid))
	b = f.attr(b, "request_id", e.id)
	if e.reason != "" {
		b = f.attr(b, "error", e.reason)
	}
	return f.end(b)
}

// appendRejected appends the record "request refused" of rj at time t.
func (f *recordFormat) appendRejected(b []byte, t time.Time, rj rejection) []byte {
	b = f.begin(b, t, "request refused")
	b = f.attr(b, "client", rj.client)
	b = f.attr(b, "request", rj.line)
	b = f.int(b, "status", int64(rj.status))
	b = f.attr(b, "error", rj.reason)
	return f.end(b)
}

// requestURI is u.RequestURI() as its path and query parts (with a '?'
// between them when ok); the parts are strings u already holds unless the
// path needs escaping.
func requestURI(u *url.URL) (path, query string, ok bool) {
	if u.Opaque != "" {
		return u.RequestURI(), "", false // rare: let net/url do it
	}
	path = u.EscapedPath()
	if path == "" {
		path = "/"
	}
	return path, u.RawQuery, u.ForceQuery || u.RawQuery != ""
}

// begin appends time, level (INFO), msg and the With attributes.
func (f *recordFormat) begin(b []byte, t time.Time, msg string) []byte {
	if f.json {
		b = append(b, `{"time":"`...)
		b = appendRFC3339Nano(b, t)
		b = append(b, `","level":"INFO","msg":`...)
		b = appendSlogJSON(b, msg)
	} else {
		b = append(b, "time="...)
		b = appendRFC3339Millis(b, t)
		b = append(b, " level=INFO msg="...)
		b = appendSlogText(b, msg)
	}
	return append(b, f.pre...)
}

// key appends the separator and key (one that needs no quoting).
func (f *recordFormat) key(b []byte, key string) []byte {
	if f.json {
		b = append(b, ',', '"')
		b = append(b, key...)
		return append(b, '"', ':')
	}
	b = append(b, ' ')
	b = append(b, key...)
	return append(b, '=')
}

func (f *recordFormat) attr(b []byte, key, val string) []byte {
	if f.json {
		b = append(b, ',')
		b = appendSlogJSON(b, key)
		b = append(b, ':')
		return appendSlogJSON(b, val)
	}
	b = append(b, ' ')
	b = appendSlogText(b, key)
	b = append(b, '=')
	return appendSlogText(b, val)
}

// attr3 is attr with the value x+y+z.
func (f *recordFormat) attr3(b []byte, key, x, y, z string) []byte {
	b = f.key(b, key)
	if f.json {
		return appendSlogJSON(b, x, y, z)
	}
	return appendSlogText(b, x, y, z)
}

func (f *recordFormat) int(b []byte, key string, n int64) []byte {
	return strconv.AppendInt(f.key(b, key), n, 10)
}

func (f *recordFormat) end(b []byte) []byte {
	if f.json {
		return append(b, '}', '\n')
	}
	return append(b, '\n')
}

// appendSlogText appends the concatenation of parts as slog's TextHandler
// writes a string: as it is, or quoted (strconv.Quote) if it is empty or
// has spaces, '=', '"', control characters or invalid UTF-8. Parts must
// be split at ASCII bytes.
func appendSlogText(b []byte, parts ...string) []byte {
	empty, quote := true, false
	for _, s := range parts {
		if s != "" {
			empty = false
			quote = quote || textNeedsQuoting(s)
		}
	}
	if !empty && !quote {
		for _, s := range parts {
			b = append(b, s...)
		}
		return b
	}
	if len(parts) == 1 {
		return strconv.AppendQuote(b, parts[0])
	}
	b = append(b, '"')
	for _, s := range parts {
		n := len(b)
		b = strconv.AppendQuote(b, s)
		b = append(b[:n], b[n+1:len(b)-1]...) // without its quotes
	}
	return append(b, '"')
}

// textPlain[c]: ASCII c may stand unquoted in a slog text value (as it
// may in a JSON string, but for space and '=').
var textPlain = func() (t [utf8.RuneSelf]bool) {
	for c := range t {
		t[c] = jsonSafe(byte(c)) && c != ' ' && c != '='
	}
	t['\\'] = true
	return t
}()

// textNeedsQuoting is log/slog's needsQuoting for a non-empty s.
func textNeedsQuoting(s string) bool {
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if !textPlain[c] {
				return true
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError || unicode.IsSpace(r) || !unicode.IsPrint(r) {
			return true
		}
		i += size
	}
	return false
}

// jsonSafe: ASCII c needs no escaping in a JSON string.
func jsonSafe(c byte) bool { return c >= 0x20 && c != '"' && c != '\\' }

// appendSlogJSON appends the concatenation of parts as slog's JSONHandler
// writes a string (as encoding/json without HTML escaping: invalid UTF-8
// as U+FFFD, U+2028 and U+2029 escaped). Parts must be split at ASCII
// bytes.
func appendSlogJSON(b []byte, parts ...string) []byte {
	const hexDigits = "0123456789abcdef"
	b = append(b, '"')
	for _, s := range parts {
		start := 0
		for i := 0; i < len(s); {
			if c := s[i]; c < utf8.RuneSelf {
				if jsonSafe(c) {
					i++
					continue
				}
				b = append(b, s[start:i]...)
				switch c {
				case '\\', '"':
					b = append(b, '\\', c)
				case '\n':
					b = append(b, '\\', 'n')
				case '\r':
					b = append(b, '\\', 'r')
				case '\t':
					b = append(b, '\\', 't')
				default:
					b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&15])
				}
				i++
				start = i
				continue
			}
			r, size := utf8.DecodeRuneInString(s[i:])
			if r == utf8.RuneError && size == 1 {
				b = append(b, s[start:i]...)
				b = append(b, `\ufffd`...)
				i++
				start = i
				continue
			}
			if r == '\u2028' || r == '\u2029' {
				b = append(b, s[start:i]...)
				b = append(b, `\u202`...)
				b = append(b, hexDigits[r&15])
				i += size
				start = i
				continue
			}
			i += size
		}
		b = append(b, s[start:]...)
	}
	return append(b, '"')
}

// appendRFC3339Millis is how slog's TextHandler writes a time: RFC 3339
// with exactly three digits of milliseconds (truncated).
func appendRFC3339Millis(b []byte, t time.Time) []byte {
	if c := secondOf(t); c != nil {
		ms := t.Nanosecond() / 1e6
		b = append(b, c.head...)
		b = append(b, '.', byte('0'+ms/100), byte('0'+ms/10%10), byte('0'+ms%10))
		return append(b, c.zone...)
	}
	const prefixLen = len("2006-01-02T15:04:05.000")
	n := len(b)
	t = t.Truncate(time.Millisecond).Add(time.Millisecond / 10)
	b = t.AppendFormat(b, time.RFC3339Nano)
	return append(b[:n+prefixLen], b[n+prefixLen+1:]...) // drop the 4th digit
}

// appendRFC3339Nano is t.AppendFormat(b, time.RFC3339Nano), as slog's
// JSONHandler writes a time.
func appendRFC3339Nano(b []byte, t time.Time) []byte {
	c := secondOf(t)
	if c == nil {
		return t.AppendFormat(b, time.RFC3339Nano)
	}
	b = append(b, c.head...)
	if ns := t.Nanosecond(); ns != 0 {
		var d [10]byte
		d[0] = '.'
		for i := 9; i > 0; i-- {
			d[i] = byte('0' + ns%10)
			ns /= 10
		}
		n := 10
		for d[n-1] == '0' {
			n--
		}
		b = append(b, d[:n]...)
	}
	return append(b, c.zone...)
}

// stamp is the formatted second of the time of the last line, as RFC 3339
// writes it around the fraction of a second.
type stamp struct {
	sec  int64
	head []byte // 2006-01-02T15:04:05
	zone []byte // Z07:00
}

var lastSecond atomic.Pointer[stamp]

// secondOf returns the stamp of t's second, nil if t is not in the local
// time zone (as time.Now() is).
func secondOf(t time.Time) *stamp {
	if t.Location() != time.Local {
		return nil
	}
	sec := t.Unix()
	if c := lastSecond.Load(); c != nil && c.sec == sec {
		return c
	}
	c := &stamp{sec: sec, head: t.AppendFormat(nil, "2006-01-02T15:04:05"), zone: t.AppendFormat(nil, "Z07:00")}
	lastSecond.Store(c)
	return c
}
