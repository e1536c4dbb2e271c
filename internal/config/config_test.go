package config

import (
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func wsgiApp(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "passenger_wsgi.py"), []byte("application = None\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestParseStartDefaults(t *testing.T) {
	dir := wsgiApp(t)
	c, err := ParseStart([]string{dir})
	if err != nil {
		t.Fatal(err)
	}
	if c.Port != 3000 || c.Address != "0.0.0.0" || c.Environment != "development" || c.MaxPoolSize != 6 ||
		c.MinInstances != 1 || c.MaxRequestQueueSize != 100 || c.PoolIdleTime != 300*time.Second ||
		c.Python != "python3" || c.AppType != AppTypeWSGI || c.StartupFile != "passenger_wsgi.py" || c.AppRoot != dir ||
		c.StatThrottleRate != 10*time.Second || c.SpawnMethod != "smart" || c.ConcurrencyModel != "process" ||
		c.ThreadCount != 1 || c.ForceMaxConcurrentRequestsPerProcess != -1 || c.MaxPreloaderIdleTime != 300*time.Second ||
		c.StartTimeout != 90*time.Second || c.RestartDir != filepath.Join(dir, "tmp") {
		t.Fatalf("defaults: %+v", c)
	}
}

func TestParseStartFlagsAnywhere(t *testing.T) {
	dir := wsgiApp(t)
	c, err := ParseStart([]string{"--port", "4000", dir, "-e", "production", "--max-pool-size=3",
		"--pool-idle-time", "1.5", "--start-timeout", "2m", "--log-level", "7", "--request-buffer-memory", "1m"})
	if err != nil {
		t.Fatal(err)
	}
	if c.Port != 4000 || c.Environment != "production" || c.MaxPoolSize != 3 || c.PoolIdleTime != 1500*time.Millisecond ||
		c.StartTimeout != 2*time.Minute || c.LogLevel != slog.LevelDebug || c.RequestBufferMemory != 1<<20 {
		t.Fatalf("parsed: %+v", c)
	}
}

func TestValidationNamesEveryBadKey(t *testing.T) {
	dir := wsgiApp(t)
	_, err := ParseStart([]string{dir, "--max-pool-size", "0", "--min-instances", "-1", "--port", "70000",
		"--max-request-queue-size", "-5", "--shutdown-timeout", "0"})
	if err == nil {
		t.Fatal("want an error")
	}
	for _, key := range []string{"--max-pool-size", "--min-instances", "--port", "--max-request-queue-size", "--shutdown-timeout"} {
		if !strings.Contains(err.Error(), key) {
			t.Errorf("error does not name %s: %v", key, err)
		}
	}
}

func TestDetection(t *testing.T) {
	if _, err := ParseStart([]string{t.TempDir()}); err == nil || !strings.Contains(err.Error(), "passenger_wsgi.py") {
		t.Fatalf("empty dir: %v", err)
	}
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "app.py"), nil, 0o644)
	c, err := ParseStart([]string{dir, "--startup-file", "app.py"})
	if err != nil || c.AppType != AppTypeWSGI {
		t.Fatalf("startup file app.py: %v %q", err, c.AppType)
	}
	if _, err := ParseStart([]string{dir, "--startup-file", "../etc/passwd"}); err == nil {
		t.Fatal("a startup file outside the app was accepted")
	}
	if _, err := ParseStart([]string{dir, "extra"}); err == nil {
		t.Fatal("two positional arguments accepted")
	}
}

func TestParseHelpers(t *testing.T) {
	for in, want := range map[string]int64{"1024": 1024, "4k": 4096, "2m": 2 << 20, "1g": 1 << 30, "3Mi": 3 << 20} {
		if got, err := ParseBytes(in); err != nil || got != want {
			t.Errorf("ParseBytes(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "x", "-1", "1t"} {
		if _, err := ParseBytes(bad); err == nil {
			t.Errorf("ParseBytes(%q) accepted", bad)
		}
	}
	for in, want := range map[string]time.Duration{"300": 300 * time.Second, "0.25": 250 * time.Millisecond, "5m": 5 * time.Minute} {
		if got, err := ParseSeconds(in); err != nil || got != want {
			t.Errorf("ParseSeconds(%q) = %s, %v", in, got, err)
		}
	}
	if _, err := ParseLogLevel("loud"); err == nil {
		t.Error("ParseLogLevel accepted nonsense")
	}
}

func FuzzParseBytes(f *testing.F) {
	for _, s := range []string{"0", "1k", "1m", "1g", "12Mi", "-3", "99999999999999999999", "k"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := ParseBytes(s)
		if err == nil && n < 0 {
			t.Fatalf("ParseBytes(%q) = %d: negative", s, n)
		}
	})
}
