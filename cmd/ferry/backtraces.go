package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/ferry-server/ferry/internal/admin"
)

// backtracesPath adds --pid to the admin API path of --show=backtraces; a
// --pid with another view is an error.
func backtracesPath(path, show string, pid int) (string, error) {
	switch {
	case pid < 0:
		return "", fmt.Errorf("--pid must be a process id, not %d", pid)
	case pid != 0 && show != "backtraces":
		return "", errors.New("--pid goes with --show=backtraces")
	case pid != 0:
		return path + "?pid=" + strconv.Itoa(pid), nil
	}
	return path, nil
}

// writeBacktraces writes the text of `ferry status --show=backtraces`: a
// section per process with its dump, or why there is none.
func writeBacktraces(w io.Writer, raw []byte, pal palette) error {
	var bt admin.Backtraces
	if err := json.Unmarshal(raw, &bt); err != nil {
		return fmt.Errorf("decode /backtraces: %w", err)
	}
	if len(bt.Processes) == 0 {
		fmt.Fprintln(w, "No app processes are running.")
		return nil
	}
	for i, p := range bt.Processes {
		if i > 0 {
			fmt.Fprintln(w)
		}
		fmt.Fprintln(w, pal.bold(section(fmt.Sprintf("Application: %s, pid %d", p.App, p.PID))))
		if p.Error != "" {
			fmt.Fprintln(w, pal.red("no backtraces: "+p.Error))
			continue
		}
		io.WriteString(w, strings.TrimRight(p.Backtraces, "\n")+"\n")
	}
	return nil
}
