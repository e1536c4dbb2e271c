package config

import (
	"errors"
	"flag"
	"fmt"
	"strings"
)

// FlagError turns an error of fs.Parse into one line in Ferry's words:
// the option, what is wrong, and what to do; an unknown option gets the
// nearest known one ("did you mean"). help is the command whose --help
// lists the options ("ferry start"). valueErr, when not nil, is the error a
// value's Set returned, which flag only keeps as text.
func FlagError(fs *flag.FlagSet, help string, err, valueErr error) error {
	if err == nil || errors.Is(err, flag.ErrHelp) {
		return err
	}
	msg := err.Error()
	if name, ok := strings.CutPrefix(msg, "flag provided but not defined: "); ok {
		name = strings.TrimLeft(name, "-")
		var names []string
		fs.VisitAll(func(f *flag.Flag) {
			if len(f.Name) > 1 {
				names = append(names, f.Name)
			}
		})
		hint := ""
		if s := suggest(name, names); s != "" {
			hint = fmt.Sprintf(" (did you mean --%s?)", s)
		}
		return fmt.Errorf("unknown option --%s%s; '%s --help' lists every option", name, hint, help)
	}
	if name, ok := strings.CutPrefix(msg, "flag needs an argument: "); ok {
		name = longName(fs, strings.TrimLeft(name, "-"))
		return fmt.Errorf("--%s needs a value: --%s VALUE or --%s=VALUE", name, name, name)
	}
	if rest, ok := strings.CutPrefix(msg, "bad flag syntax: "); ok {
		return fmt.Errorf("cannot read %q as an option: write --name or --name=VALUE", rest)
	}
	// invalid value "x" for flag -name: reason / invalid boolean value "x" for -name: reason
	for _, pre := range []string{"invalid value ", "invalid boolean value "} {
		rest, ok := strings.CutPrefix(msg, pre)
		if !ok {
			continue
		}
		value, after, ok := strings.Cut(rest, " for ")
		if !ok {
			break
		}
		after = strings.TrimPrefix(after, "flag ")
		name, reason, ok := strings.Cut(after, ": ")
		if !ok {
			break
		}
		name = longName(fs, strings.TrimLeft(name, "-"))
		if valueErr != nil {
			reason = valueErr.Error()
		}
		return fmt.Errorf("--%s: %s (got %s)", name, reason, value)
	}
	return err
}

// longName is the long name of a one-letter alias (its usage says
// "shorthand for --NAME"), or name itself.
func longName(fs *flag.FlagSet, name string) string {
	if f := fs.Lookup(name); f != nil && len(name) == 1 {
		if long, ok := strings.CutPrefix(f.Usage, "shorthand for --"); ok {
			return long
		}
	}
	return name
}

// suggest is the name among names nearest to the unknown one, if any is
// near enough to be what was meant: a few typos away, or the start of
// only one of them.
func suggest(name string, names []string) string {
	name = strings.ToLower(strings.ReplaceAll(name, "_", "-"))
	best, bestD := "", len(name)/3+2
	for _, n := range names {
		if d := editDistance(name, n); d < bestD || (d == bestD && best != "" && n < best) {
			best, bestD = n, d
		}
	}
	if best != "" {
		return best
	}
	var prefixed []string
	for _, n := range names {
		if len(name) >= 3 && (strings.HasPrefix(n, name) || strings.HasPrefix(name, n)) {
			prefixed = append(prefixed, n)
		}
	}
	if len(prefixed) == 1 {
		return prefixed[0]
	}
	return ""
}

// editDistance is the Levenshtein distance of a and b, counting a swap of
// two neighbours as one edit.
func editDistance(a, b string) int {
	prev2 := make([]int, len(b)+1)
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				cur[j] = min(cur[j], prev2[j-2]+1)
			}
		}
		prev2, prev, cur = prev, cur, prev2
	}
	return prev[len(b)]
}
