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
	api "github.com/osrg/gobgp/v3/api"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
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

// waitAPI returns once the gRPC API answers a call, so that the gobgp CLI
// works as soon as Start returns. GoBGP opens the listener in a goroutine
// and reports a failure only through the logger (onFatal). A connection
// alone is not enough: the kernel accepts it as soon as the socket is
// bound, before gRPC's Serve has registered the listener, and a Stop in
// that window leaves the listener open until the goroutine runs (the
// socket then still answers after Stop returned).
func (s *Speaker) waitAPI(ctx context.Context) error {
	if s.cfg.API == "" {
		return nil
	}
	network, address, target := "tcp", s.cfg.API, "passthrough:///"+s.cfg.API
	if path, ok := strings.CutPrefix(s.cfg.API, "unix://"); ok {
		network, address, target = "unix", path, "unix://"+path
	}
	s.fatalMu.Lock()
	fatalCh := s.fatalCh
	s.fatalMu.Unlock()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-fatalCh:
			cancel()
		case <-ctx.Done():
		}
	}()
	fail := func(err error) error {
		select {
		case <-fatalCh:
			return s.Err()
		default:
			return fmt.Errorf("routing: api %s not answering: %w", s.cfg.API, err)
		}
	}
	var d net.Dialer
	retry := backoff.New(2*time.Millisecond, 100*time.Millisecond)
	for {
		c, err := d.DialContext(ctx, network, address)
		if err == nil {
			c.Close()
			break
		}
		t := time.NewTimer(retry.Next())
		select {
		case <-ctx.Done():
			t.Stop()
			return fail(ctx.Err())
		case <-t.C:
		}
	}
	conn, err := grpc.DialContext(ctx, target, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return fail(err)
	}
	defer conn.Close()
	if _, err := api.NewGobgpApiClient(conn).GetBgp(ctx, &api.GetBgpRequest{}, grpc.WaitForReady(true)); err != nil {
		return fail(err)
	}
	return nil
}
