package server

import (
	"net/http"
	"net/url"
	"sort"
	"strings"
)

// router picks the app for a request: by Host (exact name, then the
// longest matching "*.suffix" wildcard, then apps without server names),
// then by the longest base URI that the path is under.
type router struct {
	only  *App // the one app, when routing has no choice to make
	exact map[string][]*App
	wild  []wildRoute // longest suffix first
	any   []*App
}

type wildRoute struct {
	suffix string // ".example.com"
	apps   []*App
}

func newRouter(apps []*App) *router {
	rt := &router{exact: map[string][]*App{}}
	if len(apps) == 1 && len(apps[0].ServerNames) == 0 && apps[0].BaseURI == "" {
		rt.only = apps[0]
		return rt
	}
	wild := map[string][]*App{}
	for _, a := range apps {
		if len(a.ServerNames) == 0 {
			rt.any = append(rt.any, a)
		}
		for _, n := range a.ServerNames {
			n = strings.ToLower(n)
			if s, ok := strings.CutPrefix(n, "*"); ok {
				wild[s] = append(wild[s], a)
			} else {
				rt.exact[n] = append(rt.exact[n], a)
			}
		}
	}
	for s, as := range wild {
		rt.wild = append(rt.wild, wildRoute{s, as})
	}
	sort.Slice(rt.wild, func(i, j int) bool { return len(rt.wild[i].suffix) > len(rt.wild[j].suffix) })
	return rt
}

func (rt *router) route(r *http.Request) *App {
	if rt.only != nil {
		return rt.only
	}
	host := strings.TrimSuffix(hostOnly(strings.ToLower(r.Host)), ".")
	if a := byBase(rt.exact[host], r.URL.Path); a != nil {
		return a
	}
	for _, w := range rt.wild {
		if strings.HasSuffix(host, w.suffix) {
			if a := byBase(w.apps, r.URL.Path); a != nil {
				return a
			}
		}
	}
	return byBase(rt.any, r.URL.Path)
}

// byBase picks the app with the longest base URI the path is under.
func byBase(apps []*App, path string) *App {
	var best *App
	for _, a := range apps {
		if underBase(path, a.BaseURI) && (best == nil || len(a.BaseURI) > len(best.BaseURI)) {
			best = a
		}
	}
	return best
}

func underBase(path, base string) bool {
	return base == "" || path == base || strings.HasPrefix(path, base+"/")
}

// withoutBase is r as seen from inside an app mounted at base: its path
// without the prefix (for static files).
func withoutBase(r *http.Request, base string) *http.Request {
	if base == "" {
		return r
	}
	r2 := new(http.Request)
	*r2 = *r
	u := new(url.URL)
	*u = *r.URL
	u.Path = strings.TrimPrefix(u.Path, base)
	if u.RawPath != "" {
		u.RawPath = strings.TrimPrefix(u.RawPath, base)
	}
	if u.Path == "" {
		u.Path = "/"
	}
	r2.URL = u
	return r2
}
