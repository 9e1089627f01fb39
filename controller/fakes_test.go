package controller

import (
	"context"
	"net/netip"

	"github.com/dmvpnd/dmvpnd/ipsec/ipsectest"
)

// fakeIPsec adds Run to ipsectest.Fake.
type fakeIPsec struct{ *ipsectest.Fake }

func (fakeIPsec) Run(ctx context.Context) error { <-ctx.Done(); return nil }

// recordConn records what the engine writes.
type recordConn struct{ sent []netip.Addr }

func (r *recordConn) ReadFrom([]byte) (int, netip.Addr, error) { return 0, netip.Addr{}, nil }
func (r *recordConn) WriteTo(b []byte, nbma netip.Addr) (int, error) {
	r.sent = append(r.sent, nbma)
	return len(b), nil
}
func (r *recordConn) Close() error { return nil }
