package turbocache

import (
	"net/http"
	"testing"
	"time"
)

// The pieces judge is made of, each a pure function of the response.

func TestNeverStored(t *testing.T) {
	for _, tc := range []struct {
		status int
		h      http.Header
		want   string
	}{
		{200, http.Header{}, okStored},
		{404, http.Header{}, okStored},
		{206, http.Header{}, rejStatus},
		{304, http.Header{}, rejStatus},
		{199, http.Header{}, rejStatus},
		{200, http.Header{"Set-Cookie": {"a=b"}}, rejSetCookie},
		{200, http.Header{"Set-Cookie2": {"a=b"}}, rejSetCookie},
		{200, http.Header{"Www-Authenticate": {"Basic"}}, rejHeader},
		{200, http.Header{"X-Sendfile": {"/f"}}, rejHeader},
		{200, http.Header{"X-Accel-Redirect": {"/f"}}, rejHeader},
		{200, http.Header{"X-Lighttpd-Send-File": {"/f"}}, rejHeader},
		{200, http.Header{"Content-Range": {"bytes 0-1/2"}}, rejHeader},
		{200, http.Header{"Trailer": {"X"}}, rejHeader},
		{206, http.Header{"Set-Cookie": {"a=b"}}, rejStatus}, // status first
	} {
		if got := neverStored(tc.status, tc.h); got != tc.want {
			t.Errorf("neverStored(%d, %v) = %q, want %q", tc.status, tc.h, got, tc.want)
		}
	}
}

func TestForbiddenByDirectives(t *testing.T) {
	for _, tc := range []struct {
		name     string
		cc, tcc  []string
		targeted bool
		pragma   []string
		want     string
	}{
		{"plain", []string{"max-age=60"}, nil, false, nil, okStored},
		{"private", []string{`private="x", max-age=60`}, nil, false, nil, rejPrivate},
		{"no-store", []string{"no-store"}, nil, false, nil, rejNoStore},
		{"no-cache", []string{"max-age=1, no-cache"}, nil, false, nil, rejNoCache},
		{"pragma", []string{"max-age=60"}, nil, false, []string{"No-Cache"}, rejNoCache},
		{"targeted overrides no-store", []string{"no-store"}, []string{"max-age=60"}, true, nil, okStored},
		{"targeted ignores pragma", nil, []string{"max-age=60"}, true, []string{"no-cache"}, okStored},
		{"targeted never overrides private", []string{"private"}, []string{"max-age=60"}, true, nil, rejPrivate},
		{"targeted no-store", []string{"max-age=60"}, []string{"no-store"}, true, nil, rejNoStore},
	} {
		if got := forbiddenByDirectives(tc.cc, tc.tcc, tc.targeted, tc.pragma); got != tc.want {
			t.Errorf("%s: got %q, want %q", tc.name, got, tc.want)
		}
	}
}

func TestPublicDirectives(t *testing.T) {
	for _, tc := range []struct {
		cc                   []string
		public, mustUnderstd bool
	}{
		{nil, false, false},
		{[]string{"max-age=60"}, false, false},
		{[]string{"PUBLIC, max-age=60"}, true, false},
		{[]string{"max-age=60", "must-understand, public"}, true, true},
		{[]string{`x="public"`}, false, false},
	} {
		p, m := publicDirectives(tc.cc)
		if p != tc.public || m != tc.mustUnderstd {
			t.Errorf("publicDirectives(%q) = %v, %v, want %v, %v", tc.cc, p, m, tc.public, tc.mustUnderstd)
		}
	}
}

func TestSelecting(t *testing.T) {
	gzip := reqFacts{ae: aeMask([]string{"gzip"})}
	odd := reqFacts{ae: aeMask([]string{"gzip;q=0.5, x-odd"})}
	for _, tc := range []struct {
		name   string
		h      http.Header
		rq     reqFacts
		vary   int
		varyAE bool
		want   string
	}{
		{"none", http.Header{}, gzip, 0, false, okStored},
		{"accept-encoding", http.Header{"Vary": {"Accept-Encoding"}}, gzip, 0, true, okStored},
		{"other", http.Header{"Vary": {"Accept-Language"}}, gzip, 1, false, okStored},
		{"star", http.Header{"Vary": {"*"}}, gzip, 0, false, rejVary},
		{"compressed without vary", http.Header{"Content-Encoding": {" gzip "}}, gzip, 0, true, okStored},
		{"identity", http.Header{"Content-Encoding": {"identity"}}, gzip, 0, false, okStored},
		{"unknown coding asked", http.Header{"Vary": {"Accept-Encoding"}}, odd, 0, false, rejUnknownAE},
	} {
		vary, varyAE, why := selecting(tc.h, tc.rq)
		if len(vary) != tc.vary || varyAE != tc.varyAE || why != tc.want {
			t.Errorf("%s: got %v, %v, %q, want %d fields, %v, %q", tc.name, vary, varyAE, why, tc.vary, tc.varyAE, tc.want)
		}
	}
}

func TestLifetimeOf(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	date := []string{now.Format(http.TimeFormat)}
	in := func(d time.Duration) []string { return []string{now.Add(d).Format(http.TimeFormat)} }
	for _, tc := range []struct {
		name      string
		fr        freshness
		targeted  bool
		h         http.Header
		life, age time.Duration
		want      string
	}{
		{"max-age", freshness{maxAge: 60, hasMaxAge: true}, false, http.Header{}, time.Minute, 0, okStored},
		{"s-maxage wins", freshness{maxAge: 60, hasMaxAge: true, sMaxAge: 5, hasSMax: true}, false, http.Header{}, 5 * time.Second, 0, okStored},
		{"expires", freshness{}, false, http.Header{"Expires": in(time.Hour), "Date": date}, time.Hour, 0, okStored},
		{"expires ignored when targeted", freshness{}, true, http.Header{"Expires": in(time.Hour), "Date": date}, 0, 0, rejNoFreshness},
		{"nothing", freshness{}, false, http.Header{}, 0, 0, rejNoFreshness},
		{"age", freshness{maxAge: 60, hasMaxAge: true}, false, http.Header{"Age": {"10"}}, time.Minute, 10 * time.Second, okStored},
		{"bad age", freshness{maxAge: 60, hasMaxAge: true}, false, http.Header{"Age": {"x"}}, time.Minute, 0, rejBadAge},
		{"too old", freshness{maxAge: 60, hasMaxAge: true}, false, http.Header{"Age": {"60"}}, time.Minute, time.Minute, rejNotFresh},
		{"zero", freshness{maxAge: 0, hasMaxAge: true}, false, http.Header{}, 0, 0, rejNotFresh},
		{"capped", freshness{maxAge: maxDelta + 5, hasMaxAge: true}, false, http.Header{}, maxDelta * time.Second, 0, okStored},
	} {
		life, age, why := lifetimeOf(tc.fr, tc.targeted, tc.h, now)
		if life != tc.life || age != tc.age || why != tc.want {
			t.Errorf("%s: got %v, %v, %q, want %v, %v, %q", tc.name, life, age, why, tc.life, tc.age, tc.want)
		}
	}
}
