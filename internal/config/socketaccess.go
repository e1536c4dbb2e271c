package config

import (
	"flag"
	"os"
	"slices"
	"strconv"

	"github.com/ferry-server/ferry/internal/identity"
)

// SocketAccess says who may connect to --socket besides Ferry's own user:
// the web server in front, which on Debian runs as www-data. Embedded in
// Server; --socket-mode (front.go) gives the permission bits.
type SocketAccess struct {
	// SocketGroup gives --socket to this group (name or gid), so that with
	// the default --socket-mode 0660 its members may connect
	// (--socket-group). Default "": the group Ferry runs with.
	SocketGroup string
	// SocketGID is SocketGroup resolved; -1 when it is not set.
	SocketGID int `json:"-"`
}

func init() {
	register(
		srv("socket-group", "give --socket to this `GROUP` (e.g. www-data, the user nginx and Apache run as on Debian), so --socket-mode 0660 lets them connect", func(s *Server) flag.Value {
			return (*strValue)(&s.SocketGroup)
		}),
	)
}

// finish resolves --socket-group and checks Ferry may hand the socket to
// it: only root, or a member of the group, may.
func (s *SocketAccess) finish(p *problems, socket string) {
	s.SocketGID = -1
	if s.SocketGroup == "" {
		return
	}
	if socket == "" {
		p.bad("socket-group", "has no effect without --socket")
		return
	}
	gid, name, err := identity.LookupGroup(s.SocketGroup)
	if err != nil {
		p.bad("socket-group", "%v", err)
		return
	}
	if !canChgrp(gid) {
		uid := strconv.Itoa(os.Getuid())
		p.bad("socket-group", "Ferry runs as uid %s, which is not in group %s and so cannot give it the socket; start Ferry as root, or add its user to %s", uid, name, name)
		return
	}
	s.SocketGID = gid
}

// canChgrp says whether this process may give a file it owns to gid.
func canChgrp(gid int) bool {
	if os.Geteuid() == 0 || os.Getegid() == gid {
		return true
	}
	groups, err := os.Getgroups()
	return err == nil && slices.Contains(groups, gid)
}
