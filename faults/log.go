package faults

import (
	"context"
	"io"
	"log/slog"
)

type loggerKey struct{}

// WithLogger returns a context that carries l; faults log their steps (a
// rolling upgrade's node by node progress, a bounded wait that gave up) to
// the logger in their context. Timeline.Run sets it from Timeline.Logger.
func WithLogger(ctx context.Context, l *slog.Logger) context.Context {
	return context.WithValue(ctx, loggerKey{}, l)
}

var discard = slog.New(slog.NewTextHandler(io.Discard, nil))

func logger(ctx context.Context) *slog.Logger {
	if l, ok := ctx.Value(loggerKey{}).(*slog.Logger); ok && l != nil {
		return l
	}
	return discard
}
