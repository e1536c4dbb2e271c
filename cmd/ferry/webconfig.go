package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"os"
	"strings"

	"github.com/ferry-server/ferry/internal/config"
	"github.com/ferry-server/ferry/internal/webconfig"
)

const webconfigHelp = `Usage: ferry %[1]s [APP_DIR | --config FILE] [start options] [--listen PORT] [--ferry-socket PATH]
                          [--install [--%[3]s-dir DIR]]

Prints %[2]s configuration for the apps 'ferry start' would serve with the same
arguments: the web server serves each app's public/ directory itself and sends
everything else to Ferry, WebSocket upgrades included. Restarting the web
server does not restart any app.

  --listen PORT         where the web server listens (default 80)
  --ferry-socket PATH   reach Ferry on this Unix socket (default: the configuration's
                        --socket / socket_file, else Ferry's TCP address)
  --install             instead of printing it, %[4]s
  %-21[6]s the web server's configuration directory (default %[5]s)
`

// webConfigCommand is `ferry nginx-config` (kind "nginx") or `ferry
// apache-config` ("apache"). They read their arguments themselves, as
// start's options go through to config.Load.
func webConfigCommand(kind string) func(context.Context, []string) error {
	return func(ctx context.Context, args []string) error { return webConfig(ctx, kind, args) }
}

func webConfig(ctx context.Context, kind string, args []string) error {
	name := map[string]string{"nginx": "nginx", "apache": "Apache httpd"}[kind]
	dir := map[string]string{"nginx": webconfig.NginxDir, "apache": webconfig.ApacheDir}[kind]
	if kind == "apache" && os.Getenv("APACHE_CONFDIR") != "" {
		dir = os.Getenv("APACHE_CONFDIR")
	}
	if wantsHelp(args) {
		install := map[string]string{
			"nginx":  "write it to DIR/conf.d/ferry.conf and check it with\n                        nginx -t (the file is put back if nginx refuses it)",
			"apache": "write it to DIR/sites-available/ferry.conf, enable the\n                        modules it needs and the site, and check it with apache2ctl configtest",
		}[kind]
		fmt.Printf(webconfigHelp, kind+"-config", name, kind, install, dir, "--"+kind+"-dir DIR")
		return flag.ErrHelp
	}
	var o webconfig.Options
	var install bool
	var rest []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--install" || a == "-install" {
			install = true
			continue
		}
		for _, f := range []struct {
			flag string
			dst  *string
		}{{"listen", &o.Listen}, {"ferry-socket", &o.Socket}, {kind + "-dir", &dir}} {
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
	var b bytes.Buffer
	if kind == "nginx" {
		err = webconfig.Nginx(&b, cfg, o)
	} else {
		err = webconfig.Apache(&b, cfg, o)
	}
	if err != nil {
		return fmt.Errorf("%s-config: %w", kind, err)
	}
	if !install {
		_, err = os.Stdout.Write(b.Bytes())
		return err
	}
	if kind == "nginx" {
		err = webconfig.InstallNginx(ctx, b.Bytes(), dir, os.Stdout)
	} else {
		err = webconfig.InstallApache(ctx, b.Bytes(), dir, os.Stdout)
	}
	if err != nil {
		return fmt.Errorf("%s-config --install: %w", kind, err)
	}
	return nil
}
