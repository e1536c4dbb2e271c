package webconfig

import (
	"fmt"
	"path/filepath"
	"strings"
)

// ApacheTestConfig is a minimal self-contained httpd.conf head (modules,
// pid and log files in dir, listening on port) for running Debian's apache2
// outside its service setup, as the tests do.
func ApacheTestConfig(dir, port string) string {
	var b strings.Builder
	for _, m := range []string{"mpm_event", "authz_core", "alias", "rewrite", "headers", "proxy", "proxy_http", "dir", "mime"} {
		fmt.Fprintf(&b, "LoadModule %s_module /usr/lib/apache2/modules/mod_%s.so\n", m, m)
	}
	fmt.Fprintf(&b, "ServerName localhost\nListen 127.0.0.1:%s\nPidFile %s\nErrorLog %s\nMutex file:%s default\n",
		port, filepath.Join(dir, "httpd.pid"), filepath.Join(dir, "error.log"), dir)
	fmt.Fprintf(&b, "DefaultRuntimeDir %s\nUser www-data\nGroup www-data\n", dir)
	return b.String()
}
