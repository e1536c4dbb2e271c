package server

import (
	"errors"
	"io"
	"net/http"
	"testing"

	"github.com/ferry-server/ferry/internal/pool"
	"github.com/ferry-server/ferry/internal/proxy"
)

func TestCheckoutOptions(t *testing.T) {
	plain := &App{}
	sticky := &App{Sticky: &Sticky{CookieName: "route"}, UnlimitedPaths: []string{"/cable"}}
	for _, tc := range []struct {
		name    string
		app     *App
		path    string
		cookie  string
		attempt int
		prev    int
		want    pool.CheckoutOptions
	}{
		{"first attempt", plain, "/", "", 0, 0, pool.CheckoutOptions{}},
		{"a pid from an earlier request is not avoided on the first attempt", plain, "/", "", 0, 41, pool.CheckoutOptions{}},
		{"retry avoids the failed process", plain, "/", "", 1, 41, pool.CheckoutOptions{Avoid: 41}},
		{"unlimited path", sticky, "/cable", "", 0, 0, pool.CheckoutOptions{Unlimited: true}},
		{"unlimited path below", sticky, "/cable/x", "", 0, 0, pool.CheckoutOptions{Unlimited: true}},
		{"not an unlimited path", sticky, "/cables", "", 0, 0, pool.CheckoutOptions{}},
		{"sticky cookie", sticky, "/", "abc", 0, 0, pool.CheckoutOptions{Route: "abc"}},
		{"sticky cookie on a retry", sticky, "/cable", "abc", 1, 7, pool.CheckoutOptions{Route: "abc", Unlimited: true, Avoid: 7}},
		{"cookie of an app without sticky sessions", plain, "/", "abc", 0, 0, pool.CheckoutOptions{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, _ := http.NewRequest(http.MethodGet, "http://example.com"+tc.path, nil)
			if tc.cookie != "" {
				r.AddCookie(&http.Cookie{Name: "route", Value: tc.cookie})
			}
			if got := checkoutOptions(tc.app, r, tc.attempt, tc.prev); got != tc.want {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestAfterFailedRoundTrip(t *testing.T) {
	retryable := &proxy.RoundTripError{Err: io.EOF, Retryable: true}
	final := &proxy.RoundTripError{Err: io.ErrUnexpectedEOF}
	for _, tc := range []struct {
		name      string
		err       error
		timedOut  bool
		attempt   int
		want      error
		wantRetry bool
	}{
		{"retryable, first attempt", retryable, false, 0, retryable, true},
		{"retryable, second attempt", retryable, false, 1, retryable, false},
		{"not retryable", final, false, 0, final, false},
		{"not a round-trip error", pool.ErrQueueFull, false, 0, pool.ErrQueueFull, false},
		{"timed out beats retryable", retryable, true, 0, ErrRequestTimeout, false},
		{"timed out", final, true, 1, ErrRequestTimeout, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, retry := afterFailedRoundTrip(tc.err, tc.timedOut, tc.attempt)
			if got != tc.want || retry != tc.wantRetry {
				t.Errorf("got %v, retry %v; want %v, retry %v", got, retry, tc.want, tc.wantRetry)
			}
		})
	}
}

func TestAfterBrokenResponse(t *testing.T) {
	broke := errors.New("connection reset")
	for _, tc := range []struct {
		name            string
		wrote, timedOut bool
		wantStatus      int // of the page; 0: aborted
	}{
		{"nothing written: the app's failure", false, false, http.StatusBadGateway},
		{"nothing written, timed out", false, true, http.StatusGatewayTimeout},
		{"written: abort", true, false, 0},
		{"written, timed out: abort", true, true, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			page, abort := afterBrokenResponse(broke, tc.wrote, tc.timedOut)
			if abort != (tc.wantStatus == 0) || (page == nil) != abort {
				t.Fatalf("page %v, abort %v", page, abort)
			}
			if abort {
				return
			}
			if got := classify(page).Status; got != tc.wantStatus {
				t.Errorf("page %v answers %d, want %d", page, got, tc.wantStatus)
			}
			if !tc.timedOut && !errors.Is(page, broke) {
				t.Errorf("page %v does not carry the app's error", page)
			}
		})
	}
}
