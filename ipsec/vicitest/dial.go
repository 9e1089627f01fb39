package vicitest

import (
	"context"
	"net"
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

// Connect opens a VICI client session to s through s.Dial (so to a pipe
// Server too), closed at the end of the test.
func Connect(tb testing.TB, s *Server) *vici.Session {
	tb.Helper()
	sess, err := vici.NewSession(vici.WithDialContext(func(ctx context.Context, _, _ string) (net.Conn, error) {
		return s.Dial(ctx)
	}))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = sess.Close() })
	return sess
}
