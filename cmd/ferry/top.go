package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unicode/utf8"

	"golang.org/x/term"

	"github.com/ferry-server/ferry/internal/admin"
)

const topHelp = `Usage: ferry top [APP_DIR | --instance DIR | --pid-file FILE] [options]

A live view of a running instance: each app's processes, as in ferry status,
and the requests in flight, redrawn every --interval. Press q or Ctrl-C to
quit. When standard output is not a terminal, prints one view and exits.
`

// ANSI escapes top draws with.
const (
	altScreenOn  = "\x1b[?1049h"
	altScreenOff = "\x1b[?1049l"
	cursorHide   = "\x1b[?25l"
	cursorShow   = "\x1b[?25h"
	cursorHome   = "\x1b[H"
	clearScreen  = "\x1b[2J"
	clearLine    = "\x1b[K" // to the end of the line
	clearBelow   = "\x1b[J" // to the end of the screen
)

func topCommand(fs *flag.FlagSet) func(context.Context, string) error {
	var target targetFlags
	target.register(fs)
	interval := fs.Duration("interval", time.Second, "how often to refresh, as a `DURATION` (500ms, 2s)")
	return func(ctx context.Context, appDir string) error { return top(ctx, &target, appDir, *interval) }
}

func top(ctx context.Context, target *targetFlags, appDir string, interval time.Duration) error {
	if interval < 100*time.Millisecond {
		return fmt.Errorf("top: --interval must be at least 100ms (got %s)", interval)
	}
	in, err := target.pick(appDir)
	if err != nil {
		return fmt.Errorf("top: %w", err)
	}
	c := admin.NewClient(in.Dir)

	out := os.Stdout
	if !term.IsTerminal(int(out.Fd())) {
		// One view for scripts and pipes.
		f := fetchFrame(ctx, c)
		if f.Err != nil {
			return fmt.Errorf("top: %w", f.Err)
		}
		var buf bytes.Buffer
		for _, l := range renderTop(f, nil, topView{}) {
			buf.WriteString(l + "\n")
		}
		_, err := out.Write(buf.Bytes())
		return err
	}
	return runTop(ctx, c, out, interval)
}

// runTop draws frames on the terminal out until q, Ctrl-C or a signal.
func runTop(ctx context.Context, c *admin.Client, out *os.File, interval time.Duration) error {
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	defer stop()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	// Raw mode, so that q needs no Enter and Ctrl-C is a key (the terminal
	// no longer turns it into SIGINT). Without a terminal on stdin, there
	// are no keys: SIGINT still quits.
	keys := make(chan byte, 1)
	if fd := int(os.Stdin.Fd()); term.IsTerminal(fd) {
		old, err := term.MakeRaw(fd)
		if err != nil {
			return fmt.Errorf("top: terminal raw mode: %w", err)
		}
		defer term.Restore(fd, old)
		// Blocks in Read until a key or exit; not stopped on return, as
		// nothing can interrupt a terminal read, and the process ends.
		go readKeys(os.Stdin, keys)
	}
	io.WriteString(out, altScreenOn+cursorHide+clearScreen)
	defer io.WriteString(out, cursorShow+altScreenOff)

	winch := make(chan os.Signal, 1)
	signal.Notify(winch, syscall.SIGWINCH)
	defer signal.Stop(winch)

	frames := make(chan topFrame)
	go func() {
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			f := fetchFrame(ctx, c)
			select {
			case frames <- f:
			case <-ctx.Done():
				return
			}
			select {
			case <-t.C:
			case <-ctx.Done():
				return
			}
		}
	}()

	pal := paletteFor(out)
	var cur, prev *topFrame
	var rates map[string]float64
	draw := func() {
		w, h, err := term.GetSize(int(out.Fd()))
		if err != nil {
			w, h = 80, 24
		}
		var f topFrame
		if cur != nil {
			f = *cur
		} else {
			f = topFrame{At: time.Now(), Loading: true}
		}
		var buf bytes.Buffer
		buf.WriteString(cursorHome)
		for i, l := range renderTop(f, rates, topView{width: w, height: h, interactive: true, pal: pal}) {
			if i > 0 {
				buf.WriteString("\r\n")
			}
			buf.WriteString(l + clearLine)
		}
		buf.WriteString(clearBelow)
		out.Write(buf.Bytes())
	}
	draw()
	for {
		select {
		case <-ctx.Done():
			return nil
		case k := <-keys:
			switch k {
			case 'q', 'Q', 3, 4: // q, Ctrl-C, Ctrl-D
				return nil
			}
			draw()
		case <-winch:
			draw()
		case f := <-frames:
			if f.Err == nil {
				if prev != nil {
					rates = requestRates(*prev, f)
				}
				prev = &f
			}
			cur = &f
			draw()
		}
	}
}

func readKeys(r io.Reader, keys chan<- byte) {
	b := make([]byte, 16)
	for {
		n, err := r.Read(b)
		for _, k := range b[:n] {
			keys <- k
		}
		if err != nil {
			return
		}
	}
}

