package admin

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"

	"github.com/ferry-server/ferry/internal/logs"
)

// Bounds of GET /logs?lines.
const (
	DefaultLogLines = 100
)

// logsHandler serves GET /logs: the latest records of the core's log and
// the apps' output the core keeps in memory (whatever file they go to),
// ?app=NAME and ?pid=N picking some, ?lines=N how many (default 100; 0:
// all kept), ?follow=true then streaming new ones until the client or the
// core goes away, ?format=json one JSON object per line instead of the
// text lines.
func (s *Server) logsHandler(w http.ResponseWriter, r *http.Request) {
	q, err := parseLogsQuery(r.URL.Query())
	if err != nil {
		writeJSON(w, http.StatusBadRequest, &APIError{Message: err.Error()})
		return
	}
	if q.filter.App != "" && !s.hasApp(q.filter.App) {
		writeJSON(w, http.StatusNotFound, &APIError{Message: fmt.Sprintf("no app named %q", q.filter.App)})
		return
	}
	rec := s.src.Logs()
	write := logEntryWriter(w, q.asJSON)
	w.Header().Set("X-Content-Type-Options", "nosniff")
	if !q.follow {
		for _, e := range rec.Last(q.filter, q.lines) {
			write(e)
		}
		return
	}
	s.followLogs(w, r, rec, q, write)
}

// logsQuery is what GET /logs was asked for.
type logsQuery struct {
	filter logs.Filter
	lines  int
	follow bool
	asJSON bool
}

// parseLogsQuery reads GET /logs's query, or says which parameter is bad.
func parseLogsQuery(v url.Values) (logsQuery, error) {
	q := logsQuery{filter: logs.Filter{App: v.Get("app")}, lines: DefaultLogLines}
	if p := v.Get("pid"); p != "" {
		n, err := strconv.Atoi(p)
		if err != nil || n <= 0 {
			return q, fmt.Errorf("pid must be a process id, not %q", p)
		}
		q.filter.PID = n
	}
	if l := v.Get("lines"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 0 {
			return q, fmt.Errorf("lines must be 0 (all kept) or more, not %q", l)
		}
		q.lines = n
	}
	if f := v.Get("follow"); f != "" {
		b, err := strconv.ParseBool(f)
		if err != nil {
			return q, fmt.Errorf("follow must be true or false, not %q", f)
		}
		q.follow = b
	}
	switch f := v.Get("format"); f {
	case "", "text":
	case "json":
		q.asJSON = true
	default:
		return q, fmt.Errorf("format must be text or json, not %q", f)
	}
	return q, nil
}

// logEntryWriter sets w's content type and returns what writes one entry
// to it: its line, or (asJSON) the entry as one line of JSON.
func logEntryWriter(w http.ResponseWriter, asJSON bool) func(logs.Entry) {
	if asJSON {
		w.Header().Set("Content-Type", "application/x-ndjson")
		enc := json.NewEncoder(w)
		return func(e logs.Entry) { enc.Encode(e) }
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	return func(e logs.Entry) { io.WriteString(w, e.Line) }
}

// followLogs writes the latest entries, then new ones as they come, until
// the client, the log or the admin server goes away.
func (s *Server) followLogs(w http.ResponseWriter, r *http.Request, rec *logs.Recent, q logsQuery, write func(logs.Entry)) {
	lines := q.lines
	if lines == 0 {
		lines = -1 // all kept, as without follow
	}
	last, fl := rec.Follow(q.filter, lines)
	defer fl.Stop()
	for _, e := range last {
		write(e)
	}
	rc := http.NewResponseController(w)
	rc.Flush()
	for {
		select {
		case e := <-fl.C():
			// Write what is there, then flush once.
			for more := true; more; {
				if d := fl.Dropped(); d > 0 {
					fmt.Fprintf(w, "-- ferry logs: %d lines missed: this reader was too slow --\n", d)
				}
				if !fl.Seen(e) {
					write(e)
				}
				select {
				case e = <-fl.C():
				default:
					more = false
				}
			}
			if rc.Flush() != nil {
				return
			}
		case <-r.Context().Done():
			return
		case <-rec.Closed():
			return
		case <-s.closing:
			return
		}
	}
}

func (s *Server) hasApp(name string) bool {
	for _, a := range s.src.Apps() {
		if a.Group.Name() == name {
			return true
		}
	}
	return false
}
