package logs

import (
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"
)

func TestRecentHandler(t *testing.T) {
	r := NewRecent(0)
	var out bytes.Buffer
	log := slog.New(r.handler(slog.NewJSONHandler(&out, nil)))
	log.Info("core line", "n", 1)
	proc := log.With("app", "blog", "pid", 42)
	proc.Info("app output", "line", "multi\nline")
	log.Warn("about a process", "app", "shop", "pid", "7")
	log.WithGroup("g").Info("grouped", "app", "inner")
	log.Debug("not logged")

	got := r.Last(Filter{}, 0)
	if len(got) != 4 {
		t.Fatalf("%d records, want 4: %+v", len(got), got)
	}
	want := []struct {
		app, level, line string
		pid              int
	}{
		{"", "INFO", `msg="core line" n=1`, 0},
		{"blog", "INFO", `msg="app output" app=blog pid=42 line="multi\nline"`, 42},
		{"shop", "WARN", `msg="about a process" app=shop pid=7`, 7},
		{"", "INFO", `msg=grouped g.app=inner`, 0},
	}
	for i, w := range want {
		e := got[i]
		if e.App != w.app || e.PID != w.pid || e.Level != w.level || !strings.Contains(e.Line, w.line) ||
			strings.Count(e.Line, "\n") != 1 || e.Seq != uint64(i+1) {
			t.Errorf("record %d = %+v, want app %q pid %d level %s line with %s", i, e, w.app, w.pid, w.level, w.line)
		}
	}
	// The records went on to the real handler too.
	if n := strings.Count(out.String(), "\n"); n != 4 {
		t.Errorf("%d lines reached the log, want 4", n)
	}
	if got := r.Last(Filter{App: "blog"}, 0); len(got) != 1 || got[0].PID != 42 {
		t.Errorf("app blog: %+v", got)
	}
	if got := r.Last(Filter{PID: 7}, 0); len(got) != 1 || got[0].App != "shop" {
		t.Errorf("pid 7: %+v", got)
	}
	if got := r.Last(Filter{}, 2); len(got) != 2 || got[0].Seq != 3 || got[1].Seq != 4 {
		t.Errorf("last 2: %+v", got)
	}
}

func TestRecentBounded(t *testing.T) {
	r := NewRecent(10 << 10)
	log := slog.New(r.handler(slog.NewTextHandler(new(bytes.Buffer), nil)))
	for i := range 1000 {
		log.Info(fmt.Sprintf("line %d", i))
	}
	log.Info(strings.Repeat("x", 100<<10)) // one huge line is cut
	got := r.Last(Filter{}, 0)
	if r.size > 10<<10 || len(got) == 0 || len(got) > 200 {
		t.Fatalf("%d records, %d bytes kept", len(got), r.size)
	}
	last := got[len(got)-1]
	if last.Seq != 1001 || len(last.Line) > 3*maxRecentLine || !strings.Contains(last.Line, "…(cut)") {
		t.Errorf("the huge line: seq %d, %d bytes", last.Seq, len(last.Line))
	}
	if got[0].Seq+uint64(len(got))-1 != last.Seq {
		t.Errorf("the records kept are not the latest in a row")
	}
}

func TestRecentFollow(t *testing.T) {
	r := NewRecent(0)
	log := slog.New(r.handler(slog.NewTextHandler(new(bytes.Buffer), nil)))
	for i := range 5 {
		log.Info("before", "i", i, "app", []string{"a", "b"}[i%2])
	}
	last, fl := r.Follow(Filter{App: "a"}, 2)
	defer fl.Stop()
	if len(last) != 2 || last[0].Seq != 3 || last[1].Seq != 5 {
		t.Fatalf("last: %+v", last)
	}
	log.Info("after", "app", "b")
	log.Info("after", "app", "a")
	e := <-fl.C()
	if e.Seq != 7 || e.App != "a" || fl.Seen(e) {
		t.Fatalf("followed %+v", e)
	}
	// A reader too slow loses records, and is told how many.
	for range 1100 {
		log.Info("flood", "app", "a")
	}
	if d := fl.Dropped(); d != uint64(1100-cap(fl.ch)) {
		t.Errorf("dropped %d, want %d", d, 1100-cap(fl.ch))
	}
	fl.Stop()
	log.Info("stopped", "app", "a")
	if n := len(fl.ch); n != cap(fl.ch) {
		t.Errorf("%d queued after Stop", n)
	}
	r.shut()
	r.shut()
	<-r.Closed()
}

// BenchmarkRecentHandler is the cost the memory of ferry logs adds to a
// logged line (an app's output line, as the spawn package logs it).
func BenchmarkRecentHandler(b *testing.B) {
	for _, keep := range []bool{false, true} {
		b.Run(map[bool]string{false: "plain", true: "kept"}[keep], func(b *testing.B) {
			var h slog.Handler = slog.NewTextHandler(io.Discard, nil)
			if keep {
				h = NewRecent(0).handler(h)
			}
			log := slog.New(h).With("app", "blog", "pid", 4242)
			b.ReportAllocs()
			for b.Loop() {
				log.Info("app output", "stream", "stdout", "line", "GET /posts/42 rendered in 12ms")
			}
		})
	}
}
