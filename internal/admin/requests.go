package admin

import "time"

// RequestInfo is one request in flight, as GET /requests lists them: the
// front (server.Handler) fills it in, ferry status and top show it.
type RequestInfo struct {
	App    string    `json:"app"`
	Method string    `json:"method"`
	Path   string    `json:"path"`
	Client string    `json:"client"`
	State  string    `json:"state"`
	Start  time.Time `json:"started"`
	AgeMS  int64     `json:"age_ms"`
	PID    int       `json:"pid,omitempty"`
}
