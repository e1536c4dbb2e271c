package main

import (
	"flag"
	"fmt"
	"os"
	"strings"

	"github.com/ferry-server/ferry/internal/config"
	"github.com/ferry-server/ferry/internal/webconfig"
)

const webconfigHelp = `Usage: ferry %s [APP_DIR | --config FILE] [start options] [--listen PORT] [--ferry-socket PATH]

Prints %s configuration for the apps 'ferry start' would serve with the same
arguments: the web server serves each app's public/ directory itself and sends
everything else to Ferry, WebSocket upgrades included. Restarting the web
server does not restart any app.

  --listen PORT         where the web server listens (default 80)
  --ferry-socket PATH   reach Ferry on this Unix socket (as given to ferry start --socket);
                        default: Ferry's TCP address
`

// webConfig implements `ferry nginx-config` and `ferry apache-config`.
func webConfig(kind string, args []string) error {
	name := map[string]string{"nginx": "nginx", "apache": "Apache httpd"}[kind]
	if wantsHelp(args) {
		fmt.Printf(webconfigHelp, kind+"-config", name)
		return flag.ErrHelp
	}
	var o webconfig.Options
	var rest []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		for _, f := range []struct {
			flag string
			dst  *string
		}{{"listen", &o.Listen}, {"ferry-socket", &o.Socket}} {
			for _, p := range []string{"--" + f.flag, "-" + f.flag} {
				if v, ok := strings.CutPrefix(a, p+"="); ok {
					*f.dst, a = v, ""
				} else if a == p && i+1 < len(args) {
					*f.dst, a = args[i+1], ""
					i++
				}
			}
		}
		if a != "" {
			rest = append(rest, a)
		}
	}
	cfg, err := config.Load(rest, os.Environ())
	if err != nil {
		return fmt.Errorf("%s-config: %w", kind, err)
	}
	if kind == "nginx" {
		return webconfig.Nginx(os.Stdout, cfg, o)
	}
	return webconfig.Apache(os.Stdout, cfg, o)
}
