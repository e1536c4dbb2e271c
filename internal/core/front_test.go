package core

import (
	"crypto/tls"
	"testing"

	"github.com/ferry-server/ferry/internal/config"
)

// TestListenConfig: where the front listens follows --socket, --ssl,
// --ssl-port and the TLS settings.
func TestListenConfig(t *testing.T) {
	base := func() *config.Config {
		cfg := &config.Config{}
		cfg.Address, cfg.Port = "127.0.0.1", 3000
		return cfg
	}
	t.Run("tcp", func(t *testing.T) {
		sc := listenConfig(base())
		if sc.Addr != "127.0.0.1:3000" || sc.TLS != nil || sc.SSLAddr != "" || sc.Socket != "" {
			t.Fatalf("got %+v", sc)
		}
	})
	t.Run("socket only", func(t *testing.T) {
		cfg := base()
		cfg.Front.Socket = "/run/ferry.sock"
		if sc := listenConfig(cfg); sc.Addr != "" || sc.Socket != "/run/ferry.sock" {
			t.Fatalf("got %+v", sc)
		}
		cfg.Front.SocketAndTCP = true
		if sc := listenConfig(cfg); sc.Addr != "127.0.0.1:3000" || sc.Socket != "/run/ferry.sock" {
			t.Fatalf("socket and TCP: got %+v", sc)
		}
	})
	t.Run("tls", func(t *testing.T) {
		cfg := base()
		cfg.Front.SSL, cfg.Front.HTTP2, cfg.Front.SSLCertificate, cfg.Front.SSLCertificateKey = true, true, "c.pem", "k.pem"
		sc := listenConfig(cfg)
		if sc.TLS == nil || sc.TLS.CertFile != "c.pem" || sc.TLS.KeyFile != "k.pem" || !sc.TLS.HTTP2 ||
			sc.TLS.MinVersion != tls.VersionTLS12 || sc.HTTP3 != nil || sc.SSLAddr != "" {
			t.Fatalf("got %+v %+v", sc, sc.TLS)
		}
		cfg.Front.SSLMinVersion, cfg.Front.HTTP3, cfg.Front.SSLPort, cfg.Front.SSLRedirect = "1.3", true, 3443, true
		sc = listenConfig(cfg)
		if sc.TLS.MinVersion != tls.VersionTLS13 || sc.HTTP3 == nil || sc.SSLAddr != "127.0.0.1:3443" || !sc.Redirect {
			t.Fatalf("got %+v %+v", sc, sc.TLS)
		}
	})
}
