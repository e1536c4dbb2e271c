package main

import (
	"context"
	"strings"
	"testing"
)

// TestHelpListsEveryCommand: ferry help is made from the table, so every
// command with usage lines is in it, in table order, and nothing else.
func TestHelpListsEveryCommand(t *testing.T) {
	text := usageText()
	last := -1
	for _, c := range commands() {
		if c.raw == nil && (c.setup == nil || c.help == "") {
			t.Errorf("%s: a command needs raw, or setup and help", c.name)
		}
		if c.help != "" && !strings.HasPrefix(c.help, "Usage: ferry "+c.name) {
			t.Errorf("%s: --help starts %q", c.name, strings.SplitN(c.help, "\n", 2)[0])
		}
		for _, u := range c.usage {
			i := strings.Index(text, "  "+u.form+" ")
			if i < 0 {
				t.Errorf("ferry help lacks %q:\n%s", u.form, text)
				continue
			}
			if i < last {
				t.Errorf("ferry help lists %q out of the table's order", u.form)
			}
			last = i
		}
	}
	for _, l := range strings.Split(text, "\n") {
		if strings.HasPrefix(l, "  ferry ") && !strings.Contains(l[2:], "  ") {
			t.Errorf("no two spaces between form and text: %q", l)
		}
	}
}

func TestLookup(t *testing.T) {
	for _, name := range []string{"start", "version", "-v", "--version", "help", "-h", "--help", "memory-stats"} {
		if _, ok := lookup(name); !ok {
			t.Errorf("lookup(%q) found nothing", name)
		}
	}
	for _, name := range []string{"", "strat", "-x", "Start"} {
		if c, ok := lookup(name); ok {
			t.Errorf("lookup(%q) found %s", name, c.name)
		}
	}
}

// TestPreamble: the shared preamble parses options and the one APP_DIR of
// every command with setup, and names the command in its errors.
func TestPreamble(t *testing.T) {
	for _, c := range commands() {
		if c.setup == nil {
			continue
		}
		err := run(context.Background(), []string{c.name, "--no-such-option"})
		if err == nil || !strings.HasPrefix(err.Error(), c.name+": unknown option --no-such-option") {
			t.Errorf("%s --no-such-option: %v", c.name, err)
		}
		err = run(context.Background(), []string{c.name, "a", "b"})
		if err == nil || err.Error() != c.name+": expected at most one APP_DIR, got [a b]" {
			t.Errorf("%s a b: %v", c.name, err)
		}
	}
	if err := run(context.Background(), []string{"top", "--interval=1ms"}); err == nil ||
		err.Error() != "top: --interval must be at least 100ms (got 1ms)" {
		t.Errorf("top --interval=1ms: %v", err)
	}
	if err := run(context.Background(), []string{"stop", "--timout", "1s"}); err == nil ||
		!strings.Contains(err.Error(), "did you mean --timeout?") {
		t.Errorf("stop --timout: %v", err)
	}
}
