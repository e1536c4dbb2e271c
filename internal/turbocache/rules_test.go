package turbocache

import (
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestStoreRules offers one response to a fresh cache and checks whether it
// is stored, then whether the next plain request is a hit.
func TestStoreRules(t *testing.T) {
	date := t0.Format(http.TimeFormat)
	future := t0.Add(time.Hour).Format(http.TimeFormat)
	past := t0.Add(-time.Hour).Format(http.TimeFormat)
	cases := []struct {
		name    string
		cookie  string   // Options.VaryByCookie
		reqHdr  []string // request header lines
		status  int      // default 200
		resp    []string // response header lines
		body    string
		stored  bool
		reason  string // when not stored (optional)
		hitNext bool   // unset: same as stored
	}{
		{name: "max-age", resp: []string{"Cache-Control: max-age=60"}, stored: true},
		{name: "max-age quoted", resp: []string{`Cache-Control: max-age="60"`}, stored: true},
		{name: "max-age upper case", resp: []string{"Cache-Control: MAX-AGE=60"}, stored: true},
		{name: "no caching header", resp: []string{"Content-Type: text/plain"}, reason: rejNoFreshness},
		{name: "max-age=0", resp: []string{"Cache-Control: max-age=0"}, reason: rejNotFresh},
		{name: "max-age invalid", resp: []string{"Cache-Control: max-age=abc"}, reason: rejBadCacheCtl},
		{name: "max-age negative", resp: []string{"Cache-Control: max-age=-5"}, reason: rejBadCacheCtl},
		{name: "max-age conflicting", resp: []string{"Cache-Control: max-age=60, max-age=5"}, reason: rejBadCacheCtl},
		{name: "s-maxage", resp: []string{"Cache-Control: s-maxage=60"}, stored: true},
		{name: "s-maxage wins over max-age 0", resp: []string{"Cache-Control: max-age=0, s-maxage=60"}, stored: true},
		{name: "s-maxage 0 wins over max-age", resp: []string{"Cache-Control: max-age=60, s-maxage=0"}, reason: rejNotFresh},
		{name: "public alone", resp: []string{"Cache-Control: public"}, reason: rejNoFreshness},
		{name: "public max-age", resp: []string{"Cache-Control: public, max-age=60"}, stored: true},
		{name: "Cache-Control on two lines", resp: []string{"Cache-Control: public", "Cache-Control: max-age=60"}, stored: true},
		{name: "Expires with Date", resp: []string{"Date: " + date, "Expires: " + future}, stored: true},
		{name: "Expires without Date", resp: []string{"Expires: " + future}, stored: true},
		{name: "Expires past", resp: []string{"Date: " + date, "Expires: " + past}, reason: rejNotFresh},
		{name: "Expires equal to Date", resp: []string{"Date: " + date, "Expires: " + date}, reason: rejNotFresh},
		{name: "Expires invalid", resp: []string{"Expires: 0"}, reason: rejNotFresh},
		{name: "max-age wins over Expires", resp: []string{"Cache-Control: max-age=60", "Expires: " + past}, stored: true},
		{name: "Expires relative to the app's Date", resp: []string{
			"Date: " + t0.Add(-2*time.Hour).Format(http.TimeFormat), "Expires: " + past}, stored: true},
		{name: "private", resp: []string{"Cache-Control: private, max-age=60"}, reason: rejPrivate},
		{name: "private qualified", resp: []string{`Cache-Control: max-age=60, private="X-User"`}, reason: rejPrivate},
		{name: "Private upper case", resp: []string{"Cache-Control: Private, max-age=60"}, reason: rejPrivate},
		{name: "no-store", resp: []string{"Cache-Control: no-store, max-age=60"}, reason: rejNoStore},
		{name: "no-cache", resp: []string{"Cache-Control: max-age=60, no-cache"}, reason: rejNoCache},
		{name: "no-cache qualified", resp: []string{`Cache-Control: max-age=60, no-cache="Set-Cookie"`}, reason: rejNoCache},
		{name: "no-cache on a second line", resp: []string{"Cache-Control: max-age=60", "Cache-Control: no-cache"}, reason: rejNoCache},
		{name: "Pragma no-cache", resp: []string{"Cache-Control: max-age=60", "Pragma: no-cache"}, reason: rejNoCache},
		{name: "Set-Cookie", resp: []string{"Cache-Control: public, max-age=60", "Set-Cookie: a=b"}, reason: rejSetCookie},
		{name: "WWW-Authenticate", resp: []string{"Cache-Control: max-age=60", "WWW-Authenticate: Basic"}, reason: rejHeader},
		{name: "X-Accel-Redirect", resp: []string{"Cache-Control: max-age=60", "X-Accel-Redirect: /x"}, reason: rejHeader},
		{name: "X-Sendfile", resp: []string{"Cache-Control: max-age=60", "X-Sendfile: /x"}, reason: rejHeader},
		{name: "Authorization", reqHdr: []string{"Authorization: Bearer x"}, resp: []string{"Cache-Control: max-age=60"}, reason: rejAuthorization},
		{name: "Authorization public", reqHdr: []string{"Authorization: Bearer x"}, resp: []string{"Cache-Control: public, max-age=60"}, stored: true},
		{name: "Authorization s-maxage", reqHdr: []string{"Authorization: Bearer x"}, resp: []string{"Cache-Control: s-maxage=60"}, stored: true},
		{name: "Authorization Expires", reqHdr: []string{"Authorization: Bearer x"}, resp: []string{"Expires: " + future}, reason: rejAuthorization},
		{name: "Vary Accept-Encoding", resp: []string{"Cache-Control: max-age=60", "Vary: Accept-Encoding"}, stored: true},
		{name: "Vary accept-encoding lower case", resp: []string{"Cache-Control: max-age=60", "Vary: accept-encoding"}, stored: true},
		{name: "Vary User-Agent", reqHdr: []string{"User-Agent: a"}, resp: []string{"Cache-Control: max-age=60", "Vary: User-Agent"}, stored: true},
		{name: "Vary Accept-Encoding, Accept-Language", resp: []string{"Cache-Control: max-age=60", "Vary: Accept-Encoding, Accept-Language"}, stored: true},
		{name: "Vary with an invalid name", resp: []string{"Cache-Control: max-age=60", "Vary: Accept-Language, a b"}, reason: rejVary},
		{name: "Vary star in a list", resp: []string{"Cache-Control: max-age=60", "Vary: Accept-Language, *"}, reason: rejVary},
		{name: "Expires with a one-digit hour", resp: []string{"Expires: Thu, 18 Aug 2050 2:01:18 GMT"}, reason: rejNotFresh},
		{name: "Expires with two spaces", resp: []string{"Expires: Thu, 18 Aug 2050  02:01:18 GMT"}, reason: rejNotFresh},
		{name: "Expires lower-case month", resp: []string{"Expires: Thu, 18 aug 2050 02:01:18 GMT"}, reason: rejNotFresh},
		{name: "Expires RFC 850", resp: []string{"Date: " + date, "Expires: " + t0.Add(time.Hour).Format(rfc850Date)}, stored: true},
		{name: "Expires asctime", resp: []string{"Date: " + date, "Expires: " + t0.Add(time.Hour).Format(asctimeDate)}, stored: true},
		{name: "Expires twice", resp: []string{"Expires: " + future, "Expires: " + future}, reason: rejNotFresh},
		{name: "Age list, old first", resp: []string{"Cache-Control: max-age=3600", "Age: 7200, 0"}, reason: rejBadAge},
		{name: "Age list, young first", resp: []string{"Cache-Control: max-age=3600", "Age: 0, 7200"}, reason: rejBadAge},
		{name: "Age on two lines", resp: []string{"Cache-Control: max-age=3600", "Age: 0", "Age: 7200"}, reason: rejBadAge},
		{name: "Age not a number", resp: []string{"Cache-Control: max-age=3600", "Age: abc"}, reason: rejBadAge},
		{name: "Age negative", resp: []string{"Cache-Control: max-age=3600", "Age: -1"}, reason: rejBadAge},
		{name: "Age with a parameter", resp: []string{"Cache-Control: max-age=3600", "Age: 5;a=1"}, reason: rejBadAge},
		{name: "Age young", resp: []string{"Cache-Control: max-age=3600", "Age: 5"}, stored: true},
		{name: "CDN-Cache-Control no-store wins", resp: []string{"Cache-Control: max-age=60", "CDN-Cache-Control: no-store"}, reason: rejNoStore},
		{name: "CDN-Cache-Control private wins", resp: []string{"Cache-Control: max-age=60", "CDN-Cache-Control: private"}, reason: rejPrivate},
		{name: "CDN-Cache-Control no-cache wins", resp: []string{"Cache-Control: max-age=60", "CDN-Cache-Control: no-cache"}, reason: rejNoCache},
		{name: "CDN-Cache-Control max-age over no-store", resp: []string{"Cache-Control: no-store", "CDN-Cache-Control: max-age=60"}, stored: true},
		{name: "CDN-Cache-Control max-age=0 over max-age", resp: []string{"Cache-Control: max-age=60", "CDN-Cache-Control: max-age=0"}, reason: rejNotFresh},
		{name: "CDN-Cache-Control never over private", resp: []string{"Cache-Control: private", "CDN-Cache-Control: max-age=60"}, reason: rejPrivate},
		{name: "CDN-Cache-Control ignores Expires", resp: []string{"Expires: " + future, "CDN-Cache-Control: public"}, reason: rejNoFreshness},
		{name: "Surrogate-Control no-store", resp: []string{"Cache-Control: max-age=60", "Surrogate-Control: no-store"}, reason: rejNoStore},
		{name: "Surrogate-Control for another device", resp: []string{"Surrogate-Control: max-age=60;other"}, reason: rejNoFreshness},
		{name: "CDN-Cache-Control first", resp: []string{"CDN-Cache-Control: max-age=60", "Surrogate-Control: no-store"}, stored: true},
		{name: "Vary *", resp: []string{"Cache-Control: max-age=60", "Vary: *"}, reason: rejVary},
		{name: "Vary Cookie unconfigured", resp: []string{"Cache-Control: max-age=60", "Vary: Cookie"}, reason: rejVary},
		{name: "Vary Cookie configured", cookie: "session", resp: []string{"Cache-Control: max-age=60", "Vary: Cookie"}, stored: true},
		{name: "Vary Cookie and Accept-Encoding configured", cookie: "session", resp: []string{"Cache-Control: max-age=60", "Vary: Cookie", "Vary: Accept-Encoding"}, stored: true},
		{name: "Vary Accept-Encoding, unknown request coding", reqHdr: []string{"Accept-Encoding: xpress"}, resp: []string{"Cache-Control: max-age=60", "Vary: Accept-Encoding"}, reason: rejUnknownAE},
		{name: "Content-Encoding without Vary, unknown request coding", reqHdr: []string{"Accept-Encoding: gzip;level=9"}, resp: []string{"Cache-Control: max-age=60", "Content-Encoding: gzip"}, reason: rejUnknownAE},
		{name: "Age below max-age", resp: []string{"Cache-Control: max-age=60", "Age: 59"}, stored: true},
		{name: "Age at max-age", resp: []string{"Cache-Control: max-age=60", "Age: 60"}, reason: rejNotFresh},
		{name: "request no-store", reqHdr: []string{"Cache-Control: no-store"}, resp: []string{"Cache-Control: max-age=60"}, reason: "no fill"},
		{name: "Content-Length differs", resp: []string{"Cache-Control: max-age=60", "Content-Length: 99"}, body: "short", reason: rejLength},
		{name: "Content-Length right", resp: []string{"Cache-Control: max-age=60", "Content-Length: 5"}, body: "right", stored: true},
		{name: "too big", resp: []string{"Cache-Control: max-age=60"}, body: strings.Repeat("x", 2000), reason: rejTooBig},
		{name: "Trailer", resp: []string{"Cache-Control: max-age=60", "Trailer: X-Checksum"}, reason: rejHeader},
		{name: "must-understand, status understood", resp: []string{"Cache-Control: max-age=60, must-understand"}, stored: true},
		{name: "must-understand, status unknown", status: 599, resp: []string{"Cache-Control: max-age=60, must-understand"}, reason: rejStatus},
		{name: "must-understand, status 201", status: 201, resp: []string{"Cache-Control: max-age=60, must-understand"}, reason: rejStatus},
		{name: "status 206", status: 206, resp: []string{"Cache-Control: max-age=60", "Content-Range: bytes 0-1/10"}, reason: rejStatus},
	}
	// Any final status with explicit freshness (RFC 9111 §3), unknown ones
	// included, but 206 and 304.
	for _, code := range []int{200, 201, 202, 203, 204, 299, 300, 301, 302, 303, 307, 308, 400, 403, 404, 405, 410, 414, 499, 500, 501, 502, 503, 504, 599} {
		cases = append(cases, struct {
			name    string
			cookie  string
			reqHdr  []string
			status  int
			resp    []string
			body    string
			stored  bool
			reason  string
			hitNext bool
		}{name: "status " + http.StatusText(code), status: code, resp: []string{"Cache-Control: max-age=60"}, stored: true})
	}
	for _, code := range []int{304} {
		cases = append(cases, struct {
			name    string
			cookie  string
			reqHdr  []string
			status  int
			resp    []string
			body    string
			stored  bool
			reason  string
			hitNext bool
		}{name: "status " + http.StatusText(code), status: code, resp: []string{"Cache-Control: max-age=60"}, reason: rejStatus})
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, _ := newCache(Options{VaryByCookie: tc.cookie, MaxEntrySize: 1500})
			status := tc.status
			if status == 0 {
				status = 200
			}
			body := tc.body
			if body == "" && status != 204 {
				body = "hello"
			}
			app := fixed(response{status: status, header: hdr(tc.resp...), body: body})
			res := do(c, req("GET /r", tc.reqHdr...), app)
			mustMiss(t, res)
			stored := c.Stats().Stores == 1
			if stored != tc.stored {
				t.Fatalf("stored = %v (reason %q), want %v", stored, res.reason, tc.stored)
			}
			if !tc.stored && tc.reason != "" {
				got := res.reason
				if !res.fill {
					got = "no fill"
				}
				if got != tc.reason {
					t.Errorf("reason = %q, want %q", got, tc.reason)
				}
			}
			next := do(c, req("GET /r", tc.reqHdr...), nil)
			if next.served != tc.stored {
				t.Fatalf("next request served = %v, want %v", next.served, tc.stored)
			}
			if next.served && (next.status() != status || next.body() != map[bool]string{true: "", false: body}[status == 204]) {
				t.Errorf("hit = %d %q, want %d %q", next.status(), next.body(), status, body)
			}
		})
	}
}

