package routing_test

import (
	"context"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	api "github.com/osrg/gobgp/v3/api"
	"github.com/osrg/gobgp/v3/pkg/server"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/dmvpnd/dmvpnd/routing"
)

// attacker is a raw GoBGP speaker playing a malicious spoke: it announces
// whatever prefixes and next hops it likes.
type attacker struct {
	srv *server.BgpServer
}

func startAttacker(t *testing.T, ctx context.Context, self netip.Addr, hub netip.AddrPort) *attacker {
	t.Helper()
	srv := server.NewBgpServer()
	go srv.Serve()
	t.Cleanup(srv.Stop)
	if err := srv.StartBgp(ctx, &api.StartBgpRequest{Global: &api.Global{Asn: hubAS, RouterId: self.String(), ListenPort: -1}}); err != nil {
		t.Fatalf("attacker: StartBgp: %v", err)
	}
	if err := srv.AddPeer(ctx, &api.AddPeerRequest{Peer: &api.Peer{
		Conf:      &api.PeerConf{NeighborAddress: hub.Addr().String(), PeerAsn: hubAS},
		Timers:    &api.Timers{Config: &api.TimersConfig{ConnectRetry: 1, HoldTime: 9, KeepaliveInterval: 3}},
		Transport: &api.Transport{LocalAddress: self.String(), RemotePort: uint32(hub.Port())},
	}}); err != nil {
		t.Fatalf("attacker: AddPeer: %v", err)
	}
	return &attacker{srv: srv}
}

func (a *attacker) announce(ctx context.Context, t *testing.T, p netip.Prefix, nh netip.Addr) {
	t.Helper()
	nlri, _ := anypb.New(&api.IPAddressPrefix{Prefix: p.Addr().String(), PrefixLen: uint32(p.Bits())})
	origin, _ := anypb.New(&api.OriginAttribute{Origin: 0})
	nha, _ := anypb.New(&api.NextHopAttribute{NextHop: nh.String()})
	if _, err := a.srv.AddPath(ctx, &api.AddPathRequest{TableType: api.TableType_GLOBAL, Path: &api.Path{
		Family: &api.Family{Afi: api.Family_AFI_IP, Safi: api.Family_SAFI_UNICAST}, Nlri: nlri, Pattrs: []*anypb.Any{origin, nha},
	}}); err != nil {
		t.Fatalf("attacker: AddPath %s: %v", p, err)
	}
}

