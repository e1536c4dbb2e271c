package turbocache

import (
	"math/rand/v2"
	"sync"
	"sync/atomic"
)

// stripes is how many read locks a shard has.
const stripes = 8

// shardLock is a shard's lock: a write lock made of every stripe's, and
// read locks on one stripe each, picked at random, so that hits on two
// cores (for one hot URL, the same shard) seldom touch the same cache
// line: one RWMutex shared by all readers moves between the cores on
// every RLock and RUnlock (BenchmarkLookupHitParallel). The hits counter
// of a stripe sits on its line too. Writers (stores, evictions, misses
// that start a fetch) take all the stripes, which costs them little next
// to what they do.
type shardLock struct {
	s [stripes]stripe
}

type stripe struct {
	mu   sync.RWMutex
	hits atomic.Int64
	_    [64 - 32]byte
}

func (l *shardLock) Lock() {
	for i := range l.s {
		l.s[i].mu.Lock()
	}
}

func (l *shardLock) Unlock() {
	for i := len(l.s) - 1; i >= 0; i-- {
		l.s[i].mu.Unlock()
	}
}

// RLock read-locks one stripe and returns it, for RUnlock and hit.
func (l *shardLock) RLock() int {
	i := int(rand.Uint32() % stripes)
	l.s[i].mu.RLock()
	return i
}

func (l *shardLock) RUnlock(i int) { l.s[i].mu.RUnlock() }

// hit counts a request answered from the cache, on stripe i (from RLock),
// or on any stripe for i < 0.
func (l *shardLock) hit(i int) {
	if i < 0 {
		i = int(rand.Uint32() % stripes)
	}
	l.s[i].hits.Add(1)
}

func (l *shardLock) hits() (n int64) {
	for i := range l.s {
		n += l.s[i].hits.Load()
	}
	return n
}
