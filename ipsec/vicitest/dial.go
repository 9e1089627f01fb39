package vicitest

import (
	"testing"

	"github.com/strongswan/govici/vici"
)

// Dial opens a VICI client session to the socket at path (a Server's or a
// real charon's), closed at the end of the test.
func Dial(tb testing.TB, path string) *vici.Session {
	tb.Helper()
	s, err := vici.NewSession(vici.WithSocketPath(path))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = s.Close() })
	return s
}
