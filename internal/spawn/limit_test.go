package spawn

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"
)

func TestLimitKeepsReserves(t *testing.T) {
	l := NewLimit(3)
	a := New(Config{App: "a", Limit: l, Reserve: 1}, discard)
	b := New(Config{App: "b", Limit: l, Reserve: 1}, discard)
	take := func(s *Spawner) (func(), error) { return l.acquire(t.Context(), s, 10*time.Millisecond) }

	ra1, err := take(a)
	if err != nil {
		t.Fatal(err)
	}
	ra2, err := take(a) // past its reserve, but one slot is still free
	if err != nil {
		t.Fatal(err)
	}
	// The last slot is b's reserve: a may not take it.
	_, err = take(a)
	var se *Error
	if !errors.As(err, &se) || !strings.Contains(se.Summary, "--max-processes-total (3)") {
		t.Fatalf("a third process for a: %v", err)
	}
	rb1, err := take(b)
	if err != nil {
		t.Fatalf("b's reserved process: %v", err)
	}
	if _, err := take(b); err == nil {
		t.Fatal("a fourth process under a cap of 3")
	}

	// A waiting spawn goes ahead as soon as a process exits.
	got := make(chan error, 1)
	go func() {
		_, err := l.acquire(t.Context(), b, 10*time.Second)
		got <- err
	}()
	time.Sleep(20 * time.Millisecond)
	ra2()
	ra2() // releasing twice counts once
	if err := <-got; err != nil {
		t.Fatalf("waiting spawn: %v", err)
	}
	if _, err := take(a); err == nil {
		t.Fatal("a slot was counted free twice")
	}

	// An app that leaves frees its reserve for the others.
	ra1()
	a.Close()
	rb1()
	for range 2 {
		if _, err := take(b); err != nil {
			t.Fatalf("b after a left: %v", err)
		}
	}
}

func TestLimitCancelled(t *testing.T) {
	l := NewLimit(1)
	a := New(Config{App: "a", Limit: l}, discard)
	if _, err := l.acquire(t.Context(), a, time.Second); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := l.acquire(ctx, a, 10*time.Second); err == nil || !strings.Contains(err.Error(), "cancelled") {
		t.Fatalf("cancelled wait: %v", err)
	}
}

var discard = slog.New(slog.NewTextHandler(io.Discard, nil))
