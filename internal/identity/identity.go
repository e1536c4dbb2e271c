// Package identity owns who app processes run as: looking up users and
// groups, choosing an app's user by Passenger's rules (the owner of its
// startup file; never root unless allowed), the environment variables that
// name that user, and checking or doing file access as that user from inside
// the core. It does not start processes (spawn does) and does not read
// configuration (config does).
package identity

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/user"
	"slices"
	"strconv"
	"strings"
	"syscall"
)

// User is an identity a process can run as.
type User struct {
	UID int
	// GID is the primary group the process runs with.
	GID int
	// Groups are the supplementary groups, GID among them.
	Groups []int
	// Name is the login name; the uid as a number when it has none.
	Name string
	// Group is the primary group's name; the gid as a number when it has
	// none.
	Group string
	// Home and Shell are from the user database ("/" and /bin/sh when it
	// has none).
	Home  string
	Shell string
}

// String names the user for logs and error messages: "www (uid 1001, gid
// 1001)".
func (u *User) String() string {
	return fmt.Sprintf("%s (uid %d, gid %d)", u.Name, u.UID, u.GID)
}

// Credential is what syscall.SysProcAttr needs to start a process as u: its
// uid, its primary group and every supplementary group. As root, setuid and
// setgid set the real, effective and saved ids alike.
func (u *User) Credential() *syscall.Credential {
	groups := make([]uint32, len(u.Groups))
	for i, g := range u.Groups {
		groups[i] = uint32(g)
	}
	return &syscall.Credential{Uid: uint32(u.UID), Gid: uint32(u.GID), Groups: groups}
}

// Env is the variables that name the user to programs: HOME, USER, LOGNAME
// and SHELL, as login(1) sets them.
func (u *User) Env() []string {
	return []string{"HOME=" + u.Home, "USER=" + u.Name, "LOGNAME=" + u.Name, "SHELL=" + u.Shell}
}

// Lookup finds a user by name or number, with its primary group and every
// group it is a member of.
func Lookup(name string) (*User, error) {
	var (
		pw  *user.User
		err error
	)
	if _, nerr := strconv.Atoi(name); nerr == nil {
		pw, err = user.LookupId(name)
	} else {
		pw, err = user.Lookup(name)
	}
	if err != nil {
		return nil, fmt.Errorf("no user %q on this system", name)
	}
	return fromPasswd(pw)
}

// LookupID finds a user by uid; ok is false when the uid has no entry in
// the user database.
func LookupID(uid int) (u *User, ok bool, err error) {
	pw, err := user.LookupId(strconv.Itoa(uid))
	if err != nil {
		var unknown user.UnknownUserIdError
		if errors.As(err, &unknown) {
			return nil, false, nil
		}
		return nil, false, fmt.Errorf("look up uid %d: %w", uid, err)
	}
	u, err = fromPasswd(pw)
	return u, err == nil, err
}

func fromPasswd(pw *user.User) (*User, error) {
	uid, err := strconv.Atoi(pw.Uid)
	if err != nil {
		return nil, fmt.Errorf("user %q: uid %q is not a number", pw.Username, pw.Uid)
	}
	gid, err := strconv.Atoi(pw.Gid)
	if err != nil {
		return nil, fmt.Errorf("user %q: gid %q is not a number", pw.Username, pw.Gid)
	}
	u := &User{UID: uid, GID: gid, Name: pw.Username, Home: pw.HomeDir, Shell: "/bin/sh"}
	if u.Name == "" {
		u.Name = pw.Uid
	}
	if u.Home == "" {
		u.Home = "/"
	}
	if sh := loginShell(pw.Username); sh != "" {
		u.Shell = sh
	}
	u.Group = groupName(gid)
	ids, err := pw.GroupIds()
	if err != nil {
		return nil, fmt.Errorf("groups of user %q: %w", pw.Username, err)
	}
	u.Groups = []int{gid}
	for _, s := range ids {
		if g, err := strconv.Atoi(s); err == nil && !slices.Contains(u.Groups, g) {
			u.Groups = append(u.Groups, g)
		}
	}
	return u, nil
}

// LookupGroup finds a group by name or number and returns its gid and name.
func LookupGroup(name string) (gid int, groupName string, err error) {
	var g *user.Group
	if _, nerr := strconv.Atoi(name); nerr == nil {
		g, err = user.LookupGroupId(name)
	} else {
		g, err = user.LookupGroup(name)
	}
	if err != nil {
		return 0, "", fmt.Errorf("no group %q on this system", name)
	}
	gid, err = strconv.Atoi(g.Gid)
	if err != nil {
		return 0, "", fmt.Errorf("group %q: gid %q is not a number", g.Name, g.Gid)
	}
	return gid, g.Name, nil
}

func groupName(gid int) string {
	if g, err := user.LookupGroupId(strconv.Itoa(gid)); err == nil {
		return g.Name
	}
	return strconv.Itoa(gid)
}

// WithGroup returns a copy of u whose primary group is gid (named name);
// the user's own groups stay its supplementary groups.
func (u *User) WithGroup(gid int, name string) *User {
	c := *u
	c.GID, c.Group = gid, name
	c.Groups = append([]int{gid}, slices.DeleteFunc(slices.Clone(u.Groups), func(g int) bool { return g == gid })...)
	return &c
}

// Current is the user the core runs as, with the groups it has now.
func Current() (*User, error) {
	uid, gid := os.Geteuid(), os.Getegid()
	u, ok, err := LookupID(uid)
	if err != nil {
		return nil, err
	}
	if !ok {
		u = &User{UID: uid, Name: strconv.Itoa(uid), Home: "/", Shell: "/bin/sh"}
	}
	u.GID, u.Group = gid, groupName(gid)
	groups, err := os.Getgroups()
	if err != nil {
		return nil, fmt.Errorf("groups of the current process: %w", err)
	}
	u.Groups = append([]int{gid}, slices.DeleteFunc(groups, func(g int) bool { return g == gid })...)
	return u, nil
}

// Owner is the uid and gid owning path (following symlinks).
func Owner(path string) (uid, gid int, err error) {
	fi, err := os.Stat(path)
	if err != nil {
		return 0, 0, err
	}
	return ownerOf(fi)
}

func ownerOf(fi fs.FileInfo) (uid, gid int, err error) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, 0, fmt.Errorf("%s: no owner information", fi.Name())
	}
	return int(st.Uid), int(st.Gid), nil
}

// loginShell reads the user's shell from /etc/passwd (os/user does not
// expose it); "" when it cannot tell.
func loginShell(name string) string {
	b, err := os.ReadFile("/etc/passwd")
	if err != nil {
		return ""
	}
	for line := range strings.Lines(string(b)) {
		f := strings.Split(strings.TrimRight(line, "\n"), ":")
		if len(f) == 7 && f[0] == name {
			return f[6]
		}
	}
	return ""
}
