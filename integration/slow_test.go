package integration

import (
	"bufio"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// TestManySlowClients: with one app process, 200 clients
// that send their bodies a byte at a time and 200 that read nothing of a
// large response do not keep a normal client from being served: the
// process is free as soon as the app is done with each request.
func TestManySlowClients(t *testing.T) {
	const slow = 200
	f := startFerry(t, fixture(t, "wsgi/echo"), "--max-pool-size", "1", "--max-request-queue-size", "1000", "--response-buffer-memory", "64k",
		"--client-body-timeout", "600", "--client-write-timeout", "600")
	addr := addrOf(f)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	t.Cleanup(func() {
		close(stop)
		wg.Wait()
	})
	dial := func(rcvbuf int) net.Conn {
		d := net.Dialer{}
		if rcvbuf > 0 {
			d.Control = func(_, _ string, rc syscall.RawConn) error {
				return rc.Control(func(fd uintptr) {
					syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, rcvbuf)
				})
			}
		}
		c, err := d.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	// Slow senders: a body promised, sent a byte every half second.
	for range slow {
		c := dial(0)
		fmt.Fprintf(c, "POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\nab")
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer c.Close()
			tick := time.NewTicker(500 * time.Millisecond)
			defer tick.Stop()
			for {
				select {
				case <-stop:
					return
				case <-tick.C:
					c.Write([]byte{'z'})
				}
			}
		}()
	}
	// Slow readers: an 8 MiB response each, and a receive window of 4 KiB
	// that they never empty.
	var readers []net.Conn
	for range slow {
		c := dial(4096)
		readers = append(readers, c)
		fmt.Fprintf(c, "GET /big?n=%d HTTP/1.1\r\nHost: x\r\n\r\n", 8<<20)
	}
	defer func() {
		for _, c := range readers {
			c.Close()
		}
	}()

	// The app answers every reader, one at a time, while none of them
	// reads; then its only process is idle although 400 clients hang on.
	eventually(t, "the app to have answered every slow reader", func() bool {
		ps := f.pool().Apps[0].Processes
		return len(ps) == 1 && ps[0].Processed >= slow
	})
	eventually(t, "no session held by a slow client", func() bool { return sessions(f) == 0 })
	for i := range 20 {
		if code, body := f.get("/"); code != 200 || body != "hello world" {
			t.Fatalf("normal request %d: %d %q", i, code, body)
		}
	}
	if n := len(f.pids()); n != 1 {
		t.Errorf("%d processes, want the one", n)
	}
	// The slow clients are still there, and still served correctly: the
	// first reader gets its whole response when it starts reading.
	c := readers[0]
	c.SetReadDeadline(time.Now().Add(120 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	n, err := io.Copy(io.Discard, resp.Body)
	if err != nil || n != 8<<20 {
		t.Fatalf("slow reader got %d bytes, %v", n, err)
	}
}

// procRSS is the resident set size of pid, from /proc/PID/status.
func procRSS(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10, err
		}
	}
	return 0, fmt.Errorf("no VmRSS in /proc/%d/status", pid)
}

var (
	plainBinOnce sync.Once
	plainBin     string
	plainBinErr  error
)

// ferryWithoutRace is the ferry binary built without the race detector,
// whose shadow memory would swamp a memory measurement.
func ferryWithoutRace(t *testing.T) string {
	t.Helper()
	if !raceEnabled {
		return ferryBin
	}
	plainBinOnce.Do(func() {
		plainBin = filepath.Join(filepath.Dir(ferryBin), "ferry-norace")
		out, err := exec.Command("go", "build", "-o", plainBin, "../cmd/ferry").CombinedOutput()
		if err != nil {
			plainBinErr = fmt.Errorf("%v\n%s", err, out)
		}
	})
	if plainBinErr != nil {
		t.Fatal(plainBinErr)
	}
	return plainBin
}

// TestLargeUploadKeepsMemoryBounded uploads 1 GiB and samples the core's
// resident memory all along: the body goes to a spill file, not memory.
func TestLargeUploadKeepsMemoryBounded(t *testing.T) {
	if testing.Short() {
		t.Skip("1 GiB upload")
	}
	bin := ferryWithoutRace(t)
	saved := ferryBin
	ferryBin = bin
	f := startFerry(t, fixture(t, "wsgi/echo"), "--max-pool-size", "1")
	ferryBin = saved
	pid := f.cmd.Process.Pid

	var peak atomic.Int64
	done := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		for {
			if rss, err := procRSS(pid); err == nil && rss > peak.Load() {
				peak.Store(rss)
			}
			select {
			case <-done:
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	}()
	const size = 1 << 30
	req, _ := http.NewRequest("POST", f.URL+"/upload", io.LimitReader(zeros{}, size))
	req.ContentLength = size
	resp, err := client.Do(req)
	close(done)
	<-sampled
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		Len int64 `json:"len"`
	}
	json.Unmarshal([]byte(readAll(t, resp)), &got)
	if resp.StatusCode != 200 || got.Len != size {
		t.Fatalf("upload: %d, the app got %d bytes", resp.StatusCode, got.Len)
	}
	t.Logf("ferry's peak RSS during a 1 GiB upload: %.1f MiB", float64(peak.Load())/(1<<20))
	if peak.Load() > 200<<20 {
		t.Errorf("ferry's RSS reached %d MiB during the upload", peak.Load()>>20)
	}
	if peak.Load() == 0 {
		t.Error("no RSS sample")
	}
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

// TestHostileInputOverTLS: the request-smuggling checks hold on HTTPS
// (HTTP/1.1) connections too.
func TestHostileInputOverTLS(t *testing.T) {
	cert, key, roots := testCert(t)
	f := startFerry(t, fixture(t, "wsgi/echo"), "--ssl", "--ssl-certificate", cert, "--ssl-certificate-key", key)
	exchange := func(raw string) string {
		c, err := tls.Dial("tcp", addrOf(f), &tls.Config{RootCAs: roots, NextProtos: []string{"http/1.1"}})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.Write([]byte(raw))
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		b, _ := io.ReadAll(c)
		return string(b)
	}
	for _, raw := range []string{
		"POST /t1 HTTP/1.1\r\nHost: x\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nX",
		"GET /t2 HTTP/1.1\r\nHost: x\r\nX-A: one\r\n two\r\n\r\n",
		"GET /t3 HTTP/1.1\r\nHost: x\r\nX-A: a\x00b\r\n\r\n",
	} {
		if got := exchange(raw); !strings.HasPrefix(got, "HTTP/1.1 400") {
			t.Errorf("%.30q: answer %.60q", raw, got)
		}
	}
	f.waitLog(`msg="request refused" .*request="GET /t3 HTTP/1.1" status=400`)
	if got := exchange("GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"); !strings.HasSuffix(got, "hello world") {
		t.Errorf("a good request afterwards: %.60q", got)
	}
}
