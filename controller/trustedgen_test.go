package controller

import (
	"net/netip"
	"testing"

	"github.com/dmvpnd/dmvpnd/ipsec"
)

// numberedIPsec is a responder-only IPsec side that numbers its snapshots
// and counts how often State is copied.
type numberedIPsec struct {
	responderOnly
	gen    uint64
	states int
}

func (n *numberedIPsec) Generation() uint64 { return n.gen }
func (n *numberedIPsec) State() ipsec.State {
	n.states++
	st := n.responderOnly.State()
	st.Generation = n.gen
	return st
}

// TestUntrustedFloodDoesNotCopyState: packets from an address without an
// SA do not copy the IPsec state again while its snapshot is unchanged,
// and a new snapshot (an SA the peer initiated) is still picked up at the
// next packet.
func TestUntrustedFloodDoesNotCopyState(t *testing.T) {
	ip := &numberedIPsec{gen: 1}
	c, _ := engineWith(t, hubYAML("198.51.100.1", "10.0.0.1/24"), Deps{IPsec: ip})
	spoke := netip.MustParseAddr("198.51.100.2")
	for range 1000 {
		c.syncProtections() // as for every received packet
		if c.eng.Proven(spoke) {
			t.Fatal("proven without an SA")
		}
	}
	if ip.states != 1 {
		t.Errorf("State copied %d times for 1000 untrusted packets and one snapshot, want 1", ip.states)
	}
	ip.sas = []ipsec.SAInfo{{Conn: "dmvpn-responder", State: "ESTABLISHED", Remote: netip.AddrPortFrom(spoke, 500),
		Children: []ipsec.ChildInfo{{Name: "gre", State: "INSTALLED", Mode: "TRANSPORT", RemoteTS: []string{"198.51.100.2/32[gre]"}}}}}
	ip.gen++
	c.syncProtections()
	if !c.eng.Proven(spoke) {
		t.Error("SA of a new snapshot not picked up")
	}
	if ip.states != 2 {
		t.Errorf("State copied %d times, want 2", ip.states)
	}
}
