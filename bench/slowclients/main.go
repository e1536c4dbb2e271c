// Command slowclients keeps N slow HTTP clients connected to a server for a
// bounded time, for bench/run.sh's slow-clients scenario: half of them send
// their request slowly (the head a few bytes at a time, then a body the same
// way), the other half ask for a large response and read it slowly through a
// small receive buffer. Each one starts over when its exchange ends, so N
// connections stay open until -duration is up. A server that gives a
// process (or thread) to a client for as long as the client takes is held
// by them; one that buffers is not.
//
//	slowclients -addr 127.0.0.1:18000 -n 200 -duration 40s
//
// At the end it prints one summary line on stdout. Every connection has a
// deadline at the end of -duration, so it never runs longer (plus a second
// of grace).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

type counters struct {
	opened, completed, errs, refused atomic.Int64
	sent, read                       atomic.Int64
	mu                               sync.Mutex
	firstErr                         error
}

func (c *counters) fail(err error) {
	if errors.Is(err, os.ErrDeadlineExceeded) || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return // the end of the run, not a failure
	}
	c.errs.Add(1)
	c.mu.Lock()
	if c.firstErr == nil {
		c.firstErr = err
	}
	c.mu.Unlock()
}

type config struct {
	addr                  string
	interval              time.Duration
	sendChunk, sendBytes  int
	sendPath, readPath    string
	readChunk, readBuffer int
}

func main() {
	var cfg config
	n := flag.Int("n", 200, "slow connections kept open")
	readers := flag.Float64("readers", 0.5, "fraction of them that read slowly (the rest send slowly)")
	duration := flag.Duration("duration", 30*time.Second, "how long the clients stay")
	flag.StringVar(&cfg.addr, "addr", "127.0.0.1:3000", "server address")
	flag.DurationVar(&cfg.interval, "interval", 100*time.Millisecond, "pause between a slow client's reads or writes")
	flag.IntVar(&cfg.sendChunk, "send-chunk", 16, "bytes a slow sender writes at a time")
	flag.IntVar(&cfg.sendBytes, "send-bytes", 1024, "request body size of a slow sender (POST)")
	flag.StringVar(&cfg.sendPath, "send-path", "/upload", "path slow senders POST to")
	flag.StringVar(&cfg.readPath, "read-path", "/big", "path slow readers GET (a large response)")
	flag.IntVar(&cfg.readChunk, "read-chunk", 1024, "bytes a slow reader reads at a time")
	flag.IntVar(&cfg.readBuffer, "read-buffer", 4096, "SO_RCVBUF of slow readers' sockets")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, *duration)
	defer cancel()
	deadline, _ := ctx.Deadline()

	var c counters
	var wg sync.WaitGroup
	nr := int(float64(*n)**readers + 0.5)
	start := time.Now()
	for i := range *n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for seq := 0; ctx.Err() == nil; seq++ {
				var err error
				if i < nr {
					err = slowRead(ctx, &cfg, deadline, &c, i, seq)
				} else {
					err = slowSend(ctx, &cfg, deadline, &c, i, seq)
				}
				if err != nil {
					c.fail(err)
					// do not spin on a server that refuses
					select {
					case <-ctx.Done():
					case <-time.After(cfg.interval):
					}
				}
			}
		}()
	}
	wg.Wait()
	first := ""
	if c.firstErr != nil {
		first = fmt.Sprintf(" (first: %v)", c.firstErr)
	}
	fmt.Printf("slowclients: %d connections (%d slow readers of %s, %d slow senders to %s) for %s: opened %d, exchanges completed %d, refused %d, errors %d%s; sent %d B, read %d B\n",
		*n, nr, cfg.readPath, *n-nr, cfg.sendPath, time.Since(start).Round(100*time.Millisecond),
		c.opened.Load(), c.completed.Load(), c.refused.Load(), c.errs.Load(), first, c.sent.Load(), c.read.Load())
}

func dial(ctx context.Context, cfg *config, deadline time.Time, rcvbuf int, c *counters) (net.Conn, error) {
	d := net.Dialer{Timeout: 5 * time.Second}
	if rcvbuf > 0 {
		d.Control = func(_, _ string, rc syscall.RawConn) error {
			var serr error
			err := rc.Control(func(fd uintptr) {
				serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, rcvbuf)
			})
			if err != nil {
				return err
			}
			return serr
		}
	}
	conn, err := d.DialContext(ctx, "tcp", cfg.addr)
	if err != nil {
		if errors.Is(err, syscall.ECONNREFUSED) {
			c.refused.Add(1)
		}
		return nil, err
	}
	c.opened.Add(1)
	conn.SetDeadline(deadline)
	return conn, nil
}

func pause(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// slowSend sends a POST a few bytes at a time, then reads the answer.
func slowSend(ctx context.Context, cfg *config, deadline time.Time, c *counters, i, seq int) error {
	conn, err := dial(ctx, cfg, deadline, 0, c)
	if err != nil {
		return err
	}
	defer conn.Close()
	body := make([]byte, cfg.sendBytes)
	for j := range body {
		body[j] = 'a' + byte(j%26)
	}
	req := fmt.Appendf(nil, "POST %s?c=%d.%d HTTP/1.1\r\nHost: %s\r\nUser-Agent: slowclients\r\nContent-Type: application/octet-stream\r\nContent-Length: %d\r\nConnection: close\r\n\r\n",
		cfg.sendPath, i, seq, cfg.addr, len(body))
	req = append(req, body...)
	for len(req) > 0 {
		k := min(cfg.sendChunk, len(req))
		m, err := conn.Write(req[:k])
		c.sent.Add(int64(m))
		if err != nil {
			return err
		}
		req = req[k:]
		if len(req) > 0 {
			if err := pause(ctx, cfg.interval); err != nil {
				return err
			}
		}
	}
	n, err := io.Copy(io.Discard, conn)
	c.read.Add(n)
	if err != nil {
		return err
	}
	c.completed.Add(1)
	return nil
}

// slowRead asks for a large response and reads it a little at a time.
func slowRead(ctx context.Context, cfg *config, deadline time.Time, c *counters, i, seq int) error {
	conn, err := dial(ctx, cfg, deadline, cfg.readBuffer, c)
	if err != nil {
		return err
	}
	defer conn.Close()
	req := fmt.Appendf(nil, "GET %s?c=%d.%d HTTP/1.1\r\nHost: %s\r\nUser-Agent: slowclients\r\nConnection: close\r\n\r\n", cfg.readPath, i, seq, cfg.addr)
	m, err := conn.Write(req)
	c.sent.Add(int64(m))
	if err != nil {
		return err
	}
	buf := make([]byte, cfg.readChunk)
	for {
		n, err := conn.Read(buf)
		c.read.Add(int64(n))
		if err == io.EOF {
			c.completed.Add(1)
			return nil
		}
		if err != nil {
			return err
		}
		if err := pause(ctx, cfg.interval); err != nil {
			return err
		}
	}
}
