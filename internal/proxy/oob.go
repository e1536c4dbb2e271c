package proxy

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"time"
)

// Response headers by which an app asks for out-of-band work after this
// response: Ferry's, and Passenger's for apps written for it. Neither is
// passed on to the client.
const (
	HeaderOOBWork          = "X-Ferry-Request-Oob-Work"
	headerPassengerOOBWork = "!~Request-OOB-Work"
	// HeaderOOBRequest marks the core's request that a loader do its
	// out-of-band work now; clients cannot send it (X-Ferry-* is dropped).
	HeaderOOBRequest = "X-Ferry-Oob-Work"
)

// TakeOOBRequest reports whether the app asked for out-of-band work, and
// removes the asking headers from the response.
func TakeOOBRequest(resp *http.Response) bool {
	asked := false
	for _, k := range []string{HeaderOOBWork, headerPassengerOOBWork} {
		if v := resp.Header.Get(k); v != "" {
			asked = asked || v == "true" || v == "1"
			resp.Header.Del(k)
		}
	}
	return asked
}

// OutOfBand asks the loader at addr to do its out-of-band work (by default,
// garbage collection) and waits until it has.
func OutOfBand(ctx context.Context, addr net.Addr) error {
	var d net.Dialer
	c, err := d.DialContext(ctx, addr.Network(), addr.String())
	if err != nil {
		return fmt.Errorf("out-of-band work: %w", err)
	}
	defer c.Close()
	if dl, ok := ctx.Deadline(); ok {
		c.SetDeadline(dl)
	} else {
		c.SetDeadline(time.Now().Add(5 * time.Minute))
	}
	if _, err := fmt.Fprintf(c, "POST /__ferry/oob HTTP/1.1\r\nHost: ferry\r\n%s: 1\r\nContent-Length: 0\r\nConnection: close\r\n\r\n", HeaderOOBRequest); err != nil {
		return fmt.Errorf("out-of-band work: %w", err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return fmt.Errorf("out-of-band work: %w", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("out-of-band work: the loader answered %s", resp.Status)
	}
	return nil
}
