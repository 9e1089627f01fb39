package main

import (
	"io"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/dmvpnd/dmvpnd/controller/config"
)

// zapLevel maps a validated config level.
func zapLevel(l config.LogLevel) zapcore.Level {
	switch l {
	case config.LogDebug:
		return zap.DebugLevel
	case config.LogWarn:
		return zap.WarnLevel
	case config.LogError:
		return zap.ErrorLevel
	}
	return zap.InfoLevel
}

// newLogger builds the daemon's logger writing to w (stderr: journald)
// with the runtime-adjustable level.
func newLogger(c config.Log, level zap.AtomicLevel, w io.Writer) *zap.Logger {
	ec := zap.NewProductionEncoderConfig()
	ec.EncodeTime = zapcore.ISO8601TimeEncoder
	var enc zapcore.Encoder
	if c.Format == config.LogConsole {
		ec.EncodeLevel = zapcore.CapitalLevelEncoder
		enc = zapcore.NewConsoleEncoder(ec)
	} else {
		enc = zapcore.NewJSONEncoder(ec)
	}
	return zap.New(zapcore.NewCore(enc, zapcore.Lock(zapcore.AddSync(w)), level), zap.ErrorOutput(zapcore.AddSync(w)))
}
