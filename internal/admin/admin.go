// Package admin owns the admin API: HTTP+JSON on the instance's Unix socket,
// the status model it serves, and the client that CLI commands use. It
// reads state through small interfaces and never changes the pool itself.
package admin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/ferry-server/ferry/internal/pool"
)

// Info describes the running core.
type Info struct {
	Version   string    `json:"version"`
	PID       int       `json:"pid"`
	StartedAt time.Time `json:"started_at"`
	Listen    []string  `json:"listen"`
	AppRoot   string    `json:"app_root"`
}

// Source is what the API reports on.
type Source interface {
	Info() Info
	Groups() []*pool.Group
}

// Server is the admin API on a Unix socket.
type Server struct {
	hs  *http.Server
	ln  net.Listener
	src Source
}

// Listen opens the admin socket at path, readable only by the owner.
func Listen(path string, src Source, log *slog.Logger) (*Server, error) {
	os.Remove(path)
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("listen on admin socket %s: %w", path, err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("chmod admin socket: %w", err)
	}
	s := &Server{ln: ln, src: src}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /server", s.handle(s.server))
	mux.HandleFunc("GET /pool", s.handle(s.pool))
	mux.HandleFunc("GET /health", s.handle(s.health))
	mux.HandleFunc("POST /apps/{name}/restart", s.handle(s.restart))
	s.hs = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second,
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelDebug)}
	return s, nil
}

// Serve answers until Shutdown.
func (s *Server) Serve() error {
	err := s.hs.Serve(s.ln)
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// Shutdown closes the API.
func (s *Server) Shutdown(ctx context.Context) error { return s.hs.Shutdown(ctx) }

// APIError is an error answer with its status.
type APIError struct {
	Status  int    `json:"-"`
	Message string `json:"error"`
}

func (e *APIError) Error() string { return e.Message }

func (s *Server) handle(f func(r *http.Request) (any, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		v, err := f(r)
		w.Header().Set("Content-Type", "application/json")
		if err != nil {
			ae, ok := err.(*APIError)
			if !ok {
				ae = &APIError{Status: http.StatusInternalServerError, Message: err.Error()}
			}
			w.WriteHeader(ae.Status)
			v = ae
		}
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		enc.Encode(v)
	}
}

func (s *Server) server(*http.Request) (any, error) { return s.src.Info(), nil }

func (s *Server) pool(*http.Request) (any, error) {
	groups := s.src.Groups()
	out := make([]pool.GroupStatus, 0, len(groups))
	for _, g := range groups {
		out = append(out, g.Status())
	}
	return map[string]any{"apps": out}, nil
}

// RestartResult is the answer to a restart.
type RestartResult struct {
	App        string `json:"app"`
	Rolling    bool   `json:"rolling"`
	Generation int    `json:"generation"`
	Finished   bool   `json:"finished"`
	Error      string `json:"error,omitempty"`
}

// restart restarts an app: ?rolling=true for a rolling restart; by default
// the answer waits until the restart has finished (?wait=false: at once).
func (s *Server) restart(r *http.Request) (any, error) {
	name := r.PathValue("name")
	var g *pool.Group
	for _, cand := range s.src.Groups() {
		if cand.Name() == name {
			g = cand
		}
	}
	if g == nil {
		return nil, &APIError{Status: http.StatusNotFound, Message: fmt.Sprintf("no app named %q", name)}
	}
	rolling := r.URL.Query().Get("rolling") == "true"
	rs, err := g.Restart(rolling)
	if errors.Is(err, pool.ErrRestarting) {
		return nil, &APIError{Status: http.StatusConflict, Message: err.Error()}
	}
	if err != nil {
		return nil, &APIError{Status: http.StatusServiceUnavailable, Message: err.Error()}
	}
	res := RestartResult{App: name, Rolling: rolling, Generation: rs.Gen}
	if r.URL.Query().Get("wait") != "false" {
		err := rs.Wait(r.Context())
		res.Finished = err == nil || !errors.Is(err, r.Context().Err())
		if err != nil {
			res.Error = err.Error()
		}
	}
	return res, nil
}

func (s *Server) health(*http.Request) (any, error) {
	return map[string]any{"live": true}, nil
}