// TestRequestRules: which requests are served from a stored entry and which
// get a Fill on a miss.
func TestRequestRules(t *testing.T) {
	cases := []struct {
		name       string
		method     string
		lines      []string
		body       bool
		served     bool // with an entry stored
		fillOnMiss bool // with nothing stored
	}{
		{name: "GET", served: true, fillOnMiss: true},
		{name: "HEAD", method: "HEAD", served: true, fillOnMiss: false},
		{name: "Authorization", lines: []string{"Authorization: Basic eDp5"}, served: true, fillOnMiss: true},
		{name: "request no-store", lines: []string{"Cache-Control: no-store"}, served: true, fillOnMiss: false},
		{name: "request no-cache", lines: []string{"Cache-Control: no-cache"}, served: false, fillOnMiss: true},
		{name: "request max-age=0", lines: []string{"Cache-Control: max-age=0"}, served: false, fillOnMiss: true},
		{name: "Pragma no-cache", lines: []string{"Pragma: no-cache"}, served: false, fillOnMiss: true},
		{name: "request max-age=600", lines: []string{"Cache-Control: max-age=600"}, served: true, fillOnMiss: true},
		{name: "Range", lines: []string{"Range: bytes=0-1"}, served: false, fillOnMiss: false},
		{name: "If-Range", lines: []string{"If-Range: \"x\""}, served: false, fillOnMiss: false},
		{name: "If-Match", lines: []string{"If-Match: \"x\""}, served: false, fillOnMiss: false},
		{name: "Upgrade", lines: []string{"Connection: Upgrade", "Upgrade: websocket"}, served: false, fillOnMiss: false},
		{name: "method override", lines: []string{"X-HTTP-Method-Override: DELETE"}, served: false, fillOnMiss: false},
		{name: "GET with a body", body: true, served: false, fillOnMiss: false},
		{name: "underscore header", lines: []string{"X_Forwarded_Host: evil.example"}, served: true, fillOnMiss: false},
		{name: "OPTIONS", method: "OPTIONS", served: false, fillOnMiss: false},
		{name: "TRACE", method: "TRACE", served: false, fillOnMiss: false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			method := tc.method
			if method == "" {
				method = "GET"
			}
			mk := func() *http.Request {
				r := req(method+" /r", tc.lines...)
				if tc.body {
					r.Body, r.ContentLength = http.NoBody, 3
				}
				return r
			}
			app := fixed(ok("v", "Cache-Control: max-age=60"))

			c, _ := newCache(Options{})
			res := do(c, mk(), nil)
			if res.served || res.fill != tc.fillOnMiss {
				t.Errorf("miss: served=%v fill=%v, want false %v", res.served, res.fill, tc.fillOnMiss)
			}

			c, _ = newCache(Options{})
			do(c, req("GET /r"), app)
			if c.Stats().Entries != 1 {
				t.Fatal("setup: not stored")
			}
			res = do(c, mk(), nil)
			if res.served != tc.served {
				t.Errorf("with an entry: served=%v, want %v", res.served, tc.served)
			}
			if c.Stats().Entries != 1 {
				t.Errorf("entries = %d after a %s, want 1", c.Stats().Entries, method)
			}
		})
	}
}

