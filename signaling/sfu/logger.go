package sfu

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/pion/logging"
)

// pionLogs routes pion's leveled logs into slog. Trace is dropped: pion
// traces every STUN message, with usernames.
type pionLogs struct{ log *slog.Logger }

func (f pionLogs) NewLogger(scope string) logging.LeveledLogger {
	return pionLogger{log: f.log.With("pion", scope)}
}

type pionLogger struct{ log *slog.Logger }

func (l pionLogger) emit(level slog.Level, msg string) {
	l.log.Log(context.Background(), level, msg)
}

func (pionLogger) Trace(string)          {}
func (pionLogger) Tracef(string, ...any) {}
func (l pionLogger) Debug(m string)      { l.emit(slog.LevelDebug, m) }
func (l pionLogger) Debugf(f string, a ...any) {
	l.emit(slog.LevelDebug, fmt.Sprintf(f, a...))
}
func (l pionLogger) Info(m string) { l.emit(slog.LevelInfo, m) }
func (l pionLogger) Infof(f string, a ...any) {
	l.emit(slog.LevelInfo, fmt.Sprintf(f, a...))
}
func (l pionLogger) Warn(m string) { l.emit(slog.LevelWarn, m) }
func (l pionLogger) Warnf(f string, a ...any) {
	l.emit(slog.LevelWarn, fmt.Sprintf(f, a...))
}
func (l pionLogger) Error(m string) { l.emit(slog.LevelError, m) }
func (l pionLogger) Errorf(f string, a ...any) {
	l.emit(slog.LevelError, fmt.Sprintf(f, a...))
}
