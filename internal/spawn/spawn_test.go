package spawn

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

// spawner runs script with sh as if it were a loader.
func spawner(t *testing.T, script string, timeout time.Duration) *Spawner {
	t.Helper()
	return New(Config{
		App:          "t",
		Root:         t.TempDir(),
		Command:      []string{"/bin/sh", "-c", script},
		Env:          []string{"PATH=/usr/bin:/bin"},
		WorkDir:      t.TempDir(),
		StartTimeout: timeout,
	}, slog.New(slog.NewTextHandler(io.Discard, nil)))
}

const ready = `echo '{"status":"ready","socket":"/evil","concurrency":3}' >&3; exec 3>&-; `

func TestSpawnReady(t *testing.T) {
	sp := spawner(t, ready+`echo started; test -n "$FERRY_SOCKET" && exec sleep 600`, 10*time.Second)
	p, err := sp.Spawn(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if p.Concurrency() != 3 || p.Addr().String() == "/evil" || !strings.HasSuffix(p.Addr().String(), "/sock") {
		t.Fatalf("concurrency %d socket %q: the socket must be ours, not the app's", p.Concurrency(), p.Addr())
	}
	work := p.workDir
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	p.Stop(ctx)
	select {
	case <-p.Done():
	default:
		t.Fatal("Stop returned before the process exited")
	}
	if _, err := os.Stat(work); !os.IsNotExist(err) {
		t.Fatalf("work dir left behind: %v", err)
	}
}

func TestSpawnReportedError(t *testing.T) {
	sp := spawner(t, `echo 'loading...'; echo '{"status":"error","summary":"NameError: x","details":"Traceback: line 1"}' >&3; exit 1`, 10*time.Second)
	_, err := sp.Spawn(t.Context())
	var se *Error
	if !errors.As(err, &se) {
		t.Fatalf("want *Error, got %v", err)
	}
	if se.Summary != "NameError: x" || se.Details != "Traceback: line 1" || !strings.Contains(se.Output, "loading...") {
		t.Fatalf("error = %+v", se)
	}
}

func TestSpawnExitsBeforeReady(t *testing.T) {
	sp := spawner(t, `echo 'to stderr' >&2; exit 7`, 10*time.Second)
	_, err := sp.Spawn(t.Context())
	var se *Error
	if !errors.As(err, &se) || !strings.Contains(se.Summary, "exit status 7") || !strings.Contains(se.Output, "to stderr") {
		t.Fatalf("error = %v (%+v)", err, se)
	}
}

func TestSpawnTimeout(t *testing.T) {
	sp := spawner(t, `echo 'slow'; exec sleep 600`, 200*time.Millisecond)
	_, err := sp.Spawn(t.Context())
	var se *Error
	if !errors.As(err, &se) || !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(se.Summary, "did not start within") {
		t.Fatalf("error = %v", err)
	}
}

func TestSpawnMalformedHandshake(t *testing.T) {
	sp := spawner(t, `echo 'not json' >&3; exec sleep 600`, 10*time.Second)
	if _, err := sp.Spawn(t.Context()); err == nil || !strings.Contains(err.Error(), "malformed status line") {
		t.Fatalf("error = %v", err)
	}
}

func TestStopEscalatesToKill(t *testing.T) {
	// The process ignores SIGTERM; Stop must still end it when ctx ends.
	sp := spawner(t, `trap '' TERM; `+ready+`while :; do sleep 1; done`, 10*time.Second)
	p, err := sp.Spawn(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	p.Stop(ctx)
	<-p.Done()
	var ee *exec.ExitError
	if !errors.As(p.ExitErr(), &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("exit %v, want killed by SIGKILL", p.ExitErr())
	}
}

func TestLifelineSharedAcrossProcesses(t *testing.T) {
	// Loaders that exit when the lifeline reaches EOF, as the real ones do.
	sp := spawner(t, ready+`cat <&4 >/dev/null; echo 'lifeline gone'`, 10*time.Second)
	a, err := sp.Spawn(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	b, err := sp.Spawn(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	// Stopping one must not end another: the lifeline is the core's.
	a.Kill()
	select {
	case <-b.Done():
		t.Fatal("stopping one process ended another")
	case <-time.After(200 * time.Millisecond):
	}
	b.Kill()
}

func FuzzParseHandshake(f *testing.F) {
	for _, s := range []string{
		`{"status":"ready","socket":"/x","concurrency":1}`,
		`{"status":"ready"}`,
		`{"status":"error","summary":"boom","details":"tb"}`,
		`{"status":"error"}`,
		`{"status":"ready","concurrency":-1}`,
		`{"status":"maybe"}`,
		`null`, `[]`, `{`, ``,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		h, err := ParseHandshake(line)
		if err != nil {
			return
		}
		switch h.Status {
		case "ready":
			if h.Concurrency < 0 {
				t.Fatalf("accepted concurrency %d", h.Concurrency)
			}
		case "error":
			if h.Summary == "" {
				t.Fatal("accepted an error without a summary")
			}
		default:
			t.Fatalf("accepted status %q", h.Status)
		}
	})
}

func TestGenericWaitsForPort(t *testing.T) {
	if _, err := os.Stat("/usr/bin/python3"); err != nil {
		t.Skip("needs /usr/bin/python3 as a stand-in generic app")
	}
	sp := New(Config{
		App:          "g",
		Root:         t.TempDir(),
		Command:      []string{"/bin/sh", "-c", `echo "port is $PORT"; exec /usr/bin/python3 -m http.server --bind 127.0.0.1 "$PORT"`},
		Env:          []string{"PATH=/usr/bin:/bin"},
		WorkDir:      t.TempDir(),
		StartTimeout: 30 * time.Second,
		Generic:      true,
	}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	p, err := sp.Spawn(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer p.Kill()
	if p.Addr().Network() != "tcp" || p.Concurrency() != 0 {
		t.Fatalf("addr %v concurrency %d", p.Addr(), p.Concurrency())
	}
	c, err := net.Dial("tcp", p.Addr().String())
	if err != nil {
		t.Fatalf("the port Ferry waited for does not accept: %v", err)
	}
	c.Close()
}

func TestGenericThatNeverListens(t *testing.T) {
	sp := New(Config{
		App: "g", Root: t.TempDir(), Command: []string{"/bin/sh", "-c", "echo never listening; exit 3"},
		Env: []string{"PATH=/usr/bin:/bin"}, WorkDir: t.TempDir(), StartTimeout: 30 * time.Second, Generic: true,
	}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	_, err := sp.Spawn(t.Context())
	var se *Error
	if !errors.As(err, &se) || !strings.Contains(se.Summary, "exit status 3") || !strings.Contains(se.Output, "never listening") {
		t.Fatalf("error = %v", err)
	}
}
