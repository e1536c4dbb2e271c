// Package webconfig owns the configuration snippets Ferry prints for a web
// server in front of it (`ferry nginx-config`, `ferry apache-config`): the
// web server serves each app's public/ directory itself and sends everything
// else, WebSocket upgrades included, to Ferry. It only renders text.
package webconfig

import (
	"io"
	"path/filepath"
	"strings"
	"text/template"

	"github.com/ferry-server/ferry/internal/config"
)

// Options say how the web server reaches Ferry and where it listens.
type Options struct {
	// Socket is Ferry's Unix socket; used when set. Default: the
	// configuration's --socket (socket_file), if any.
	Socket string
	// Address is Ferry's host:port otherwise.
	Address string
	// Listen is where the web server listens (default 80).
	Listen string
}

type app struct {
	Name        string
	Ident       string // safe in config identifiers
	ServerNames []string
	BaseURI     string
	Public      string
}

type data struct {
	Options
	Apps  []app
	Hosts []hostGroup
}

// hostGroup is one server block: the apps sharing a set of names.
type hostGroup struct {
	Names []string // empty: default server
	Apps  []app
}

func build(cfg *config.Config, o Options) data {
	if o.Listen == "" {
		o.Listen = "80"
	}
	if o.Socket == "" && o.Address == "" {
		o.Socket = cfg.Socket
	}
	if o.Socket == "" && o.Address == "" {
		o.Address = cfg.ListenAddr()
		if strings.HasPrefix(o.Address, "0.0.0.0:") {
			o.Address = "127.0.0.1:" + strings.TrimPrefix(o.Address, "0.0.0.0:")
		}
	}
	d := data{Options: o}
	groups := map[string]int{}
	for _, a := range cfg.Apps {
		ap := app{Name: a.Name, Ident: ident(a.Name), ServerNames: a.ServerNames, BaseURI: a.BaseURI,
			Public: filepath.Join(a.Root, "public")}
		d.Apps = append(d.Apps, ap)
		key := strings.Join(a.ServerNames, " ")
		i, ok := groups[key]
		if !ok {
			i = len(d.Hosts)
			groups[key] = i
			d.Hosts = append(d.Hosts, hostGroup{Names: a.ServerNames})
		}
		d.Hosts[i].Apps = append(d.Hosts[i].Apps, ap)
	}
	// Within a server block the longest base URI must come first for Apache;
	// nginx picks the longest prefix itself.
	for _, h := range d.Hosts {
		sortByBaseDesc(h.Apps)
	}
	return d
}

func sortByBaseDesc(apps []app) {
	for i := 1; i < len(apps); i++ {
		for j := i; j > 0 && len(apps[j].BaseURI) > len(apps[j-1].BaseURI); j-- {
			apps[j], apps[j-1] = apps[j-1], apps[j]
		}
	}
}

func ident(s string) string {
	var b strings.Builder
	for _, r := range s {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' {
			b.WriteRune(r)
		} else {
			b.WriteByte('_')
		}
	}
	return b.String()
}

// Nginx writes nginx configuration for cfg's apps.
func Nginx(w io.Writer, cfg *config.Config, o Options) error {
	return nginxTmpl.Execute(w, build(cfg, o))
}

// Apache writes Apache httpd configuration for cfg's apps.
func Apache(w io.Writer, cfg *config.Config, o Options) error {
	return apacheTmpl.Execute(w, build(cfg, o))
}

// ApacheModules are the modules `ferry apache-config`'s output needs
// beyond those a stock Debian Apache has enabled (alias, authz_core, mime):
// reverse proxying over HTTP (WebSockets included, upgrade=websocket),
// RequestHeader, and the rewrite rules that send what public/ lacks to
// Ferry.
var ApacheModules = []string{"proxy", "proxy_http", "headers", "rewrite"}

var funcs = template.FuncMap{
	"join":    strings.Join,
	"modules": func() string { return strings.Join(ApacheModules, " ") },
	// A bare port listens on IPv6 too, as Debian's default site does:
	// otherwise a client reaching nginx over IPv6 (curl http://localhost/
	// tries ::1 first) gets the default site instead of the app.
	"portOnly": func(l string) bool { return strings.Trim(l, "0123456789") == "" },
	"quote": func(s string) string {
		return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
	},
	"dir": func(s string) string { return strings.TrimSuffix(s, "/") + "/" },
	"upstream": func(o Options) string {
		if o.Socket != "" {
			return "unix:" + o.Socket
		}
		return o.Address
	},
	"apacheTarget": func(o Options) string {
		if o.Socket != "" {
			return "unix:" + o.Socket + "|http://ferry"
		}
		return "http://" + o.Address
	},
}

