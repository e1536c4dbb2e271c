// Package admin owns the admin API: HTTP+JSON on the instance's Unix socket,
// its authorisation (a read-only token and an admin token), the status model
// it serves, the client the CLI uses, and finding running instances. It
// reads state through a small interface and changes the pool only through
// the Group's own methods.
package admin

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/ferry-server/ferry/internal/certs"
	"github.com/ferry-server/ferry/internal/logs"
	"github.com/ferry-server/ferry/internal/pool"
	"github.com/ferry-server/ferry/internal/procstat"
	"github.com/ferry-server/ferry/internal/turbocache"
)

// Info describes the running core.
type Info struct {
	Version   string         `json:"version"`
	PID       int            `json:"pid"`
	StartedAt time.Time      `json:"started_at"`
	Uptime    float64        `json:"uptime_seconds"`
	Listen    []string       `json:"listen"`
	Instance  string         `json:"instance"`
	Config    map[string]any `json:"config,omitempty"`
	// Certificates are the ones automatic HTTPS manages (--domain).
	Certificates []certs.Status `json:"certificates,omitempty"`
}

// App is one app as the API sees it.
type App struct {
	Group       *pool.Group
	Root        string
	Type        string
	SpawnMethod string
	// Preloader reports the preloader's pid (0: none); nil for direct spawning.
	Preloader func() int
	// Cache is the app's response cache, nil if off.
	Cache *turbocache.Cache
}

// Source is what the API reports on and acts through.
type Source interface {
	Info() Info
	Apps() []App
	// Requests lists the requests in flight.
	Requests() []RequestInfo
	// Probes serves GET /health (liveness) and GET /ready (readiness);
	// the same answers as on the --metrics-address listener.
	Probes() http.Handler
	// Ready is the readiness /ready reports, as a bool.
	Ready() bool
	// Metrics serves the Prometheus exposition.
	Metrics() http.Handler
	// ReopenLogs reopens log files (logrotate).
	ReopenLogs() error
	// Reload loads the configuration again and applies what changed.
	Reload() error
	// Logs keeps the latest records of the core's log and the apps' output.
	Logs() *logs.Recent
}

// Token file names in the instance directory, readable only by the owner.
const (
	ReadTokenFile  = "read.token"
	AdminTokenFile = "admin.token"
)

// Server is the admin API on a Unix socket.
type Server struct {
	hs         *http.Server
	ln         net.Listener
	src        Source
	cpu        procstat.Tracker
	readToken  string
	adminToken string
	closing    chan struct{} // closed at Shutdown: streams end
}

// Listen writes fresh tokens into dir and opens the admin socket there,
// readable and writable only by the owner (root may always connect).
func Listen(dir string, src Source, log *slog.Logger) (*Server, error) {
	s := &Server{src: src, closing: make(chan struct{})}
	var err error
	if s.readToken, err = writeToken(filepath.Join(dir, ReadTokenFile)); err != nil {
		return nil, err
	}
	if s.adminToken, err = writeToken(filepath.Join(dir, AdminTokenFile)); err != nil {
		return nil, err
	}
	path := filepath.Join(dir, "admin.sock")
	os.Remove(path)
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("listen on admin socket %s: %w", path, err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("chmod admin socket: %w", err)
	}
	s.ln = ln

	mux := http.NewServeMux()
	read, admin := s.authorise(false), s.authorise(true)
	mux.Handle("GET /server", read(s.handle(s.server)))
	mux.Handle("GET /pool", read(s.handle(s.pool)))
	mux.Handle("GET /requests", read(s.handle(s.requests)))
	mux.Handle("GET /metrics", read(src.Metrics()))
	mux.Handle("GET /logs", read(http.HandlerFunc(s.logsHandler)))
	// Health answers without a token: load balancers and probes have none,
	// and it reveals nothing.
	mux.Handle("GET /health", src.Probes())
	mux.Handle("GET /ready", src.Probes())
	// Signals app processes, and shows their code's paths: admin only.
	mux.Handle("GET /backtraces", admin(s.handle(s.backtraces)))
	mux.Handle("POST /apps/{name}/restart", admin(s.handle(s.restart)))
	mux.Handle("POST /apps/{name}/processes/{pid}/detach", admin(s.handle(s.detach)))
	mux.Handle("POST /apps/{name}/processes/{pid}/kill", admin(s.handle(s.kill)))
	mux.Handle("POST /logs/reopen", admin(s.handle(s.reopen)))
	mux.Handle("POST /reload", admin(s.handle(s.reload)))
	// Profiles of the core itself, for its operators only.
	mux.Handle("GET /debug/pprof/", admin(http.HandlerFunc(pprof.Index)))
	mux.Handle("GET /debug/pprof/profile", admin(http.HandlerFunc(pprof.Profile)))
	mux.Handle("GET /debug/pprof/trace", admin(http.HandlerFunc(pprof.Trace)))
	mux.Handle("GET /debug/pprof/symbol", admin(http.HandlerFunc(pprof.Symbol)))
	s.hs = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second,
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelDebug)}
	s.hs.RegisterOnShutdown(func() { close(s.closing) })
	return s, nil
}

