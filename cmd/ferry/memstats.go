package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/prometheus/procfs"
	"golang.org/x/term"

	"github.com/ferry-server/ferry/internal/procstat"
)

const memoryStatsHelp = `Usage: ferry memory-stats [APP_DIR | --instance DIR | --pid-file FILE] [options]

Shows the memory of an instance's core and of every app process (preloaders,
workers, and whatever they started), like passenger-memory-stats: RSS, PSS,
private dirty and shared memory, and the totals.

It reads /proc and never asks the core, so it works while the core is wedged.
App processes are found by the FERRY_INSTANCE variable in their environment.
PSS is the figure to add up: it counts each shared page once in all.
`

func memoryStatsCommand(fs *flag.FlagSet) func(context.Context, string) error {
	var target targetFlags
	target.register(fs)
	asJSON := fs.Bool("json", false, "print JSON instead of a table")
	return func(_ context.Context, appDir string) error { return memoryStats(&target, appDir, *asJSON) }
}

func memoryStats(target *targetFlags, appDir string, asJSON bool) error {
	in, err := target.pick(appDir)
	if err != nil {
		return fmt.Errorf("memory-stats: %w", err)
	}
	if in.PID == 0 {
		props, err := readProperties(in.Dir)
		if err != nil {
			return fmt.Errorf("memory-stats: %w", err)
		}
		in.PID = props.PID
	}
	rep, err := readMemory(in.Dir, in.PID)
	if err != nil {
		return fmt.Errorf("memory-stats: %w", err)
	}
	if asJSON {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	}
	cmdWidth := 60
	if fd := int(os.Stdout.Fd()); term.IsTerminal(fd) {
		if w, _, err := term.GetSize(fd); err == nil {
			// What the other columns leave, but never unreadably little.
			cmdWidth = max(w-75, 30)
		}
	}
	var out bytes.Buffer
	writeMemoryStats(&out, rep, cmdWidth, paletteFor(os.Stdout))
	_, err = os.Stdout.Write(out.Bytes())
	return err
}

// memReport is what memory-stats shows, and its JSON.
type memReport struct {
	Instance  string       `json:"instance"`
	CorePID   int          `json:"core_pid"`
	Processes []memProcess `json:"processes"`
	Total     memUsage     `json:"total"`
	// Problems are what could not be read, such as a core that is gone.
	Problems []string `json:"problems,omitempty"`
}

// memProcess is one process of the instance.
type memProcess struct {
	PID  int `json:"pid"`
	PPID int `json:"ppid"`
	// Role is core, preloader, app (a process serving requests, forked or
	// started directly) or child (a process an app process started).
	Role string `json:"role"`
	// AppRoot is the app the process belongs to (FERRY_APP_ROOT); "" for
	// the core.
	AppRoot string `json:"app_root,omitempty"`
	Command string `json:"command"`
	memUsage
}

// memUsage is memory in bytes; Shared is shared clean plus shared dirty.
// PSS and the others are 0 when only RSS could be read.
type memUsage struct {
	RSS          int64 `json:"rss_bytes"`
	PSS          int64 `json:"pss_bytes"`
	PrivateDirty int64 `json:"private_dirty_bytes"`
	PrivateClean int64 `json:"private_clean_bytes"`
	Shared       int64 `json:"shared_bytes"`
	Swap         int64 `json:"swap_bytes"`
}

func (u *memUsage) add(o memUsage) {
	u.RSS += o.RSS
	u.PSS += o.PSS
	u.PrivateDirty += o.PrivateDirty
	u.PrivateClean += o.PrivateClean
	u.Shared += o.Shared
	u.Swap += o.Swap
}

// readMemory finds the core (corePID) and the app processes of the
// instance in dir, and reads their memory from /proc.
func readMemory(dir string, corePID int) (memReport, error) {
	rep := memReport{Instance: dir, CorePID: corePID, Processes: []memProcess{}}
	fs, err := procfs.NewDefaultFS()
	if err != nil {
		return rep, fmt.Errorf("open /proc: %w", err)
	}
	found, err := instanceProcesses(fs, dir, corePID)
	if err != nil {
		return rep, err
	}
	for _, f := range found {
		s, err := procstat.Read(f.pid)
		if errors.Is(err, os.ErrNotExist) {
			if f.pid == corePID {
				rep.Problems = append(rep.Problems, fmt.Sprintf("the core (pid %d) is not running", corePID))
			}
			continue // exited since the scan
		}
		if err != nil {
			rep.Problems = append(rep.Problems, err.Error())
			continue
		}
		m := s.Memory
		rep.Processes = append(rep.Processes, memProcess{
			PID: f.pid, PPID: f.ppid, Role: f.role, AppRoot: f.appRoot, Command: s.Command,
			memUsage: memUsage{RSS: m.RSS, PSS: m.PSS, PrivateDirty: m.PrivateDirty,
				PrivateClean: m.PrivateClean, Shared: m.SharedClean + m.SharedDirty, Swap: m.Swap},
		})
	}
	for _, p := range rep.Processes {
		rep.Total.add(p.memUsage)
	}
	return rep, nil
}

// found is a process of the instance as the /proc scan sees it.
type found struct {
	pid, ppid int
	smart     bool   // FERRY_SPAWN_METHOD=smart in its environment
	appRoot   string // FERRY_APP_ROOT in its environment
	role      string
}

