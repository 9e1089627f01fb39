package kernel

import (
	"errors"
	"fmt"
	"net/netip"
	"syscall"
	"testing"
)

func TestOpErrorMessage(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want string
	}{
		{
			name: "neighbor",
			err:  opErr("replace neighbor", neighObject(netip.MustParseAddr("10.0.0.2"), netip.MustParseAddr("198.51.100.2"), "gre1"), syscall.EINVAL),
			want: "kernel: replace neighbor 10.0.0.2 lladdr 198.51.100.2 dev gre1: invalid argument",
		},
		{
			name: "delete neighbor",
			err:  opErr("delete neighbor", neighObject(netip.MustParseAddr("10.0.0.2"), netip.Addr{}, "gre1"), syscall.EPERM),
			want: "kernel: delete neighbor 10.0.0.2 dev gre1: operation not permitted",
		},
		{
			name: "no object",
			err:  opErr("subscribe", "", syscall.ENOBUFS),
			want: "kernel: subscribe: no buffer space available",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.err.Error(); got != tt.want {
				t.Errorf("Error() = %q, want %q", got, tt.want)
			}
		})
	}
	if opErr("x", "y", nil) != nil {
		t.Error("opErr with nil error must be nil")
	}
}

func TestOpErrorIsResourceExhausted(t *testing.T) {
	tests := []struct {
		errno syscall.Errno
		want  bool
	}{
		{syscall.ENOBUFS, true},
		{syscall.ENOSPC, true},
		{syscall.ENOMEM, true},
		{syscall.EINVAL, false},
		{syscall.EEXIST, false},
	}
	for _, tt := range tests {
		err := fmt.Errorf("controller: register: %w", opErr("replace neighbor", "10.0.0.2 lladdr 1.2.3.4 dev gre1", tt.errno))
		if got := errors.Is(err, ErrResourceExhausted); got != tt.want {
			t.Errorf("errors.Is(%v, ErrResourceExhausted) = %v, want %v", tt.errno, got, tt.want)
		}
		if !errors.Is(err, tt.errno) {
			t.Errorf("errno %v not reachable through Unwrap", tt.errno)
		}
		var oe *OpError
		if !errors.As(err, &oe) || oe.Op != "replace neighbor" {
			t.Errorf("errors.As OpError failed: %v", err)
		}
	}
}

func TestIsNotExist(t *testing.T) {
	if !isNotExist(fmt.Errorf("wrapped: %w", syscall.ENOENT)) || !isNotExist(syscall.ESRCH) {
		t.Error("ENOENT/ESRCH should count as not existing")
	}
	if isNotExist(syscall.EPERM) || isNotExist(errors.New("x")) {
		t.Error("EPERM or a non-errno must not count as not existing")
	}
}

func TestNeighStateString(t *testing.T) {
	tests := []struct {
		s    NeighState
		want string
	}{
		{0, "NONE"},
		{NeighReachable, "REACHABLE"},
		{NeighPermanent, "PERMANENT"},
		{NeighIncomplete, "INCOMPLETE"},
		{NeighProbe, "PROBE"},
		{NeighStale | NeighNoARP, "STALE|NOARP"},
		{NeighState(0x100), "0x100"},
	}
	for _, tt := range tests {
		if got := tt.s.String(); got != tt.want {
			t.Errorf("NeighState(%#x).String() = %q, want %q", uint16(tt.s), got, tt.want)
		}
	}
	if !isMissState(NeighIncomplete) || !isMissState(NeighProbe) || isMissState(NeighReachable) || isMissState(NeighStale) {
		t.Error("isMissState wrong")
	}
}

// TestPartialFailureErrors: RouteErrors and QoSErrors list every failure
// in their message and unwrap to each one's cause; no failure is no error.
func TestPartialFailureErrors(t *testing.T) {
	route := Route{Dst: netip.MustParsePrefix("10.9.0.0/16")}
	dst := netip.MustParseAddr("198.51.100.2")
	for _, tc := range []struct {
		name  string
		err   error
		text  string
		cause error
	}{
		{"routes", routeErrors([]RouteError{
			{Op: "replace route", Route: route, Err: syscall.EINVAL},
			{Op: "delete route", Route: route, Err: syscall.ESRCH},
		}), "kernel: 2 route(s) refused: replace route 10.9.0.0/16: invalid argument; delete route 10.9.0.0/16: no such process", syscall.ESRCH},
		{"qos", qosErrors([]QoSError{{Dst: dst, Policy: "branch-2m", Reason: QoSNoRoom, Err: syscall.ENOSPC}}),
			`kernel: 1 qos target(s) refused: qos target 198.51.100.2 policy "branch-2m": no_room: no space left on device`, ErrResourceExhausted},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.err == nil || tc.err.Error() != tc.text {
				t.Errorf("Error() = %v, want %q", tc.err, tc.text)
			}
			if !errors.Is(tc.err, tc.cause) {
				t.Errorf("errors.Is(%v, %v) = false", tc.err, tc.cause)
			}
		})
	}
	if routeErrors(nil) != nil || qosErrors(nil) != nil {
		t.Error("no failures must be a nil error")
	}
}
