package procstat

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"sync"
	"testing"
	"time"
)

func TestCPUPercent(t *testing.T) {
	start := time.Unix(1700000000, 0)
	s := func(pid int, cpu time.Duration) Sample {
		return Sample{PID: pid, CPUTime: cpu, StartTime: start}
	}
	reused := s(1, 3*time.Second)
	reused.StartTime = start.Add(time.Minute)
	tests := []struct {
		name      string
		prev, cur Sample
		elapsed   time.Duration
		want      float64
	}{
		{"half a core", s(1, time.Second), s(1, 1500*time.Millisecond), time.Second, 50},
		{"four cores", s(1, 0), s(1, 8*time.Second), 2 * time.Second, 400},
		{"idle", s(1, time.Second), s(1, time.Second), time.Second, 0},
		{"no interval", s(1, time.Second), s(1, 2*time.Second), 0, 0},
		{"negative interval", s(1, time.Second), s(1, 2*time.Second), -time.Second, 0},
		{"backwards", s(1, 2*time.Second), s(1, time.Second), time.Second, 0},
		{"other pid", s(1, time.Second), s(2, 2*time.Second), time.Second, 0},
		{"pid reused", s(1, time.Second), reused, time.Second, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := CPUPercent(tc.prev, tc.cur, tc.elapsed); got != tc.want {
				t.Errorf("CPUPercent = %v, want %v", got, tc.want)
			}
		})
	}
}

// fakeProcs is a Tracker seam: samples and the clock are set by the test.
type fakeProcs struct {
	now     time.Time
	samples map[int]Sample
}

func (f *fakeProcs) read(pid int) (Sample, error) {
	s, ok := f.samples[pid]
	if !ok {
		return Sample{}, fmt.Errorf("read process %d: %w", pid, os.ErrNotExist)
	}
	return s, nil
}

func TestTrackerFake(t *testing.T) {
	start := time.Unix(1700000000, 0)
	f := &fakeProcs{now: start.Add(time.Hour), samples: map[int]Sample{
		7: {PID: 7, CPUTime: 10 * time.Second, StartTime: start},
	}}
	tr := &Tracker{read: f.read, now: func() time.Time { return f.now }}

	step := func(desc string, cpu time.Duration, advance time.Duration, want float64) {
		t.Helper()
		f.now = f.now.Add(advance)
		s := f.samples[7]
		s.CPUTime = cpu
		f.samples[7] = s
		_, got, err := tr.Read(7)
		if err != nil {
			t.Fatalf("%s: %v", desc, err)
		}
		if got != want {
			t.Errorf("%s: cpu = %v%%, want %v%%", desc, got, want)
		}
	}
	step("first read", 10*time.Second, 0, 0)
	step("one core for 2s", 12*time.Second, 2*time.Second, 100)
	step("a quarter core for 4s", 13*time.Second, 4*time.Second, 25)
	step("same instant", 14*time.Second, 0, 0)

	// The pid is reused by a process with another start time.
	f.samples[7] = Sample{PID: 7, StartTime: start.Add(2 * time.Hour)}
	step("reused pid", time.Second, time.Second, 0)
	step("after reuse", 1500*time.Millisecond, time.Second, 50)

	// Gone: the error says so and the tracker forgets the pid.
	delete(f.samples, 7)
	if _, _, err := tr.Read(7); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("Read of a gone pid: err = %v, want os.ErrNotExist", err)
	}
	if n := len(tr.last); n != 0 {
		t.Errorf("tracker remembers %d pids after the only one went, want 0", n)
	}
	f.samples[7] = Sample{PID: 7, CPUTime: time.Second, StartTime: start}
	step("back", 2*time.Second, time.Second, 0)

	tr.Forget(7)
	step("forgotten", 3*time.Second, time.Second, 0)
}

func TestTrackerReadsItself(t *testing.T) {
	var tr Tracker
	pid := os.Getpid()
	first, pct, err := tr.Read(pid)
	if err != nil {
		t.Fatal(err)
	}
	if pct != 0 {
		t.Errorf("first Read: cpu = %v%%, want 0", pct)
	}

	// Burn at least 100ms of CPU, checked with Read, not measured by a clock.
	for {
		spin(time.Millisecond)
		s, err := Read(pid)
		if err != nil {
			t.Fatal(err)
		}
		if s.CPUTime-first.CPUTime >= 100*time.Millisecond {
			break
		}
	}
	_, pct, err = tr.Read(pid)
	if err != nil {
		t.Fatal(err)
	}
	// We used ≥ 100ms of CPU since the first Read; no more than every core
	// (plus the tick granularity) can have been.
	if max := 150 * float64(runtime.NumCPU()); pct <= 0 || pct > max {
		t.Errorf("cpu = %v%%, want in (0, %v]", pct, max)
	}
	t.Logf("cpu = %.1f%%", pct)
}

// spin keeps this goroutine's core busy for about d.
func spin(d time.Duration) {
	for end := time.Now().Add(d); time.Now().Before(end); {
	}
}

func TestTrackerConcurrent(t *testing.T) {
	var tr Tracker
	pid := os.Getpid()
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 20 {
				if _, pct, err := tr.Read(pid); err != nil || pct < 0 {
					t.Errorf("Read: %v%%, %v", pct, err)
					return
				}
			}
		})
	}
	wg.Wait()
	tr.Forget(pid)
}