// TestBypassRefreshes: no-cache, max-age=0 and Pragma: no-cache go to the app
// and their response replaces the entry.
func TestBypassRefreshes(t *testing.T) {
	for _, line := range []string{"Cache-Control: no-cache", "Cache-Control: max-age=0", "Pragma: no-cache", "Cache-Control: max-age=5"} {
		t.Run(line, func(t *testing.T) {
			c, clk := newCache(Options{})
			a := &counter{lines: []string{"Cache-Control: max-age=60"}}
			do(c, req("GET /p"), a.app)
			mustHit(t, do(c, req("GET /p"), a.app), "n1")
			clk.Advance(10 * time.Second) // older than max-age=5
			res := do(c, req("GET /p", line), a.app)
			mustMiss(t, res)
			if res.body() != "n2" {
				t.Fatalf("bypass body = %q", res.body())
			}
			res = do(c, req("GET /p"), a.app)
			mustHit(t, res, "n2")
			if res.get("Age") != "0" {
				t.Errorf("Age after refresh = %q, want 0", res.get("Age"))
			}
			if c.Stats().Entries != 1 {
				t.Errorf("entries = %d, want 1", c.Stats().Entries)
			}
		})
	}
}

func TestRequestMinFresh(t *testing.T) {
	c, clk := newCache(Options{})
	a := &counter{lines: []string{"Cache-Control: max-age=60"}}
	do(c, req("GET /p"), a.app)
	clk.Advance(50 * time.Second)
	mustHit(t, do(c, req("GET /p", "Cache-Control: min-fresh=5"), a.app), "n1")
	mustMiss(t, do(c, req("GET /p", "Cache-Control: min-fresh=20"), a.app))
	mustHit(t, do(c, req("GET /p"), a.app), "n2")
}

