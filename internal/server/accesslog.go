package server

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
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

// AccessLog writes one line per request.
type AccessLog struct {
	format string
	text   *slog.Logger // AccessText
	w      io.Writer    // AccessCombined, AccessJSON: one Write per line
}

// NewAccessLog returns an access log in format: text lines go to text,
// combined and json lines to w.
func NewAccessLog(format string, w io.Writer, text *slog.Logger) *AccessLog {
	return &AccessLog{format: format, text: text, w: w}
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

// log writes the line of request r.
func (l *AccessLog) log(r *http.Request, e *accessEntry) {
	switch l.format {
	case AccessCombined, AccessJSON:
		bp := lineBufs.Get().(*[]byte)
		b := (*bp)[:0]
		if l.format == AccessJSON {
			b = appendJSONLine(b, r.RemoteAddr, r.Method, r.RequestURI, r.Proto, r.Host,
				r.Header.Get("Referer"), r.Header.Get("User-Agent"), e)
		} else {
			b = appendCombined(b, r.RemoteAddr, r.Method, r.RequestURI, r.Proto,
				r.Header.Get("Referer"), r.Header.Get("User-Agent"), e)
		}
		l.w.Write(b)
		*bp = b
		lineBufs.Put(bp)
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
	switch l.format {
	case AccessCombined, AccessJSON:
		bp := lineBufs.Get().(*[]byte)
		b := (*bp)[:0]
		if l.format == AccessJSON {
			b = appendJSONLine(b, rj.client, "", rj.line, "", "", "", "", e)
		} else {
			b = appendCombinedRaw(b, rj.client, rj.line, "", "", e)
		}
		l.w.Write(b)
		*bp = b
		lineBufs.Put(bp)
	default:
		l.text.LogAttrs(context.Background(), slog.LevelInfo, "request refused",
			slog.String("client", rj.client),
			slog.String("request", rj.line),
			slog.Int("status", rj.status),
			slog.String("error", rj.reason),
		)
	}
}

func hostOnly(addr string) string {
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

// LogFile is an access log file that follows logrotate: when the file at
// its path is replaced (moved away and created anew) or removed, the next
// line after a check (at most once a second) goes to a new file there.
type LogFile struct {
	path string
	mu   sync.Mutex
	f    *os.File
	ino  uint64
	next time.Time
}

// OpenLogFile opens (appending, creating 0640) the log file at path.
func OpenLogFile(path string) (*LogFile, error) {
	l := &LogFile{path: path}
	if err := l.open(); err != nil {
		return nil, err
	}
	return l, nil
}

func (l *LogFile) open() error {
	f, err := os.OpenFile(l.path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o640)
	if err != nil {
		return err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return err
	}
	if l.f != nil {
		l.f.Close()
	}
	l.f, l.ino = f, inode(fi)
	return nil
}

// Write appends p (one line) to the file.
func (l *LogFile) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if now := time.Now(); now.After(l.next) {
		l.next = now.Add(time.Second)
		if fi, err := os.Stat(l.path); err != nil || inode(fi) != l.ino {
			l.open() // on failure, keep writing to the old one
		}
	}
	return l.f.Write(p)
}

// Close closes the file.
func (l *LogFile) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.f.Close()
}

func inode(fi os.FileInfo) uint64 {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return st.Ino
	}
	return 0
}
