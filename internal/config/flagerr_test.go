package config

import (
	"strings"
	"testing"
)

func TestFlagErrors(t *testing.T) {
	dir := wsgiApp(t)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--prot", "3"}, "unknown option --prot (did you mean --port?); 'ferry start --help' lists every option"},
		{[]string{"--max-pool", "3"}, "unknown option --max-pool (did you mean --max-pool-size?)"},
		{[]string{"--min_instances", "3"}, "unknown option --min_instances (did you mean --min-instances?)"},
		{[]string{"--frobnicate"}, "unknown option --frobnicate; 'ferry start --help' lists every option"},
		{[]string{"--port"}, "--port needs a value: --port VALUE or --port=VALUE"},
		{[]string{"--port", "abc"}, `--port: want a whole number (got "abc")`},
		{[]string{"-p", "abc"}, `--port: want a whole number (got "abc")`},
		{[]string{"--daemonize=maybe"}, `--daemonize: want true or false (got "maybe")`},
		{[]string{"---x"}, `cannot read "---x" as an option`},
		{[]string{"--log-level", "loud"}, `--log-level: want debug, info, warn, error, or Passenger's 0-7 (got "loud")`},
	} {
		_, err := Load(append([]string{dir}, tc.args...), nil)
		if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%q: %v, want one line with %q", tc.args, err, tc.want)
		}
	}
}

func TestSuggest(t *testing.T) {
	names := []string{"port", "address", "max-pool-size", "min-instances", "log-file", "log-level", "log-format"}
	for in, want := range map[string]string{
		"prot": "port", "adress": "address", "max-pool": "max-pool-size", "log-levle": "log-level",
		"log": "", "x": "", "completely-unrelated": "", "maxpoolsize": "max-pool-size",
	} {
		if got := suggest(in, names); got != want {
			t.Errorf("suggest(%q) = %q, want %q", in, got, want)
		}
	}
}