func writeToken(path string) (string, error) {
	b := make([]byte, 32)
	rand.Read(b)
	tok := hex.EncodeToString(b)
	if err := os.WriteFile(path, []byte(tok+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("write admin token: %w", err)
	}
	return tok, nil
}

// authorise requires the admin token, or for read-only calls either token,
// as `Authorization: Bearer TOKEN`; compared in constant time.
func (s *Server) authorise(changing bool) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			got, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
			if !s.Authorised(got, changing) {
				need := "the read-only or admin token"
				if changing {
					need = "the admin token"
				}
				writeJSON(w, http.StatusUnauthorized, &APIError{Message: "this call needs " + need + " (Authorization: Bearer …)"})
				return
			}
			next.ServeHTTP(w, r)
		})
	}
}

// Authorised reports whether token is the admin token or, unless the call
// changes something, the read-only token; compared in constant time. The
// dashboard authorises its viewers with the same tokens.
func (s *Server) Authorised(token string, changing bool) bool {
	if token == "" {
		return false
	}
	ok := subtle.ConstantTimeCompare([]byte(token), []byte(s.adminToken)) == 1
	if !changing {
		ok = ok || subtle.ConstantTimeCompare([]byte(token), []byte(s.readToken)) == 1
	}
	return ok
}

// Handler is the API's own handler, with its authorisation: the dashboard
// performs its actions through it, so that they are the CLI's.
func (s *Server) Handler() http.Handler { return s.hs.Handler }

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

func (s *Server) handle(f func(r *http.Request) (any, error)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		v, err := f(r)
		if err != nil {
			ae, ok := err.(*APIError)
			if !ok {
				ae = &APIError{Status: http.StatusInternalServerError, Message: err.Error()}
			}
			writeJSON(w, ae.Status, ae)
			return
		}
		writeJSON(w, http.StatusOK, v)
	})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

func (s *Server) server(*http.Request) (any, error) {
	info := s.src.Info()
	info.Uptime = time.Since(info.StartedAt).Seconds()
	return info, nil
}

// PoolStatus is the answer of GET /pool.
type PoolStatus struct {
	Apps []AppStatus `json:"apps"`
}

// AppStatus is one app with its processes, as `ferry status` shows it.
type AppStatus struct {
	pool.GroupStatus
	Root        string            `json:"root"`
	Type        string            `json:"type"`
	SpawnMethod string            `json:"spawn_method"`
	Preloader   int               `json:"preloader_pid,omitempty"`
	Cache       *turbocache.Stats `json:"turbocache,omitempty"`
	Processes   []ProcessStatus   `json:"processes"`
}

// ProcessStatus is one process with its CPU and memory.
type ProcessStatus struct {
	pool.ProcessStatus
	UptimeSeconds float64 `json:"uptime_seconds"`
	CPUPercent    float64 `json:"cpu_percent"`
	RSS           int64   `json:"rss_bytes"`
	PSS           int64   `json:"pss_bytes"`
	PrivateDirty  int64   `json:"private_dirty_bytes"`
}

func (s *Server) pool(*http.Request) (any, error) {
	return s.Pool(), nil
}