// TestIntegrationPoisoning: a malicious spoke (reflect mode, iBGP)
// announces the default route, 0/1 + 128/1, a /25 of another spoke's LAN,
// the hub's NBMA address, a prefix inside the tunnel, a route via the tunnel
// broadcast address and one via another spoke's address. None of the
// poisoned routes reaches the hub's RIB or any FIB (the route via another
// spoke is rejected, not rewritten to the attacker's address); the hub
// counts them as rejected for that neighbor, by reason; the other spokes'
// routes are unaffected.
func TestIntegrationPoisoning(t *testing.T) {
	ctx := testCtx(t)
	skipGoBGPRaces(t)
	hubNBMA := pfx("198.51.100.1/32")
	port := freePort(t, hubAddr)
	hcfg := hubConfig(routing.HubModeReflect, port, false)
	hcfg.Protected = []netip.Prefix{hubNBMA}
	tp := topo{hub: startNode(t, "hub", hcfg)}
	for i := range spokeAddrs[:2] {
		cfg := spokeConfig(i, []netip.AddrPort{netip.AddrPortFrom(hubAddr, uint16(port))}, hubAS, hubAS)
		cfg.Protected = []netip.Prefix{hubNBMA}
		tp.spokes = append(tp.spokes, startNode(t, "spoke"+string(rune('0'+i)), cfg))
	}
	evil := addr("127.0.1.66")
	a := startAttacker(t, ctx, evil, netip.AddrPortFrom(hubAddr, uint16(port)))
	tp.hub.waitEstablished(ctx, t, spokeAddrs[0], spokeAddrs[1], evil)

	victimLAN := spokeLAN(1) // 192.168.3.0/24
	poison := []struct {
		p  netip.Prefix
		nh netip.Addr
	}{
		{pfx("0.0.0.0/0"), evil},
		{pfx("0.0.0.0/1"), evil},
		{pfx("128.0.0.0/1"), evil},
		{netip.PrefixFrom(victimLAN.Addr(), 25), evil},
		{hubNBMA, evil},
		{pfx("127.0.1.128/25"), evil},                 // inside the tunnel
		{pfx("192.168.50.0/24"), addr("127.0.1.255")}, // tunnel broadcast as next hop
		{pfx("192.168.52.0/24"), addr("172.16.0.1")},  // next hop outside the tunnel
		{pfx("10.100.0.0/17"), evil},                  // more-specific of the hub's LAN
		{pfx("192.168.51.0/24"), spokeAddrs[0]},       // another spoke's address as next hop
	}
	for _, p := range poison {
		a.announce(ctx, t, p.p, p.nh)
	}
	// Barrier: a legitimate route announced last.
	a.announce(ctx, t, pfx("192.168.60.0/24"), evil)

	hubWant := routesText(routing.DefaultRouteMetric,
		spokeLAN(0).String()+" via "+spokeAddrs[0].String(),
		spokeLAN(1).String()+" via "+spokeAddrs[1].String(),
		"192.168.60.0/24 via "+evil.String())
	tp.hub.waitRoutes(ctx, t, hubWant)
	for i, s := range tp.spokes {
		want := routesText(routing.DefaultRouteMetric,
			hubLAN.String()+" via "+hubAddr.String(),
			spokeLAN(1-i).String()+" via "+spokeAddrs[1-i].String(),
			"192.168.60.0/24 via "+evil.String())
		s.waitRoutes(ctx, t, want)
	}

	rib, err := tp.hub.sp.RIB(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range rib {
		if slices.ContainsFunc(poison, func(p struct {
			p  netip.Prefix
			nh netip.Addr
		}) bool {
			return p.p == e.Prefix
		}) {
			t.Errorf("hub RIB holds poisoned %s via %s from %s", e.Prefix, e.NextHop, e.From)
		}
	}
	sum, err := tp.hub.sp.Summary(ctx)
	if err != nil {
		t.Fatal(err)
	}
	i := slices.IndexFunc(sum, func(n routing.NeighborSummary) bool { return n.Neighbor == evil })
	if i < 0 {
		t.Fatalf("no summary for %s: %+v", evil, sum)
	}
	if n := sum[i]; n.PrefixesReceived != uint64(len(poison)+1) || n.PrefixesRejected != uint64(len(poison)) || n.PrefixesAccepted != 1 {
		t.Errorf("attacker summary: received %d rejected %d accepted %d, want %d, %d, 1",
			n.PrefixesReceived, n.PrefixesRejected, n.PrefixesAccepted, len(poison)+1, len(poison))
	}
	wantReasons := map[string]uint64{
		routing.RejectDefault:        1,
		routing.RejectTunnel:         2, // 0/1 covers the tunnel
		routing.RejectProtected:      2, // 128/1 covers the NBMA address
		routing.RejectNotAccepted:    1, // the /25
		routing.RejectNextHop:        2,
		routing.RejectOwnPrefix:      1,
		routing.RejectForeignNextHop: 1,
	}
	if diff := cmp.Diff(wantReasons, sum[i].RejectedReasons); diff != "" {
		t.Errorf("attacker's rejections by reason (-want +got):\n%s", diff)
	}
	if st := tp.hub.sp.Stats(); len(st.FIBRejected) != 0 {
		t.Errorf("the import policy let poisoned paths reach the FIB: %v", st.FIBRejected)
	}
}

// TestIntegrationSpokeReconnect: a spoke's per-spoke import statements go
// with its dynamic neighbor and come back with it. After a non-graceful
// session loss (Cease: the neighbor is deleted, and so are the statements)
// the reconnected spoke's LAN is accepted again, and a path via another
// spoke's address is still rejected.
func TestIntegrationSpokeReconnect(t *testing.T) {
	ctx := testCtx(t)
	port := freePort(t, hubAddr)
	hub := startNode(t, "hub", hubConfig(routing.HubModeReflect, port, false))
	hubAP := []netip.AddrPort{netip.AddrPortFrom(hubAddr, uint16(port))}
	spoke := startNode(t, "spoke0", spokeConfig(0, hubAP, hubAS, hubAS))
	hub.waitRoutes(ctx, t, expectedHub(1, 2))
	for round := range 2 {
		if err := spoke.sp.Stop(ctx); err != nil {
			t.Fatal(err)
		}
		hub.waitRoutes(ctx, t, "")
		for {
			sum, err := hub.sp.Summary(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.ContainsFunc(sum, func(n routing.NeighborSummary) bool { return n.Neighbor == spokeAddrs[0] }) {
				break
			}
			select {
			case <-ctx.Done():
				t.Fatalf("round %d: dynamic neighbor not deleted: %+v", round, sum)
			case <-time.After(50 * time.Millisecond):
			}
		}
		if err := spoke.sp.Start(ctx); err != nil {
			t.Fatal(err)
		}
		hub.waitRoutes(ctx, t, expectedHub(1, 2))
	}

	a := startAttacker(t, ctx, spokeAddrs[1], netip.AddrPortFrom(hubAddr, uint16(port)))
	a.announce(ctx, t, pfx("192.168.70.0/24"), spokeAddrs[0])
	a.announce(ctx, t, spokeLAN(1), spokeAddrs[1]) // barrier
	hub.waitRoutes(ctx, t, expectedHub(2))
}
