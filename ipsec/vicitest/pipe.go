package vicitest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
)

// NewPipeServer returns a Server that listens on no socket: clients reach
// it through Dial, over in-memory pipes (net.Pipe). Blocking on a pipe is
// durable in the sense of testing/synctest, so a Manager and this fake can
// run inside a synctest bubble, on its fake clock; Stop and Start behave as
// for a socket Server. Path is empty.
func NewPipeServer() *Server {
	s := newServer("")
	s.pipe = true
	if err := s.Start(); err != nil {
		panic(err) // a pipe listener cannot fail to start
	}
	return s
}

// errRefused is Dial's error while the server is stopped.
var errRefused = errors.New("vicitest: connection refused (server stopped)")

// Dial connects a client to the server: a pipe to a pipe Server, the
// socket to a socket Server. It fits ipsec.Config.Dial; with
// vici.WithDialContext (ignoring the network and address) it fits govici.
func (s *Server) Dial(ctx context.Context) (net.Conn, error) {
	if !s.pipe {
		var d net.Dialer
		return d.DialContext(ctx, "unix", s.path)
	}
	s.mu.Lock()
	pl, _ := s.ln.(*pipeListener)
	s.mu.Unlock()
	if pl == nil {
		return nil, fmt.Errorf("dial pipe: %w", errRefused)
	}
	return pl.dial(ctx)
}

// pipeListener hands the server end of each dialled pipe to Accept.
type pipeListener struct {
	conns     chan net.Conn
	closed    chan struct{}
	closeOnce sync.Once
}

func newPipeListener() *pipeListener {
	return &pipeListener{conns: make(chan net.Conn), closed: make(chan struct{})}
}

func (l *pipeListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.closed:
		return nil, net.ErrClosed
	}
}

func (l *pipeListener) Close() error {
	l.closeOnce.Do(func() { close(l.closed) })
	return nil
}

func (l *pipeListener) Addr() net.Addr { return pipeAddr{} }

func (l *pipeListener) dial(ctx context.Context) (net.Conn, error) {
	c, srv := net.Pipe()
	select {
	case l.conns <- srv:
		return c, nil
	case <-l.closed:
		return nil, fmt.Errorf("dial pipe: %w", errRefused)
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

type pipeAddr struct{}

func (pipeAddr) Network() string { return "pipe" }
func (pipeAddr) String() string  { return "vicitest-pipe" }
