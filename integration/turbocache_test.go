package integration

import (
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
)

// counted asks the echo app's /counted endpoint, whose body says how often
// the app itself answered that URL: a cached answer repeats the count.
func counted(f *ferry, q url.Values, h http.Header) (*http.Response, string) {
	f.t.Helper()
	resp := f.request("GET", "/counted?"+q.Encode(), nil, h)
	defer resp.Body.Close()
	b := new(strings.Builder)
	if _, err := ioCopy(b, resp); err != nil {
		f.t.Fatal(err)
	}
	return resp, b.String()
}

func TestTurbocache(t *testing.T) {
	f := startFerry(t, fixture(t, "wsgi/echo"), "--max-pool-size", "1")
	twice := func(t *testing.T, q url.Values, h http.Header) (first, second string, resp *http.Response) {
		t.Helper()
		_, first = counted(f, q, h)
		resp, second = counted(f, q, h)
		return first, second, resp
	}

	t.Run("max-age is stored and served with Age", func(t *testing.T) {
		first, second, resp := twice(t, url.Values{"cc": {"public, max-age=60"}, "t": {"1"}}, nil)
		if !strings.HasPrefix(first, "served 1 times") || first != second {
			t.Fatalf("bodies %q then %q: want the second from the cache", first, second)
		}
		if resp.Header.Get("Age") == "" {
			t.Error("a cache hit has no Age header")
		}
	})
	for _, tc := range []struct {
		name string
		q    url.Values
		h    http.Header
	}{
		{"no caching header", url.Values{"t": {"2"}}, nil},
		{"private", url.Values{"cc": {"private, max-age=60"}}, nil},
		{"no-store", url.Values{"cc": {"no-store, max-age=60"}}, nil},
		{"Set-Cookie", url.Values{"cc": {"max-age=60"}, "cookie": {"1"}}, nil},
		{"Vary: *", url.Values{"cc": {"max-age=60"}, "vary": {"*"}}, nil},
		{"Authorization", url.Values{"cc": {"max-age=60"}, "t": {"3"}}, http.Header{"Authorization": {"Bearer x"}}},
		{"client no-cache", url.Values{"cc": {"max-age=60"}, "t": {"4"}}, http.Header{"Cache-Control": {"no-cache"}}},
	} {
		t.Run("never stored: "+tc.name, func(t *testing.T) {
			first, second, _ := twice(t, tc.q, tc.h)
			if first == second {
				t.Fatalf("served from the cache: %q twice", first)
			}
		})
	}

	t.Run("HEAD answered from a stored GET", func(t *testing.T) {
		q := url.Values{"cc": {"max-age=60"}, "t": {"5"}}
		counted(f, q, nil)
		resp := f.request("HEAD", "/counted?"+q.Encode(), nil, nil)
		resp.Body.Close()
		if resp.StatusCode != 200 || resp.Header.Get("Age") == "" {
			t.Fatalf("HEAD = %d, Age %q", resp.StatusCode, resp.Header.Get("Age"))
		}
	})

	t.Run("conditional request gets 304 from the entry", func(t *testing.T) {
		q := url.Values{"cc": {"max-age=60"}, "etag": {"v1"}, "t": {"6"}}
		counted(f, q, nil)
		resp, _ := counted(f, q, http.Header{"If-None-Match": {`"v1"`}})
		if resp.StatusCode != 304 {
			t.Fatalf("If-None-Match = %d, want 304", resp.StatusCode)
		}
		_, body := counted(f, q, nil)
		if !strings.HasPrefix(body, "served 1 times") {
			t.Fatalf("the 304 went to the app: %q", body)
		}
	})

	t.Run("POST invalidates", func(t *testing.T) {
		q := url.Values{"cc": {"max-age=60"}, "t": {"7"}}
		counted(f, q, nil)
		f.do("POST", "/counted?"+q.Encode(), strings.NewReader("x"), nil)
		_, body := counted(f, q, nil)
		if !strings.HasPrefix(body, "served 3 times") {
			t.Fatalf("after a POST the GET answered %q, want a fresh answer (the 3rd by the app)", body)
		}
	})

	t.Run("concurrent misses are coalesced", func(t *testing.T) {
		q := url.Values{"cc": {"max-age=60"}, "delay": {"1"}, "t": {"8"}}
		var wg sync.WaitGroup
		bodies := make(chan string, 8)
		for range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, body := counted(f, q, nil)
				bodies <- body
			}()
		}
		wg.Wait()
		close(bodies)
		for b := range bodies {
			if !strings.HasPrefix(b, "served 1 times") {
				t.Errorf("a concurrent miss reached the app: %q", b)
			}
		}
	})

	t.Run("status shows the cache", func(t *testing.T) {
		raw := f.poolRaw()
		if !strings.Contains(raw, `"turbocache"`) || !strings.Contains(raw, `"hits"`) {
			t.Fatalf("pool status without cache stats:\n%s", raw)
		}
	})
}

