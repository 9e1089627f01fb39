package ipsec_test

import (
	"bytes"
	"sync"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"
)

func testLogger(t *testing.T, name string) *zap.Logger {
	return zaptest.NewLogger(t, zaptest.Level(zap.InfoLevel)).Named(name)
}

// lockedWriter serialises writes of a child process' stdout and stderr.
type lockedWriter struct {
	b *bytes.Buffer
}

var logMu sync.Mutex

func (w *lockedWriter) Write(p []byte) (int, error) {
	logMu.Lock()
	defer logMu.Unlock()
	return w.b.Write(p)
}

func (w *lockedWriter) String() string {
	logMu.Lock()
	defer logMu.Unlock()
	return w.b.String()
}