var nginxTmpl = template.Must(template.New("nginx").Funcs(funcs).Parse(`# nginx configuration for Ferry, from 'ferry nginx-config'.
# nginx serves each app's public/ directory itself and proxies everything
# else to Ferry{{if .Socket}} on its Unix socket {{.Socket}}{{else}} at {{.Address}}{{end}}.
# Start Ferry with the same apps{{if .Socket}} and --socket {{.Socket}}{{end}}, and let
# it trust the client address nginx passes: --trusted-proxies {{if .Socket}}unix{{else}}127.0.0.1/32{{end}}.
{{- if .Socket}}
# nginx's user must be allowed to connect to the socket: on Debian, where it
# runs as www-data, start Ferry with --socket-group www-data.
{{- end}}
# Put this in the http {} context (e.g. /etc/nginx/conf.d/ferry.conf).

upstream ferry {
    server {{upstream .Options}};
    keepalive 32;
}

map $http_upgrade $ferry_connection_upgrade {
    default upgrade;
    ''      '';
}
{{range .Hosts}}
server {
    listen {{$.Listen}};
{{- if portOnly $.Listen}}
    listen [::]:{{$.Listen}};
{{- end}}
{{- if .Names}}
    server_name {{join .Names " "}};
{{- else}}
    # No server_names: this is port {{$.Listen}}'s default server only if no other
    # server says default_server (Debian's sites-enabled/default does: give
    # the app server_names, or remove that link).
    server_name _;
{{- end}}
    # Ferry buffers request bodies itself and applies its own limit.
    client_max_body_size 0;
    # Like Ferry, never serve dotfiles (.git, .env) from public/.
    location ~ /\.(?!well-known/) {
        return 404;
    }
{{range .Apps}}
    # app {{.Name}}{{if .BaseURI}} at {{.BaseURI}}{{end}}
    location {{if .BaseURI}}{{dir .BaseURI}}{{else}}/{{end}} {
        {{if .BaseURI}}alias {{dir .Public}};{{else}}root {{.Public}};{{end}}
        try_files $uri @ferry_{{.Ident}};
    }
    location @ferry_{{.Ident}} {
        proxy_pass http://ferry;
        proxy_http_version 1.1;
        proxy_set_header Host $http_host;
        proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
        proxy_set_header X-Forwarded-Proto $scheme;
        # Set, not passed on: a client's own would reach the app as trusted.
        proxy_set_header X-Forwarded-Host $host;
        proxy_set_header Upgrade $http_upgrade;
        proxy_set_header Connection $ferry_connection_upgrade;
        # Ferry already shields the app from slow clients; stream through.
        proxy_buffering off;
        proxy_request_buffering off;
        proxy_read_timeout 1h;
    }
{{- end}}
}
{{end}}`))

var apacheTmpl = template.Must(template.New("apache").Funcs(funcs).Parse(`# Apache httpd configuration for Ferry, from 'ferry apache-config'.
# Apache serves each app's public/ directory itself and proxies everything
# else to Ferry{{if .Socket}} on its Unix socket {{.Socket}}{{else}} at {{.Address}}{{end}}.
# Needs Apache 2.4.47 or later (WebSockets with upgrade=websocket) and the
# modules: a2enmod {{modules}}
# (besides alias, authz_core and mime, which Debian enables by default).
# Start Ferry with the same apps{{if .Socket}} and --socket {{.Socket}}{{end}}, and let
# it trust the client address Apache passes: --trusted-proxies {{if .Socket}}unix{{else}}127.0.0.1/32{{end}}.
{{- if .Socket}}
# Apache's user must be allowed to connect to the socket: on Debian, where it
# runs as www-data, start Ferry with --socket-group www-data.
{{- end}}
{{range .Hosts}}
<VirtualHost *:{{$.Listen}}>
{{- if .Names}}
    ServerName {{index .Names 0}}
{{- range $i, $n := .Names}}{{if $i}}
    ServerAlias {{$n}}{{end}}{{end}}
{{- end}}
    ProxyPreserveHost On
    RequestHeader set X-Forwarded-Proto expr=%{REQUEST_SCHEME}
    RewriteEngine On
{{range .Apps}}
    # app {{.Name}}{{if .BaseURI}} at {{.BaseURI}}{{end}}
    Alias {{if .BaseURI}}{{dir .BaseURI}}{{else}}/{{end}} {{dir .Public}}
    <Directory {{quote .Public}}>
        Require all granted
        Options -Indexes
    </Directory>
    RewriteCond {{dir .Public}}$1 !-f
    RewriteRule ^{{.BaseURI}}/(.*)$ "{{apacheTarget $.Options}}{{.BaseURI}}/$1" [P,L,QSA]
{{- end}}
    <Proxy "{{apacheTarget $.Options}}">
        ProxySet upgrade=websocket keepalive=On
    </Proxy>
</VirtualHost>
{{end}}`))
