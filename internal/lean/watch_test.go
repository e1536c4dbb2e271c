package lean

import (
	"bufio"
	"net/http"
	"strings"
	"testing"
	"time"
)

// watchingHandler calls WatchClient and waits until released or its
// request's context ends, telling which on ended.
func watchingHandler(release <-chan struct{}, ended chan<- string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		stop := w.(interface{ WatchClient() func() }).WatchClient()
		select {
		case <-release:
			stop()
			ended <- "released"
			w.Write([]byte("done " + r.URL.Path))
		case <-r.Context().Done():
			stop()
			ended <- "cancelled"
		}
	})
}

// TestWatchClientLeaves: a client that leaves during a wait longer than
// the delay cancels its request.
func TestWatchClientLeaves(t *testing.T) {
	ended := make(chan string, 1)
	_, addr := serveLean(t, watchingHandler(make(chan struct{}), ended), nil)
	c := dial(t, addr)
	c.Write([]byte("GET /a HTTP/1.1\r\nHost: x\r\n\r\n"))
	time.Sleep(3 * DefaultWatchDelay) // the watch has started
	c.Close()
	select {
	case how := <-ended:
		if how != "cancelled" {
			t.Fatalf("the request was %s, want cancelled", how)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the request was not cancelled when its client left")
	}
}

// TestWatchClientPipelined: a request pipelined during a watched wait is
// not taken for a client leaving, and is answered after the first; a
// wait that ends before the delay reads nothing. Both on one connection,
// so the watcher is reused.
func TestWatchClientPipelined(t *testing.T) {
	release := make(chan struct{})
	ended := make(chan string, 2)
	_, addr := serveLean(t, watchingHandler(release, ended), nil)
	c := dial(t, addr)
	br := bufio.NewReader(c)
	c.Write([]byte("GET /a HTTP/1.1\r\nHost: x\r\n\r\n"))
	time.Sleep(3 * DefaultWatchDelay)
	c.Write([]byte("GET /b HTTP/1.1\r\nHost: x\r\n\r\n"))
	time.Sleep(3 * DefaultWatchDelay)
	release <- struct{}{} // /a
	release <- struct{}{} // /b, before its delay
	for _, want := range []string{"done /a", "done /b"} {
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		var sb strings.Builder
		bufio.NewReader(resp.Body).WriteTo(&sb)
		if sb.String() != want {
			t.Fatalf("body %q, want %q", sb.String(), want)
		}
		if how := <-ended; how != "released" {
			t.Fatalf("%s: the request was %s", want, how)
		}
	}
}

// TestWatchClientManyLeave: waits on many connections, listed on every
// stripe, are all watched once the delay has passed, and each client that
// leaves cancels its own request; nothing stays listed, and Shutdown
// closes the sweeper's channel (a second Shutdown, the cleanup's, is safe).
func TestWatchClientManyLeave(t *testing.T) {
	const n = 40
	ended := make(chan string, n)
	e, addr := serveLean(t, watchingHandler(make(chan struct{}), ended), nil)
	conns := make([]interface{ Close() error }, n)
	for i := range conns {
		c := dial(t, addr)
		c.Write([]byte("GET /w HTTP/1.1\r\nHost: x\r\n\r\n"))
		conns[i] = c
	}
	time.Sleep(3 * DefaultWatchDelay)
	for _, c := range conns {
		c.Close()
	}
	for i := range n {
		select {
		case how := <-ended:
			if how != "cancelled" {
				t.Fatalf("request %d was %s, want cancelled", i, how)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("%d of %d requests were cancelled when their clients left", i, n)
		}
	}
	if listed := e.waits.n.Load(); listed != 0 {
		t.Fatalf("%d waits still listed after every request ended", listed)
	}
	e.Shutdown(t.Context())
	select {
	case <-e.waits.closed:
	default:
		t.Fatal("Shutdown did not end the sweeper")
	}
}
