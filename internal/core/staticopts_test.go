package core

import (
	"testing"
	"time"

	"github.com/ferry-server/ferry/internal/config"
	"github.com/ferry-server/ferry/internal/identity"
)

// TestStaticOptionsRevalidate: --static-revalidate reaches the static
// handler's options as it is (0: static's default; negative: stat every
// request).
func TestStaticOptionsRevalidate(t *testing.T) {
	for _, d := range []time.Duration{0, 3 * time.Second, config.StatEveryRequest} {
		var ac config.App
		ac.StaticRevalidate = d
		if got := staticOptions(ac, identity.Choice{}).Revalidate; got != d {
			t.Errorf("StaticRevalidate %s gave static.Options.Revalidate %s", d, got)
		}
	}
}
