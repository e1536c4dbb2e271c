package identity

import (
	"fmt"
	"os"
	"path/filepath"
)

// Policy is how an app's user is chosen when the core runs as root; its
// fields are the options of the same names.
type Policy struct {
	// User and Group, when set, are who the app runs as (--user, --group).
	// Group alone changes only the primary group.
	User, Group string
	// DefaultUser runs apps whose startup file root owns, or whose owner is
	// not in the user database (--default-user; "" means nobody).
	// DefaultGroup is its group ("" means its primary group).
	DefaultUser, DefaultGroup string
	// Switching false runs every app as DefaultUser (--user-switching).
	Switching bool
	// AllowRoot lets an app run as root or with group root, when --user,
	// --group, --default-user or --default-group say so. A root-owned
	// startup file alone never makes an app run as root.
	AllowRoot bool
}

// Choice is the user an app runs as and why, for the log.
type Choice struct {
	*User
	// Why says which rule chose it, e.g. "owner of config.ru".
	Why string
}

// Choose picks who the app rooted at root with startup file startup
// (relative to root; "" for generic apps, which go by the directory) runs
// as. When the core does not run as root, that is the core's own user, and
// asking for another is an error: the kernel would not let it switch.
func (p Policy) Choose(root, startup string) (Choice, error) {
	owned := root
	what := "the app directory"
	if startup != "" {
		owned = filepath.Join(root, startup)
		what = startup
	}
	if os.Geteuid() != 0 {
		cur, err := Current()
		if err != nil {
			return Choice{}, err
		}
		if err := p.checkUnprivileged(cur); err != nil {
			return Choice{}, err
		}
		return Choice{cur, "Ferry's own user (Ferry does not run as root)"}, nil
	}

	var (
		u   *User
		why string
		err error
	)
	explicitGroup := p.Group
	switch {
	case !p.Switching:
		u, err = p.defaultUser()
		why = "--default-user (user switching is off)"
		explicitGroup = p.DefaultGroup
	case p.User != "":
		u, err = Lookup(p.User)
		why = "--user"
	default:
		uid, _, serr := Owner(owned)
		if serr != nil {
			return Choice{}, fmt.Errorf("find the owner of %s: %w", owned, serr)
		}
		var known bool
		if uid != 0 {
			u, known, err = LookupID(uid)
			if err != nil {
				return Choice{}, err
			}
		}
		switch {
		case uid == 0:
			why = fmt.Sprintf("--default-user (%s is owned by root)", what)
		case !known:
			why = fmt.Sprintf("--default-user (%s is owned by uid %d, which has no user)", what, uid)
		default:
			why = "owner of " + what
		}
		if uid == 0 || !known {
			u, err = p.defaultUser()
			if p.Group == "" {
				explicitGroup = p.DefaultGroup
			}
		}
	}
	if err != nil {
		return Choice{}, err
	}
	if explicitGroup != "" {
		gid, name, err := LookupGroup(explicitGroup)
		if err != nil {
			return Choice{}, err
		}
		u = u.WithGroup(gid, name)
	}
	if (u.UID == 0 || u.GID == 0) && !p.AllowRoot {
		return Choice{}, fmt.Errorf("the app would run as %s, with root's privileges; Ferry never does that unless --allow-root-apps is given", u)
	}
	return Choice{u, why}, nil
}

func (p Policy) defaultUser() (*User, error) {
	name := p.DefaultUser
	if name == "" {
		name = "nobody"
	}
	u, err := Lookup(name)
	if err != nil {
		return nil, fmt.Errorf("--default-user: %w", err)
	}
	return u, nil
}

// checkUnprivileged refuses a --user or --group other than the core's own
// when the core cannot switch users.
func (p Policy) checkUnprivileged(cur *User) error {
	if p.User != "" {
		u, err := Lookup(p.User)
		if err != nil {
			return err
		}
		if u.UID != cur.UID {
			return fmt.Errorf("--user %s: Ferry runs as %s, not root, so its apps run as %s too; start Ferry as root to run apps as another user, or drop --user",
				p.User, cur.Name, cur.Name)
		}
	}
	if p.Group != "" {
		gid, _, err := LookupGroup(p.Group)
		if err != nil {
			return err
		}
		if gid != cur.GID {
			return fmt.Errorf("--group %s: Ferry runs as %s with group %s, not root, so its apps run with group %s too; start Ferry as root to choose another group, or drop --group",
				p.Group, cur.Name, cur.Group, cur.Group)
		}
	}
	return nil
}

// Check validates the names in p without an app at hand, for configuration
// time: every user and group exists, root only when allowed, and nothing
// the core cannot do when it is not root.
func (p Policy) Check() error {
	if os.Geteuid() != 0 {
		cur, err := Current()
		if err != nil {
			return err
		}
		return p.checkUnprivileged(cur)
	}
	var gid = -1
	if p.Group != "" {
		g, _, err := LookupGroup(p.Group)
		if err != nil {
			return fmt.Errorf("--group: %w", err)
		}
		gid = g
	}
	if p.User != "" {
		u, err := Lookup(p.User)
		if err != nil {
			return fmt.Errorf("--user: %w", err)
		}
		if (u.UID == 0 || (gid < 0 && u.GID == 0)) && !p.AllowRoot {
			return fmt.Errorf("--user %s: running an app as root needs --allow-root-apps", p.User)
		}
	}
	if gid == 0 && !p.AllowRoot {
		return fmt.Errorf("--group %s: running an app with group root needs --allow-root-apps", p.Group)
	}
	d, err := p.defaultUser()
	if err != nil {
		return err
	}
	dgid := d.GID
	if p.DefaultGroup != "" {
		g, _, err := LookupGroup(p.DefaultGroup)
		if err != nil {
			return fmt.Errorf("--default-group: %w", err)
		}
		dgid = g
	}
	if (d.UID == 0 || dgid == 0) && !p.AllowRoot {
		return fmt.Errorf("--default-user %s: running apps as root needs --allow-root-apps", d.Name)
	}
	return nil
}
