package webconfig

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// Default configuration directories of Debian's nginx and apache2.
const (
	NginxDir  = "/etc/nginx"
	ApacheDir = "/etc/apache2"
)

// confName is the file Install writes, in conf.d/ (nginx) or
// sites-available/ (Apache).
const confName = "ferry.conf"

// InstallNginx writes conf to DIR/conf.d/ferry.conf, where Debian's
// nginx.conf includes it beside sites-enabled/default, and has nginx check
// the whole configuration (nginx -t). If nginx refuses it, the file is put
// back as it was and the error carries nginx's words. It reloads nothing:
// it tells out what to run.
func InstallNginx(ctx context.Context, conf []byte, dir string, out io.Writer) error {
	path := filepath.Join(dir, "conf.d", confName)
	restore, err := writeKeeping(path, conf)
	if err != nil {
		return err
	}
	test := []string{"nginx", "-t", "-q"}
	if filepath.Clean(dir) != NginxDir {
		test = append(test, "-c", filepath.Join(dir, "nginx.conf"))
	}
	if err := run(ctx, nil, test...); err != nil {
		return errors.Join(err, restore())
	}
	fmt.Fprintf(out, "wrote %s; nginx -t: the configuration is fine.\nTo serve it, reload nginx: systemctl reload nginx\n", path)
	return nil
}

// InstallApache writes conf to DIR/sites-available/ferry.conf, enables the
// modules it needs (a2enmod) and the site (a2ensite), and has Apache check
// the whole configuration (apache2ctl configtest). If Apache refuses it,
// the site is disabled again and the file put back as it was (modules
// stay enabled: they change nothing by themselves). dir other than
// /etc/apache2 is passed as APACHE_CONFDIR, as Debian's tools take it.
func InstallApache(ctx context.Context, conf []byte, dir string, out io.Writer) error {
	var env []string
	if filepath.Clean(dir) != ApacheDir {
		env = []string{"APACHE_CONFDIR=" + dir}
	}
	var newMods []string
	for _, m := range ApacheModules {
		if _, err := os.Stat(filepath.Join(dir, "mods-enabled", m+".load")); err != nil {
			newMods = append(newMods, m)
		}
	}
	_, err := os.Stat(filepath.Join(dir, "sites-enabled", confName))
	wasEnabled := err == nil
	path := filepath.Join(dir, "sites-available", confName)
	restore, err := writeKeeping(path, conf)
	if err != nil {
		return err
	}
	undo := func(err error) error {
		if !wasEnabled {
			err = errors.Join(err, run(ctx, env, "a2dissite", "-q", strings.TrimSuffix(confName, ".conf")))
		}
		return errors.Join(err, restore())
	}
	if len(newMods) > 0 {
		if err := run(ctx, env, append([]string{"a2enmod", "-q"}, newMods...)...); err != nil {
			return undo(err)
		}
	}
	if err := run(ctx, env, "a2ensite", "-q", strings.TrimSuffix(confName, ".conf")); err != nil {
		return undo(err)
	}
	if err := run(ctx, env, "apache2ctl", "configtest"); err != nil {
		return undo(err)
	}
	fmt.Fprintf(out, "wrote %s and enabled it", path)
	if len(newMods) > 0 {
		fmt.Fprintf(out, " with the modules %s", strings.Join(newMods, " "))
	}
	fmt.Fprintf(out, "; apache2ctl configtest: Syntax OK.\n")
	if len(newMods) > 0 {
		fmt.Fprintf(out, "To serve it, restart Apache (new modules): systemctl restart apache2\n")
	} else {
		fmt.Fprintf(out, "To serve it, reload Apache: systemctl reload apache2\n")
	}
	return nil
}

// writeKeeping replaces path with data (through a temporary file and a
// rename, so a reader never sees half of it) and returns how to put back
// what was there before.
func writeKeeping(path string, data []byte) (restore func() error, err error) {
	old, rerr := os.ReadFile(path)
	existed := rerr == nil
	if rerr != nil && !errors.Is(rerr, os.ErrNotExist) {
		return nil, fmt.Errorf("read %s: %w", path, rerr)
	}
	if err := writeFile(path, data); err != nil {
		return nil, err
	}
	return func() error {
		if existed {
			return writeFile(path, old)
		}
		if err := os.Remove(path); err != nil {
			return fmt.Errorf("remove %s again: %w", path, err)
		}
		return nil
	}, nil
}

func writeFile(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	_, err = tmp.Write(data)
	if err == nil {
		err = tmp.Chmod(0o644)
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// run runs a web server's tool; its output is kept for the error.
func run(ctx context.Context, env []string, args ...string) error {
	cmd := exec.CommandContext(ctx, args[0], args[1:]...)
	cmd.Env = append(os.Environ(), env...)
	var b bytes.Buffer
	cmd.Stdout, cmd.Stderr = &b, &b
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s: %w\n%s", strings.Join(args, " "), err, strings.TrimSpace(b.String()))
	}
	return nil
}