// instanceProcesses lists the core and every process whose environment
// names the instance dir, with their roles, core first.
func instanceProcesses(fs procfs.FS, dir string, corePID int) ([]found, error) {
	procs, err := fs.AllProcs()
	if err != nil {
		return nil, fmt.Errorf("list processes: %w", err)
	}
	want := instanceMarkers(dir)
	var out []found
	for _, p := range procs {
		if p.PID == corePID {
			continue
		}
		// Processes of other users are unreadable unless we are root; they
		// are not the instance's anyway when it is ours.
		env, err := os.ReadFile(filepath.Join(procfs.DefaultMountPoint, strconv.Itoa(p.PID), "environ"))
		if err != nil || !hasAny(env, want) {
			continue
		}
		st, err := p.Stat()
		if err != nil {
			continue // gone
		}
		fp := found{pid: p.PID, ppid: st.PPID}
		for _, kv := range strings.Split(string(env), "\x00") {
			if kv == "FERRY_SPAWN_METHOD=smart" {
				fp.smart = true
			}
			if root, ok := strings.CutPrefix(kv, "FERRY_APP_ROOT="); ok {
				fp.appRoot = root
			}
		}
		out = append(out, fp)
	}
	return classify(corePID, out), nil
}

// instanceMarkers are the environment entries that mark a process of the
// instance in dir: FERRY_INSTANCE as the core wrote it, which is the path
// it was given, maybe with a relative or unclean registry.
func instanceMarkers(dir string) [][]byte {
	forms := []string{dir, filepath.Clean(dir)}
	if abs, err := filepath.Abs(dir); err == nil {
		forms = append(forms, abs)
	}
	var out [][]byte
	for _, f := range forms {
		out = append(out, []byte("FERRY_INSTANCE="+f+"\x00"))
	}
	return out
}

func hasAny(env []byte, markers [][]byte) bool {
	for _, m := range markers {
		// Entries are NUL-terminated; the marker must start an entry.
		if bytes.HasPrefix(env, m) || bytes.Contains(env, append([]byte{0}, m...)) {
			return true
		}
	}
	return false
}

// classify gives each process its role and sorts them: the core, then
// preloaders, app processes and their children, each by pid.
//
// A preloader is a process the core started with FERRY_SPAWN_METHOD=smart.
// The variable alone does not tell: workers forked from a preloader
// inherit its environment, and /proc shows them the same. So a preloader is
// such a process whose parent is the core. A child is a process whose parent
// is an app process other than a preloader; every other one is an app
// process, including workers whose preloader has exited (their parent is
// then init).
func classify(corePID int, procs []found) []found {
	byPID := map[int]*found{}
	for i := range procs {
		byPID[procs[i].pid] = &procs[i]
	}
	for i := range procs {
		p := &procs[i]
		switch parent := byPID[p.ppid]; {
		case p.ppid == corePID && p.smart:
			p.role = "preloader"
		case parent != nil && !(parent.ppid == corePID && parent.smart):
			p.role = "child"
		default:
			p.role = "app"
		}
	}
	rank := map[string]int{"core": 0, "preloader": 1, "app": 2, "child": 3}
	out := append([]found{{pid: corePID, role: "core"}}, procs...)
	slices.SortStableFunc(out, func(a, b found) int {
		if r := rank[a.role] - rank[b.role]; r != 0 {
			return r
		}
		return a.pid - b.pid
	})
	return out
}

// writeMemoryStats writes the table of memory-stats; commands are cut to
// cmdWidth characters.
func writeMemoryStats(w io.Writer, rep memReport, cmdWidth int, pal palette) {
	fmt.Fprintln(w, pal.bold(section("Ferry instance "+rep.Instance)))
	fmt.Fprintln(w)
	// With several apps, say which each process serves.
	roots := map[string]bool{}
	for _, p := range rep.Processes {
		if p.AppRoot != "" {
			roots[p.AppRoot] = true
		}
	}
	withApp := len(roots) > 1
	head := []string{"PID", "PPID", "ROLE", "RSS", "PSS", "PRIVATE DIRTY", "SHARED", "COMMAND"}
	if withApp {
		head = slices.Insert(head, 3, "APP")
	}
	rows := [][]string{head}
	partial := false
	for _, p := range rep.Processes {
		pss, priv, shared := humanBytes(p.PSS), humanBytes(p.PrivateDirty), humanBytes(p.Shared)
		if p.PSS == 0 && p.RSS > 0 {
			pss, priv, shared, partial = "?", "?", "?", true
		}
		ppid := strconv.Itoa(p.PPID)
		if p.Role == "core" {
			ppid = "-"
		}
		row := []string{strconv.Itoa(p.PID), ppid, p.Role, humanBytes(p.RSS), pss, priv, shared,
			truncate(p.Command, cmdWidth)}
		if withApp {
			app := "-"
			if p.AppRoot != "" {
				app = filepath.Base(p.AppRoot)
			}
			row = slices.Insert(row, 3, app)
		}
		rows = append(rows, row)
	}
	t := rep.Total
	procs := plural(uint64(len(rep.Processes)), "process")
	total := []string{"", "", "total", humanBytes(t.RSS), humanBytes(t.PSS), humanBytes(t.PrivateDirty),
		humanBytes(t.Shared), procs}
	if withApp {
		total = slices.Insert(total, 3, "")
	}
	rows = append(rows, total)
	lines := tabulate(rows)
	for i, l := range lines {
		if i == 0 || i == len(lines)-1 {
			l = pal.bold(l)
		}
		fmt.Fprintln(w, "  "+l)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "The PSS total is what these processes use together; RSS counts shared pages once per process.")
	if partial {
		fmt.Fprintln(w, "?: only RSS is readable for this process (another user's, or a kernel without smaps).")
	}
	for _, p := range rep.Problems {
		fmt.Fprintln(w, pal.red("problem: "+p))
	}
}
