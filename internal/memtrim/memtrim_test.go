package memtrim

import (
	"errors"
	"os"
	"reflect"
	"strconv"
	"strings"
	"testing"
)

func TestExecutableReadOnly(t *testing.T) {
	maps := `00400000-00eb3000 r-xp 00000000 fe:01 4242 /usr/bin/ferry
00eb3000-01a70000 r--p 00ab3000 fe:01 4242 /usr/bin/ferry
01a70000-01b9b000 rw-p 01670000 fe:01 4242 /usr/bin/ferry
01b9b000-01bd0000 rw-p 00000000 00:00 0
7f0b7b96e000-7f0b7bac4000 r-xp 00028000 fe:01 777 /usr/lib/x86_64-linux-gnu/libc.so.6
7f0b7c000000-7f0b7c001000 r--p 00000000 fe:01 4242 /usr/bin/ferry (deleted)
7fff0000-7ffe0000 r--p 00000000 fe:01 4242 /usr/bin/ferry
zz-yy r--p 00000000 fe:01 4242 /usr/bin/ferry
short line
`
	got, err := ExecutableReadOnly(strings.NewReader(maps), 4242)
	if err != nil {
		t.Fatal(err)
	}
	want := []Mapping{
		{0x00400000, 0x00eb3000}, // code
		{0x00eb3000, 0x01a70000}, // read-only data
		// not the writable data, the BSS, another file's, or nonsense;
		// a binary replaced on disk (an upgrade) is still the same inode
		{0x7f0b7c000000, 0x7f0b7c001000},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %x\nwant %x", got, want)
	}
}

// TestTrim: trimming the test binary's own pages lowers its RssFile.
func TestTrim(t *testing.T) {
	before := rssFile(t)
	n, err := Trim()
	if errors.Is(err, ErrUnsupported) {
		t.Skip(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	if n <= 0 {
		t.Fatalf("advised %d bytes", n)
	}
	if after := rssFile(t); after >= before {
		t.Fatalf("RssFile %d kB before, %d kB after trimming %d bytes", before, after, n)
	} else {
		t.Logf("RssFile %d kB → %d kB (%d bytes advised)", before, after, n)
	}
}

func rssFile(t *testing.T) int {
	t.Helper()
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "RssFile:"); ok {
			n, err := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")))
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatal("no RssFile in /proc/self/status")
	return 0
}
