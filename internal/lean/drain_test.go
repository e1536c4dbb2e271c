package lean

import (
	"bufio"
	"net"
	"net/http"
	"sync/atomic"
	"testing"
)

// TestDrain: after Drain, the next response says Connection: close and the
// connection ends after it, and FirstRequest is called once per connection
// that had a request head read here, with the connection Serve was given.
func TestDrain(t *testing.T) {
	var firsts atomic.Int32
	var local atomic.Value
	e := New(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok")) }),
		Options{FirstRequest: func(c net.Conn) { firsts.Add(1); local.Store(c.RemoteAddr().String()) }})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go e.Serve(c, func(c net.Conn) { c.Close() })
		}
	}()
	defer e.Shutdown(t.Context())
	addr := ln.Addr().String()
	c := dial(t, addr)
	br := bufio.NewReader(c)
	resp, _, err := roundTrip(t, c, br, get)
	if err != nil || resp.Close {
		t.Fatalf("before Drain: %v, close %v; want kept alive", err, resp != nil && resp.Close)
	}
	e.Drain()
	resp, body, err := roundTrip(t, c, br, get)
	if err != nil || !resp.Close || string(body) != "ok" {
		t.Fatalf("after Drain: %v, %q, close %v; want ok with Connection: close", err, body, resp != nil && resp.Close)
	}
	if !closedAfter(t, c, br) {
		t.Fatal("after Drain the connection served another request")
	}
	if n := firsts.Load(); n != 1 || local.Load() != c.LocalAddr().String() {
		t.Fatalf("FirstRequest called %d times, with %v; want once, with the client %s", n, local.Load(), c.LocalAddr())
	}
}
