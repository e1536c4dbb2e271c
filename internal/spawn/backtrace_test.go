package spawn

import (
	"bufio"
	"context"
	"errors"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"
)

// btProcess is a Process whose status pipe the test writes, as a loader
// would; onSignal runs when the process is signalled for backtraces.
func btProcess(t *testing.T, onSignal func(w *os.File)) (*Process, *os.File) {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })
	p := &Process{pid: 4242, done: make(chan struct{})}
	p.bt = watchBacktraces(r, bufio.NewReader(r))
	t.Cleanup(p.bt.close)
	p.signalOne = func(sig syscall.Signal) error {
		if sig != BacktraceSignal {
			t.Errorf("signal %v, want %v", sig, BacktraceSignal)
		}
		onSignal(w)
		return nil
	}
	return p, w
}

func ctxFor(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), d)
	t.Cleanup(cancel)
	return ctx
}

func TestBacktracesDump(t *testing.T) {
	n := 0
	p, w := btProcess(t, func(w *os.File) {
		n++
		w.WriteString("Thread 1\n  at hold_here\n" + BacktraceEnd + "\n")
	})
	// What the pipe held before the request is not part of the answer.
	w.WriteString("left over from a request that gave up\n")
	for p.bt.partial() == "" {
		time.Sleep(time.Millisecond)
	}
	for i := range 2 {
		got, err := p.Backtraces(ctxFor(t, time.Minute))
		if err != nil || got != "Thread 1\n  at hold_here\n" {
			t.Fatalf("request %d: %q, %v", i, got, err)
		}
	}
	if n != 2 {
		t.Errorf("signalled %d times, want 2", n)
	}
}

func TestBacktracesIncomplete(t *testing.T) {
	// A Python process whose main thread is stuck in C: faulthandler's
	// part comes, the end marker does not.
	p, _ := btProcess(t, func(w *os.File) { w.WriteString("Thread 0x1 (most recent call first):\n") })
	got, err := p.Backtraces(ctxFor(t, 200*time.Millisecond))
	if err != nil || !strings.HasPrefix(got, "Thread 0x1 (most recent call first):\n(incomplete:") {
		t.Fatalf("%q, %v", got, err)
	}
	// Nothing at all is an error.
	q, _ := btProcess(t, func(*os.File) {})
	if got, err := q.Backtraces(ctxFor(t, 200*time.Millisecond)); err == nil || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("no dump: %q, %v", got, err)
	}
}

func TestBacktracesTruncated(t *testing.T) {
	big := strings.Repeat("x", 1023) + "\n"
	p, _ := btProcess(t, func(w *os.File) {
		go func() {
			for range 5 << 10 { // 5 MiB
				w.WriteString(big)
			}
			w.WriteString(BacktraceEnd + "\n")
		}()
	})
	got, err := p.Backtraces(ctxFor(t, time.Minute))
	if err != nil || len(got) > maxBacktrace+100 || !strings.HasSuffix(got, "(truncated: the dump is over 4 MiB)\n") {
		t.Fatalf("%d bytes ending %q, %v", len(got), got[max(0, len(got)-60):], err)
	}
}

func TestBacktracesUnavailable(t *testing.T) {
	if _, err := (&Process{pid: 1}).Backtraces(t.Context()); !errors.Is(err, ErrNoBacktraces) {
		t.Errorf("no channel: %v", err)
	}
	// A loader that closed its status pipe after the handshake.
	p, w := btProcess(t, func(*os.File) { t.Error("signalled a process with no channel") })
	w.Close()
	<-p.bt.closed
	if _, err := p.Backtraces(ctxFor(t, time.Minute)); !errors.Is(err, ErrNoBacktraces) {
		t.Errorf("closed channel: %v", err)
	}
	// An exited process.
	q, _ := btProcess(t, func(*os.File) { t.Error("signalled an exited process") })
	close(q.done)
	if _, err := q.Backtraces(ctxFor(t, time.Minute)); err == nil || !strings.Contains(err.Error(), "exited") {
		t.Errorf("exited process: %v", err)
	}
}
