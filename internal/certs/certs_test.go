package certs

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
)

func TestState(t *testing.T) {
	for _, tc := range []struct {
		have, expired bool
		st            nameState
		want          string
	}{
		{false, false, nameState{}, StateMissing},
		{false, false, nameState{obtaining: true}, StateObtaining},
		{true, false, nameState{obtaining: true, renewal: true}, StateRenewing},
		{true, true, nameState{obtaining: true, renewal: true}, StateObtaining},
		{true, false, nameState{}, StateValid},
		{true, false, nameState{failures: 2}, StateFailing},
		{false, false, nameState{failures: 1}, StateFailing},
		{true, true, nameState{failures: 3}, StateExpired},
		{true, true, nameState{}, StateExpired},
	} {
		if got := state(tc.have, tc.expired, tc.st); got != tc.want {
			t.Errorf("state(have %v, expired %v, %+v) = %s, want %s", tc.have, tc.expired, tc.st, got, tc.want)
		}
	}
}

func TestAsk(t *testing.T) {
	var got []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = append(got, r.URL.RawQuery)
		switch r.URL.Query().Get("domain") {
		case "yes.example":
		case "slow.example":
			<-r.Context().Done()
		case "redirect.example":
			http.Redirect(w, r, "/elsewhere?domain=yes.example", http.StatusFound)
		default:
			http.Error(w, "no", http.StatusNotFound)
		}
	}))
	defer srv.Close()
	ctx := context.Background()
	if err := Ask(ctx, srv.Client(), srv.URL+"/ask?token=abc", "yes.example"); err != nil {
		t.Errorf("yes.example: %v", err)
	}
	if got[0] != "domain=yes.example&token=abc" {
		t.Errorf("query %q: want the URL's own query kept, domain added", got[0])
	}
	if err := Ask(ctx, srv.Client(), srv.URL+"/ask", "no.example"); err == nil || !strings.Contains(err.Error(), "404") {
		t.Errorf("no.example: %v, want refused with the status", err)
	}
	short, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	if err := Ask(short, srv.Client(), srv.URL+"/ask", "slow.example"); err == nil {
		t.Errorf("an ask URL that does not answer allowed the name")
	}
	if err := Ask(ctx, srv.Client(), "http://127.0.0.1:1/ask", "yes.example"); err == nil {
		t.Errorf("an unreachable ask URL allowed the name")
	}
}

func TestStateDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a", "b")
	if err := prepareStateDir(dir); err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(dir); fi.Mode().Perm() != 0o700 {
		t.Errorf("created %#o, want 0700", fi.Mode().Perm())
	}
	open := t.TempDir()
	os.Chmod(open, 0o777)
	if err := prepareStateDir(open); err == nil || !strings.Contains(err.Error(), "others may write") {
		t.Errorf("a world-writable state directory: %v", err)
	}
}

// certmagic's zap lines reach Ferry's log with their fields; routine info
// is debug, the lines an operator wants stay info.
func TestZapToSlog(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelInfo}))
	z := zapToSlog(log).With(zap.String("identifier", "a.example"))
	z.Info("renewing certificate", zap.String("issuer", "ca"))
	z.Info("certificate obtained successfully")
	z.Info("lock acquired")
	z.Error("could not get certificate from issuer", zap.Error(errors.New("boom")))
	z.Debug("noise")
	out := buf.String()
	for _, want := range []string{
		`level=INFO msg="renewing certificate" component=acme identifier=a.example issuer=ca`,
		`level=ERROR msg="could not get certificate from issuer" component=acme identifier=a.example error=boom`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "successfully") || strings.Contains(out, "lock acquired") || strings.Contains(out, "noise") {
		t.Errorf("routine lines at info level:\n%s", out)
	}
}
