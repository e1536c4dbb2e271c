// Command h3load is a small HTTP load client for bench/http3.sh: the same
// client for HTTP/1.1, HTTP/2 and HTTP/3 (Debian's h2load is built without
// QUIC), so that the protocols are compared with one client's costs.
// -c connections, each with -m requests in flight (HTTP/1.1: one), GET the
// URL over and over for -d after a -warmup; it prints "REQ/S 2XX OTHER"
// for the measured part, as bench/front.sh's h2 helper does.
//
//	h3load -proto h3 -c 50 -m 10 -d 10s -warmup 2s -insecure https://127.0.0.1:8443/
package main

import (
	"context"
	"crypto/tls"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/quic-go/quic-go/http3"
)

func main() {
	proto := flag.String("proto", "h3", "h1, h2 or h3")
	conns := flag.Int("c", 50, "connections")
	streams := flag.Int("m", 10, "requests in flight per connection (h2, h3)")
	dur := flag.Duration("d", 10*time.Second, "measured duration")
	warmup := flag.Duration("warmup", 2*time.Second, "unmeasured load first")
	insecure := flag.Bool("insecure", false, "accept any certificate (a bench's self-signed one)")
	flag.Parse()
	if flag.NArg() != 1 {
		fmt.Fprintln(os.Stderr, "usage: h3load [flags] URL")
		os.Exit(2)
	}
	url := flag.Arg(0)
	tc := &tls.Config{InsecureSkipVerify: *insecure}
	per := *streams
	if *proto == "h1" {
		per = 1
	}
	var measuring atomic.Bool
	var ok, other, failed atomic.Int64
	ctx, cancel := context.WithTimeout(context.Background(), *warmup+*dur)
	defer cancel()
	var wg sync.WaitGroup
	for range *conns {
		// A transport per connection: each keeps one connection.
		var rt http.RoundTripper
		switch *proto {
		case "h1", "h2":
			tr := &http.Transport{TLSClientConfig: tc, Protocols: new(http.Protocols), MaxConnsPerHost: 1, MaxIdleConnsPerHost: 1}
			tr.Protocols.SetHTTP1(*proto == "h1")
			tr.Protocols.SetHTTP2(*proto == "h2")
			defer tr.CloseIdleConnections()
			rt = tr
		case "h3":
			tr := &http3.Transport{TLSClientConfig: tc}
			defer tr.Close()
			rt = tr
		default:
			fmt.Fprintln(os.Stderr, "h3load: -proto is h1, h2 or h3")
			os.Exit(2)
		}
		for range per {
			wg.Go(func() {
				for ctx.Err() == nil {
					req, _ := http.NewRequestWithContext(ctx, "GET", url, nil)
					resp, err := rt.RoundTrip(req)
					if err != nil {
						if ctx.Err() == nil && measuring.Load() {
							failed.Add(1)
						}
						continue
					}
					_, err = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if !measuring.Load() || ctx.Err() != nil {
						continue
					}
					switch {
					case err != nil:
						failed.Add(1)
					case resp.StatusCode/100 == 2:
						ok.Add(1)
					default:
						other.Add(1)
					}
				}
			})
		}
	}
	time.Sleep(*warmup)
	measuring.Store(true)
	start := time.Now()
	<-ctx.Done()
	elapsed := time.Since(start)
	wg.Wait()
	fmt.Printf("%.2f %d %d\n", float64(ok.Load()+other.Load())/elapsed.Seconds(), ok.Load(), other.Load()+failed.Load())
}
