package config

import "flag"

// AppResponseHead holds the bound on an app's response heads; embedded in
// App.
type AppResponseHead struct {
	// MaxResponseHeadSize bounds the response head (status line and
	// fields, interim 1xx heads included) the app may send; past it the
	// client gets 502 and the connection to the process is closed
	// (--max-response-head-size). Default 1 MiB; a framed head
	// (ferry-wire/1) is bounded at 1 MiB whatever this says.
	MaxResponseHeadSize int64
}

// DefaultMaxResponseHeadSize is --max-response-head-size's default.
const DefaultMaxResponseHeadSize = 1 << 20

func init() {
	register(app("max-response-head-size", "`BYTES` of response head (status line and fields) an app may send; past it 502 (default 1m)", func(a *App) flag.Value {
		return (*bytesValue)(&a.MaxResponseHeadSize)
	}))
}

func (h *AppResponseHead) finish(p *problems) {
	switch {
	case h.MaxResponseHeadSize == 0:
		h.MaxResponseHeadSize = DefaultMaxResponseHeadSize
	case h.MaxResponseHeadSize < 1<<10 || h.MaxResponseHeadSize > 1<<30:
		p.bad("max-response-head-size", "must be between 1k and 1g (got %d)", h.MaxResponseHeadSize)
	}
}
