package webconfig

import (
	"fmt"
	"path/filepath"
	"strings"
)

// debianApacheModules are modules a stock Debian apache2 has enabled that
// the output relies on (a subset of its default set).
var debianApacheModules = []string{"mpm_event", "authz_core", "alias", "dir", "mime"}

// ApacheTestConfig is a minimal self-contained httpd.conf head (modules,
// pid and log files in dir, listening on port) for running Debian's apache2
// outside its service setup, as the tests do. It loads only Debian's
// default modules the output relies on and ApacheModules, so a module the
// output needs but does not name fails the tests.
func ApacheTestConfig(dir, port string) string {
	var b strings.Builder
	for _, m := range append(append([]string{}, debianApacheModules...), ApacheModules...) {
		fmt.Fprintf(&b, "LoadModule %s_module /usr/lib/apache2/modules/mod_%s.so\n", m, m)
	}
	fmt.Fprintf(&b, "ServerName localhost\nListen 127.0.0.1:%s\nPidFile %s\nErrorLog %s\nMutex file:%s default\n",
		port, filepath.Join(dir, "httpd.pid"), filepath.Join(dir, "error.log"), dir)
	fmt.Fprintf(&b, "DefaultRuntimeDir %s\nUser www-data\nGroup www-data\n", dir)
	return b.String()
}
