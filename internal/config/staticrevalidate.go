package config

import (
	"errors"
	"flag"
	"strconv"
	"strings"
	"time"
)

// AppStatic holds how an app's public/ files are served.
type AppStatic struct {
	// StaticRevalidate is how long a file of public/ kept in memory, or a
	// path found absent, is served on inotify's word alone before the next
	// request stats it again (--static-revalidate): it bounds how late a
	// change inotify does not report (a network filesystem changed from
	// another host, a write through a shared mmap) is seen. 0: the default,
	// 1 s (static.DefaultRevalidate); negative: stat on every request.
	StaticRevalidate time.Duration
}

// StatEveryRequest is AppStatic.StaticRevalidate when every request stats
// (--static-revalidate off, 0 or negative).
const StatEveryRequest time.Duration = -1

func init() {
	register(app("static-revalidate", "`SECONDS` a file of public/ held in memory (or a path found absent) is served without a stat while inotify reports no change; past it the next request stats again (default 1; 0, negative or off: stat on every request)", func(a *App) flag.Value {
		return (*revalidateValue)(&a.StaticRevalidate)
	}))
}

// revalidateValue is --static-revalidate: seconds (or a duration), or off.
// Its zero value is the default, 1 s; every "stat each time" spelling is
// stored as StatEveryRequest.
type revalidateValue time.Duration

func (v *revalidateValue) String() string {
	switch d := time.Duration(*v); {
	case d < 0:
		return "off"
	case d == 0:
		return "1"
	default:
		return strconv.FormatFloat(d.Seconds(), 'f', -1, 64)
	}
}

func (v *revalidateValue) Set(s string) error {
	if t := strings.ToLower(strings.TrimSpace(s)); t == "off" || t == "false" || t == "no" {
		*v = revalidateValue(StatEveryRequest)
		return nil
	}
	d, err := ParseSeconds(s)
	if err != nil {
		return errors.New("want seconds (e.g. 1), a duration (e.g. 500ms) or off")
	}
	if d <= 0 {
		d = StatEveryRequest
	}
	*v = revalidateValue(d)
	return nil
}
