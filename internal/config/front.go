package config

// Front holds the HTTP front's settings: listeners, TLS, HTTP/2, limits and
// timeouts, compression, trusted proxies, the access log. It is embedded in
// Server; its options are registered in init below.
type Front struct{}

func init() {
	register()
}

// finish validates the front's settings.
func (f *Front) finish(p *problems) {}
