package pool

import (
	"context"
	"io"
	"log/slog"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Checkout and release are on every proxied request: these benchmarks show
// their cost alone (no sockets, no HTTP), uncontended and with 50 goroutines
// competing for 2 single-request processes, as 50 client connections do for
// an app of 2 processes. Results go to bench/results/go-bench-*.md; nothing
// is asserted about speed.

// benchPoolProc is a process that never exits on its own.
type benchPoolProc struct {
	pid         int
	concurrency int
	done        chan struct{}
	once        sync.Once
}

func (p *benchPoolProc) PID() int                 { return p.pid }
func (p *benchPoolProc) Addr() net.Addr           { return &net.UnixAddr{Name: "/nonexistent", Net: "unix"} }
func (p *benchPoolProc) Concurrency() int         { return p.concurrency }
func (p *benchPoolProc) Done() <-chan struct{}    { return p.done }
func (p *benchPoolProc) Stop(ctx context.Context) { p.Kill() }
func (p *benchPoolProc) Kill()                    { p.once.Do(func() { close(p.done) }) }
func (p *benchPoolProc) Abort()                   { p.Kill() }
func (p *benchPoolProc) Reap()                    {}

// benchConn stands for a kept-alive connection the proxy hands back.
type benchConn struct{}

func (benchConn) Close() error { return nil }

// benchGroup is a started group of n processes of the given concurrency,
// closed when the benchmark ends.
func benchGroup(b *testing.B, n, concurrency int) *Group {
	b.Helper()
	var pid atomic.Int64
	sp := SpawnFunc(func(context.Context) (Proc, error) {
		return &benchPoolProc{pid: int(pid.Add(1)), concurrency: concurrency, done: make(chan struct{})}, nil
	})
	g := NewGroup(Config{Name: "bench", Min: n, Max: n, MaxQueue: 0}, sp, slog.New(slog.NewTextHandler(io.Discard, nil)))
	g.Start()
	b.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		g.Close(ctx)
	})
	deadline := time.Now().Add(5 * time.Second)
	for {
		serving := 0
		for _, p := range g.Status().Processes {
			if p.State == "serving" {
				serving++
			}
		}
		if serving == n {
			return g
		}
		if time.Now().After(deadline) {
			b.Fatalf("%d of %d processes serving after 5s", serving, n)
		}
		time.Sleep(time.Millisecond)
	}
}

// cycle is what the proxy does with the pool for one request: check out,
// take a kept-alive connection, give it back on release.
func cycle(ctx context.Context, g *Group) error {
	s, err := g.Checkout(ctx)
	if err != nil {
		return err
	}
	c := s.TakeConn()
	if c == nil {
		c = benchConn{}
	}
	s.ReleaseConn(c, true)
	return nil
}

func BenchmarkCheckoutRelease(b *testing.B) {
	for _, tc := range []struct {
		name        string
		concurrency int
	}{
		{"process", 1},   // WSGI/Rack: one request per process
		{"unlimited", 0}, // Node/ASGI/generic
	} {
		b.Run(tc.name, func(b *testing.B) {
			g := benchGroup(b, 2, tc.concurrency)
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				if err := cycle(ctx, g); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkCheckoutReleaseContended: 50 goroutines (SetParallelism scales
// with GOMAXPROCS) on 2 processes of concurrency 1: most checkouts wait in
// the queue and are handed a session by a release.
func BenchmarkCheckoutReleaseContended(b *testing.B) {
	g := benchGroup(b, 2, 1)
	ctx := context.Background()
	b.SetParallelism(max(1, 50/runtime.GOMAXPROCS(0)))
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := cycle(ctx, g); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
