// Command fleetload is bench/fleet.sh's load generator: a steady, bounded
// stream of GET requests to one URL (a load balancer on loopback), from a
// fixed number of workers at a fixed total rate, that stops by itself after
// -duration or on SIGINT/SIGTERM. Every request is one JSON line in -log:
// when it started and ended, the status, the error if any, and the host
// and version the answer came from (the fleet app's "host version pid"
// body), so the harness can count failures and see which host served when.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"
)

type sample struct {
	Start  float64 `json:"start"` // unix seconds
	End    float64 `json:"end"`
	Status int     `json:"status"`
	Err    string  `json:"err,omitempty"`
	Host   string  `json:"host,omitempty"`
	Ver    string  `json:"ver,omitempty"`
}

func main() {
	url := flag.String("url", "http://127.0.0.1:8000/", "`URL` to GET")
	workers := flag.Int("c", 12, "concurrent workers")
	rate := flag.Float64("rate", 200, "requests per second in all")
	duration := flag.Duration("duration", 60*time.Second, "stop after this long")
	logPath := flag.String("log", "load.jsonl", "one JSON line per request")
	timeout := flag.Duration("timeout", 30*time.Second, "a request taking longer fails")
	flag.Parse()

	out, err := os.Create(*logPath)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	defer out.Close()
	ctx, cancel := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer cancel()
	ctx, cancelT := context.WithTimeout(ctx, *duration)
	defer cancelT()

	client := &http.Client{Timeout: *timeout, Transport: &http.Transport{
		MaxIdleConnsPerHost: *workers, IdleConnTimeout: 30 * time.Second, DisableCompression: true,
	}}
	tick := time.NewTicker(time.Duration(float64(time.Second) / *rate))
	defer tick.Stop()
	jobs := make(chan struct{})
	var mu sync.Mutex
	enc := json.NewEncoder(out)
	var wg sync.WaitGroup
	var total, failed int
	for range *workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range jobs {
				s := get(client, *url)
				mu.Lock()
				enc.Encode(s)
				total++
				if s.Err != "" || s.Status != 200 {
					failed++
				}
				mu.Unlock()
			}
		}()
	}
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case <-tick.C:
			select {
			case jobs <- struct{}{}:
			default: // every worker busy: the rate is bounded, not queued
			}
		}
	}
	close(jobs)
	wg.Wait()
	fmt.Printf("requests %d failed %d\n", total, failed)
}

func unix(t time.Time) float64 { return float64(t.UnixNano()) / 1e9 }

func get(c *http.Client, url string) sample {
	start := time.Now()
	s := sample{Start: unix(start)}
	resp, err := c.Get(url)
	if err != nil {
		s.End, s.Err = unix(time.Now()), err.Error()
		return s
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	s.End, s.Status = unix(time.Now()), resp.StatusCode
	if err != nil {
		s.Err = "read body: " + err.Error()
	}
	if f := strings.Fields(string(b)); resp.StatusCode == 200 && len(f) >= 2 {
		s.Host, s.Ver = f[0], f[1]
	}
	return s
}
