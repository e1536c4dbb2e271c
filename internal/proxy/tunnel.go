package proxy

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
)

// Tunnel completes a switch of protocols (the app answered 101): it takes
// over the client's connection, sends it the 101 head, and copies bytes both
// ways until either side closes. The upstream stays checked out, counting
// the process busy, until then. Past the transport's MaxTunnels, the client
// gets 503 instead and the app's connection is closed. When closing is
// closed (the process starts to leave), both connections are closed and the
// tunnel ends; nil: the tunnel lasts as long as both sides want.
func (x *Exchange) Tunnel(w http.ResponseWriter, closing <-chan struct{}) Result {
	res := Result{Status: x.Resp.StatusCode}
	defer func() {
		x.c.Close()
		x.up.ReleaseConn(nil, true)
	}()
	if t := x.t; t != nil && t.MaxTunnels > 0 {
		if t.tunnels.Add(1) > int64(t.MaxTunnels) {
			t.tunnels.Add(-1)
			h := w.Header()
			h.Set("Content-Type", "text/plain; charset=utf-8")
			h.Set("Retry-After", "5")
			h.Set("Cache-Control", "no-store")
			w.WriteHeader(http.StatusServiceUnavailable)
			io.WriteString(w, "Too many WebSocket connections to this app; try again shortly.\n")
			return Result{Status: http.StatusServiceUnavailable, Wrote: true}
		}
		defer t.tunnels.Add(-1)
	}
	client, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		res.AppErr = fmt.Errorf("take over the client connection: %w", err)
		return res
	}
	defer client.Close()
	res.Wrote = true

	bw := brw.Writer
	fmt.Fprintf(bw, "HTTP/1.1 101 %s\r\n", http.StatusText(http.StatusSwitchingProtocols))
	for k, vs := range x.Resp.Header {
		if k == "Connection" || k == "Upgrade" {
			continue
		}
		for _, v := range vs {
			fmt.Fprintf(bw, "%s: %s\r\n", k, v)
		}
	}
	fmt.Fprintf(bw, "Connection: Upgrade\r\nUpgrade: %s\r\n\r\n", x.Resp.Header.Get("Upgrade"))
	if err := bw.Flush(); err != nil {
		res.ClientErr = err
		return res
	}

	// Bytes either side sent ahead of the switch sit in the buffered
	// readers: read through them.
	ended := make(chan struct{})
	defer close(ended)
	if closing != nil {
		go func() { // the process is leaving: end the tunnel
			select {
			case <-closing:
				client.Close()
				x.c.Close()
			case <-ended:
			}
		}()
	}
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { // client → app
		defer wg.Done()
		io.Copy(x.c.Conn, brw.Reader)
		// The client is done sending; the app may still answer.
		closeWrite(x.c.Conn)
	}()
	go func() { // app → client
		defer wg.Done()
		res.Bytes, _ = io.Copy(client, x.c.br)
		// The app is done: nothing the client sends matters any more.
		client.Close()
	}()
	wg.Wait()
	return res
}

// closeWrite half-closes a connection so the other side sees EOF, or closes
// it when half-closing is not possible.
func closeWrite(c net.Conn) {
	if cw, ok := c.(interface{ CloseWrite() error }); ok && cw.CloseWrite() == nil {
		return
	}
	c.Close()
}
