// Package testsock serves fake app processes on Unix sockets, for tests of
// the packages that talk to apps (proxy, pool, server).
package testsock

import (
	"bufio"
	"net"
	"os"
	"path/filepath"
	"testing"
)

// Listen opens a Unix socket in a new temporary directory with a short
// path (socket paths are limited to 108 bytes), closed and removed when
// the test ends.
func Listen(tb testing.TB) (ln net.Listener, path string) {
	tb.Helper()
	dir, err := os.MkdirTemp("", "ts")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { os.RemoveAll(dir) })
	path = filepath.Join(dir, "s")
	if ln, err = net.Listen("unix", path); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { ln.Close() })
	return ln, path
}

// Serve calls handle, in a goroutine of its own, with every connection
// accepted on a new socket until the test ends, closing the connection
// when handle returns. It returns the socket's path.
func Serve(tb testing.TB, handle func(net.Conn)) string {
	tb.Helper()
	ln, path := Listen(tb)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				handle(c)
			}()
		}
	}()
	return path
}

// AnswerHeads answers every request head read on a connection (requests
// without a body) with resp, allocating nothing per request, so that
// benchmarks measure their side and not this one.
func AnswerHeads(resp []byte) func(net.Conn) {
	return func(c net.Conn) {
		br := bufio.NewReaderSize(c, 16<<10)
		for {
			for { // the head, up to its empty line
				line, err := br.ReadSlice('\n')
				if err != nil {
					return
				}
				if len(line) <= 2 {
					break
				}
			}
			if _, err := c.Write(resp); err != nil {
				return
			}
		}
	}
}
