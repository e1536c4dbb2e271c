package spawn

import (
	"os/exec"
	"strconv"

	"github.com/ferry-server/ferry/internal/spawn/limitexec"
)

// Resource limits must be in place before the app's first instruction: a
// process with limits to set starts as this binary itself, under the name
// limitexec.Name, which sets them and execs the real program in its place
// (package limitexec says why and how).

// withLimits makes cmd start through the helper when the spawner has limits
// to set (by default: core dumps off).
func (s *Spawner) withLimits(cmd *exec.Cmd) {
	if cmd.Err != nil || s.cfg.CoreDumps && s.cfg.FileDescriptorLimit <= 0 {
		return
	}
	core := "keep"
	if !s.cfg.CoreDumps {
		core = "0"
	}
	args := []string{limitexec.Name, core, strconv.Itoa(s.cfg.FileDescriptorLimit), cmd.Path}
	cmd.Args = append(args, cmd.Args...)
	// The running binary, whatever its path now: /proc/self/exe in the
	// forked child is the core's executable, reachable whatever the
	// permissions of the directories it lives in.
	cmd.Path = "/proc/self/exe"
}
