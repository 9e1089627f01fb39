package routing

import (
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
	gobgplog "github.com/osrg/gobgp/v3/pkg/log"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

func TestZapLogger(t *testing.T) {
	core, logs := observer.New(zapcore.DebugLevel)
	var fatal []string
	l := newZapLogger(zap.New(core), func(msg string, f gobgplog.Fields) { fatal = append(fatal, msg) })

	l.Debug("hidden at info", nil)
	l.Info("peer up", gobgplog.Fields{"Topic": "Peer", "Key": "10.0.0.2"})
	l.Warn("warned", nil)
	l.Error("failed", gobgplog.Fields{"Err": errors.New("boom")})
	l.Fatal("failed to listen grpc port", gobgplog.Fields{"Err": "address in use"}) // must not exit
	l.SetLevel(gobgplog.DebugLevel)
	if got := l.GetLevel(); got != gobgplog.DebugLevel {
		t.Errorf("GetLevel = %v after SetLevel(Debug)", got)
	}
	l.Debug("shown at debug", nil)
	l.SetLevel(gobgplog.ErrorLevel)
	l.Warn("hidden at error", nil)

	var got []string
	for _, e := range logs.All() {
		line := e.Level.String() + " " + e.LoggerName + " " + e.Message
		for _, f := range e.Context {
			line += " " + f.Key
		}
		got = append(got, line)
	}
	want := []string{
		"info gobgp peer up Key Topic", // fields sorted by key
		"warn gobgp warned",
		"error gobgp failed Err",
		"error gobgp failed to listen grpc port Err",
		"debug gobgp shown at debug",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("log lines (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"failed to listen grpc port"}, fatal); diff != "" {
		t.Errorf("onFatal calls (-want +got):\n%s", diff)
	}
	defer func() {
		if recover() == nil {
			t.Error("Panic did not panic")
		}
	}()
	l.Panic("code logic bug", nil)
}

func TestLevelRoundTrip(t *testing.T) {
	for _, lv := range []gobgplog.LogLevel{gobgplog.PanicLevel, gobgplog.FatalLevel, gobgplog.ErrorLevel, gobgplog.WarnLevel, gobgplog.InfoLevel, gobgplog.DebugLevel} {
		if got := fromZapLevel(toZapLevel(lv)); got != lv {
			t.Errorf("level %v round-trips to %v", lv, got)
		}
	}
	if got := fromZapLevel(toZapLevel(gobgplog.TraceLevel)); got != gobgplog.DebugLevel {
		t.Errorf("trace maps to %v, want debug", got)
	}
}