func TestOnlyIfCached(t *testing.T) {
	c, _ := newCache(Options{})
	res := do(c, req("GET /o", "Cache-Control: only-if-cached"), nil)
	if !res.served || res.status() != http.StatusGatewayTimeout {
		t.Fatalf("miss with only-if-cached: served=%v status=%d, want a 504", res.served, res.status())
	}
	do(c, req("GET /o"), fixed(ok("v", "Cache-Control: max-age=60")))
	mustHit(t, do(c, req("GET /o", "Cache-Control: only-if-cached"), nil), "v")
}

func TestDirIter(t *testing.T) {
	cases := map[string]string{
		`max-age=60, public`:                 "max-age=60|public=",
		` , ,no-cache="a, b" ,max-age="5"`:   `no-cache=a, b|max-age=5`,
		`private="x\"y", s-maxage = 3`:       `private=x\"y|s-maxage=3`,
		`garbage here, max-age=1 junk, x`:    "garbage=|max-age=1|x=",
		`=5, a`:                              "a=",
		`no-cache="unterminated, max-age=60`: `no-cache=unterminated, max-age=60`,
	}
	for in, want := range cases {
		var got []string
		for it := (dirIter{vs: []string{in}}); it.next(); {
			got = append(got, it.name+"="+it.value)
		}
		if g := strings.Join(got, "|"); g != want {
			t.Errorf("%q: got %q, want %q", in, g, want)
		}
	}
}

