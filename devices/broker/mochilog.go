package broker

import (
	"context"
	"log/slog"
)

// mochiHandler is the slog.Handler mochi logs through. mochi logs whole
// packets under "pk" or "packet", payload included (for every publish this
// broker takes, at debug level), and readings are health data: those
// attributes are replaced, and only warnings and errors pass, since mochi's
// info lines repeat what Run logs.
type mochiHandler struct{ next slog.Handler }

func newMochiLogger(log *slog.Logger) *slog.Logger {
	return slog.New(mochiHandler{next: log.With("component", "mochi").Handler()})
}

// Enabled implements slog.Handler.
func (h mochiHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= slog.LevelWarn && h.next.Enabled(ctx, l)
}

// Handle implements slog.Handler.
func (h mochiHandler) Handle(ctx context.Context, r slog.Record) error {
	out := slog.NewRecord(r.Time, r.Level, r.Message, r.PC)
	r.Attrs(func(a slog.Attr) bool {
		out.AddAttrs(redact(a))
		return true
	})
	return h.next.Handle(ctx, out)
}

// WithAttrs implements slog.Handler.
func (h mochiHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	out := make([]slog.Attr, len(attrs))
	for i, a := range attrs {
		out[i] = redact(a)
	}
	return mochiHandler{next: h.next.WithAttrs(out)}
}

// WithGroup implements slog.Handler.
func (h mochiHandler) WithGroup(name string) slog.Handler {
	return mochiHandler{next: h.next.WithGroup(name)}
}

func redact(a slog.Attr) slog.Attr {
	switch a.Key {
	case "pk", "packet", "payload", "will":
		return slog.String(a.Key, "[redacted]")
	}
	if a.Value.Kind() == slog.KindGroup {
		group := a.Value.Group()
		out := make([]any, len(group))
		for i, g := range group {
			out[i] = redact(g)
		}
		return slog.Group(a.Key, out...)
	}
	return a
}
