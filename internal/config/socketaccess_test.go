package config

import (
	"os"
	"strconv"
	"strings"
	"testing"
)

func TestSocketGroup(t *testing.T) {
	dir := wsgiApp(t)
	sock := t.TempDir() + "/f.sock"
	if c := load(t, nil, dir, "--socket", sock); c.SocketGID != -1 || c.SocketMode != 0o660 {
		t.Fatalf("default: gid %d mode %o", c.SocketGID, c.SocketMode)
	}
	own := strconv.Itoa(os.Getegid())
	if c := load(t, []string{"FERRY_SOCKET_GROUP=" + own}, dir, "--socket", sock); c.SocketGID != os.Getegid() {
		t.Fatalf("FERRY_SOCKET_GROUP=%s: gid %d", own, c.SocketGID)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--socket-group", own}, "--socket-group: has no effect without --socket"},
		{[]string{"--socket", sock, "--socket-group", "no-such-group-here"}, `--socket-group: no group "no-such-group-here"`},
	} {
		_, err := Load(append([]string{dir}, tc.args...), nil)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: %v, want %q", tc.args, err, tc.want)
		}
	}
	if os.Geteuid() != 0 {
		// Not root: a group it is not in is refused before anything listens.
		_, err := Load([]string{dir, "--socket", sock, "--socket-group", "0"}, nil)
		if err == nil || !strings.Contains(err.Error(), "start Ferry as root, or add its user to") {
			t.Errorf("a group Ferry is not in: %v", err)
		}
	}
}
