package logs

import (
	"context"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultRecentBytes is how much of the latest log the core keeps in
// memory for `ferry logs` when Options.Recent is 0.
const DefaultRecentBytes = 1 << 20

// maxRecentLine bounds the message kept of one record: an app printing a
// huge line must not take the whole buffer.
const maxRecentLine = 8 << 10

// Entry is one record of the core's log or of an app's output, as `ferry
// logs` shows it.
type Entry struct {
	Seq   uint64    `json:"seq"`
	Time  time.Time `json:"time"`
	Level string    `json:"level"`
	// App and PID are the record's app and process, if it has them.
	App string `json:"app,omitempty"`
	PID int    `json:"pid,omitempty"`
	// Line is the record in the text format of the core's log.
	Line string `json:"line"`
}

// Recent keeps the latest records of the core's log and of the apps'
// output, whatever file (or standard error, or journald) they go to, and
// hands new ones to followers. Its methods are safe for concurrent use.
type Recent struct {
	mu    sync.Mutex
	max   int64
	size  int64
	ring  []Entry // oldest first from head
	head  int
	n     int
	seq   uint64
	subs  map[*Follower]struct{}
	close chan struct{}

	// text renders records as the core's text log does, into line; lineMu
	// is held around each rendering.
	text   slog.Handler
	lineMu sync.Mutex
	line   lineBuf
}

// lineBuf keeps the last line written to it.
type lineBuf struct{ b []byte }

func (l *lineBuf) Write(p []byte) (int, error) {
	l.b = append(l.b[:0], p...)
	return len(p), nil
}

// NewRecent keeps up to max bytes of records (0: DefaultRecentBytes).
func NewRecent(max int64) *Recent {
	if max <= 0 {
		max = DefaultRecentBytes
	}
	r := &Recent{max: max, ring: make([]Entry, 64), subs: map[*Follower]struct{}{}, close: make(chan struct{})}
	r.text = slog.NewTextHandler(&r.line, &slog.HandlerOptions{Level: slog.LevelDebug})
	return r
}

func entrySize(e *Entry) int64 { return int64(len(e.Line)+len(e.App)) + 64 }

func (r *Recent) add(e Entry) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.seq++
	e.Seq = r.seq
	for r.n > 0 && r.size+entrySize(&e) > r.max {
		old := &r.ring[r.head]
		r.size -= entrySize(old)
		*old = Entry{}
		r.head = (r.head + 1) % len(r.ring)
		r.n--
	}
	if r.n == len(r.ring) {
		grown := make([]Entry, 2*len(r.ring))
		for i := range r.n {
			grown[i] = r.ring[(r.head+i)%len(r.ring)]
		}
		r.ring, r.head = grown, 0
	}
	r.ring[(r.head+r.n)%len(r.ring)] = e
	r.n++
	r.size += entrySize(&e)
	for f := range r.subs {
		if f.match(&e) {
			select {
			case f.ch <- e:
			default:
				f.dropped.Add(1)
			}
		}
	}
}

// Filter picks records: by app name and pid, when set.
type Filter struct {
	App string
	PID int
}

func (f Filter) match(e *Entry) bool {
	return (f.App == "" || e.App == f.App) && (f.PID == 0 || e.PID == f.PID)
}

// Last returns the latest n records that f picks (n ≤ 0: all kept), oldest
// first.
func (r *Recent) Last(f Filter, n int) []Entry {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []Entry
	for i := r.n - 1; i >= 0 && (n <= 0 || len(out) < n); i-- {
		e := &r.ring[(r.head+i)%len(r.ring)]
		if f.match(e) {
			out = append(out, *e)
		}
	}
	for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
		out[i], out[j] = out[j], out[i]
	}
	return out
}

// Follower receives the records logged after Follow, until Stop.
type Follower struct {
	Filter
	r  *Recent
	ch chan Entry
	// dropped counts records this follower missed because it read too
	// slowly (its channel was full).
	dropped atomic.Uint64
	// skipUpTo: records up to this Seq were in Follow's answer already.
	skipUpTo uint64
}