func TestAEMask(t *testing.T) {
	same := [][2]string{
		{"gzip, deflate, br", "br;q=1.0, deflate, gzip"},
		{"gzip", "x-gzip"},
		{"gzip, br;q=0", "gzip"},
		{"GZIP", "gzip;q=0.5"},
		{"gzip, br;q=0.000", "gzip"},
		{"gzip;q=1.000", "gzip"},
	}
	for _, p := range same {
		if a, b := aeMask([]string{p[0]}), aeMask([]string{p[1]}); a != b {
			t.Errorf("%q and %q differ: %b %b", p[0], p[1], a, b)
		}
	}
	differ := [][2]string{
		{"gzip", "br"},
		{"gzip", "gzip, br"},
		{"identity", ""},
	}
	for _, p := range differ {
		if a, b := aeMask([]string{p[0]}), aeMask([]string{p[1]}); a == b {
			t.Errorf("%q and %q share %b", p[0], p[1], a)
		}
	}
	if aeMask(nil) == aeMask([]string{""}) {
		t.Error("absent and empty Accept-Encoding share a mask")
	}
	// What the app may read otherwise is unknown: a weight that is not one
	// RFC 9110 qvalue (httpfield.Weight).
	for _, s := range []string{"xpress", "gzip;q=abc", "gzip;level=1", "gzip;q=1.5", "gzip;q=0.0000", "gzip;q=0;q=1"} {
		if aeMask([]string{s})&aeUnknown == 0 {
			t.Errorf("%q: not flagged unknown", s)
		}
	}
}

