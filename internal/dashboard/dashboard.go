// Package dashboard serves the web dashboard: a live page of the apps, their
// processes, queue, requests in flight, turbocache, certificates and recent
// spawn errors, with the CLI's restart and detach actions. It is mounted at
// /dashboard/ on the metrics listener, never on the public port. It reads the
// data the admin API serves through the admin package's own views, acts
// through the admin API's own handler, and authorises with its tokens (see
// Decide). The page is plain HTML, CSS and JavaScript embedded in the binary.
package dashboard

import (
	"context"
	"embed"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/ferry-server/ferry/internal/admin"
	"github.com/ferry-server/ferry/internal/certs"
	"github.com/ferry-server/ferry/internal/procstat"
)

//go:embed assets
var assets embed.FS

// Authoriser checks the admin API's tokens (admin.Server).
type Authoriser interface {
	Authorised(token string, changing bool) bool
}

// Options configure a Dashboard.
type Options struct {
	// Source is what the admin API reports on.
	Source admin.Source
	// Auth checks tokens; Actions is the admin API's handler, through
	// which restarts and detaches go, with the viewer's token.
	Auth    Authoriser
	Actions http.Handler
	// Refresh is the interval between live updates; MaxViewers caps the
	// live views open at once.
	Refresh    time.Duration
	MaxViewers int
	Log        *slog.Logger
}

// MaxSpawnErrors is how many recent spawn errors the dashboard keeps.
const MaxSpawnErrors = 50

// CookieName holds a viewer's token after they log in on the page.
const CookieName = "ferry_dashboard"

// Dashboard is the dashboard's state and handler.
type Dashboard struct {
	o   Options
	cpu procstat.Tracker // its own: CPU% is per viewer's interval

	mu      sync.Mutex
	errs    []SpawnError
	failed  map[string]uint64 // spawn failures seen so far, per app
	subs    map[chan []byte]struct{}
	handler http.Handler
}

// SpawnError is a spawn failure the dashboard noticed. Failures counts the
// failures seen in one refresh interval, Error is the last of them.
type SpawnError struct {
	At       time.Time `json:"at"`
	App      string    `json:"app"`
	Error    string    `json:"error"`
	Failures uint64    `json:"failures"`
}

// State is one view of the instance, as the page renders it.
type State struct {
	At          time.Time           `json:"at"`
	Server      admin.Info          `json:"server"`
	Ready       bool                `json:"ready"`
	Apps        []admin.AppStatus   `json:"apps"`
	Requests    []admin.RequestInfo `json:"requests"`
	SpawnErrors []SpawnError        `json:"spawn_errors"`
	// Certificates are the ones automatic HTTPS manages (none without
	// --domain: the page leaves the section out).
	Certificates []certs.Status `json:"certificates,omitempty"`
	// Viewer is what the one asking may do (in GET api/state only).
	Viewer *ViewerInfo `json:"viewer,omitempty"`
}

// ViewerInfo tells the page what its viewer may do.
type ViewerInfo struct {
	Token  string `json:"token"` // none, read or admin
	CanAct bool   `json:"can_act"`
}

// New returns a dashboard; Run must run for its live view.
func New(o Options) *Dashboard {
	if o.Refresh <= 0 {
		o.Refresh = time.Second
	}
	if o.MaxViewers <= 0 {
		o.MaxViewers = 16
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	d := &Dashboard{o: o, failed: map[string]uint64{}, subs: map[chan []byte]struct{}{}}
	d.handler = d.routes()
	return d
}

// Handler serves /dashboard/.
func (d *Dashboard) Handler() http.Handler { return d.handler }

// Run samples the instance every Refresh until ctx ends: it notes spawn
// errors, and sends the state to the live views while there are any.
func (d *Dashboard) Run(ctx context.Context) {
	t := time.NewTicker(d.o.Refresh)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		d.mu.Lock()
		viewers := len(d.subs)
		d.mu.Unlock()
		if viewers == 0 {
			// Nobody looks: only note spawn errors, which is cheap
			// (no /proc reads).
			for _, a := range d.o.Source.Apps() {
				st := a.Group.Status()
				d.noteSpawnErrors(st.Name, st.Stats.SpawnFailed, st.LastError)
			}
			continue
		}
		b, err := json.Marshal(d.state())
		if err != nil {
			d.o.Log.Error("dashboard: encode state", "error", err)
			continue
		}
		d.mu.Lock()
		for ch := range d.subs {
			select {
			case <-ch: // a slow viewer gets only the newest
			default:
			}
			ch <- b
		}
		d.mu.Unlock()
	}
}