// Follow returns the last n records f picks (as Last) and a Follower of
// those logged after them, with no gap and no overlap between the two.
func (r *Recent) Follow(f Filter, n int) ([]Entry, *Follower) {
	fl := &Follower{Filter: f, r: r, ch: make(chan Entry, 1024)}
	r.mu.Lock()
	r.subs[fl] = struct{}{}
	r.mu.Unlock()
	// add takes r.mu too, so Last sees exactly what came before fl was
	// subscribed, give or take entries that are in both: drop those.
	last := r.Last(f, n)
	if len(last) > 0 {
		fl.skipUpTo = last[len(last)-1].Seq
	}
	return last, fl
}

// C delivers the records.
func (f *Follower) C() <-chan Entry { return f.ch }

// Dropped returns, and resets, how many records were missed since the
// last call.
func (f *Follower) Dropped() uint64 { return f.dropped.Swap(0) }

// Seen reports whether e was already returned by Follow's Last.
func (f *Follower) Seen(e Entry) bool { return e.Seq <= f.skipUpTo }

// Stop ends the following.
func (f *Follower) Stop() {
	f.r.mu.Lock()
	delete(f.r.subs, f)
	f.r.mu.Unlock()
}

// Closed is closed when the outputs are closed (the core is stopping):
// followers should end then.
func (r *Recent) Closed() <-chan struct{} { return r.close }

func (r *Recent) shut() {
	r.mu.Lock()
	defer r.mu.Unlock()
	select {
	case <-r.close:
	default:
		close(r.close)
	}
}

// recentHandler passes records on to next and keeps them in r.
type recentHandler struct {
	next    slog.Handler
	r       *Recent
	text    slog.Handler // r.text with this handler's attributes and groups
	inGroup bool         // attributes now go into a group
	app     string
	pid     int
}

func (r *Recent) handler(next slog.Handler) slog.Handler {
	return &recentHandler{next: next, r: r, text: r.text}
}

func (h *recentHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return h.next.Enabled(ctx, l)
}

func (h *recentHandler) Handle(ctx context.Context, rec slog.Record) error {
	e := Entry{Time: rec.Time, Level: rec.Level.String(), App: h.app, PID: h.pid}
	if !h.inGroup {
		rec.Attrs(func(a slog.Attr) bool {
			pickAppPID(a, &e.App, &e.PID)
			return true
		})
	}
	// The line as the core's text log has it (one line: text quotes
	// newlines), rendered once here for every reader.
	short := rec
	if len(short.Message) > maxRecentLine {
		short.Message = short.Message[:maxRecentLine] + "…(cut)"
	}
	h.r.lineMu.Lock()
	h.text.Handle(ctx, short)
	line := h.r.line.b
	if len(line) > 2*maxRecentLine {
		line = append(line[:2*maxRecentLine:2*maxRecentLine], "…(cut)\n"...)
	}
	e.Line = string(line)
	h.r.lineMu.Unlock()
	h.r.add(e)
	return h.next.Handle(ctx, rec)
}

func (h *recentHandler) WithAttrs(as []slog.Attr) slog.Handler {
	c := *h
	c.next = h.next.WithAttrs(as)
	c.text = h.text.WithAttrs(as)
	if !h.inGroup {
		for _, a := range as {
			pickAppPID(a, &c.app, &c.pid)
		}
	}
	return &c
}

func (h *recentHandler) WithGroup(name string) slog.Handler {
	c := *h
	c.next = h.next.WithGroup(name)
	c.text = h.text.WithGroup(name)
	c.inGroup = true
	return &c
}

// pickAppPID notes the app and pid attributes Ferry's loggers carry.
func pickAppPID(a slog.Attr, app *string, pid *int) {
	switch a.Key {
	case "app":
		*app = a.Value.Resolve().String()
	case "pid":
		v := a.Value.Resolve()
		switch v.Kind() {
		case slog.KindInt64:
			*pid = int(v.Int64())
		case slog.KindUint64:
			*pid = int(v.Uint64())
		default:
			if n, err := strconv.Atoi(v.String()); err == nil {
				*pid = n
			}
		}
	}
}