func TestTurbocacheVaryByCookie(t *testing.T) {
	f := startFerry(t, fixture(t, "wsgi/echo"), "--max-pool-size", "1", "--vary-turbocache-by-cookie", "user")
	q := url.Values{"cc": {"max-age=60"}, "vary": {"Cookie"}}
	_, anon1 := counted(f, q, nil)
	_, anon2 := counted(f, q, http.Header{"Cookie": {"other=1"}})
	_, alice1 := counted(f, q, http.Header{"Cookie": {"user=alice"}})
	_, alice2 := counted(f, q, http.Header{"Cookie": {"user=alice; other=2"}})
	_, bob := counted(f, q, http.Header{"Cookie": {"user=bob"}})
	if anon1 != anon2 {
		t.Errorf("anonymous users do not share: %q vs %q", anon1, anon2)
	}
	if alice1 != alice2 || !strings.Contains(alice1, "user=alice") {
		t.Errorf("alice's entry: %q vs %q", alice1, alice2)
	}
	if strings.Contains(bob, "alice") || bob == alice1 {
		t.Errorf("bob got alice's page: %q", bob)
	}
}

func TestTurbocacheDisabled(t *testing.T) {
	f := startFerry(t, fixture(t, "wsgi/echo"), "--max-pool-size", "1", "--disable-turbocaching")
	q := url.Values{"cc": {"public, max-age=60"}}
	_, first := counted(f, q, nil)
	_, second := counted(f, q, nil)
	if first == second {
		t.Fatalf("--disable-turbocaching still cached: %q", first)
	}
}

// TestTurbocacheStale drives what the cache does with stale entries through
// the real binary and a real app: revalidation with one conditional request
// and a 304, stale-if-error, stale-while-revalidate, must-revalidate, and
// Vary on an arbitrary header.
func TestTurbocacheStale(t *testing.T) {
	f := startFerry(t, fixture(t, "wsgi/echo"), "--max-pool-size", "1")
	stale := func() { time.Sleep(1100 * time.Millisecond) } // past max-age=1

	t.Run("a stale entry with an ETag is revalidated and refreshed by a 304", func(t *testing.T) {
		q := url.Values{"cc": {"max-age=1"}, "etag": {"v1"}, "t": {"reval"}}
		_, first := counted(f, q, nil)
		stale()
		resp, second := counted(f, q, nil)
		if resp.StatusCode != 200 || second != first {
			t.Fatalf("after revalidation: %d %q, want 200 with the stored body %q", resp.StatusCode, second, first)
		}
		if got := resp.Header.Get("X-Count"); got != "2" {
			t.Fatalf("X-Count = %q: want the app's 304 (its 2nd answer) to have updated the stored header", got)
		}
		resp, third := counted(f, q, nil)
		if third != first || resp.Header.Get("X-Count") != "2" {
			t.Fatalf("the refreshed entry is not fresh: %q, X-Count %q", third, resp.Header.Get("X-Count"))
		}
	})

	t.Run("stale-if-error serves the stale entry when the app answers 503", func(t *testing.T) {
		q := url.Values{"cc": {"max-age=1, stale-if-error=60"}, "fail_after": {"1"}, "t": {"sie"}}
		_, first := counted(f, q, nil)
		stale()
		resp, second := counted(f, q, nil)
		if resp.StatusCode != 200 || second != first {
			t.Fatalf("app failing: %d %q, want the stale %q", resp.StatusCode, second, first)
		}
	})

	t.Run("must-revalidate is never served stale", func(t *testing.T) {
		q := url.Values{"cc": {"max-age=1, must-revalidate, stale-if-error=60"}, "fail_after": {"1"}, "t": {"mr"}}
		counted(f, q, nil)
		stale()
		resp, body := counted(f, q, nil)
		if resp.StatusCode != 503 {
			t.Fatalf("must-revalidate with the app failing: %d %q, want the app's 503", resp.StatusCode, body)
		}
	})

	t.Run("stale-while-revalidate serves stale and refreshes in the background", func(t *testing.T) {
		q := url.Values{"cc": {"max-age=1, stale-while-revalidate=60"}, "t": {"swr"}}
		_, first := counted(f, q, nil)
		stale()
		resp, second := counted(f, q, nil)
		if second != first || resp.Header.Get("Age") == "" || resp.Header.Get("Age") == "0" {
			t.Fatalf("within stale-while-revalidate: %q (Age %q), want the stale %q at once", second, resp.Header.Get("Age"), first)
		}
		eventually(t, "the background revalidation stores the new response", func() bool {
			_, body := counted(f, q, nil)
			return strings.HasPrefix(body, "served 2 times")
		})
	})

	t.Run("Vary on a request header keeps one variant per value", func(t *testing.T) {
		q := url.Values{"cc": {"max-age=60"}, "vary": {"X-Variant"}, "t": {"vary"}}
		_, a1 := counted(f, q, http.Header{"X-Variant": {"a"}})
		_, a2 := counted(f, q, http.Header{"X-Variant": {"a"}})
		_, b1 := counted(f, q, http.Header{"X-Variant": {"b"}})
		_, b2 := counted(f, q, http.Header{"X-Variant": {"b"}})
		_, none := counted(f, q, nil)
		if a1 != a2 || b1 != b2 {
			t.Fatalf("variants not served from the cache: %q %q, %q %q", a1, a2, b1, b2)
		}
		if a1 == b1 || none == a1 || none == b1 {
			t.Fatalf("variants mixed up: a %q, b %q, none %q", a1, b1, none)
		}
	})
}
