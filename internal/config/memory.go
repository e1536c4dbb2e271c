package config

import "flag"

// Memory holds how the core keeps its own memory small; embedded in
// Server. Its option is registered in init below.
type Memory struct {
	// MemoryTrim: once serving, the core asks the kernel to page out the
	// pages of its executable that start-up touched (internal/memtrim):
	// most of the core's resident memory at rest was code and tables only
	// start-up used (--memory-trim). Default true.
	MemoryTrim bool
}

func init() {
	register(
		srv("memory-trim", "once serving, give back to the kernel the pages of Ferry's executable that only start-up used (default true)", func(s *Server) flag.Value {
			return (*boolValue)(&s.MemoryTrim)
		}),
	)
}
