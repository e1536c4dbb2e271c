package core

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/ferry-server/ferry/internal/metrics"
)

// metricsFDEnv names the file descriptor of the --metrics-address socket
// an upgrading ferry hands to the new one (after the LISTEN_FDS sockets),
// so that probes on it never meet a refused connection or a closed port.
const metricsFDEnv = "FERRY_METRICS_FD"

// metricsServer serves the metrics and the probes (GET /health, /ready) on
// a TCP address, where scrapers, load balancers and Kubernetes reach them.
type metricsServer struct {
	ln   net.Listener
	hs   *http.Server
	log  *slog.Logger
	dash bool // the dashboard is served too
	once sync.Once

	// fresh are the connections accepted whose first request has not been
	// read yet: net/http drops a request it reads after Shutdown began, so
	// stop lets these be answered first (a probe during an upgrade).
	mu    sync.Mutex
	fresh map[net.Conn]struct{}
}

// connState keeps fresh up to date.
func (m *metricsServer) connState(c net.Conn, st http.ConnState) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if st == http.StateNew {
		m.fresh[c] = struct{}{}
	} else {
		delete(m.fresh, c)
	}
}

// waitFresh waits, at most until deadline, for every fresh connection to
// have its first request read (or to close).
func (m *metricsServer) waitFresh(deadline time.Time) {
	for time.Now().Before(deadline) {
		m.mu.Lock()
		n := len(m.fresh)
		m.mu.Unlock()
		if n == 0 {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// serveMetrics listens on addr (or takes the socket an upgrading ferry
// handed over); it serves from start until stop.
func serveMetrics(addr string, reg *metrics.Metrics, probes, dash http.Handler, log *slog.Logger) (*metricsServer, error) {
	ln, err := inheritedMetrics()
	if err != nil {
		log.Warn("the metrics socket handed over is unusable; listening anew", "error", err)
	}
	if ln == nil {
		if ln, err = net.Listen("tcp", addr); err != nil {
			return nil, listenError(err, "--metrics-address", addr, "")
		}
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", reg.Handler())
	mux.Handle("GET /health", probes)
	mux.Handle("GET /ready", probes)
	if dash != nil {
		mux.Handle("/dashboard/", dash)
	}
	m := &metricsServer{ln: ln, log: log, dash: dash != nil, fresh: map[net.Conn]struct{}{}}
	m.hs = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second,
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelDebug), ConnState: m.connState}
	return m, nil
}

// start serves. A new ferry of an upgrade starts once its apps are ready:
// until then the socket it shares with the old one is answered by the old.
func (m *metricsServer) start() {
	if m == nil {
		return
	}
	go m.hs.Serve(m.ln)
	a := m.ln.Addr().String()
	m.log.Info("serving metrics and probes", "address", "http://"+a+"/metrics", "health", "http://"+a+"/health", "ready", "http://"+a+"/ready")
	if m.dash {
		m.log.Info("serving the dashboard", "address", "http://"+a+"/dashboard/")
	}
}

// inheritedMetrics takes the socket named by metricsFDEnv, if any, and
// clears the variable.
func inheritedMetrics() (net.Listener, error) {
	v, ok := os.LookupEnv(metricsFDEnv)
	if !ok {
		return nil, nil
	}
	os.Unsetenv(metricsFDEnv)
	fd, err := strconv.Atoi(v)
	if err != nil || fd < 3 {
		return nil, fmt.Errorf("%s=%q", metricsFDEnv, v)
	}
	f := os.NewFile(uintptr(fd), "metrics")
	defer f.Close() // FileListener made its own copy
	return net.FileListener(f)
}

// file is a copy of the listening socket, for a new ferry; nil for none.
func (m *metricsServer) file() (*os.File, error) {
	if m == nil {
		return nil, nil
	}
	tl, ok := m.ln.(*net.TCPListener)
	if !ok {
		return nil, errors.New("not a TCP listener")
	}
	return tl.File()
}

// stop closes the listener (a socket handed over stays open in the new
// ferry), lets the answers being written finish (briefly), and closes the
// connections.
func (m *metricsServer) stop() {
	if m == nil {
		return
	}
	m.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		// Stop accepting first (an upgraded ferry keeps its own copy of
		// the socket), then let what was accepted be asked.
		m.ln.Close()
		deadline, _ := ctx.Deadline()
		m.waitFresh(deadline.Add(-time.Second))
		if m.hs.Shutdown(ctx) != nil {
			m.hs.Close()
		}
	})
}
