package controller

import (
	"net/netip"
	"testing"

	"github.com/dmvpnd/dmvpnd/ipsec"
	"github.com/dmvpnd/dmvpnd/nhrp/engine"
)

// TestRegistrationFollowsSA: a spoke's first registration is dropped
// (never sent in clear, counted) while its SA with the hub is negotiated;
// when the SA comes up the
// registration goes out at once, not at the engine's next (backed-off)
// retransmission. Seen in the lab: "registered" came 1.6 s after the SA.
func TestRegistrationFollowsSA(t *testing.T) {
	hub := netip.MustParseAddr("198.51.100.1")
	for _, tc := range []struct {
		name string
		ev   ipsec.Event
		want int // packets sent to the hub right after the event
	}{
		{"sa with the hub up", ipsec.Event{Peer: hub.String(), Status: ipsec.StatusUp}, 1},
		{"sa connecting", ipsec.Event{Peer: hub.String(), Status: ipsec.StatusConnecting}, 0},
		{"sa with another peer up", ipsec.Event{Peer: "198.51.100.3", Status: ipsec.StatusUp}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, fake, rc := engineOnly(t, spokeYAML("198.51.100.2", "10.0.0.2/24", "198.51.100.1", "10.0.0.1"), nil)
			c.eng.Start() // the first registration: no SA yet
			noSA := engine.DropSendNoSA.Counter()
			if len(rc.sent) != 0 || c.eng.Counters()[noSA] != 1 {
				t.Fatalf("before the SA: sent to %v, %s %d; want nothing sent, 1 dropped", rc.sent, noSA, c.eng.Counters()[noSA])
			}
			if err := fake.SetPeers([]ipsec.Peer{{RemoteNBMA: hub, Initiate: ipsec.Initiate}}); err != nil {
				t.Fatal(err)
			}
			if tc.ev.Status == ipsec.StatusUp && tc.ev.Peer == hub.String() &&
				!fake.SetStatus(hub.String(), ipsec.StatusUp, netip.AddrPortFrom(hub, 500), "") {
				t.Fatal("fake: peer not wanted")
			}
			c.onIPsecEvent(tc.ev)
			if got := len(rc.sent); got != tc.want {
				t.Errorf("sent %d packets (to %v) right after the event, want %d", got, rc.sent, tc.want)
			}
		})
	}
}
