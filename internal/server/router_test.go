package server

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
)

func routeApps() []*App {
	return []*App{
		{Name: "blog", ServerNames: []string{"blog.example.com"}},
		{Name: "shop", ServerNames: []string{"example.com"}, BaseURI: "/shop"},
		{Name: "shop-api", ServerNames: []string{"example.com"}, BaseURI: "/shop/api"},
		{Name: "wild", ServerNames: []string{"*.example.com"}},
		{Name: "deep-wild", ServerNames: []string{"*.eu.example.com"}},
		{Name: "site", BaseURI: ""},
		{Name: "docs", BaseURI: "/docs"},
	}
}

func routeReq(host, path string) *http.Request {
	return &http.Request{Host: host, URL: &url.URL{Path: path}}
}

func TestRoute(t *testing.T) {
	rt := newRouter(routeApps())
	for _, tc := range []struct{ host, path, want string }{
		{"blog.example.com", "/x", "blog"},
		{"BLOG.example.com.:8080", "/x", "blog"},
		{"example.com", "/shop", "shop"},
		{"example.com", "/shop/cart", "shop"},
		{"example.com", "/shop/api/v1", "shop-api"},
		{"example.com", "/shopping", "site"},
		{"a.example.com", "/", "wild"},
		{"a.eu.example.com", "/", "deep-wild"},
		{"other.org", "/docs/x", "docs"},
		{"other.org", "/docsx", "site"},
		{"[::1]:3000", "/", "site"},
	} {
		got := ""
		if a := rt.route(routeReq(tc.host, tc.path)); a != nil {
			got = a.Name
		}
		if got != tc.want {
			t.Errorf("route(%q, %q) = %q, want %q", tc.host, tc.path, got, tc.want)
		}
	}
}

// FuzzRoute: whatever the Host and path, routing picks an app the path is
// under (at a / boundary), with the longest base URI among the apps of the
// tier (exact host, wildcard, any host) that matched.
func FuzzRoute(f *testing.F) {
	for _, s := range [][2]string{{"example.com", "/shop/api"}, {"x.eu.example.com:1", "/"}, {"", ""}, {"[::1", "/docs"}, {"EXAMPLE.COM.", "/shop/"}} {
		f.Add(s[0], s[1])
	}
	apps := routeApps()
	rt := newRouter(apps)
	f.Fuzz(func(t *testing.T, host, path string) {
		a := rt.route(routeReq(host, path))
		if a == nil {
			return
		}
		if !underBase(path, a.BaseURI) {
			t.Fatalf("route(%q, %q) = %s, whose base %q the path is not under", host, path, a.Name, a.BaseURI)
		}
		for _, o := range apps {
			if o != a && underBase(path, o.BaseURI) && len(o.BaseURI) > len(a.BaseURI) && sameNames(o, a) {
				t.Fatalf("route(%q, %q) = %s, but %s has a longer base", host, path, a.Name, o.Name)
			}
		}
	})
}

func sameNames(a, b *App) bool {
	return strings.Join(a.ServerNames, ",") == strings.Join(b.ServerNames, ",")
}
