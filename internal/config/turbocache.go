package config

import (
	"errors"
	"flag"
	"strconv"
	"strings"
	"time"
)

// Turbocache options beyond its bounds (which options.go registers): how
// far the cache goes past Passenger's. The fields live in Server (config.go).

func init() {
	register(
		srv("turbocache-max-variants", "most variants (`N`) of one URL the cache keeps for responses with Vary; storing one more drops the oldest", func(s *Server) flag.Value { return (*atLeastOne)(&s.TurbocacheMaxVariants) }),
		srv("turbocache-stale-if-unreachable", "`SECONDS` past its freshness a cached response may still be served while its app cannot be reached (never for must-revalidate; 0 = only when the app sent stale-if-error)", func(s *Server) flag.Value { return (*nonNegativeSeconds)(&s.TurbocacheStaleIfUnreachable) }),
	)
}

// atLeastOne is a whole number of 1 or more.
type atLeastOne int

func (v *atLeastOne) String() string { return strconv.Itoa(int(*v)) }
func (v *atLeastOne) Set(s string) error {
	n, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil || n < 1 {
		return errors.New("want a whole number of at least 1")
	}
	*v = atLeastOne(n)
	return nil
}

// nonNegativeSeconds is a duration in seconds, 0 or more.
type nonNegativeSeconds time.Duration

func (v *nonNegativeSeconds) String() string {
	return strconv.FormatFloat(time.Duration(*v).Seconds(), 'f', -1, 64)
}
func (v *nonNegativeSeconds) Set(s string) error {
	d, err := ParseSeconds(s)
	if err != nil {
		return err
	}
	if d < 0 {
		return errors.New("want 0 or more seconds")
	}
	*v = nonNegativeSeconds(d)
	return nil
}
