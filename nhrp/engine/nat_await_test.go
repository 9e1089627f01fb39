package engine_test

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/dmvpnd/dmvpnd/nhrp/engine"
	"github.com/dmvpnd/dmvpnd/nhrp/engine/nhrpsim"
)

// A public spoke that resolves a spoke behind NAT first sends nothing
// towards the NAT: the NAT drops it (no mapping, or no SA with IPsec), and
// on Linux an unsolicited GRE packet to a masquerading router leaves a
// conntrack entry that blocks the mapping the NATed spoke opens next (seen
// in the lab: the direct path took 70 s instead of one exchange). The path
// waits, reported down, and is probed the moment the NATed spoke's own
// probe arrives, without waiting for a retry timer.
func TestPublicSpokeDoesNotProbeNATedPeerFirst(t *testing.T) {
	for _, tc := range []struct {
		name  string
		ipsec bool
		drop  string // the simulator's drop reason for an unsolicited probe
	}{
		{name: "plain GRE", drop: "no NAT mapping"},
		{name: "IPsec", ipsec: true, drop: "private address unreachable"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tp := newTopo(t)
			tp.net.IPsec = tc.ipsec
			nat := tp.net.AddNAT("203.0.113.1")
			mod := func(c *engine.Config) { c.IPsec = tc.ipsec }
			s2 := tp.spoke(2, "172.16.0.2", nat, mod)
			s3 := tp.spoke(3, "198.51.100.3", nil, mod)
			tp.start()

			s3.Engine.NeighborMiss(addr("10.255.0.2"))
			tp.run()
			tp.advance(30 * time.Second) // well past probe timeouts and retry backoffs
			if n := tp.net.Dropped[tc.drop]; n != 0 {
				t.Errorf("public spoke sent %d packets towards the NATed peer before it opened the path (drops %v)", n, tp.net.Dropped)
			}
			if st := shortcutState(s3, "10.255.0.2/32"); st != engine.ShortcutDown {
				t.Fatalf("public -> NATed before the NATed side sent anything: %v, want down", st)
			}

			s2.Engine.NeighborMiss(addr("10.255.0.3"))
			tp.run() // no clock movement: the NATed spoke's probe triggers ours
			for _, c := range []struct {
				node *nhrpsim.Node
				pfx  string
			}{{s2, "10.255.0.3/32"}, {s3, "10.255.0.2/32"}} {
				if st := shortcutState(c.node, c.pfx); st != engine.ShortcutUp {
					t.Errorf("%s shortcut %s after the NATed side's probe: %v, want up", c.node.Name, c.pfx, st)
				}
			}
			want := []string{"down", "validating", "up"}
			if diff := cmp.Diff(want, shortcutHistory(s3, "10.255.0.2/32")); diff != "" {
				t.Errorf("public spoke's shortcut states (-want +got):\n%s", diff)
			}
		})
	}
}
