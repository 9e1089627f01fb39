package routing

import (
	"sort"

	gobgplog "github.com/osrg/gobgp/v3/pkg/log"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// zapLogger adapts GoBGP's log.Logger interface to zap.
//
// GoBGP calls Fatal for conditions an embedding daemon must survive (for
// example "failed to listen grpc port"); the adapter logs those at error
// level and reports them through onFatal instead of exiting the process.
// Panic keeps its meaning (GoBGP uses it for internal logic bugs).
type zapLogger struct {
	l       *zap.Logger
	level   zap.AtomicLevel
	onFatal func(msg string, fields gobgplog.Fields)
	// onPeerDown and onPrefixLimit receive GoBGP's "Peer Down" (with its
	// reason) and "prefix limit reached" log lines, whatever the level.
	onPeerDown    func(neighbor, reason string)
	onPrefixLimit func(neighbor string)
}

var _ gobgplog.Logger = (*zapLogger)(nil)

// newZapLogger wraps l. GoBGP is chatty at debug level, so its own level
// starts at info and can be changed through SetLevel (the gobgp CLI's
// "log-level" command ends up there).
func newZapLogger(l *zap.Logger, onFatal func(string, gobgplog.Fields)) *zapLogger {
	return &zapLogger{
		l:       l.Named("gobgp"),
		level:   zap.NewAtomicLevelAt(zapcore.InfoLevel),
		onFatal: onFatal,
	}
}

func (z *zapLogger) log(lvl zapcore.Level, msg string, fields gobgplog.Fields) {
	key, _ := fields["Key"].(string)
	switch {
	case msg == "Peer Down" && z.onPeerDown != nil:
		reason, _ := fields["Reason"].(string)
		z.onPeerDown(key, reason)
	case msg == "prefix limit reached" && z.onPrefixLimit != nil && fields["Pct"] == nil:
		z.onPrefixLimit(key)
	}
	if !z.level.Enabled(lvl) {
		return
	}
	if ce := z.l.Check(lvl, msg); ce != nil {
		ce.Write(zapFields(fields)...)
	}
}

// zapFields converts GoBGP's map to zap fields in a stable order.
func zapFields(fields gobgplog.Fields) []zap.Field {
	keys := make([]string, 0, len(fields))
	for k := range fields {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	out := make([]zap.Field, 0, len(keys))
	for _, k := range keys {
		out = append(out, zap.Any(k, fields[k]))
	}
	return out
}

func (z *zapLogger) Panic(msg string, fields gobgplog.Fields) {
	z.l.Panic(msg, zapFields(fields)...)
}

func (z *zapLogger) Fatal(msg string, fields gobgplog.Fields) {
	z.l.Error(msg, zapFields(fields)...)
	if z.onFatal != nil {
		z.onFatal(msg, fields)
	}
}

func (z *zapLogger) Error(msg string, fields gobgplog.Fields) { z.log(zapcore.ErrorLevel, msg, fields) }
func (z *zapLogger) Warn(msg string, fields gobgplog.Fields)  { z.log(zapcore.WarnLevel, msg, fields) }
func (z *zapLogger) Info(msg string, fields gobgplog.Fields)  { z.log(zapcore.InfoLevel, msg, fields) }
func (z *zapLogger) Debug(msg string, fields gobgplog.Fields) { z.log(zapcore.DebugLevel, msg, fields) }

func (z *zapLogger) SetLevel(level gobgplog.LogLevel) { z.level.SetLevel(toZapLevel(level)) }

func (z *zapLogger) GetLevel() gobgplog.LogLevel { return fromZapLevel(z.level.Level()) }

// zapLevels maps GoBGP's levels to zap's, both ways: GoBGP's Trace logs
// at zap's Debug, and zap's DPanic reads back as GoBGP's Panic.
var zapLevels = [...]zapcore.Level{
	gobgplog.PanicLevel: zapcore.PanicLevel,
	gobgplog.FatalLevel: zapcore.FatalLevel,
	gobgplog.ErrorLevel: zapcore.ErrorLevel,
	gobgplog.WarnLevel:  zapcore.WarnLevel,
	gobgplog.InfoLevel:  zapcore.InfoLevel,
	gobgplog.DebugLevel: zapcore.DebugLevel,
	gobgplog.TraceLevel: zapcore.DebugLevel,
}

func toZapLevel(l gobgplog.LogLevel) zapcore.Level {
	if int(l) < len(zapLevels) {
		return zapLevels[l]
	}
	return zapcore.DebugLevel
}

func fromZapLevel(l zapcore.Level) gobgplog.LogLevel {
	if l <= zapcore.DebugLevel {
		return gobgplog.DebugLevel
	}
	for g, z := range zapLevels {
		if z == l {
			return gobgplog.LogLevel(g)
		}
	}
	return gobgplog.PanicLevel
}