func TestFindCookie(t *testing.T) {
	cases := []struct {
		hdr          []string
		value        string
		found, valid bool
	}{
		{[]string{"a=1; session=abc; b=2"}, "abc", true, true},
		{[]string{"a=1", "session=abc"}, "abc", true, true},
		{[]string{"xsession=abc; sessionx=d"}, "", false, true},
		{[]string{"session="}, "", true, true},
		{[]string{"session=a; session=a"}, "a", true, true},
		{[]string{"session=a; session=b"}, "", false, false},
		{nil, "", false, true},
	}
	for _, tc := range cases {
		v, found, valid := findCookie(tc.hdr, "session")
		if v != tc.value || found != tc.found || valid != tc.valid {
			t.Errorf("%q: got %q %v %v", tc.hdr, v, found, valid)
		}
	}
}

func TestExtraEncoding(t *testing.T) {
	var a, b [len(keyedHeaders)][]string
	a[1] = []string{"x.example"}
	a[4] = []string{"on", ""}
	enc := encodeExtra(&a)
	if !extraEqual(enc, &a) {
		t.Fatal("round trip failed")
	}
	b[1] = []string{"x.example"}
	if extraEqual(enc, &b) || extraEqual(encodeExtra(&b), &a) {
		t.Fatal("different keyed headers compare equal")
	}
	b[4] = []string{"o", "n"}
	if extraEqual(enc, &b) {
		t.Fatal("different splits of the same bytes compare equal")
	}
}

// BenchmarkCacheControl parses a response's and a request's Cache-Control
// and a request's Accept-Encoding, as a store and a hit do.
func BenchmarkCacheControl(b *testing.B) {
	h := http.Header{
		"Cache-Control": {`public, max-age=60, s-maxage=120, stale-while-revalidate=30`},
		"Vary":          {"Accept-Encoding, Accept-Language"},
	}
	now := time.Now()
	cc := []string{"max-age=10, min-fresh=5"}
	ae := []string{"gzip, deflate, br;q=0.9, zstd;q=0.8"}
	for b.Loop() {
		judge(200, h, reqFacts{}, now)
		parseReqCacheControl(cc, nil)
		aeMask(ae)
	}
}
