package routing

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/dmvpnd/dmvpnd/nhrp/backoff"
)

// prepareAPIListener checks that the gRPC API address can be bound before
// GoBGP tries (GoBGP only logs a failure from a goroutine). A stale unix
// socket left by a crashed daemon is removed; any other file is not touched.
func prepareAPIListener(api string) error {
	if api == "" {
		return nil
	}
	if path, ok := strings.CutPrefix(api, "unix://"); ok {
		// The directory is made like the control socket's; the socket's
		// own mode and group are set once GoBGP bound it.
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return fmt.Errorf("routing: api socket: %w", err)
		}
		fi, err := os.Lstat(path)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			return nil
		case err != nil:
			return fmt.Errorf("routing: api socket: %w", err)
		case fi.Mode().Type() != fs.ModeSocket:
			return fmt.Errorf("routing: api socket %s exists and is not a socket", path)
		}
		if c, err := net.Dial("unix", path); err == nil {
			c.Close()
			return fmt.Errorf("routing: api socket %s is in use by another process", path)
		}
		if err := os.Remove(path); err != nil {
			return fmt.Errorf("routing: removing stale api socket: %w", err)
		}
		return nil
	}
	l, err := net.Listen("tcp", api)
	if err != nil {
		return fmt.Errorf("routing: api address: %w", err)
	}
	return l.Close()
}

// waitAPI returns once the gRPC API accepts connections, so that the gobgp
// CLI works as soon as Start returns. GoBGP opens the listener in a
// goroutine and reports a failure only through the logger (onFatal).
func (s *Speaker) waitAPI(ctx context.Context) error {
	if s.cfg.API == "" {
		return nil
	}
	network, address := "tcp", s.cfg.API
	if path, ok := strings.CutPrefix(s.cfg.API, "unix://"); ok {
		network, address = "unix", path
	}
	s.fatalMu.Lock()
	fatalCh := s.fatalCh
	s.fatalMu.Unlock()
	var d net.Dialer
	retry := backoff.New(2*time.Millisecond, 100*time.Millisecond)
	for {
		c, err := d.DialContext(ctx, network, address)
		if err == nil {
			return c.Close()
		}
		t := time.NewTimer(retry.Next())
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("routing: api %s not listening: %w", s.cfg.API, ctx.Err())
		case <-fatalCh:
			t.Stop()
			return s.Err()
		case <-t.C:
		}
	}
}
