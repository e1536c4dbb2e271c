package integration

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
)

// TestBinaryUpgradeUnderLoad hands a running Ferry over to a new one (the
// binary on disk) while clients keep sending requests: none fails, and the
// new one serves afterwards.
func TestBinaryUpgradeUnderLoad(t *testing.T) {
	f := startFerry(t, fixture(t, "wsgi/echo"), "--min-instances", "2", "--max-pool-size", "2")
	eventually(t, "two processes", func() bool { return len(f.pids()) == 2 })
	oldPID := f.cmd.Process.Pid

	// refused: a connection the sockets did not accept (what an upgrade must
	// never cause); failed: an answer other than 200; raced: a kept-alive
	// connection closed by the draining old ferry just as the client reused
	// it, which HTTP lets clients retry (RFC 9112 §9.3.1) and browsers do.
	var served, failed, refused, raced atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; ; n++ {
				select {
				case <-stop:
					return
				default:
				}
				resp, err := client.Get(fmt.Sprintf("%s/pid?c=%d&n=%d", f.URL, i, n))
				switch {
				case errors.Is(err, syscall.ECONNREFUSED):
					refused.Add(1)
					continue
				case err != nil:
					raced.Add(1)
					continue
				case resp.StatusCode != 200:
					failed.Add(1)
					resp.Body.Close()
					continue
				}
				resp.Body.Close()
				served.Add(1)
			}
		}()
	}
	eventually(t, "some load", func() bool { return served.Load() > 50 })

	out, err := exec_(ferryBin, "upgrade", "--instance", f.Instance)
	if err != nil {
		t.Fatalf("ferry upgrade: %v\n%s", err, out)
	}
	line := f.waitLog(`upgrade: the new ferry serves; this one drains and exits.*new_pid=\d+`)
	newPID, _ := strconv.Atoi(regexp.MustCompile(`new_pid=(\d+)`).FindStringSubmatch(line)[1])
	t.Cleanup(func() {
		syscall.Kill(newPID, syscall.SIGTERM)
		eventually(t, "the new ferry to exit", func() bool { return !alive(newPID) })
	})
	// (Not f.exited: the new ferry writes to the same output pipe, which
	// the harness reads to its end.)
	eventually(t, "the old ferry to exit after handing over", func() bool { return !alive(oldPID) })
	f.waitLog(`msg="handing over to the new ferry"`)
	f.waitLog(`msg="ferry stopped"`)
	// Load goes on against the new one for a while.
	before := served.Load()
	eventually(t, "load served by the new ferry", func() bool { return served.Load() > before+50 })
	close(stop)
	wg.Wait()
	t.Logf("binary upgrade under 8 concurrent clients: %d served, %d failed, %d refused, %d kept-alive connections closed as they were reused",
		served.Load(), failed.Load(), refused.Load(), raced.Load())
	if refused.Load() != 0 || failed.Load() != 0 {
		t.Fatalf("during the upgrade %d connections were refused and %d requests failed", refused.Load(), failed.Load())
	}
	if newPID == oldPID || !alive(newPID) {
		t.Fatalf("new ferry pid %d (old %d) not running", newPID, oldPID)
	}
}
