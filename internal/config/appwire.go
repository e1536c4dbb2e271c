package config

import "flag"

// AppWire holds which wire the core speaks to an app's loader; embedded
// in App.
type AppWire struct {
	// Wire is "framed" (ferry-wire/1 to the Rack, WSGI and ASGI loaders
	// that choose it, HTTP/1.1 to the rest; docs/loader-wire.md) or
	// "http1" (HTTP/1.1 to every loader: the way back should a framed
	// exchange misbehave with some app) (--app-wire). Default "framed".
	Wire string
}

// The values of --app-wire.
const (
	WireFramed = "framed"
	WireHTTP1  = "http1"
)

func init() {
	register(app("app-wire", "`WIRE` to the app's loader: framed (ferry-wire/1 where the loader speaks it; default) or http1 (HTTP/1.1 always)", func(a *App) flag.Value {
		return (*strValue)(&a.Wire)
	}))
}

func (w *AppWire) finish(p *problems) {
	switch w.Wire {
	case "":
		w.Wire = WireFramed
	case WireFramed, WireHTTP1:
	default:
		p.bad("app-wire", "must be framed or http1 (got %q)", w.Wire)
	}
}
