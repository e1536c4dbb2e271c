package server

import (
	"context"
	"errors"
	"fmt"
	"html/template"
	"io"
	"net"
	"net/http"
	"strconv"
	"syscall"
	"time"

	"github.com/ferry-server/ferry/internal/pool"
	"github.com/ferry-server/ferry/internal/proxy"
)

// StatusClientClosed is logged (never sent) when the client went away
// before a response could be given, as nginx does.
const StatusClientClosed = 499

// errNoApp is a request for a host and path no app is configured for.
var errNoApp = errors.New("no app is configured for this host and path")

// ErrRequestTimeout is a request that ran longer than --max-request-time.
var ErrRequestTimeout = errors.New("the request ran longer than the maximum request time")

// clientError is a request the front refuses: a 4xx with a message, and
// close when the connection cannot be trusted for another request.
type clientError struct {
	status int
	msg    string
	close  bool
}

func (e *clientError) Error() string { return e.msg }

// errClientGone is a client that went away before its request arrived
// whole: nobody to answer.
var errClientGone = errors.New("the client closed the connection")

// clientBodyError says what a failed read of the request body means: the
// client was too slow (408), gone (no answer), or sent a malformed body
// (400).
func clientBodyError(err error) error {
	var ne net.Error
	switch {
	case errors.As(err, &ne) && ne.Timeout():
		return &clientError{status: http.StatusRequestTimeout, close: true,
			msg: "The request body did not arrive in time."}
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, net.ErrClosed), errors.Is(err, syscall.ECONNRESET),
		errors.Is(err, syscall.EPIPE), errors.Is(err, http.ErrBodyReadAfterClose):
		return fmt.Errorf("%w: %w", errClientGone, err)
	}
	return &clientError{status: http.StatusBadRequest, close: true,
		msg: "The request body is malformed: " + err.Error() + "."}
}

// errorPage is what one error looks like to a client.
type errorPage struct {
	Status     int
	Title      string
	Message    string
	Close      bool // the connection is closed after the answer
	RetryAfter time.Duration
	// Spawn details, shown only in development.
	Summary, Details, Output string
}

// classify maps an error of the request path to what the client is told;
// the one place where errors become statuses.
func classify(err error) errorPage {
	var (
		se spawnFailure
		be *pool.BackoffError
		ce *clientError
	)
	switch {
	case errors.As(err, &ce):
		return errorPage{Status: ce.status, Title: http.StatusText(ce.status), Message: ce.msg, Close: ce.close}
	case errors.Is(err, proxy.ErrBodyTooLarge):
		return errorPage{Status: http.StatusRequestEntityTooLarge, Title: "Request body too large",
			Message: "The request body is larger than this server accepts."}
	case errors.Is(err, pool.ErrQueueFull):
		return errorPage{Status: http.StatusServiceUnavailable, Title: "Server busy",
			Message:    "The app is too busy to take this request now: its request queue is full. Please try again shortly.",
			RetryAfter: time.Second}
	case errors.Is(err, pool.ErrShuttingDown):
		return errorPage{Status: http.StatusServiceUnavailable, Title: "Shutting down",
			Message: "The app is shutting down.", RetryAfter: 5 * time.Second}
	case errors.As(err, &be):
		p := spawnPage(be.Err)
		p.Status = http.StatusServiceUnavailable
		p.RetryAfter = be.RetryAfter
		return p
	case errors.As(err, &se):
		return spawnPage(se)
	case errors.Is(err, errNoApp):
		return errorPage{Status: http.StatusNotFound, Title: "Not found",
			Message: "No app is configured for this host and path."}
	case errors.Is(err, ErrRequestTimeout):
		return errorPage{Status: http.StatusGatewayTimeout, Title: "Gateway timeout",
			Message: "The app took too long to answer this request; its process was replaced."}
	case errors.Is(err, pool.ErrQueueTimeout):
		return errorPage{Status: http.StatusGatewayTimeout, Title: "Gateway timeout",
			Message:    "The app was too busy to take this request in time. Please try again shortly.",
			RetryAfter: time.Second}
	case errors.Is(err, context.DeadlineExceeded):
		return errorPage{Status: http.StatusGatewayTimeout, Title: "Gateway timeout",
			Message: "The app took too long to answer."}
	}
	var rt *proxy.RoundTripError
	if errors.As(err, &rt) {
		return errorPage{Status: http.StatusBadGateway, Title: "Bad gateway",
			Message: "The app process ended or broke off its response before answering this request."}
	}
	return errorPage{Status: http.StatusInternalServerError, Title: "Internal server error",
		Message: "Ferry could not handle this request."}
}

func spawnPage(err error) errorPage {
	p := errorPage{Status: http.StatusInternalServerError, Title: "The app failed to start",
		Message: "The application could not be started. The server log has the details."}
	var se spawnFailure
	if errors.As(err, &se) {
		p.Summary, p.Details, p.Output = se.ErrorPage()
	}
	return p
}

// spawnFailure is an app process that could not start (spawn.Error): what
// its error page shows in development. An interface, so that the request
// path does not import the spawner.
type spawnFailure interface {
	error
	ErrorPage() (summary, details, output string)
}

var pageTemplate = template.Must(template.New("error").Parse(`<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>{{.Title}}</title>
<style>body{font-family:sans-serif;max-width:60em;margin:2em auto;padding:0 1em;color:#222}
pre{background:#f4f4f4;padding:1em;overflow:auto;white-space:pre-wrap}h1{font-size:1.4em}</style></head>
<body><h1>{{.Title}}</h1><p>{{.Message}}</p>
{{- if .Dev}}{{if .Summary}}<h2>Error</h2><pre>{{.Summary}}</pre>{{end}}
{{- if .Details}}<h2>Details</h2><pre>{{.Details}}</pre>{{end}}
{{- if .Output}}<h2>App output</h2><pre>{{.Output}}</pre>{{end}}
<p><small>These details are shown because the app runs in development. In production this page shows only the message above.</small></p>{{end}}
<hr><p><small>Ferry</small></p></body></html>
`))

// writeError sends the page for err and returns its status. Headers an app
// response may have set already are dropped first.
func writeError(w http.ResponseWriter, err error, dev bool) int {
	return writeErrorPage(w, err, dev, nil)
}

// writeErrorPage is writeError with custom, if not nil, as the page's body
// (--custom-error-page).
func writeErrorPage(w http.ResponseWriter, err error, dev bool, custom []byte) int {
	p := classify(err)
	h := w.Header()
	clear(h)
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	if p.Close {
		h.Set("Connection", "close")
	}
	if p.RetryAfter > 0 {
		h.Set("Retry-After", strconv.Itoa(max(1, int(p.RetryAfter.Round(time.Second)/time.Second))))
	}
	w.WriteHeader(p.Status)
	if custom != nil {
		w.Write(custom)
		return p.Status
	}
	pageTemplate.Execute(w, struct {
		errorPage
		Dev bool
	}{p, dev})
	return p.Status
}
