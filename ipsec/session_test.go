package ipsec

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"

	"github.com/dmvpnd/dmvpnd/ipsec/vicitest"
)

// TestStreamAfterSessionClosed: once charon closed the connection, govici
// closes the channel the listings arrive on; a listing then fails with
// ErrConnection instead of draining the closed channel for ever.
func TestStreamAfterSessionClosed(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := vicitest.NewPipeServer()
		l, err := dial(&Config{Dial: srv.Dial})
		if err != nil {
			t.Fatal(err)
		}
		defer l.close()
		srv.Stop()
		synctest.Wait() // govici's readers saw the pipes close
		if _, err := l.listSAs(context.Background()); !errors.Is(err, ErrConnection) {
			t.Fatalf("list-sas on a closed session: %v, want %v", err, ErrConnection)
		}
	})
}