func (d *Dashboard) noteSpawnErrors(app string, failed uint64, last string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	seen := d.failed[app]
	d.failed[app] = failed
	if failed <= seen {
		return
	}
	d.errs = append(d.errs, SpawnError{At: time.Now(), App: app, Error: last, Failures: failed - seen})
	if len(d.errs) > MaxSpawnErrors {
		d.errs = d.errs[len(d.errs)-MaxSpawnErrors:]
	}
}

// state builds the current view.
func (d *Dashboard) state() State {
	src := d.o.Source
	info := src.Info()
	certificates := info.Certificates
	info.Config, info.Certificates = nil, nil // large, or shown apart
	info.Uptime = time.Since(info.StartedAt).Seconds()
	pool := admin.PoolOf(src.Apps(), &d.cpu)
	for _, a := range pool.Apps {
		d.noteSpawnErrors(a.Name, a.Stats.SpawnFailed, a.LastError)
	}
	st := State{At: time.Now(), Server: info, Ready: src.Ready(), Apps: pool.Apps, Requests: src.Requests(), Certificates: certificates}
	if st.Apps == nil {
		st.Apps = []admin.AppStatus{}
	}
	if st.Requests == nil {
		st.Requests = []admin.RequestInfo{}
	}
	d.mu.Lock()
	// Newest first.
	st.SpawnErrors = make([]SpawnError, len(d.errs))
	for i, e := range d.errs {
		st.SpawnErrors[len(d.errs)-1-i] = e
	}
	d.mu.Unlock()
	return st
}

func (d *Dashboard) routes() http.Handler {
	static, _ := fs.Sub(assets, "assets")
	files := http.StripPrefix("/dashboard/", http.FileServerFS(static))
	mux := http.NewServeMux()
	mux.Handle("GET /dashboard/{$}", files)
	mux.Handle("GET /dashboard/dashboard.js", files)
	mux.Handle("GET /dashboard/dashboard.css", files)
	mux.HandleFunc("GET /dashboard/api/state", d.view(d.getState))
	mux.HandleFunc("GET /dashboard/api/events", d.view(d.events))
	mux.HandleFunc("POST /dashboard/api/login", d.login)
	mux.HandleFunc("POST /dashboard/api/logout", d.logout)
	mux.HandleFunc("POST /dashboard/api/apps/{name}/restart", d.act(func(r *http.Request) string {
		q := url.Values{"wait": {"false"}}
		if r.URL.Query().Get("rolling") == "true" {
			q.Set("rolling", "true")
		}
		return "/apps/" + url.PathEscape(r.PathValue("name")) + "/restart?" + q.Encode()
	}))
	mux.HandleFunc("POST /dashboard/api/apps/{name}/processes/{pid}/detach", d.act(func(r *http.Request) string {
		return "/apps/" + url.PathEscape(r.PathValue("name")) + "/processes/" + url.PathEscape(r.PathValue("pid")) + "/detach"
	}))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		// Everything comes from here; nothing may frame the page (its
		// buttons act).
		h.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
		h.Set("X-Frame-Options", "DENY")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cache-Control", "no-store")
		mux.ServeHTTP(w, r)
	})
}

// token is the viewer's token: Authorization: Bearer, else the cookie the
// page's login set.
func token(r *http.Request) string {
	if t, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok {
		return strings.TrimSpace(t)
	}
	if c, err := r.Cookie(CookieName); err == nil {
		return c.Value
	}
	return ""
}

func (d *Dashboard) level(tok string) Level {
	switch {
	case tok == "":
		return NoToken
	case d.o.Auth.Authorised(tok, true):
		return Admin
	case d.o.Auth.Authorised(tok, false):
		return ReadOnly
	}
	return BadToken
}

func (d *Dashboard) viewer(r *http.Request) Viewer {
	return Viewer{Loopback: isLoopbackAddr(r.RemoteAddr), LoopbackHost: isLoopbackHost(r.Host), Token: d.level(token(r))}
}

// view lets f answer if the viewer may see the dashboard.
func (d *Dashboard) view(f func(http.ResponseWriter, *http.Request, Viewer)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		v := d.viewer(r)
		if dec := Decide(v, false); !dec.OK {
			if v.Token == BadToken && r.Header.Get("Authorization") == "" {
				// A cookie from before the core restarted (tokens are new
				// at every start): drop it, so that reloading the page
				// falls back to what this viewer may see without one.
				clearCookie(w)
			}
			writeJSON(w, dec.Status, map[string]string{"error": dec.Why})
			return
		}
		f(w, r, v)
	}
}

