package main

import (
	"io"
	"os"
	"strconv"

	"go.uber.org/zap"
	"go.uber.org/zap/buffer"
	"go.uber.org/zap/zapcore"

	"github.com/dmvpnd/dmvpnd/controller/config"
)

// zapLevel maps a validated config level. The config spells levels as zap
// does, as the API's log level request does (controller/api), so zap's
// own parser reads all of them.
func zapLevel(l config.LogLevel) zapcore.Level {
	lvl, err := zapcore.ParseLevel(string(l))
	if err != nil {
		return zapcore.InfoLevel // the config's default
	}
	return lvl
}

// underJournal reports whether stderr is connected to journald: systemd
// sets JOURNAL_STREAM for a service whose output goes to the journal.
func underJournal() bool { return os.Getenv("JOURNAL_STREAM") != "" }

// newLogger builds the daemon's logger writing to w (stderr: journald)
// with the runtime-adjustable level. Under journald every line starts with
// its syslog priority, "<N>" as sd-daemon(3) describes, so that journald
// records it (journalctl -p warning finds the warnings).
func newLogger(c config.Log, level zap.AtomicLevel, w io.Writer) *zap.Logger {
	return buildLogger(c, level, w, underJournal())
}

func buildLogger(c config.Log, level zap.AtomicLevel, w io.Writer, journal bool) *zap.Logger {
	ec := zap.NewProductionEncoderConfig()
	ec.EncodeTime = zapcore.ISO8601TimeEncoder
	var enc zapcore.Encoder
	if c.Format == config.LogConsole {
		ec.EncodeLevel = zapcore.CapitalLevelEncoder
		enc = zapcore.NewConsoleEncoder(ec)
	} else {
		enc = zapcore.NewJSONEncoder(ec)
	}
	if journal {
		enc = priorityEncoder{enc}
	}
	return zap.New(zapcore.NewCore(enc, zapcore.Lock(zapcore.AddSync(w)), level), zap.ErrorOutput(zapcore.AddSync(w)))
}

// syslogPriority is the syslog priority of a zap level (sd-daemon.h).
func syslogPriority(l zapcore.Level) int {
	switch {
	case l <= zapcore.DebugLevel:
		return 7 // SD_DEBUG
	case l == zapcore.InfoLevel:
		return 6 // SD_INFO
	case l == zapcore.WarnLevel:
		return 4 // SD_WARNING
	case l == zapcore.ErrorLevel:
		return 3 // SD_ERR
	}
	return 2 // SD_CRIT: DPanic, Panic, Fatal
}

// priorityEncoder prefixes each entry with "<N>".
type priorityEncoder struct{ zapcore.Encoder }

func (e priorityEncoder) Clone() zapcore.Encoder { return priorityEncoder{e.Encoder.Clone()} }

func (e priorityEncoder) EncodeEntry(ent zapcore.Entry, fields []zapcore.Field) (*buffer.Buffer, error) {
	b, err := e.Encoder.EncodeEntry(ent, fields)
	if err != nil {
		return b, err
	}
	line := append([]byte("<"+strconv.Itoa(syslogPriority(ent.Level))+">"), b.Bytes()...)
	b.Reset()
	_, _ = b.Write(line)
	return b, nil
}
