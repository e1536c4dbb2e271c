package config

// Security holds the server-wide settings of who apps run as and what they
// may use; embedded in Server. AppSecurity holds the per-app ones; embedded
// in App. Their options are registered in init below.
type Security struct{}

// AppSecurity is the per-app part of the security settings.
type AppSecurity struct{}

func init() {
	register()
}

// finish validates the server-wide security settings.
func (s *Security) finish(p *problems) {}

// finish validates an app's security settings.
func (a *AppSecurity) finish(p *problems) {}
