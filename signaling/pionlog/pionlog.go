// Package pionlog routes pion's leveled logs into log/slog, for the SFU and
// the TURN server alike.
package pionlog

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/pion/logging"
)

// Factory routes pion's leveled logs into slog. Trace is dropped: pion
// traces every STUN message, with usernames. pion's warnings are logged
// at info: they are the ordinary weather of real networks (a candidate
// pair that failed, a packet for a closed stream; 782 of them in a
// 5-minute soak), and a warning in vidda's log should mean vidda's own
// trouble.
type Factory struct{ Log *slog.Logger }

// NewLogger is pion's logging.LoggerFactory.
func (f Factory) NewLogger(scope string) logging.LeveledLogger {
	return pionLogger{log: f.Log.With("pion", scope)}
}

type pionLogger struct{ log *slog.Logger }

func (l pionLogger) emit(level slog.Level, msg string) {
	l.log.Log(context.Background(), level, msg)
}

// emitf formats only when the level is on: pion debug-logs on hot paths.
func (l pionLogger) emitf(level slog.Level, format string, args []any) {
	if l.log.Enabled(context.Background(), level) {
		l.log.Log(context.Background(), level, fmt.Sprintf(format, args...))
	}
}

func (pionLogger) Trace(string)          {}
func (pionLogger) Tracef(string, ...any) {}
func (l pionLogger) Debug(m string)      { l.emit(slog.LevelDebug, m) }
func (l pionLogger) Debugf(f string, a ...any) {
	l.emitf(slog.LevelDebug, f, a)
}
func (l pionLogger) Info(m string) { l.emit(slog.LevelInfo, m) }
func (l pionLogger) Infof(f string, a ...any) {
	l.emitf(slog.LevelInfo, f, a)
}
func (l pionLogger) Warn(m string) { l.emit(slog.LevelInfo, m) }
func (l pionLogger) Warnf(f string, a ...any) {
	l.emitf(slog.LevelInfo, f, a)
}
func (l pionLogger) Error(m string) { l.emit(slog.LevelError, m) }
func (l pionLogger) Errorf(f string, a ...any) {
	l.emitf(slog.LevelError, f, a)
}
