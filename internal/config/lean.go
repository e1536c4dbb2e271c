package config

import "flag"

// The lean HTTP/1.1 engine's switch. --fast-path (fast_path,
// FERRY_FAST_PATH) is its old name, kept working: it sets the same field
// as if --lean-path had been given.
func init() {
	lean := frontOpt("lean-path", "true", "serve plain GET and HEAD requests on plain HTTP/1.1 connections with the lean HTTP/1.1 engine (--lean-path=false: net/http serves every request)",
		func(f *Front) flag.Value { return (*boolValue)(&f.LeanPath) })
	register(lean,
		srv("fast-path", "old name of --lean-path", func(s *Server) flag.Value { return lean.bindServer(s) }))
}
