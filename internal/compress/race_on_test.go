//go:build race

package compress

// raceEnabled: the race detector is on (it slows the codecs many times).
const raceEnabled = true
