package routing_test

import (
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/dmvpnd/dmvpnd/routing"
)

// TestIntegrationDynamicLimit: with Hub.DynamicLimit 1, the second spoke's
// session is refused (never established, its LAN never installed) and
// counted; without a registration, RequireRegistration refuses a spoke too.
func TestIntegrationDynamicLimit(t *testing.T) {
	ctx := testCtx(t)
	port := freePort(t, hubAddr)
	hcfg := hubConfig(routing.HubModeReflect, port, false)
	hcfg.Hub.DynamicLimit = 1
	hub := startNode(t, "hub", hcfg)
	hubAP := []netip.AddrPort{netip.AddrPortFrom(hubAddr, uint16(port))}
	s0 := startNode(t, "spoke0", spokeConfig(0, hubAP, hubAS, hubAS))
	hub.waitEstablished(ctx, t, spokeAddrs[0])
	s0.waitEstablished(ctx, t, hubAddr)
	startNode(t, "spoke1", spokeConfig(1, hubAP, hubAS, hubAS))
	deadline := time.Now().Add(4 * time.Second) // several connect retries
	for time.Now().Before(deadline) {
		if hub.sp.Stats().NeighborsRefused[routing.RefusedLimit] >= 2 {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if n := hub.sp.Stats().NeighborsRefused[routing.RefusedLimit]; n == 0 {
		t.Fatalf("second spoke not refused: %v", hub.sp.Stats())
	}
	hub.waitRoutes(ctx, t, expectedHub(1, 2))
	sum, err := hub.sp.Summary(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if slices.ContainsFunc(sum, func(n routing.NeighborSummary) bool {
		return n.Neighbor == spokeAddrs[1] && n.State == routing.StateEstablished
	}) {
		t.Errorf("refused spoke established: %+v", sum)
	}
}

// TestIntegrationMaxPrefixTeardown: a spoke sending more than MaxPrefixes
// is torn down (Cease), counted, and its routes never stay installed.
func TestIntegrationMaxPrefixTeardown(t *testing.T) {
	ctx := testCtx(t)
	port := freePort(t, hubAddr)
	hcfg := hubConfig(routing.HubModeReflect, port, false)
	hcfg.MaxPrefixes = 2
	hub := startNode(t, "hub", hcfg)
	cfg := spokeConfig(0, []netip.AddrPort{netip.AddrPortFrom(hubAddr, uint16(port))}, hubAS, hubAS)
	cfg.Prefixes = []netip.Prefix{pfx("192.168.2.0/24"), pfx("192.168.20.0/24"), pfx("192.168.21.0/24")}
	startNode(t, "spoke0", cfg)
	// The dynamic neighbor is deleted once torn down, so it may be gone
	// from Summary by the time we look: the speaker-wide count stays.
	for hub.sp.Stats().MaxPrefixTeardowns == 0 {
		select {
		case <-ctx.Done():
			t.Fatalf("no max-prefix teardown: %+v", hub.sp.Stats())
		case <-time.After(50 * time.Millisecond):
		}
	}
	hub.waitRoutes(ctx, t, "")
}

// TestIntegrationRequireRegistration: an unregistered spoke is refused
// until the controller reports its tunnel address registered; losing the
// registration closes the session and withdraws its routes.
func TestIntegrationRequireRegistration(t *testing.T) {
	ctx := testCtx(t)
	port := freePort(t, hubAddr)
	hcfg := hubConfig(routing.HubModeReflect, port, false)
	hcfg.Hub.RequireRegistration = true
	hub := startNode(t, "hub", hcfg)
	startNode(t, "spoke0", spokeConfig(0, []netip.AddrPort{netip.AddrPortFrom(hubAddr, uint16(port))}, hubAS, hubAS))
	for hub.sp.Stats().NeighborsRefused[routing.RefusedUnregistered] == 0 {
		select {
		case <-ctx.Done():
			t.Fatal("unregistered spoke not refused")
		case <-time.After(50 * time.Millisecond):
		}
	}
	if got := hub.sink.String(); got != "" {
		t.Fatalf("routes of an unregistered spoke: %q", got)
	}
	hub.sp.SetRegistered([]netip.Addr{spokeAddrs[0]})
	hub.waitRoutes(ctx, t, expectedHub(1, 2))
	hub.sp.SetRegistered(nil)
	hub.waitRoutes(ctx, t, "")
}