// act forwards an action to the admin API with the viewer's token, once
// the CSRF guard and the policy let it.
func (d *Dashboard) act(path func(*http.Request) string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if why := CheckCSRF(r.Header, r.Host); why != "" {
			writeJSON(w, http.StatusForbidden, map[string]string{"error": why})
			return
		}
		v := d.viewer(r)
		if dec := Decide(v, true); !dec.OK {
			writeJSON(w, dec.Status, map[string]string{"error": dec.Why})
			return
		}
		req, err := http.NewRequestWithContext(r.Context(), http.MethodPost, path(r), nil)
		if err != nil {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
			return
		}
		req.Header.Set("Authorization", "Bearer "+token(r))
		d.o.Log.Info("dashboard action", "action", req.URL.Path, "client", r.RemoteAddr)
		d.o.Actions.ServeHTTP(w, req)
	}
}

func (d *Dashboard) getState(w http.ResponseWriter, _ *http.Request, v Viewer) {
	st := d.state()
	st.Viewer = &ViewerInfo{Token: v.Token.String(), CanAct: Decide(v, true).OK}
	writeJSON(w, http.StatusOK, st)
}

// events is the live view: Server-Sent Events, one "state" event per
// refresh, the first at once.
func (d *Dashboard) events(w http.ResponseWriter, r *http.Request, _ Viewer) {
	fl, ok := w.(http.Flusher)
	if !ok {
		writeJSON(w, http.StatusInternalServerError, map[string]string{"error": "streaming unsupported"})
		return
	}
	ch := make(chan []byte, 1)
	d.mu.Lock()
	if len(d.subs) >= d.o.MaxViewers {
		d.mu.Unlock()
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"error": fmt.Sprintf("%d live views are open, the most --dashboard-max-viewers allows", d.o.MaxViewers)})
		return
	}
	d.subs[ch] = struct{}{}
	d.mu.Unlock()
	defer func() {
		d.mu.Lock()
		delete(d.subs, ch)
		d.mu.Unlock()
	}()
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	first, err := json.Marshal(d.state())
	if err != nil {
		return
	}
	fmt.Fprintf(w, "retry: %d\n\n", d.o.Refresh.Milliseconds()*2)
	for b := first; ; {
		// json.Marshal writes one line: a single data field.
		if _, err := fmt.Fprintf(w, "event: state\ndata: %s\n\n", b); err != nil {
			return
		}
		fl.Flush()
		select {
		case <-r.Context().Done():
			return
		case b = <-ch:
		}
	}
}

// login checks a token typed into the page and keeps it in a cookie only
// this path sees, which scripts cannot read and other sites cannot send.
func (d *Dashboard) login(w http.ResponseWriter, r *http.Request) {
	if why := CheckCSRF(r.Header, r.Host); why != "" {
		writeJSON(w, http.StatusForbidden, map[string]string{"error": why})
		return
	}
	var body struct {
		Token string `json:"token"`
	}
	if err := json.NewDecoder(io.LimitReader(r.Body, 4096)).Decode(&body); err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "want a JSON body {\"token\": \"…\"}: " + err.Error()})
		return
	}
	lvl := d.level(strings.TrimSpace(body.Token))
	if lvl != Admin && lvl != ReadOnly {
		writeJSON(w, http.StatusUnauthorized, map[string]string{"error": Decide(Viewer{Token: BadToken}, false).Why})
		return
	}
	http.SetCookie(w, &http.Cookie{Name: CookieName, Value: strings.TrimSpace(body.Token), Path: "/dashboard/",
		HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil})
	writeJSON(w, http.StatusOK, map[string]any{"token": lvl.String(), "can_act": lvl == Admin})
}

func (d *Dashboard) logout(w http.ResponseWriter, r *http.Request) {
	if why := CheckCSRF(r.Header, r.Host); why != "" {
		writeJSON(w, http.StatusForbidden, map[string]string{"error": why})
		return
	}
	clearCookie(w)
	writeJSON(w, http.StatusOK, map[string]bool{"logged_out": true})
}

func clearCookie(w http.ResponseWriter) {
	http.SetCookie(w, &http.Cookie{Name: CookieName, Path: "/dashboard/", MaxAge: -1, HttpOnly: true, SameSite: http.SameSiteStrictMode})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}