// topFrame is one refresh of top: what the admin API said at At.
type topFrame struct {
	At       time.Time
	Info     admin.Info
	Pool     admin.PoolStatus
	Requests []admin.RequestInfo
	// Err is why the API could not be read; the frame has nothing else.
	Err error
	// Loading is the frame before the first answer.
	Loading bool
}

// fetchFrame asks the API for the core, the pool and the requests.
func fetchFrame(ctx context.Context, c *admin.Client) topFrame {
	ctx, cancel := context.WithTimeout(ctx, statusTimeout)
	defer cancel()
	f := topFrame{At: time.Now()}
	var rs requestsAnswer
	for _, call := range []struct {
		path string
		out  any
	}{{"/server", &f.Info}, {"/pool", &f.Pool}, {"/requests", &rs}} {
		if err := c.Do(ctx, "GET", call.path, call.out); err != nil {
			return topFrame{At: f.At, Err: err}
		}
	}
	f.Requests = rs.Requests
	return f
}

// requestRates is requests per second of each app between two frames, from
// the pool's count of finished requests (the sum of the processed counters
// of its processes, kept when processes go). An app whose count went back
// (a new core) has none.
func requestRates(prev, cur topFrame) map[string]float64 {
	dt := cur.At.Sub(prev.At).Seconds()
	if dt <= 0 {
		return nil
	}
	before := map[string]uint64{}
	for _, a := range prev.Pool.Apps {
		before[a.Name] = a.Stats.RequestsDone
	}
	out := map[string]float64{}
	for _, a := range cur.Pool.Apps {
		b, ok := before[a.Name]
		if ok && a.Stats.RequestsDone >= b && prev.Info.PID == cur.Info.PID {
			out[a.Name] = float64(a.Stats.RequestsDone-b) / dt
		}
	}
	return out
}

// topView is where a frame is drawn.
type topView struct {
	// width and height bound the lines drawn; 0 is no bound.
	width, height int
	// interactive says keys work (and so says how to quit).
	interactive bool
	pal         palette
}

// renderTop lays out one frame as lines for v. rates are requests per
// second by app (nil before there are two frames). Pure, for golden tests.
func renderTop(f topFrame, rates map[string]float64, v topView) []string {
	width, height, pal := v.width, v.height, v.pal
	type line struct {
		text  string
		style func(string) string
	}
	plain := func(s string) string { return s }
	var lines []line
	add := func(style func(string) string, s string) { lines = append(lines, line{s, style}) }

	title := "ferry top"
	switch {
	case f.Loading:
		add(pal.bold, title)
		add(plain, "")
		add(plain, "Asking the core…")
	case f.Err != nil:
		add(pal.bold, title+"   "+f.At.Format("15:04:05"))
		add(plain, "")
		add(pal.red, f.Err.Error())
		add(plain, "Retrying; ferry memory-stats works without the core.")
	default:
		add(pal.bold, fmt.Sprintf("%s   pid %d   up %s   %s   %s", title, f.Info.PID,
			humanDuration(seconds(f.Info.Uptime)), f.Info.Instance, f.At.Format("15:04:05")))
		for _, a := range f.Pool.Apps {
			rate := "-"
			if r, ok := rates[a.Name]; ok {
				rate = strconv.FormatFloat(r, 'f', 1, 64)
			}
			add(plain, "")
			add(pal.bold, fmt.Sprintf("%s: %s (min %d, max %d), queue %d, %s requests/s, generation %d",
				a.Name, plural(uint64(len(a.Processes)), "process"), a.Min, a.Max, a.Queued, rate, a.Generation))
			if a.Restarting {
				add(plain, "restarting")
			}
			if a.LastError != "" {
				add(pal.red, "last spawn error: "+a.LastError)
			}
			if a.DeployError != "" {
				add(pal.red, "deploy error: "+a.DeployError)
			}
			if len(a.Processes) == 0 {
				add(plain, "  no processes running")
				continue
			}
			for i, l := range processTable(a.Processes, f.At) {
				if i == 0 {
					add(pal.bold, "  "+l)
				} else {
					add(plain, "  "+l)
				}
			}
		}
		add(plain, "")
		switch n := len(f.Requests); n {
		case 0:
			add(pal.bold, "No requests in flight")
		case 1:
			add(pal.bold, "1 request in flight")
		default:
			add(pal.bold, fmt.Sprintf("%d requests in flight", n))
		}
		if len(f.Requests) > 0 {
			pathWidth := 60
			if width > 0 {
				pathWidth = max(width-60, 20)
			}
			for i, l := range requestTable(f.Requests, pathWidth) {
				if i == 0 {
					add(pal.bold, "  "+l)
				} else {
					add(plain, "  "+l)
				}
			}
		}
	}
	if v.interactive {
		add(plain, "")
		add(plain, "q: quit")
	}

	if height > 0 && len(lines) > height {
		cut := len(lines) - height + 1
		lines = append(lines[:height-1], line{fmt.Sprintf("… %d more lines", cut), plain})
	}
	out := make([]string, len(lines))
	for i, l := range lines {
		text := l.text
		if width > 0 && utf8.RuneCountInString(text) > width {
			text = string([]rune(text)[:width])
		}
		out[i] = l.style(strings.TrimRight(text, " "))
	}
	return out
}
