package certs

import (
	"context"
	"log/slog"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// zapToSlog is a zapcore.Core that writes certmagic's zap records to
// Ferry's slog logger, so that its lines have Ferry's format and
// destination (and are reopened with it). certmagic's info lines (every
// renewal check) go out at debug, except the few an operator wants.
func zapToSlog(log *slog.Logger) *zap.Logger {
	return zap.New(&slogCore{log: log})
}

type slogCore struct {
	log   *slog.Logger
	attrs []any
}

// levels maps zap's levels to slog's; info is demoted (see zapToSlog).
func level(l zapcore.Level, msg string) slog.Level {
	switch {
	case l >= zapcore.ErrorLevel:
		return slog.LevelError
	case l == zapcore.WarnLevel:
		return slog.LevelWarn
	case l == zapcore.InfoLevel && loudInfo[msg]:
		return slog.LevelInfo
	}
	return slog.LevelDebug
}

// loudInfo are certmagic's info messages worth an operator's attention
// (success is logged by Manager.onEvent).
var loudInfo = map[string]bool{
	"obtaining certificate":                   true,
	"renewing certificate":                    true,
	"trying to solve challenge":               true,
	"validations succeeded; finalizing order": true,
}

func (c *slogCore) Enabled(l zapcore.Level) bool {
	if l >= zapcore.InfoLevel {
		return true // Check decides, by message
	}
	return c.log.Enabled(context.Background(), slog.LevelDebug)
}

func (c *slogCore) With(fields []zapcore.Field) zapcore.Core {
	return &slogCore{log: c.log, attrs: append(append([]any(nil), c.attrs...), fieldAttrs(fields)...)}
}

func (c *slogCore) Check(e zapcore.Entry, ce *zapcore.CheckedEntry) *zapcore.CheckedEntry {
	if c.log.Enabled(context.Background(), level(e.Level, e.Message)) {
		return ce.AddCore(e, c)
	}
	return ce
}

func (c *slogCore) Write(e zapcore.Entry, fields []zapcore.Field) error {
	attrs := append(append([]any{"component", "acme"}, c.attrs...), fieldAttrs(fields)...)
	c.log.Log(context.Background(), level(e.Level, e.Message), e.Message, attrs...)
	return nil
}

func (c *slogCore) Sync() error { return nil }

// fieldAttrs turns zap fields into slog key-value pairs.
func fieldAttrs(fields []zapcore.Field) []any {
	enc := zapcore.NewMapObjectEncoder()
	for _, f := range fields {
		f.AddTo(enc)
	}
	out := make([]any, 0, 2*len(enc.Fields))
	for _, f := range fields { // in the order given
		if v, ok := enc.Fields[f.Key]; ok {
			out = append(out, f.Key, v)
			delete(enc.Fields, f.Key)
		}
	}
	return out
}
