package admin

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
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
	q := r.URL.Query()
	bad := func(msg string, args ...any) {
		writeJSON(w, http.StatusBadRequest, &APIError{Message: fmt.Sprintf(msg, args...)})
	}
	f := logs.Filter{App: q.Get("app")}
	if v := q.Get("pid"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 {
			bad("pid must be a process id, not %q", v)
			return
		}
		f.PID = n
	}
	lines := DefaultLogLines
	if v := q.Get("lines"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			bad("lines must be 0 (all kept) or more, not %q", v)
			return
		}
		lines = n
	}
	follow := false
	if v := q.Get("follow"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			bad("follow must be true or false, not %q", v)
			return
		}
		follow = b
	}
	asJSON := false
	switch v := q.Get("format"); v {
	case "", "text":
	case "json":
		asJSON = true
	default:
		bad("format must be text or json, not %q", v)
		return
	}
	if f.App != "" && !s.hasApp(f.App) {
		writeJSON(w, http.StatusNotFound, &APIError{Message: fmt.Sprintf("no app named %q", f.App)})
		return
	}

	rec := s.src.Logs()
	enc := json.NewEncoder(w)
	write := func(e logs.Entry) {
		if asJSON {
			enc.Encode(e)
		} else {
			io.WriteString(w, e.Line)
		}
	}
	if asJSON {
		w.Header().Set("Content-Type", "application/x-ndjson")
	} else {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	}
	w.Header().Set("X-Content-Type-Options", "nosniff")
	if !follow {
		for _, e := range rec.Last(f, lines) {
			write(e)
		}
		return
	}
	if lines == 0 {
		lines = -1 // all kept, as without follow
	}
	last, fl := rec.Follow(f, lines)
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
