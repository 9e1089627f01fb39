package lab

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/dmvpnd/dmvpnd/e2e/golden"
)

func smokeLikeTopology() Topology {
	return Topology{Nodes: []NodeSpec{
		{Name: "hub", NBMA: netip.MustParseAddr("198.51.100.1"), LANs: []netip.Prefix{netip.MustParsePrefix("10.1.0.1/24")}},
		{Name: "s1", NBMA: netip.MustParseAddr("198.51.100.2"), LANs: []netip.Prefix{netip.MustParsePrefix("10.1.1.1/24"), netip.MustParsePrefix("10.2.1.1/24")}},
		{Name: "s2", NBMA: netip.MustParseAddr("192.168.2.2"), Behind: &NAT{
			Name: "r2", Public: netip.MustParseAddr("198.51.100.102"), Inside: netip.MustParsePrefix("192.168.2.1/24"),
		}},
	}}
}

func TestPlanGolden(t *testing.T) {
	p, err := smokeLikeTopology().Plan()
	if err != nil {
		t.Fatal(err)
	}
	golden.File(t, "plan.txt", strings.Join(p, "\n")+"\n")

	topo := smokeLikeTopology()
	topo.Prefix = "dl1-"
	p, err = topo.Plan()
	if err != nil {
		t.Fatal(err)
	}
	golden.File(t, "plan-prefixed.txt", strings.Join(p, "\n")+"\n")
}

func TestPlanDeterministic(t *testing.T) {
	a, _ := smokeLikeTopology().Plan()
	b, _ := smokeLikeTopology().Plan()
	if strings.Join(a, "\n") != strings.Join(b, "\n") {
		t.Error("two plans of the same topology differ")
	}
}

func TestPlanInvalid(t *testing.T) {
	a := netip.MustParseAddr
	tests := []struct {
		name  string
		nodes []NodeSpec
		want  string
	}{
		{"duplicate name", []NodeSpec{{Name: "a", NBMA: a("198.51.100.1")}, {Name: "a", NBMA: a("198.51.100.2")}}, "duplicate"},
		{"name clashes with switch", []NodeSpec{{Name: "inet", NBMA: a("198.51.100.1")}}, "duplicate"},
		{"long name", []NodeSpec{{Name: "averyveryverylongname", NBMA: a("198.51.100.1")}}, "1-15"},
		{"quote in name", []NodeSpec{{Name: "a'b", NBMA: a("198.51.100.1")}}, "1-15"},
		{"outside underlay", []NodeSpec{{Name: "a", NBMA: a("203.0.113.1")}}, "outside underlay"},
		{"duplicate address", []NodeSpec{{Name: "a", NBMA: a("198.51.100.1")}, {Name: "b", NBMA: a("198.51.100.1")}}, "already used"},
		{"no address", []NodeSpec{{Name: "a"}}, "not IPv4"},
		{"nat public address taken", []NodeSpec{{Name: "a", NBMA: a("198.51.100.9")},
			{Name: "b", NBMA: a("192.168.1.2"), Behind: &NAT{Name: "r", Public: a("198.51.100.9"), Inside: netip.MustParsePrefix("192.168.1.1/24")}}}, "already used"},
		{"nat inside mismatch", []NodeSpec{{Name: "a", NBMA: a("10.9.9.9"), Behind: &NAT{Name: "r", Public: a("198.51.100.9"), Inside: netip.MustParsePrefix("192.168.1.1/24")}}}, "outside NAT inside"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Topology{Nodes: tc.nodes}.Plan()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Plan() error = %v, want containing %q", err, tc.want)
			}
		})
	}
}

// TestPlanSamePrivateBehindTwoNATs: two NAT routers may hide the same
// private addresses (issue 13 item 7); each router's inside is an address
// space of its own.
func TestPlanSamePrivateBehindTwoNATs(t *testing.T) {
	a := netip.MustParseAddr
	inside := netip.MustParsePrefix("192.168.2.1/24")
	_, err := Topology{Nodes: []NodeSpec{
		{Name: "s2", NBMA: a("192.168.2.2"), Behind: &NAT{Name: "r2", Public: a("198.51.100.102"), Inside: inside}},
		{Name: "s4", NBMA: a("192.168.2.2"), Behind: &NAT{Name: "r4", Public: a("198.51.100.104"), Inside: inside}},
	}}.Plan()
	if err != nil {
		t.Fatal(err)
	}
}
