// Package memtrim gives back to the kernel the pages of Ferry's own
// executable that only start-up touched. A Go binary's init functions and
// the registration tables of every linked library (protobuf descriptors,
// metric and trace conventions, certificate and QUIC code that may never
// run) are read once at start and then stay in the resident set: about
// two thirds of the core's RSS at rest was its executable's pages, of
// which the request path uses a fraction. It owns no policy beyond that:
// the core decides when to call it.
package memtrim

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"syscall"

	"golang.org/x/sys/unix"
)

// Mapping is an address range of a process's memory map.
type Mapping struct {
	Start, End uint64
}

// ExecutableReadOnly picks, from a /proc/PID/maps listing, the mappings
// of the file with inode ino that are not writable: the executable's code
// and read-only data, which the kernel can always read again from the
// file. Writable mappings (data, BSS: private copies once written) are
// left alone.
func ExecutableReadOnly(maps io.Reader, ino uint64) ([]Mapping, error) {
	var out []Mapping
	sc := bufio.NewScanner(maps)
	for sc.Scan() {
		// address perms offset dev inode [pathname]
		f := bytes.Fields(sc.Bytes())
		if len(f) < 6 {
			continue
		}
		if n, err := strconv.ParseUint(string(f[4]), 10, 64); err != nil || n != ino {
			continue
		}
		if perms := f[1]; len(perms) < 2 || perms[1] == 'w' {
			continue
		}
		lo, hi, ok := bytes.Cut(f[0], []byte("-"))
		if !ok {
			continue
		}
		start, err1 := strconv.ParseUint(string(lo), 16, 64)
		end, err2 := strconv.ParseUint(string(hi), 16, 64)
		if err1 != nil || err2 != nil || end <= start {
			continue
		}
		out = append(out, Mapping{start, end})
	}
	return out, sc.Err()
}

// ErrUnsupported: the kernel has no MADV_PAGEOUT (before Linux 5.4).
var ErrUnsupported = errors.New("the kernel cannot page out on request (MADV_PAGEOUT needs Linux 5.4)")

// Trim asks the kernel to page out the read-only mappings of this
// process's executable, and returns how many bytes it asked for. Pages a
// later request needs come back at their first use (a minor fault from
// the page cache, or a read of the file if the kernel evicted them).
func Trim() (int64, error) {
	var st syscall.Stat_t
	if err := syscall.Stat("/proc/self/exe", &st); err != nil {
		return 0, fmt.Errorf("trim memory: %w", err)
	}
	maps, err := os.Open("/proc/self/maps")
	if err != nil {
		return 0, fmt.Errorf("trim memory: %w", err)
	}
	defer maps.Close()
	ms, err := ExecutableReadOnly(maps, st.Ino)
	if err != nil {
		return 0, fmt.Errorf("trim memory: read /proc/self/maps: %w", err)
	}
	var n int64
	for _, m := range ms {
		// The addresses are the kernel's, not Go pointers: no unsafe.
		if _, _, e := syscall.Syscall(syscall.SYS_MADVISE, uintptr(m.Start), uintptr(m.End-m.Start), unix.MADV_PAGEOUT); e != 0 {
			if e == syscall.EINVAL {
				return n, ErrUnsupported
			}
			return n, fmt.Errorf("trim memory: madvise %x-%x: %w", m.Start, m.End, e)
		}
		n += int64(m.End - m.Start)
	}
	return n, nil
}
