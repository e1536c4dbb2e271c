package limitexec

import (
	"os"
	"slices"
	"strconv"
	"testing"
)

func TestCmdline(t *testing.T) {
	if got := cmdline(); !slices.Equal(got, os.Args) {
		t.Errorf("cmdline() = %q, want os.Args %q", got, os.Args)
	}
}

func TestNumbers(t *testing.T) {
	for _, s := range []string{"0", "7", "100", "1073741824", "18446744073709551615"} {
		n, ok := atou(s)
		want, err := strconv.ParseUint(s, 10, 64)
		if !ok || err != nil || n != want {
			t.Errorf("atou(%q) = %d, %v; want %d", s, n, ok, want)
		}
		if utoa(n) != s {
			t.Errorf("utoa(%d) = %q", n, utoa(n))
		}
	}
	for _, s := range []string{"", "-1", "+1", "1x", " 1", "18446744073709551616", "99999999999999999999"} {
		if n, ok := atou(s); ok {
			t.Errorf("atou(%q) = %d, want a failure", s, n)
		}
	}
}
