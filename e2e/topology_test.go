package e2e

import (
	"context"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/dmvpnd/dmvpnd/e2e/lab"
)

// TestTopologyNATAndFRR checks the lab's own building blocks beyond the
// smoke scenario: a node behind a NAT router reaches the underlay with the
// router's public address, LAN dummies carry their prefixes, and FRR
// daemons start per namespace and answer vtysh.
func TestTopologyNATAndFRR(t *testing.T) {
	l := lab.New(t, lab.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	hubNBMA := netip.MustParseAddr("198.51.100.1")
	l.Build(lab.Topology{Nodes: []lab.NodeSpec{
		{Name: "hub", NBMA: hubNBMA, LANs: []netip.Prefix{netip.MustParsePrefix("10.1.0.1/24")}},
		{Name: "s2", NBMA: netip.MustParseAddr("192.168.2.2"), Behind: &lab.NAT{
			Name: "r2", Public: netip.MustParseAddr("198.51.100.102"), Inside: netip.MustParsePrefix("192.168.2.1/24"),
		}},
	}})

	if out := l.Node("hub").MustRun("ip -4 -o addr show dev lan0"); !strings.Contains(out, "10.1.0.1/24") {
		t.Errorf("hub lan0: %q", out)
	}
	// The hub sees s2's pings coming from the NAT's public address.
	hub := l.Node("hub")
	capture, err := hub.Capture(ctx, "eth0", "nat")
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Node("s2").Ping(ctx, hubNBMA, 2); err != nil {
		t.Fatalf("s2 behind NAT -> hub: %v", err)
	}
	if _, err := capture.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	out := l.MustRun("tcpdump -n -r " + capture.Path + " icmp 2>/dev/null")
	if !strings.Contains(out, "198.51.100.102 > 198.51.100.1") || strings.Contains(out, "192.168.2.2") {
		t.Errorf("hub's capture does not show the NATed source only:\n%s", out)
	}

	// FRR: zebra in the hub's namespace sees the hub's interfaces.
	frr, err := hub.StartFRR(ctx, map[string]string{"zebra": "hostname hub\n"})
	if err != nil {
		t.Fatal(err)
	}
	err = lab.WaitFor(ctx, 200*time.Millisecond, func(ctx context.Context) error {
		res, err := frr.Vtysh(ctx, "show interface brief")
		if err != nil {
			return err
		}
		if !strings.Contains(string(res.Stdout), "lan0") {
			return lab.Permanent(&lab.CommandError{Cmd: "show interface brief", Result: res})
		}
		return nil
	})
	if err != nil {
		t.Errorf("vtysh: %v", err)
	}
}
