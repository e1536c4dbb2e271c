package server

import (
	"net/http"
	"net/url"
	"testing"
)

// Routing is the first step of every request: these benchmarks show what it
// costs with one app (the common case: no choice to make) and with a
// multi-app configuration of exact hosts, wildcards and base URIs. Results
// go to bench/results/go-bench-*.md; nothing is asserted about speed.

func benchRouteApps() []*App {
	return []*App{
		{Name: "blog", ServerNames: []string{"blog.example.com"}},
		{Name: "shop", ServerNames: []string{"example.com", "www.example.com"}, BaseURI: "/shop"},
		{Name: "shop-api", ServerNames: []string{"example.com"}, BaseURI: "/shop/api"},
		{Name: "wild", ServerNames: []string{"*.example.com"}},
		{Name: "deep-wild", ServerNames: []string{"*.eu.example.com"}},
		{Name: "site"},
		{Name: "docs", BaseURI: "/docs"},
	}
}

func BenchmarkRouteOneApp(b *testing.B) {
	rt := newRouter([]*App{{Name: "only"}})
	r := &http.Request{Host: "example.com", URL: &url.URL{Path: "/hello"}}
	b.ReportAllocs()
	for b.Loop() {
		if rt.route(r) == nil {
			b.Fatal("no app")
		}
	}
}

func BenchmarkRouteMultiApp(b *testing.B) {
	rt := newRouter(benchRouteApps())
	for _, tc := range []struct{ name, host, path, want string }{
		{"exact", "blog.example.com", "/posts/1", "blog"},
		{"exact-port-case", "Example.COM:8080", "/shop/api/v1/items", "shop-api"},
		{"wildcard", "a.eu.example.com", "/", "deep-wild"},
		{"fallback-base", "other.org", "/docs/guide", "docs"},
	} {
		r := &http.Request{Host: tc.host, URL: &url.URL{Path: tc.path}}
		if a := rt.route(r); a == nil || a.Name != tc.want {
			b.Fatalf("%s: routed to %v, want %s", tc.name, a, tc.want)
		}
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				rt.route(r)
			}
		})
	}
}
