package admin

import (
	"net/url"
	"testing"

	"github.com/ferry-server/ferry/internal/logs"
)

func TestParseLogsQuery(t *testing.T) {
	for _, c := range []struct {
		query string
		want  logsQuery
		err   string
	}{
		{"", logsQuery{lines: DefaultLogLines}, ""},
		{"app=web&pid=42&lines=0&follow=true&format=json",
			logsQuery{filter: logs.Filter{App: "web", PID: 42}, lines: 0, follow: true, asJSON: true}, ""},
		{"format=text&follow=false", logsQuery{lines: DefaultLogLines}, ""},
		{"pid=0", logsQuery{}, `pid must be a process id, not "0"`},
		{"pid=x", logsQuery{}, `pid must be a process id, not "x"`},
		{"lines=-1", logsQuery{}, `lines must be 0 (all kept) or more, not "-1"`},
		{"follow=maybe", logsQuery{}, `follow must be true or false, not "maybe"`},
		{"format=xml", logsQuery{}, `format must be text or json, not "xml"`},
		{"pid=x&format=xml", logsQuery{}, `pid must be a process id, not "x"`}, // the first bad one
	} {
		v, err := url.ParseQuery(c.query)
		if err != nil {
			t.Fatal(err)
		}
		got, err := parseLogsQuery(v)
		switch {
		case c.err != "":
			if err == nil || err.Error() != c.err {
				t.Errorf("%q: error %v, want %q", c.query, err, c.err)
			}
		case err != nil:
			t.Errorf("%q: %v", c.query, err)
		case got != c.want:
			t.Errorf("%q: %+v, want %+v", c.query, got, c.want)
		}
	}
}
