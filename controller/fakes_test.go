package controller

import (
	"context"
	"net/netip"
	"testing"

	"github.com/dmvpnd/dmvpnd/controller/metrics"
	"github.com/dmvpnd/dmvpnd/ipsec/ipsectest"
	"github.com/dmvpnd/dmvpnd/kernel"
	"github.com/dmvpnd/dmvpnd/kernel/kerneltest"
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

// engineOnly builds a controller from yaml with an IPsec fake and an
// engine writing into a recordConn, without running its loop: the test
// drives the engine and the IPsec events itself. m may be nil.
func engineOnly(t *testing.T, yaml string, m *metrics.Metrics) (*Controller, *ipsectest.Fake, *recordConn) {
	t.Helper()
	fake := ipsectest.NewFake(nil)
	c, rc := engineWith(t, yaml, Deps{IPsec: fakeIPsec{fake}, Metrics: m})
	return c, fake, rc
}

// engineWith is engineOnly with the given dependencies; the dataplane,
// the listener and the clock default to a fake kernel, none and the wall
// clock.
func engineWith(t *testing.T, yaml string, d Deps) (*Controller, *recordConn) {
	t.Helper()
	if d.Dataplane == nil {
		d.Dataplane = kerneltest.New()
	}
	if d.Listen == nil {
		d.Listen = func(int) (kernel.PacketConn, error) { return nil, nil }
	}
	if d.Clock == nil {
		d.Clock = wallClock{}
	}
	c, err := New(parseConfig(t, yaml), d)
	if err != nil {
		t.Fatal(err)
	}
	rc := &recordConn{}
	c.conn = rc
	if err := c.startEngine(); err != nil {
		t.Fatal(err)
	}
	return c, rc
}
