package pool

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/ferry-server/ferry/internal/proxy"

	"github.com/ferry-server/ferry/internal/testsock"
)

// sockProc is a process with a real Unix socket that answers every request
// with its pid, until it is broken: then it behaves like a process killed
// with kill -9 whose exit the watcher has not seen yet (Done stays open).
type sockProc struct {
	pid  int
	path string
	ln   net.Listener
	done chan struct{}

	mu    sync.Mutex
	conns map[net.Conn]bool
	drop  bool // accept, then close at once: the backlog of a dying listener
	once  sync.Once
}

func newSockProc(t *testing.T, pid int) *sockProc {
	p := &sockProc{pid: pid, done: make(chan struct{}), conns: map[net.Conn]bool{}}
	p.ln, p.path = testsock.Listen(t)
	go p.serve()
	return p
}

func (p *sockProc) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		if p.drop {
			p.mu.Unlock()
			c.Close()
			continue
		}
		p.conns[c] = true
		p.mu.Unlock()
		go func() {
			defer c.Close()
			br := bufio.NewReader(c)
			for {
				r, err := http.ReadRequest(br)
				if err != nil {
					return
				}
				io.Copy(io.Discard, r.Body)
				body := strconv.Itoa(p.pid)
				io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: "+strconv.Itoa(len(body))+"\r\n\r\n"+body)
			}
		}()
	}
}

// dropConns closes every open connection, as the kernel does to a killed
// process, and drops new ones from now on.
func (p *sockProc) dropConns() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.drop = true
	for c := range p.conns {
		c.Close()
	}
}

// vanish is dropConns with the listener closed too: connecting is refused.
func (p *sockProc) vanish() {
	p.dropConns()
	p.ln.Close()
}

// Exiting is what the kernel would say of a process killed with kill -9:
// dropConns and vanish model one.
func (p *sockProc) Exiting() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.drop
}

func (p *sockProc) PID() int              { return p.pid }
func (p *sockProc) Addr() net.Addr        { return &net.UnixAddr{Name: p.path, Net: "unix"} }
func (p *sockProc) Concurrency() int      { return 1 }
func (p *sockProc) Done() <-chan struct{} { return p.done }
func (p *sockProc) Reap()                 {}
func (p *sockProc) Kill()                 { p.exit() }
func (p *sockProc) Abort()                { p.exit() }
func (p *sockProc) Stop(context.Context)  { p.exit() }
func (p *sockProc) exit() {
	p.once.Do(func() {
		p.vanish()
		close(p.done)
	})
}

// TestRetryIsNotHandedTheFailedProcess is the retry of Handler.forward
// after a process died: the watcher has not seen the exit yet, the process
// is the only one, and the retry must wait for a new one rather than be
// handed the dying one again (which answered the client 502).
func TestRetryIsNotHandedTheFailedProcess(t *testing.T) {
	for _, tc := range []struct {
		name string
		warm bool // a kept-alive connection to the process is reused
		kill func(*sockProc)
	}{
		{"new connections dropped", false, (*sockProc).dropConns},
		{"kept-alive connection reset, new ones refused", true, (*sockProc).vanish},
		{"kept-alive connection reset, new ones dropped", true, (*sockProc).dropConns},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var (
				mu    sync.Mutex
				procs []*sockProc
			)
			sp := SpawnFunc(func(context.Context) (Proc, error) {
				mu.Lock()
				defer mu.Unlock()
				p := newSockProc(t, 100+len(procs)+1)
				procs = append(procs, p)
				return p, nil
			})
			g := newTestGroup(t, Config{Min: 1, Max: 1}, sp)
			tr := &proxy.Transport{}
			// A bound for a hang, not a measure: the checkouts below return
			// as soon as a process is there.
			ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
			defer cancel()
			get := func(s *Session) (string, error) {
				x, err := tr.RoundTrip(s, httptest.NewRequest("GET", "/", nil), nil, "http")
				if err != nil {
					return "", err
				}
				rec := httptest.NewRecorder()
				x.WriteTo(rec, proxy.ResponseOptions{}, nil)
				return rec.Body.String(), nil
			}

			s, err := g.Checkout(ctx)
			if err != nil {
				t.Fatal(err)
			}
			first := s.PID()
			if tc.warm {
				if body, err := get(s); err != nil || body != strconv.Itoa(first) {
					t.Fatalf("first request: %q, %v", body, err)
				}
				if s, err = g.Checkout(ctx); err != nil {
					t.Fatal(err)
				}
			}
			mu.Lock()
			tc.kill(procs[0])
			mu.Unlock()

			_, err = get(s)
			if !proxy.Retryable(err) {
				t.Fatalf("request to the broken process: %v, want a retryable error", err)
			}
			retry, err := g.Checkout(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if retry.PID() == first {
				t.Fatalf("the retry was handed the process that just failed (%d)", first)
			}
			if body, err := get(retry); err != nil || body != strconv.Itoa(retry.PID()) {
				t.Fatalf("retry: %q, %v", body, err)
			}
		})
	}
}
