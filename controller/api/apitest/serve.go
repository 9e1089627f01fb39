package apitest

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/dmvpnd/dmvpnd/controller/api"
)

// Serve starts an api.Server for p on a fresh socket in the test's
// temporary directory and returns the socket's path. When the test ends
// the server shuts down, and an error of Shutdown or Serve fails the test.
func Serve(t testing.TB, p api.Provider, opts ...api.Option) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "ctl.sock")
	ln, err := api.Listen(path, "")
	if err != nil {
		t.Fatal(err)
	}
	srv := api.NewServer(p, opts...)
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return path
}

// ReadyAfter is a Fake whose Status says ready from its N-th call on, as
// a daemon finishing its start would.
type ReadyAfter struct {
	*Fake
	N int
}

// Status implements api.Provider.
func (r *ReadyAfter) Status(ctx context.Context) (api.Status, error) {
	st, err := r.Fake.Status(ctx)
	st.Ready = r.Fake.Calls("Status") >= r.N
	return st, err
}
