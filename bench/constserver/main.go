// Command constserver is the ceiling of bench/run.sh's cacheable-endpoint
// scenario: a minimal Go net/http server answering every request with the
// same small response from memory, as a cache hit would, with nothing else
// on the way (no routing, no logging, no cache lookup).
//
//	constserver -addr 127.0.0.1:18000
//
// With -loop epoll it answers the same bytes from an event loop of its own
// instead (epoll.go): how much of a hit's cost is Go's netpoller and
// goroutine scheduling, against the same work done without them.
//
// It stops on SIGTERM or SIGINT.
package main

import (
	"context"
	"flag"
	"log"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:18000", "address to listen on")
	loop := flag.String("loop", "net/http", "net/http, or epoll: an epoll loop per CPU (Linux)")
	flag.Parse()
	if *loop == "epoll" {
		if err := serveEpoll(*addr); err != nil {
			log.Print(err)
			os.Exit(1)
		}
		return
	}

	body := []byte("Hello from Ferry!\n")
	header := http.Header{
		"Content-Type":   {"text/plain; charset=utf-8"},
		"Content-Length": {"18"},
		"Cache-Control":  {"public, max-age=60"},
	}
	h := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		wh := w.Header()
		for k, v := range header {
			wh[k] = v
		}
		w.Write(body)
	})
	srv := &http.Server{Addr: *addr, Handler: h, ReadHeaderTimeout: 30 * time.Second}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(sctx)
	}()
	if err := srv.ListenAndServe(); err != nil && err != http.ErrServerClosed {
		log.Print(err)
		os.Exit(1)
	}
}
