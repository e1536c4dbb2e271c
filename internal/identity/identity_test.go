package identity

import (
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
)

func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: checks switching to other users (CI runs as root)")
	}
}

func TestLookup(t *testing.T) {
	for _, name := range []string{"root", "0"} {
		u, err := Lookup(name)
		if err != nil {
			t.Fatal(err)
		}
		if u.UID != 0 || u.GID != 0 || u.Name != "root" || u.Home == "" || u.Shell == "" || !slices.Contains(u.Groups, 0) {
			t.Fatalf("Lookup(%q) = %+v", name, u)
		}
	}
	if _, err := Lookup("no-such-user-ferry"); err == nil || !strings.Contains(err.Error(), "no user") {
		t.Fatalf("unknown user: %v", err)
	}
	if _, _, err := LookupGroup("no-such-group-ferry"); err == nil {
		t.Fatal("unknown group accepted")
	}
	if _, ok, err := LookupID(2147480000); ok || err != nil {
		t.Fatalf("uid without a user: ok %v err %v", ok, err)
	}
}

func TestWithGroupAndCredential(t *testing.T) {
	u := &User{UID: 1001, GID: 1001, Groups: []int{1001, 27, 100}, Name: "app"}
	g := u.WithGroup(27, "sudo")
	if g.GID != 27 || !slices.Equal(g.Groups, []int{27, 1001, 100}) || g.Group != "sudo" {
		t.Fatalf("WithGroup = %+v", g)
	}
	if u.GID != 1001 || !slices.Equal(u.Groups, []int{1001, 27, 100}) {
		t.Fatalf("WithGroup changed its receiver: %+v", u)
	}
	c := g.Credential()
	if c.Uid != 1001 || c.Gid != 27 || !slices.Equal(c.Groups, []uint32{27, 1001, 100}) || c.NoSetGroups {
		t.Fatalf("Credential = %+v", c)
	}
	env := (&User{Name: "app", Home: "/srv/app", Shell: "/bin/bash"}).Env()
	want := []string{"HOME=/srv/app", "USER=app", "LOGNAME=app", "SHELL=/bin/bash"}
	if !slices.Equal(env, want) {
		t.Fatalf("Env = %q, want %q", env, want)
	}
}