// Pool builds the pool status, reading CPU and memory from /proc.
func (s *Server) Pool() PoolStatus { return PoolOf(s.src.Apps(), &s.cpu) }

// PoolOf builds the status of apps; cpu measures CPU since its previous
// look, so each viewer (the API, the dashboard) keeps its own.
func PoolOf(apps []App, cpu *procstat.Tracker) PoolStatus {
	now := time.Now()
	var out PoolStatus
	for _, a := range apps {
		gs := a.Group.Status()
		as := AppStatus{GroupStatus: gs, Root: a.Root, Type: a.Type, SpawnMethod: a.SpawnMethod}
		if a.Preloader != nil {
			as.Preloader = a.Preloader()
		}
		if a.Cache != nil {
			st := a.Cache.Stats()
			as.Cache = &st
		}
		as.Processes = make([]ProcessStatus, 0, len(gs.Processes))
		for _, p := range gs.Processes {
			ps := ProcessStatus{ProcessStatus: p, UptimeSeconds: now.Sub(p.Started).Seconds()}
			if sample, pct, err := cpu.Read(p.PID); err == nil {
				if pct == 0 && ps.UptimeSeconds > 1 {
					// First look at this process: its average over its
					// life, rather than a meaningless 0.
					pct = sample.CPUTime.Seconds() / ps.UptimeSeconds * 100
				}
				ps.CPUPercent = pct
				ps.RSS, ps.PSS, ps.PrivateDirty = sample.Memory.RSS, sample.Memory.PSS, sample.Memory.PrivateDirty
			}
			as.Processes = append(as.Processes, ps)
		}
		out.Apps = append(out.Apps, as)
	}
	return out
}

func (s *Server) requests(*http.Request) (any, error) {
	return map[string]any{"requests": s.src.Requests()}, nil
}

func (s *Server) group(r *http.Request) (*pool.Group, error) {
	name := r.PathValue("name")
	for _, a := range s.src.Apps() {
		if a.Group.Name() == name {
			return a.Group, nil
		}
	}
	return nil, &APIError{Status: http.StatusNotFound, Message: fmt.Sprintf("no app named %q", name)}
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
	g, err := s.group(r)
	if err != nil {
		return nil, err
	}
	rolling := r.URL.Query().Get("rolling") == "true"
	rs, err := g.Restart(rolling)
	if errors.Is(err, pool.ErrRestarting) {
		return nil, &APIError{Status: http.StatusConflict, Message: err.Error()}
	}
	if err != nil {
		return nil, &APIError{Status: http.StatusServiceUnavailable, Message: err.Error()}
	}
	res := RestartResult{App: g.Name(), Rolling: rolling, Generation: rs.Gen}
	if r.URL.Query().Get("wait") != "false" {
		err := rs.Wait(r.Context())
		res.Finished = err == nil || !errors.Is(err, r.Context().Err())
		if err != nil {
			res.Error = err.Error()
		}
	}
	return res, nil
}

func (s *Server) detach(r *http.Request) (any, error) { return s.processCall(r, (*pool.Group).Detach) }
func (s *Server) kill(r *http.Request) (any, error)   { return s.processCall(r, (*pool.Group).Kill) }

func (s *Server) processCall(r *http.Request, f func(*pool.Group, int) bool) (any, error) {
	g, err := s.group(r)
	if err != nil {
		return nil, err
	}
	pid, err := strconv.Atoi(r.PathValue("pid"))
	if err != nil || !f(g, pid) {
		return nil, &APIError{Status: http.StatusNotFound, Message: fmt.Sprintf("app %q has no process %q", g.Name(), r.PathValue("pid"))}
	}
	return map[string]any{"app": g.Name(), "pid": pid, "done": true}, nil
}

func (s *Server) reload(*http.Request) (any, error) {
	if err := s.src.Reload(); err != nil {
		return nil, &APIError{Status: http.StatusUnprocessableEntity, Message: err.Error()}
	}
	return map[string]bool{"reloaded": true}, nil
}

func (s *Server) reopen(*http.Request) (any, error) {
	if err := s.src.ReopenLogs(); err != nil {
		return nil, err
	}
	return map[string]bool{"reopened": true}, nil
}
