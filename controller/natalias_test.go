package controller

import (
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/dmvpnd/dmvpnd/ipsec"
	"github.com/dmvpnd/dmvpnd/kernel"
	"github.com/dmvpnd/dmvpnd/nhrp/engine"
)

// TestNATAliases walks the alias assignment through SAs coming and going:
// the first peer with a private NBMA keeps it, later ones behind other
// NATs get aliases, an assignment sticks while its SA lasts, an alias
// whose registration outlived its SA is not handed out again, and a full
// prefix leaves the newcomer unproven.
func TestNATAliases(t *testing.T) {
	a := netip.MustParseAddr
	const priv = "172.16.0.5"
	prefix := netip.MustParsePrefix("198.18.0.0/30")
	sa := func(outer string, mark, reqid uint32) ipsec.Protection {
		return ipsec.Protection{NBMA: a(priv), Outer: a(outer), Identity: priv, MarkIn: mark, MarkOut: mark + 1, ReqID: reqid}
	}
	public := ipsec.Protection{NBMA: a("192.0.2.7"), Identity: "192.0.2.7"}
	unmarked := ipsec.Protection{NBMA: a("10.1.1.1"), Outer: a("203.0.113.50"), Identity: "10.1.1.1"}
	ep := func(nbma, outer, inner string) engine.Protection {
		p := engine.Protection{NBMA: a(nbma), Outer: a(outer), Identity: priv}
		if inner != "" {
			p.Inner = a(inner)
		}
		return p
	}
	st := func(gre, outer string, mark, reqid uint32) kernel.NATSteer {
		return kernel.NATSteer{GRE: a(gre), Inner: a(priv), Outer: a(outer), MarkIn: mark, MarkOut: mark + 1, ReqID: reqid}
	}
	var n natAliases
	for _, step := range []struct {
		name      string
		ps        []ipsec.Protection
		held      []string
		want      []engine.Protection
		wantSteer []kernel.NATSteer
		exhausted int
	}{
		{"A alone keeps its address", []ipsec.Protection{public, sa("203.0.113.1", 0x10, 1)}, nil,
			[]engine.Protection{{NBMA: a("192.0.2.7"), Identity: "192.0.2.7"}, ep(priv, "203.0.113.1", "")},
			[]kernel.NATSteer{st(priv, "203.0.113.1", 0x10, 1)}, 0},
		{"B behind another NAT gets an alias", []ipsec.Protection{sa("203.0.113.1", 0x10, 1), sa("203.0.113.2", 0x20, 2), unmarked}, nil,
			[]engine.Protection{ep(priv, "203.0.113.1", ""), ep("198.18.0.1", "203.0.113.2", priv),
				{NBMA: a("10.1.1.1"), Outer: a("203.0.113.50"), Identity: "10.1.1.1"}},
			[]kernel.NATSteer{st(priv, "203.0.113.1", 0x10, 1), st("198.18.0.1", "203.0.113.2", 0x20, 2)}, 0},
		{"B rekeyed beside its old CHILD_SA: newest first", []ipsec.Protection{sa("203.0.113.1", 0x10, 1), sa("203.0.113.2", 0x20, 2), sa("203.0.113.2", 0x30, 3)}, nil,
			[]engine.Protection{ep(priv, "203.0.113.1", ""), ep("198.18.0.1", "203.0.113.2", priv), ep("198.18.0.1", "203.0.113.2", priv)},
			[]kernel.NATSteer{st(priv, "203.0.113.1", 0x10, 1), st("198.18.0.1", "203.0.113.2", 0x30, 3), st("198.18.0.1", "203.0.113.2", 0x20, 2)}, 0},
		{"A gone: B keeps its alias, C takes the free address", []ipsec.Protection{sa("203.0.113.2", 0x20, 2), sa("203.0.113.3", 0x40, 4)}, []string{priv},
			[]engine.Protection{ep("198.18.0.1", "203.0.113.2", priv), ep(priv, "203.0.113.3", "")},
			[]kernel.NATSteer{st(priv, "203.0.113.3", 0x40, 4), st("198.18.0.1", "203.0.113.2", 0x20, 2)}, 0},
		{"B gone, its registration held: D does not get its alias", []ipsec.Protection{sa("203.0.113.3", 0x40, 4), sa("203.0.113.4", 0x50, 5)}, []string{priv, "198.18.0.1"},
			[]engine.Protection{ep(priv, "203.0.113.3", ""), ep("198.18.0.2", "203.0.113.4", priv)},
			[]kernel.NATSteer{st(priv, "203.0.113.3", 0x40, 4), st("198.18.0.2", "203.0.113.4", 0x50, 5)}, 0},
		{"prefix full: the last one proves nothing", []ipsec.Protection{sa("203.0.113.3", 0x40, 4), sa("203.0.113.4", 0x50, 5), sa("203.0.113.5", 0x60, 6), sa("203.0.113.6", 0x70, 7)}, []string{"198.18.0.1"},
			[]engine.Protection{ep(priv, "203.0.113.3", ""), ep("198.18.0.2", "203.0.113.4", priv), ep("198.18.0.3", "203.0.113.5", priv)},
			[]kernel.NATSteer{st(priv, "203.0.113.3", 0x40, 4), st("198.18.0.2", "203.0.113.4", 0x50, 5), st("198.18.0.3", "203.0.113.5", 0x60, 6)}, 1},
		{"B's registration gone: its alias is free again", []ipsec.Protection{sa("203.0.113.3", 0x40, 4), sa("203.0.113.4", 0x50, 5), sa("203.0.113.5", 0x60, 6), sa("203.0.113.6", 0x70, 7)}, nil,
			[]engine.Protection{ep(priv, "203.0.113.3", ""), ep("198.18.0.2", "203.0.113.4", priv), ep("198.18.0.3", "203.0.113.5", priv), ep("198.18.0.1", "203.0.113.6", priv)},
			[]kernel.NATSteer{st(priv, "203.0.113.3", 0x40, 4), st("198.18.0.1", "203.0.113.6", 0x70, 7), st("198.18.0.2", "203.0.113.4", 0x50, 5), st("198.18.0.3", "203.0.113.5", 0x60, 6)}, 0},
	} {
		held := map[netip.Addr]bool{}
		for _, h := range step.held {
			held[a(h)] = true
		}
		eps, steer, exhausted := n.assign(step.ps, prefix, held, false)
		cmpAddr := cmp.Comparer(func(x, y netip.Addr) bool { return x == y })
		if d := cmp.Diff(step.want, eps, cmpAddr); d != "" {
			t.Errorf("%s: engine protections (-want +got):\n%s", step.name, d)
		}
		if d := cmp.Diff(step.wantSteer, steer, cmpAddr); d != "" {
			t.Errorf("%s: steering (-want +got):\n%s", step.name, d)
		}
		if len(exhausted) != step.exhausted {
			t.Errorf("%s: %d left without alias, want %d", step.name, len(exhausted), step.exhausted)
		}
	}
}
