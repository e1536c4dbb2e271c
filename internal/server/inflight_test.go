package server

import (
	"slices"
	"testing"
	"time"
)

// TestInflightSet: requests added are listed (oldest first, with their
// whole target) until removed, whichever shard they fell in and in
// whatever order they leave; adding and removing allocates nothing.
func TestInflightSet(t *testing.T) {
	var s inflightSet
	t0 := time.Now()
	rs := make([]*inflight, 40)
	shards := make([]*inflightShard, len(rs))
	for i := range rs {
		rs[i] = &inflight{method: "GET", path: "/p", start: t0.Add(time.Duration(i) * time.Millisecond)}
		if i%3 == 0 {
			rs[i].query, rs[i].hasQuery = "i=1", true
		}
		shards[i] = s.add(rs[i])
	}
	for _, i := range []int{39, 0, 17, 18, 5} { // a head, a tail, neighbours
		shards[i].remove(rs[i])
		rs[i] = nil
	}
	got := s.list()
	var want []time.Time
	for _, r := range rs {
		if r != nil {
			want = append(want, r.start)
		}
	}
	var starts []time.Time
	for _, g := range got {
		starts = append(starts, g.Start)
	}
	if !slices.Equal(starts, want) {
		t.Fatalf("listed %d requests, want %d in start order:\n%v\n%v", len(got), len(want), starts, want)
	}
	if got[0].Path != "/p" || got[1].Path != "/p" || got[2].Path != "/p?i=1" {
		t.Errorf("paths %q %q %q", got[0].Path, got[1].Path, got[2].Path)
	}
	r := &inflight{path: "/x"}
	if n := testing.AllocsPerRun(100, func() { s.add(r).remove(r) }); n != 0 {
		t.Errorf("add+remove allocates %v times", n)
	}
	for i, r := range rs {
		if r != nil {
			shards[i].remove(r)
		}
	}
	if got := s.list(); len(got) != 0 {
		t.Errorf("%d left after removing all", len(got))
	}
}
