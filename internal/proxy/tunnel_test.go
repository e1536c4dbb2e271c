package proxy

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// TestTunnelCap checks MaxTunnels: past it an Upgrade gets 503 (and the app's
// connection is closed), and a slot frees when a tunnel ends.
func TestTunnelCap(t *testing.T) {
	// The app: accepts every upgrade, then echoes.
	up, _ := serveUnix(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer c.Close()
		brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n")
		brw.Flush()
		io.Copy(c, brw)
	}))
	tr := &Transport{MaxTunnels: 2}
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		x, err := tr.RoundTrip(up, r, nil, "http")
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		x.Tunnel(w, nil)
	}))
	defer front.Close()

	dial := func() (net.Conn, *bufio.Reader, int) {
		t.Helper()
		c, err := net.Dial("tcp", front.Listener.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprint(c, "GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n")
		br := bufio.NewReader(c)
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		return c, br, resp.StatusCode
	}
	echo := func(c net.Conn, br *bufio.Reader) {
		t.Helper()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		fmt.Fprint(c, "ping\n")
		if line, err := br.ReadString('\n'); err != nil || line != "ping\n" {
			t.Fatalf("tunnel echo: %q %v", line, err)
		}
	}
	a, abr, code := dial()
	if code != 101 {
		t.Fatalf("first tunnel: %d", code)
	}
	echo(a, abr)
	b, bbr, code := dial()
	if code != 101 {
		t.Fatalf("second tunnel: %d", code)
	}
	echo(b, bbr)
	c, _, code := dial()
	if code != http.StatusServiceUnavailable {
		t.Fatalf("third tunnel with a cap of 2: %d, want 503", code)
	}
	c.Close()
	a.Close()
	// The first tunnel's slot frees once the core sees it end.
	deadline := time.Now().Add(10 * time.Second)
	for {
		d, dbr, code := dial()
		if code == 101 {
			echo(d, dbr)
			d.Close()
			break
		}
		d.Close()
		if time.Now().After(deadline) {
			t.Fatalf("slot never freed: %d", code)
		}
		time.Sleep(10 * time.Millisecond)
	}
	b.Close()
}
