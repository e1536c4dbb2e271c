package config

import "flag"

// Logging holds the settings of the logs kept for `ferry logs`; embedded in
// Server. Its option is registered in init below.
type Logging struct {
	// LogBufferSize is how many bytes of the latest records of the core's
	// log and the apps' output the core keeps in memory for `ferry logs`
	// (--log-buffer-size), whatever file or stream they go to. Default 0
	// here means the built-in 1 MiB. Read at start.
	LogBufferSize int64
}

func init() {
	register(
		srv("log-buffer-size", "`BYTES` of the latest log records kept in memory for ferry logs (default 1m)", func(s *Server) flag.Value {
			return (*bytesValue)(&s.LogBufferSize)
		}),
	)
}
