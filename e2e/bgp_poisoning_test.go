package e2e

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/dmvpnd/dmvpnd/controller/api"
	"github.com/dmvpnd/dmvpnd/e2e/lab"
)

// poison is one route a malicious spoke advertises, with its next hop ("" =
// its own tunnel address, as GoBGP sets it over iBGP).
type poison struct {
	prefix  netip.Prefix
	nexthop string
	why     string
}

// TestBGPPoisoning: a spoke that holds the group key and a valid
// registration speaks BGP with a stock gobgpd instead of dmvpnd and
// advertises what would hijack or collapse the overlay: the default
// route, 0/1 + 128/1, the two /25s of another spoke's LAN, the hub's NBMA
// as a /32 (the underlay through the tunnel: recursive routing) and a
// route whose next hop is the tunnel's broadcast address. Hub (reflect
// mode, IPsec, PSK) and two honest spokes run dmvpnd with BGP. While the
// attack runs, a ping between the honest spokes' LANs loses nothing; none
// of the routes reaches any node's kernel (proto 157) or the hub's RIB
// (`gobgp global rib`), the honest routes are unchanged, and the hub's
// `show bgp summary` counts every rejection for the attacker.
func TestBGPPoisoning(t *testing.T) {
	l, nodes := bgpLab(t, 3)
	hub, s1, s2, bad := nodes[0], nodes[1], nodes[2], nodes[3]
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	setup := bgpWithIPsec(t, l, nodes, bgpSetup{hubMode: "reflect", hubLAN: true})
	bgpStartAll(t, l, nodes, setup)

	honest := []*dnode{hub, s1, s2}
	want := map[string][]bgpRoute{}
	for _, d := range honest {
		if err := bgpWaitRoutes(ctx, d, bgpLANRoutes(nodes, d), true); err != nil {
			t.Fatal(err)
		}
		got, err := bgpKernelRoutes(ctx, d)
		if err != nil {
			t.Fatal(err)
		}
		want[d.name] = honestRoutes(got, bad)
	}

	// The attacker's dmvpnd dies (SIGKILL: its registration, SA and
	// kernel state stay); gobgpd takes over its tunnel address.
	if _, err := bad.node.Run(ctx, fmt.Sprintf("kill -KILL %d", bad.proc.PID)); err != nil {
		t.Fatal(err)
	}
	const gobgpAPI = "127.0.0.1:50061"
	conf := fmt.Sprintf(`[global.config]
  as = 65000
  router-id = "%s"
  port = -1
[[neighbors]]
  [neighbors.config]
    neighbor-address = "%s"
    peer-as = 65000
  [neighbors.transport.config]
    local-address = "%s"
`, bad.tunnel, hub.tunnel, bad.tunnel)
	confPath := bad.dir + "/gobgpd.toml"
	if err := l.WriteFile(ctx, confPath, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := bad.node.Start(ctx, "gobgpd", fmt.Sprintf("gobgpd -t toml -f %s --api-hosts %s", confPath, gobgpAPI)); err != nil {
		t.Fatal(err)
	}
	gobgp := func(args string) (string, error) {
		res, err := bad.node.Run(ctx, "gobgp -u 127.0.0.1 -p 50061 "+args) // gobgpAPI
		return string(res.Stdout), err
	}
	if err := lab.WaitFor(ctx, 250*time.Millisecond, func(context.Context) error {
		out, err := gobgp("neighbor")
		if err != nil {
			return err
		}
		if !slices.Contains(gobgpEstablished(out), hub.tunnel.String()) {
			return fmt.Errorf("attacker's session with the hub not established:\n%s", out)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}

	// A ping between the honest spokes' LANs runs through the attack.
	type pingResult struct {
		res lab.Result
		err error
	}
	pingDone := make(chan pingResult, 1)
	const pings = 100
	go func() {
		res, err := s1.node.Exec(ctx, fmt.Sprintf("ping -n -q -c %d -i 0.1 -W 2 -I %s %s", pings, s1.lan.Addr(), s2.lan.Addr()))
		pingDone <- pingResult{res, err}
	}()

	pfx := netip.MustParsePrefix
	s1LAN := s1.lan.Masked()
	half := netip.PrefixFrom(s1LAN.Addr(), 25)
	b := s1LAN.Addr().As4()
	b[3] = 128
	upper := netip.PrefixFrom(netip.AddrFrom4(b), 25)
	attacks := []poison{
		{pfx("0.0.0.0/0"), "", "default route"},
		{pfx("0.0.0.0/1"), "", "half of everything"},
		{pfx("128.0.0.0/1"), "", "the other half"},
		{half, "", "more-specific of s1's LAN"},
		{upper, "", "more-specific of s1's LAN"},
		{netip.PrefixFrom(hub.nbma, 32), "", "the hub's NBMA (recursive routing)"},
		{pfx("10.77.0.0/24"), "10.0.0.255", "next hop: the tunnel's broadcast address"},
	}
	for _, a := range attacks {
		args := "global rib add " + a.prefix.String()
		if a.nexthop != "" {
			args += " nexthop " + a.nexthop
		}
		if out, err := gobgp(args); err != nil {
			t.Fatalf("attacker: gobgp %s: %v\n%s", args, err, out)
		}
	}

	// Wait until the hub has received every poisoned route (so that an
	// attack that never arrived cannot pass), then check every node.
	var sum api.BGPSummary
	err := lab.WaitFor(ctx, 250*time.Millisecond, func(ctx context.Context) error {
		var err error
		if sum, err = ctlJSON[api.BGPSummary](ctx, hub, "show bgp summary"); err != nil {
			return err
		}
		for _, n := range sum.Neighbors {
			if n.Address == bad.tunnel && n.Received >= len(attacks) {
				return nil
			}
		}
		return fmt.Errorf("hub has not received the %d poisoned routes yet: %+v", len(attacks), sum.Neighbors)
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range sum.Neighbors {
		if n.Address == bad.tunnel {
			t.Logf("hub show bgp summary, attacker: received %d, accepted %d, rejected %d", n.Received, n.Accepted, n.Rejected)
			if n.Rejected != len(attacks) || n.Accepted != 0 {
				t.Errorf("hub counted %d rejected, %d accepted of the attacker's %d routes; want all rejected", n.Rejected, n.Accepted, len(attacks))
			}
		}
	}
	out, err := hub.ctl(ctx, "show bgp summary")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("hub show bgp summary:\n%s", out)

	r := <-pingDone
	sent, received, ok := pingSummary(string(r.res.Stdout))
	if r.err != nil || !ok || sent != pings || received != sent {
		t.Errorf("ping s1 LAN -> s2 LAN during the attack: %d of %d answered (exit %d, %v)\n%s%s", received, pings, r.res.Exit, r.err, r.res.Stdout, r.res.Stderr)
	} else {
		t.Logf("ping s1 LAN -> s2 LAN during the attack: %d of %d answered; %s", received, sent, lastLine(string(r.res.Stdout)))
	}

	// The hub's API (dmvpnd's default: a unix socket, read-only) refuses
	// to inject a route.
	res, err := hub.node.Exec(ctx, fmt.Sprintf("gobgp --target %s global rib add 10.66.0.0/24", gobgpTarget(hub)))
	if err != nil {
		t.Fatal(err)
	}
	refusal := strings.TrimSpace(string(res.Stdout) + string(res.Stderr))
	t.Logf("hub: $ gobgp --target %s global rib add 10.66.0.0/24\n%s\n(exit %d)", gobgpTarget(hub), refusal, res.Exit)
	if res.Exit == 0 || !strings.Contains(refusal, "read-only") {
		t.Errorf("the hub's gobgp API accepted a route injection (exit %d): %s", res.Exit, refusal)
	}

	rib, err := gobgpCLI(ctx, hub, "global rib")
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range attacks {
		if gobgpRIBHasPrefix(rib, a.prefix) {
			t.Errorf("hub's RIB holds the attacker's %s (%s):\n%s", a.prefix, a.why, rib)
		}
	}
	for _, d := range honest {
		got, err := bgpKernelRoutes(ctx, d)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(want[d.name], honestRoutes(got, bad)); diff != "" {
			t.Errorf("%s: dmvpnd's kernel routes changed during the attack (-before +after):\n%s", d.name, diff)
		}
		for _, a := range attacks {
			for _, rt := range got {
				if strings.HasPrefix(string(rt), a.prefix.String()+" ") {
					t.Errorf("%s installed the attacker's %s (%s)", d.name, a.prefix, a.why)
				}
			}
		}
	}
}

// bgpLANRoutes is what d's kernel should hold from BGP in reflect mode:
// every other node's LAN via that node's tunnel address.
func bgpLANRoutes(nodes []*dnode, d *dnode) []bgpRoute {
	var out []bgpRoute
	for _, o := range nodes {
		if o != d {
			out = append(out, bgpRt(o.lan.Masked().String(), o.tunnel.String()))
		}
	}
	return out
}

// honestRoutes leaves out of routes the attacker's own LAN (withdrawn when
// its dmvpnd dies) and host routes inside the tunnel prefix (resolutions
// come and go with traffic).
func honestRoutes(routes []bgpRoute, bad *dnode) []bgpRoute {
	return slices.DeleteFunc(slices.Clone(routes), func(r bgpRoute) bool {
		return strings.HasPrefix(string(r), bad.lan.Masked().String()+" ") || bgpTunnelHostRoute(r)
	})
}

// lastLine returns the last non-empty line of s (ping's summary).
func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}
