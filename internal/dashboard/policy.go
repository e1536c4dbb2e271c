package dashboard

import (
	"net"
	"net/http"
	"net/netip"
	"strings"
)

// Level is what a viewer's token allows.
type Level int

const (
	NoToken  Level = iota // none presented
	BadToken              // presented, but not this instance's
	ReadOnly              // the read-only token
	Admin                 // the admin token
)

func (l Level) String() string {
	return [...]string{"none", "bad", "read", "admin"}[l]
}

// Viewer is what the policy knows of who asks.
type Viewer struct {
	// Loopback: the connection comes from a loopback address.
	Loopback bool
	// LoopbackHost: the Host header names a loopback address or
	// localhost. A page on another site that rebinds its name to 127.0.0.1
	// sends its own name, so it does not get the open view.
	LoopbackHost bool
	Token        Level
}

// Decision is the policy's answer: allowed, or the status and why not.
type Decision struct {
	OK     bool
	Status int
	Why    string
}

var allow = Decision{OK: true}

// Decide is the dashboard's authorisation: the read-only view is open to
// loopback clients that name a loopback host; any other viewer needs the
// read-only or admin token; every action needs the admin token. A wrong
// token is refused even where none is needed, so that a typo is not
// mistaken for a working token.
func Decide(v Viewer, action bool) Decision {
	if v.Token == BadToken {
		return Decision{Status: http.StatusUnauthorized, Why: "that is not this instance's read-only or admin token (INSTANCE/read.token, INSTANCE/admin.token)"}
	}
	if action {
		switch v.Token {
		case Admin:
			return allow
		case ReadOnly:
			return Decision{Status: http.StatusForbidden, Why: "the read-only token cannot change anything; actions need the admin token (INSTANCE/admin.token)"}
		default:
			return Decision{Status: http.StatusUnauthorized, Why: "actions need the admin token (INSTANCE/admin.token)"}
		}
	}
	if v.Token == Admin || v.Token == ReadOnly {
		return allow
	}
	if v.Loopback && v.LoopbackHost {
		return allow
	}
	if v.Loopback {
		return Decision{Status: http.StatusForbidden, Why: "without a token the dashboard answers only requests for a loopback host (http://127.0.0.1:PORT/dashboard/ or http://localhost:PORT/dashboard/)"}
	}
	return Decision{Status: http.StatusUnauthorized, Why: "viewing the dashboard from another host needs the read-only or admin token (INSTANCE/read.token)"}
}

// isLoopbackAddr reports whether a RemoteAddr (host:port) is a loopback
// address, IPv4-mapped ones included.
func isLoopbackAddr(remote string) bool {
	host, _, err := net.SplitHostPort(remote)
	if err != nil {
		host = remote
	}
	a, err := netip.ParseAddr(host)
	return err == nil && a.Unmap().IsLoopback()
}

// isLoopbackHost reports whether a Host header names a loopback address
// or localhost.
func isLoopbackHost(host string) bool {
	h := host
	if hh, _, err := net.SplitHostPort(host); err == nil {
		h = hh
	}
	h = strings.TrimSuffix(strings.TrimPrefix(h, "["), "]")
	if strings.EqualFold(h, "localhost") {
		return true
	}
	a, err := netip.ParseAddr(h)
	return err == nil && a.Unmap().IsLoopback()
}

// CSRFHeader must be on every POST: a page on another origin cannot set
// a custom header without a CORS preflight, which the dashboard never
// grants, and a plain HTML form cannot set one at all.
const CSRFHeader = "X-Ferry-Dashboard"

// CheckCSRF guards a state-changing request: the custom header must be
// present, and where the browser says where the request comes from
// (Origin, Sec-Fetch-Site) it must be this origin. It returns why not, or
// "" when the request may proceed.
func CheckCSRF(h http.Header, host string) string {
	if h.Get(CSRFHeader) == "" {
		return "a POST to the dashboard needs the " + CSRFHeader + " header (the page sends it)"
	}
	if site := h.Get("Sec-Fetch-Site"); site != "" && site != "same-origin" {
		return "a cross-site request (Sec-Fetch-Site: " + site + ") cannot act on the dashboard"
	}
	if origin := h.Get("Origin"); origin != "" && origin != "http://"+host && origin != "https://"+host {
		return "a request from origin " + origin + " cannot act on the dashboard at " + host
	}
	return ""
}
