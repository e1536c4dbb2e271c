package server

import (
	"net/http"
	"strings"
)

// Sticky is an app's sticky-session cookie (Passenger's
// --sticky-sessions): its value is the route id of the process that served
// the client, a random token that says nothing about pids.
type Sticky struct {
	// CookieName names the cookie (default _passenger_route).
	CookieName string
	// Attributes are appended to the Set-Cookie ("SameSite=Lax; Secure;").
	Attributes string
}

// route is the route id the client carries, or "".
func (s *Sticky) route(r *http.Request) string {
	c, err := r.Cookie(s.CookieName)
	if err != nil {
		return ""
	}
	return c.Value
}

// set adds the cookie naming route to the app's response headers.
func (s *Sticky) set(h http.Header, route string) {
	if route == "" {
		return
	}
	v := s.CookieName + "=" + route + "; Path=/"
	if a := strings.TrimSpace(s.Attributes); a != "" {
		v += "; " + strings.TrimSuffix(a, ";")
	}
	h.Add("Set-Cookie", v)
}

// unlimited reports whether path is under one of the prefixes (at a /
// boundary, or the prefix itself ends with /).
func unlimited(prefixes []string, path string) bool {
	for _, u := range prefixes {
		if !strings.HasPrefix(path, u) {
			continue
		}
		if len(path) == len(u) || strings.HasSuffix(u, "/") || path[len(u)] == '/' {
			return true
		}
	}
	return false
}
