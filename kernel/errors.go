package kernel

import (
	"errors"
	"fmt"
	"syscall"
)

// Errors callers act on.
var (
	// ErrNoTunnel: a neighbor or route call came before EnsureTunnel.
	ErrNoTunnel = errors.New("kernel: no tunnel ensured yet")
	// ErrNotOwned: refusing to delete an object dmvpnd did not create.
	ErrNotOwned = errors.New("kernel: object not created by dmvpnd")
	// ErrResourceExhausted: the kernel refused to add an entry for lack of
	// room (neighbor table overflow and the like). The controller answers the
	// registration with NHRP code 5 (insufficient resources).
	ErrResourceExhausted = errors.New("kernel: resource exhausted")
	// ErrTunnelPrefixRoute: SetRoutes refused a route to the tunnel prefix
	// (metric 0) that would replace the tunnel's own prefix route
	// (TunnelConfig.HostAddress).
	ErrTunnelPrefixRoute = errors.New("kernel: the tunnel prefix route is the tunnel's (host address)")
)

// OpError is a failed kernel operation, naming the operation and the object,
// e.g. "kernel: replace neighbor 10.0.0.2 lladdr 198.51.100.2 dev gre1: ...".
type OpError struct {
	Op     string // "replace neighbor", "create tunnel", ...
	Object string // "10.0.0.2 lladdr 198.51.100.2 dev gre1"
	Err    error
}

func (e *OpError) Error() string {
	if e.Object == "" {
		return fmt.Sprintf("kernel: %s: %v", e.Op, e.Err)
	}
	return fmt.Sprintf("kernel: %s %s: %v", e.Op, e.Object, e.Err)
}

func (e *OpError) Unwrap() error { return e.Err }

// Is makes errors.Is(err, ErrResourceExhausted) true for refusals caused by a
// full table.
func (e *OpError) Is(target error) bool {
	return target == ErrResourceExhausted && isResourceErrno(e.Err)
}

func opErr(op, object string, err error) error {
	if err == nil {
		return nil
	}
	return &OpError{Op: op, Object: object, Err: err}
}

func isResourceErrno(err error) bool {
	var errno syscall.Errno
	if !errors.As(err, &errno) {
		return false
	}
	switch errno {
	case syscall.ENOBUFS, syscall.ENOSPC, syscall.ENOMEM:
		return true
	}
	return false
}

func isNotExist(err error) bool {
	var errno syscall.Errno
	if !errors.As(err, &errno) {
		return false
	}
	return errno == syscall.ENOENT || errno == syscall.ESRCH || errno == syscall.ENODEV
}
