package main

import (
	"context"
	"io"
	"log/slog"
)

// newLogger is the program's one logger: text lines on stderr. Once ctx is
// cancelled (SIGINT/SIGTERM) it goes quiet unless the level is debug: the
// workers winding down would otherwise log every table they stop as failed,
// and the interruption is reported once, as one line, by exit().
func newLogger(ctx context.Context, stderr io.Writer, level slog.Level) *slog.Logger {
	h := slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level})
	if level <= slog.LevelDebug {
		return slog.New(h)
	}
	return slog.New(quietAfter{ctx: ctx, Handler: h})
}

// quietAfter drops every record once ctx is done.
type quietAfter struct {
	ctx context.Context
	slog.Handler
}

func (q quietAfter) Enabled(ctx context.Context, l slog.Level) bool {
	return q.ctx.Err() == nil && q.Handler.Enabled(ctx, l)
}

func (q quietAfter) WithAttrs(attrs []slog.Attr) slog.Handler {
	return quietAfter{q.ctx, q.Handler.WithAttrs(attrs)}
}

func (q quietAfter) WithGroup(name string) slog.Handler {
	return quietAfter{q.ctx, q.Handler.WithGroup(name)}
}