// testUser creates a system user (and its group) for the test, or reuses
// it, and returns it.
func testUser(t *testing.T, name string) *User {
	t.Helper()
	if _, err := Lookup(name); err != nil {
		out, err := exec.Command("useradd", "--system", "--user-group", "--no-create-home", "--shell", "/usr/sbin/nologin", name).CombinedOutput()
		if _, lerr := Lookup(name); err != nil && lerr != nil { // another test may have won the race
			t.Skipf("useradd %s: %v: %s", name, err, out)
		}
	}
	u, err := Lookup(name)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// tree makes root/dir (mode dirMode) holding file (mode fileMode), owned by
// uid, in a directory everyone may traverse.
func tree(t *testing.T, dirMode, fileMode os.FileMode, uid int) (dir, file string) {
	t.Helper()
	// Not t.TempDir: its parent is private, and the user must get through.
	base, err := os.MkdirTemp("", "ferry-identity-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(base) })
	os.Chmod(base, 0o755)
	dir = filepath.Join(base, "app")
	file = filepath.Join(dir, "config.ru")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(file, []byte("run nil\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{dir, file} {
		if err := os.Chown(p, uid, uid); err != nil {
			t.Fatal(err)
		}
	}
	os.Chmod(file, fileMode)
	os.Chmod(dir, dirMode)
	for d := filepath.Dir(base); d != "/"; d = filepath.Dir(d) {
		if fi, err := os.Stat(d); err == nil && fi.Mode().Perm()&0o001 == 0 {
			t.Skipf("%s is not traversable by other users", d)
		}
	}
	return dir, file
}

func TestAccessAsUser(t *testing.T) {
	needRoot(t)
	u := testUser(t, "ferry-idtest")
	dir, file := tree(t, 0o755, 0o600, 0) // root's, private
	if err := u.Access(dir, Read|Execute); err != nil {
		t.Fatalf("directory 0755: %v", err)
	}
	err := u.Access(file, Read)
	if !errors.Is(err, syscall.EACCES) {
		t.Fatalf("root's 0600 file as %s: %v, want EACCES", u.Name, err)
	}
	var pe *fs.PathError
	if !errors.As(err, &pe) || pe.Path != file {
		t.Fatalf("error does not name the path: %v", err)
	}
	os.Chmod(file, 0o644)
	os.Chmod(dir, 0o700)
	if err := u.Access(file, Read); !errors.Is(err, syscall.EACCES) {
		t.Fatalf("file in a directory it cannot search: %v, want EACCES", err)
	}
	if err := u.Access(dir, Execute); !errors.Is(err, syscall.EACCES) {
		t.Fatalf("search a 0700 directory: %v, want EACCES", err)
	}
	// The same user may.
	dir2, file2 := tree(t, 0o700, 0o600, u.UID)
	if err := u.Access(file2, Read); err != nil {
		t.Fatalf("own file: %v", err)
	}
	if err := u.Access(dir2, Read|Write|Execute); err != nil {
		t.Fatalf("own directory: %v", err)
	}
}

// TestDoRestores checks that borrowing a user's identity on one thread never
// leaks into the rest of the core: while many goroutines borrow it, others
// keep reading a file only root may read.
func TestDoRestores(t *testing.T) {
	needRoot(t)
	u := testUser(t, "ferry-idtest")
	_, secret := tree(t, 0o700, 0o600, 0)
	var wg sync.WaitGroup
	errs := make(chan error, 400)
	for range 200 {
		wg.Add(2)
		go func() {
			defer wg.Done()
			err := u.Do(func() error {
				_, err := os.ReadFile(secret)
				return err
			})
			if !errors.Is(err, fs.ErrPermission) {
				errs <- errors.New("as the user, reading root's file: " + errString(err))
			}
		}()
		go func() {
			defer wg.Done()
			if _, err := os.ReadFile(secret); err != nil {
				errs <- errors.New("as root, meanwhile: " + err.Error())
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if _, err := os.ReadFile(secret); err != nil {
		t.Fatalf("as root, after: %v", err)
	}
}

func errString(err error) string {
	if err == nil {
		return "no error"
	}
	return err.Error()
}

func TestChoose(t *testing.T) {
	needRoot(t)
	u := testUser(t, "ferry-idtest")
	other := testUser(t, "ferry-idtest2")
	nobody, err := Lookup("nobody")
	if err != nil {
		t.Skip("no user nobody")
	}
	rootDir, _ := tree(t, 0o755, 0o644, 0)
	userDir, _ := tree(t, 0o755, 0o644, u.UID)
	orphanDir, _ := tree(t, 0o755, 0o644, 2147480000)
	on := Policy{Switching: true}
	cases := []struct {
		name    string
		p       Policy
		dir     string
		startup string
		uid     int
		gid     int
		why     string
		err     string
	}{
		{"owner", on, userDir, "config.ru", u.UID, u.GID, "owner of config.ru", ""},
		{"generic goes by the directory", on, userDir, "", u.UID, u.GID, "owner of the app directory", ""},
		{"root-owned runs as nobody", on, rootDir, "config.ru", nobody.UID, nobody.GID, "owned by root", ""},
		{"unknown owner runs as the default user", on, orphanDir, "config.ru", nobody.UID, nobody.GID, "has no user", ""},
		{"--default-user", Policy{Switching: true, DefaultUser: other.Name}, rootDir, "config.ru", other.UID, other.GID, "--default-user", ""},
		{"--default-group", Policy{Switching: true, DefaultGroup: u.Group}, rootDir, "config.ru", nobody.UID, u.GID, "--default-user", ""},
		{"--user", Policy{Switching: true, User: other.Name}, userDir, "config.ru", other.UID, other.GID, "--user", ""},
		{"--group", Policy{Switching: true, Group: other.Group}, userDir, "config.ru", u.UID, other.GID, "owner", ""},
		{"switching off", Policy{DefaultUser: other.Name}, userDir, "config.ru", other.UID, other.GID, "user switching is off", ""},
		{"--user root refused", Policy{Switching: true, User: "root"}, userDir, "config.ru", 0, 0, "", "--allow-root-apps"},
		{"--group root refused", Policy{Switching: true, Group: "root"}, userDir, "config.ru", 0, 0, "", "--allow-root-apps"},
		{"--user root allowed", Policy{Switching: true, User: "root", AllowRoot: true}, userDir, "config.ru", 0, 0, "--user", ""},
		{"root-owned stays nobody even when root is allowed", Policy{Switching: true, AllowRoot: true}, rootDir, "config.ru", nobody.UID, nobody.GID, "owned by root", ""},
		{"missing startup file", on, userDir, "nope.ru", 0, 0, "", "no such file"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := tc.p.Choose(tc.dir, tc.startup)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.UID != tc.uid || c.GID != tc.gid || !strings.Contains(c.Why, tc.why) || !slices.Contains(c.Groups, c.GID) {
				t.Fatalf("got %s groups %v why %q; want uid %d gid %d why %q", c.User, c.Groups, c.Why, tc.uid, tc.gid, tc.why)
			}
		})
	}
}

func TestCheck(t *testing.T) {
	needRoot(t)
	u := testUser(t, "ferry-idtest")
	for _, tc := range []struct {
		p   Policy
		err string
	}{
		{Policy{Switching: true}, ""},
		{Policy{Switching: true, User: u.Name, Group: u.Group}, ""},
		{Policy{Switching: true, User: "no-such-user-ferry"}, "--user: no user"},
		{Policy{Switching: true, Group: "no-such-group-ferry"}, "--group: no group"},
		{Policy{Switching: true, DefaultUser: "no-such-user-ferry"}, "--default-user: no user"},
		{Policy{Switching: true, DefaultGroup: "no-such-group-ferry"}, "--default-group: no group"},
		{Policy{Switching: true, User: "root"}, "needs --allow-root-apps"},
		{Policy{Switching: true, Group: "root"}, "needs --allow-root-apps"},
		{Policy{Switching: true, DefaultUser: "root"}, "needs --allow-root-apps"},
		{Policy{Switching: true, DefaultGroup: "root"}, "needs --allow-root-apps"},
		{Policy{Switching: true, User: "root", AllowRoot: true}, ""},
	} {
		err := tc.p.Check()
		if tc.err == "" && err != nil || tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("%+v: err = %v, want %q", tc.p, err, tc.err)
		}
	}
}

// TestUnprivileged runs the checks a core that is not root makes, in a
// child process running as another user.
func TestUnprivileged(t *testing.T) {
	if os.Geteuid() != 0 {
		cur, err := Current()
		if err != nil {
			t.Fatal(err)
		}
		if err := (Policy{Switching: true, User: cur.Name}).Check(); err != nil {
			t.Fatalf("own user: %v", err)
		}
		if err := (Policy{Switching: true, User: "root"}).Check(); cur.UID != 0 && (err == nil || !strings.Contains(err.Error(), "not root")) {
			t.Fatalf("--user root without root: %v", err)
		}
		c, err := (Policy{Switching: true}).Choose(t.TempDir(), "")
		if err != nil || c.UID != cur.UID {
			t.Fatalf("Choose = %v, %v; want the current user", c.User, err)
		}
		return
	}
	u := testUser(t, "ferry-idtest")
	// Re-run this test as the user: the branch above. (/proc/self/exe: the
	// test binary's own directory is private.)
	cmd := exec.Command("/proc/self/exe", "-test.run=^TestUnprivileged$", "-test.v")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: u.Credential()}
	cmd.Dir = "/"
	cmd.Env = append(os.Environ(), u.Env()...)
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "PASS") {
		t.Fatalf("as %s: %v\n%s", u.Name, err, out)
	}
}
