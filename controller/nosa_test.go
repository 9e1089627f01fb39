package controller

import (
	"context"
	"net/netip"
	"testing"

	"github.com/dmvpnd/dmvpnd/ipsec"
	"github.com/dmvpnd/dmvpnd/ipsec/ipsectest"
	"github.com/dmvpnd/dmvpnd/kernel"
	"github.com/dmvpnd/dmvpnd/kernel/kerneltest"
	"github.com/dmvpnd/dmvpnd/nhrp"
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

// TestNoCleartextNHRPBeforeSA: with IPsec on, the NHRP packets the engine
// sends to a peer whose SA is not up yet are dropped (counted) instead of
// leaving as cleartext GRE; seen in the lab as a spoke's first
// registrations to an FRR hub protected by strongSwan (trap) and as the
// first direct-path probe of a shortcut, both before IKE finished.
func TestNoCleartextNHRPBeforeSA(t *testing.T) {
	hub := netip.MustParseAddr("198.51.100.1")
	fake := ipsectest.NewFake(nil)
	cfg := parseConfig(t, spokeYAML("198.51.100.2", "10.0.0.2/24", "198.51.100.1", "10.0.0.1"))
	c, err := New(cfg, Deps{
		Dataplane: kerneltest.New(),
		Listen:    func(int) (kernel.PacketConn, error) { return nil, nil },
		Clock:     wallClock{},
		IPsec:     fakeIPsec{fake},
	})
	if err != nil {
		t.Fatal(err)
	}
	rc := &recordConn{}
	c.conn = rc
	b, err := nhrp.NewRegistrationRequest(netip.MustParseAddr("198.51.100.2"), netip.MustParseAddr("10.0.0.2"),
		netip.MustParseAddr("10.0.0.1"), 1, 300, 0, true).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	send := engineConn{c}

	if err := send.WriteTo(b, hub); err != nil {
		t.Fatal(err)
	}
	if len(rc.sent) != 0 || c.stats["nhrp_send_no_sa"] != 1 {
		t.Fatalf("before the SA: sent to %v, nhrp_send_no_sa %d; want nothing sent, 1 dropped", rc.sent, c.stats["nhrp_send_no_sa"])
	}

	if err := fake.SetPeers([]ipsec.Peer{{RemoteNBMA: hub, Initiate: ipsec.Initiate}}); err != nil {
		t.Fatal(err)
	}
	if !fake.SetStatus(hub.String(), ipsec.StatusUp, netip.AddrPortFrom(hub, 500), "") {
		t.Fatal("fake: peer not wanted")
	}
	c.refreshTrusted()
	if err := send.WriteTo(b, hub); err != nil {
		t.Fatal(err)
	}
	if len(rc.sent) != 1 || rc.sent[0] != hub {
		t.Errorf("with the SA up: sent to %v, want [%s]", rc.sent, hub)
	}
	// Another peer still has no SA.
	if err := send.WriteTo(b, netip.MustParseAddr("198.51.100.3")); err != nil {
		t.Fatal(err)
	}
	if len(rc.sent) != 1 || c.stats["nhrp_send_no_sa"] != 2 {
		t.Errorf("to a peer without SA: sent to %v, nhrp_send_no_sa %d", rc.sent, c.stats["nhrp_send_no_sa"])
	}
}
