package server

import (
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// TestSocketGroup: --socket-group gives the socket to the web server's
// group, with --socket-mode's bits, so that a proxy running as another user
// in that group may connect.
func TestSocketGroup(t *testing.T) {
	gid := otherGroup(t)
	for _, tc := range []struct {
		name    string
		gid     int
		wantGID int
	}{
		{"given", gid, gid},
		{"default", 0, os.Getegid()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h, _ := benchHandler(t, helloResp, false, Options{})
			sock := filepath.Join(t.TempDir(), "s")
			c := Config{Socket: sock, SocketMode: 0o660, SocketGID: tc.gid, HeaderTimeout: 5 * time.Second, IdleTimeout: time.Minute}
			s, err := Listen(c, h, slog.New(slog.NewTextHandler(io.Discard, nil)))
			if err != nil {
				t.Fatal(err)
			}
			defer s.Shutdown(t.Context())
			fi, err := os.Stat(sock)
			if err != nil {
				t.Fatal(err)
			}
			st := fi.Sys().(*syscall.Stat_t)
			if int(st.Gid) != tc.wantGID || fi.Mode().Perm() != 0o660 {
				t.Fatalf("socket group %d mode %v, want group %d mode 0660", st.Gid, fi.Mode().Perm(), tc.wantGID)
			}
		})
	}
}

// otherGroup is a group this process may give its files to, other than
// its own: any group as root, else one of its supplementary groups.
func otherGroup(t *testing.T) int {
	if os.Geteuid() == 0 {
		return 33 // www-data on Debian; root may use any gid
	}
	groups, _ := os.Getgroups()
	for _, g := range groups {
		if g != os.Getegid() {
			return g
		}
	}
	t.Skip("not root and in no supplementary group")
	return 0
}
