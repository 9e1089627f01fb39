package kerneltest

import (
	"context"
	"errors"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/dmvpnd/dmvpnd/kernel"
)

// ContractDataplane is what the controller uses of package kernel's
// dataplane: the desired-state API, the neighbour batch and walk, and the
// miss watch. *kernel.Kernel and *Fake both implement it.
type ContractDataplane interface {
	kernel.Dataplane
	kernel.NeighborBatcher
	kernel.NeighborWalker
	kernel.MissWatcher
}

// System is one fresh dataplane under the contract: a new network
// namespace for the real kernel, a new Fake for the fake.
type System struct {
	// Open returns a new handle onto the system, as a restarted daemon
	// gets one: state written through one handle is seen through the next.
	// (A Fake is its own state: its Open returns the same Fake.)
	Open func(t *testing.T) ContractDataplane
	// Tunnel is a tunnel configuration the system accepts; its Address
	// must cover 10.0.0.0/24 or be a /32 in it (next hops are 10.0.0.x).
	Tunnel kernel.TunnelConfig
	// AddForeignRoute installs a route to dst through the tunnel that
	// dmvpnd does not own (protocol static, scope link, metric 0, beside
	// any route with the same key), and HasForeignRoute reports whether
	// it is still installed.
	AddForeignRoute func(t *testing.T, dst netip.Prefix)
	HasForeignRoute func(t *testing.T, dst netip.Prefix) bool
	// TunnelLayout renders the tunnel's IPv4 addresses and the main
	// table's routes to exactly prefix, sorted, as
	//
	//	addr 10.0.0.1/32
	//	route 10.0.0.0/24 proto 157 src 10.0.0.1
	//
	// (proto "kernel" and "static" by name, others by number; " src A"
	// when the route has a preferred source).
	TunnelLayout func(t *testing.T, prefix netip.Prefix) []string
}

// RunContract runs the dataplane contract the controller relies on against
// the systems newSystem makes (one per subtest): errors before a tunnel,
// tunnel create and adopt, the host address layout (create, adopt,
// switch both ways, foreign routes kept), neighbour replace/delete/list/walk/batch,
// route reconciliation with per-route errors and foreign routes left
// alone, and the miss watch's lifecycle. The fake runs it in a unit test,
// the real kernel in the lab (kernel's TestContractKernel), so the fake
// cannot drift from the kernel it imitates.
func RunContract(t *testing.T, newSystem func(t *testing.T) System) {
	for _, tc := range []struct {
		name string
		run  func(t *testing.T, s System)
	}{
		{"NoTunnel", contractNoTunnel},
		{"TunnelAdopt", contractTunnelAdopt},
		{"TunnelHostAddress", contractTunnelHostAddress},
		{"Neighbors", contractNeighbors},
		{"NeighborBatch", contractNeighborBatch},
		{"Routes", contractRoutes},
		{"MissWatch", contractMissWatch},
	} {
		t.Run(tc.name, func(t *testing.T) { tc.run(t, newSystem(t)) })
	}
}

var (
	cA, cB, cC, cD = netip.MustParseAddr("10.0.0.2"), netip.MustParseAddr("10.0.0.3"), netip.MustParseAddr("10.0.0.4"), netip.MustParseAddr("10.0.0.5")
	cX, cY, cZ     = netip.MustParseAddr("198.51.100.2"), netip.MustParseAddr("198.51.100.3"), netip.MustParseAddr("198.51.100.4")
	cV6            = netip.MustParseAddr("2001:db8::2")
)

// ensure opens a handle and ensures the tunnel on it.
func ensure(t *testing.T, s System) (ContractDataplane, int) {
	t.Helper()
	dp := s.Open(t)
	idx, err := dp.EnsureTunnel(s.Tunnel)
	if err != nil {
		t.Fatalf("EnsureTunnel: %v", err)
	}
	if idx <= 0 {
		t.Fatalf("EnsureTunnel returned ifindex %d", idx)
	}
	return dp, idx
}

// neighbors lists dp's neighbours, failing the test on an error.
func neighbors(t *testing.T, dp ContractDataplane) []kernel.Neighbor {
	t.Helper()
	ns, err := dp.ListNeighbors()
	if err != nil {
		t.Fatalf("ListNeighbors: %v", err)
	}
	return ns
}

// neighborText renders neighbours as "addr lladdr nbma permanent|dynamic",
// sorted: the states a dynamic entry passes through (REACHABLE, STALE...)
// are the kernel's business, permanence is the contract.
func neighborText(ns []kernel.Neighbor) []string {
	out := make([]string, 0, len(ns))
	for _, n := range ns {
		kind := "dynamic"
		if n.Permanent() {
			kind = "permanent"
		}
		out = append(out, n.Addr.String()+" lladdr "+n.NBMA.String()+" "+kind)
	}
	slices.Sort(out)
	return out
}

func wantNeighbors(t *testing.T, dp ContractDataplane, stage string, want ...string) {
	t.Helper()
	got := neighborText(neighbors(t, dp))
	if want == nil {
		want = []string{}
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("%s: ListNeighbors (-want +got):\n%s", stage, d)
	}
	var walked []kernel.Neighbor
	if err := dp.WalkNeighbors(func(n kernel.Neighbor) { walked = append(walked, n) }); err != nil {
		t.Fatalf("%s: WalkNeighbors: %v", stage, err)
	}
	if d := cmp.Diff(got, neighborText(walked)); d != "" {
		t.Errorf("%s: WalkNeighbors differs from ListNeighbors (-list +walk):\n%s", stage, d)
	}
}

func contractNoTunnel(t *testing.T, s System) {
	dp := s.Open(t)
	for what, err := range map[string]error{
		"ReplaceNeighbor": dp.ReplaceNeighbor(cA, cX, true),
		"DeleteNeighbor":  dp.DeleteNeighbor(cA),
		"SetRoutes":       dp.SetRoutes([]kernel.Route{{Dst: netip.MustParsePrefix("192.168.2.0/24"), Via: cA}}),
		"WalkNeighbors":   dp.WalkNeighbors(func(kernel.Neighbor) {}),
	} {
		if !errors.Is(err, kernel.ErrNoTunnel) {
			t.Errorf("%s before EnsureTunnel: %v, want ErrNoTunnel", what, err)
		}
	}
	if _, err := dp.ListNeighbors(); !errors.Is(err, kernel.ErrNoTunnel) {
		t.Errorf("ListNeighbors before EnsureTunnel: %v, want ErrNoTunnel", err)
	}
	for i, err := range dp.ApplyNeighbors([]kernel.NeighborOp{{Addr: cA, NBMA: cX}, {Addr: cB, Delete: true}}) {
		if !errors.Is(err, kernel.ErrNoTunnel) {
			t.Errorf("ApplyNeighbors op %d before EnsureTunnel: %v, want ErrNoTunnel", i, err)
		}
	}
	if _, err := dp.EnsureTunnel(kernel.TunnelConfig{}); err == nil {
		t.Error("EnsureTunnel with an empty configuration: no error")
	}
}

func contractTunnelAdopt(t *testing.T, s System) {
	dp, idx := ensure(t, s)
	if again, err := dp.EnsureTunnel(s.Tunnel); err != nil || again != idx {
		t.Fatalf("EnsureTunnel again: ifindex %d (%v), want %d", again, err, idx)
	}
	if err := dp.ReplaceNeighbor(cA, cX, true); err != nil {
		t.Fatal(err)
	}
	r := kernel.Route{Dst: netip.MustParsePrefix("192.168.2.0/24"), Via: cA}
	if err := dp.SetRoutes([]kernel.Route{r}); err != nil {
		t.Fatal(err)
	}
	// A restarted daemon adopts the tunnel and finds its entries.
	dp2, idx2 := ensure(t, s)
	if idx2 != idx {
		t.Fatalf("adopting EnsureTunnel: ifindex %d, want %d", idx2, idx)
	}
	wantNeighbors(t, dp2, "after adopt", "10.0.0.2 lladdr 198.51.100.2 permanent")
	wantRoutes(t, dp2, "after adopt", r)
}

// contractTunnelHostAddress: with HostAddress the tunnel carries its
// address as a /32 and the tunnel prefix as a route of dmvpnd's that
// SetRoutes neither lists, prunes nor replaces; a restart keeps both; a
// run without it puts the prefix address back and removes the route, a run
// with it again swaps back; a foreign route to the prefix stays throughout.
func contractTunnelHostAddress(t *testing.T, s System) {
	prefix := netip.MustParsePrefix("10.0.0.0/24")
	host := s.Tunnel
	host.Address = netip.PrefixFrom(s.Tunnel.Address.Addr(), prefix.Bits())
	host.HostAddress = true
	plain := host
	plain.HostAddress = false
	addr := host.Address.Addr().String()
	hostLayout := []string{"addr " + addr + "/32", "route 10.0.0.0/24 proto 157 src " + addr}
	plainLayout := []string{"addr " + host.Address.String(), "route 10.0.0.0/24 proto kernel src " + addr}
	layout := func(stage string, want ...string) {
		t.Helper()
		slices.Sort(want)
		if d := cmp.Diff(want, s.TunnelLayout(t, prefix)); d != "" {
			t.Errorf("%s: tunnel layout (-want +got):\n%s", stage, d)
		}
	}
	ensureAs := func(stage string, cfg kernel.TunnelConfig) (ContractDataplane, int) {
		t.Helper()
		dp := s.Open(t)
		idx, err := dp.EnsureTunnel(cfg)
		if err != nil {
			t.Fatalf("%s: EnsureTunnel: %v", stage, err)
		}
		return dp, idx
	}

	dp, idx := ensureAs("create", host)
	layout("created with a host address", hostLayout...)
	wantRoutes(t, dp, "created with a host address")
	lan2 := kernel.Route{Dst: netip.MustParsePrefix("192.168.2.0/24"), Via: cA}
	over := kernel.Route{Dst: prefix}
	err := dp.SetRoutes([]kernel.Route{lan2, over})
	var re *kernel.RouteErrors
	if !errors.As(err, &re) || len(re.Failed) != 1 || re.Failed[0].Route != over || !errors.Is(re.Failed[0].Err, kernel.ErrTunnelPrefixRoute) {
		t.Errorf("SetRoutes with the tunnel prefix: %v, want a *kernel.RouteErrors naming only %v (ErrTunnelPrefixRoute)", err, over)
	}
	wantRoutes(t, dp, "tunnel prefix refused", lan2)
	if err := dp.SetRoutes(nil); err != nil {
		t.Fatal(err)
	}
	wantRoutes(t, dp, "none desired")
	layout("after SetRoutes(nil)", hostLayout...)

	dp, idx2 := ensureAs("adopt", host)
	if idx2 != idx {
		t.Fatalf("adopting EnsureTunnel: ifindex %d, want %d", idx2, idx)
	}
	layout("adopted", hostLayout...)
	wantRoutes(t, dp, "adopted")

	s.AddForeignRoute(t, prefix)
	foreign := "route 10.0.0.0/24 proto static"
	layout("foreign route added", append(hostLayout, foreign)...)
	if _, err := s.Open(t).EnsureTunnel(plain); err != nil {
		t.Fatalf("EnsureTunnel without the host address: %v", err)
	}
	layout("switched to the prefix address", append(plainLayout, foreign)...)
	dp, _ = ensureAs("back", host)
	layout("switched back to the host address", append(hostLayout, foreign)...)
	wantRoutes(t, dp, "switched back")
	if !s.HasForeignRoute(t, prefix) {
		t.Errorf("switching layouts removed the foreign route to %v", prefix)
	}
}

func contractNeighbors(t *testing.T, s System) {
	dp, _ := ensure(t, s)
	wantNeighbors(t, dp, "fresh tunnel")
	if err := dp.ReplaceNeighbor(cA, cX, true); err != nil {
		t.Fatal(err)
	}
	if err := dp.ReplaceNeighbor(cB, cY, false); err != nil {
		t.Fatal(err)
	}
	if err := dp.ReplaceNeighbor(cA, cX, true); err != nil {
		t.Fatalf("rewriting a permanent entry unchanged: %v", err)
	}
	wantNeighbors(t, dp, "replaced", "10.0.0.2 lladdr 198.51.100.2 permanent", "10.0.0.3 lladdr 198.51.100.3 dynamic")
	if err := dp.ReplaceNeighbor(cB, cZ, true); err != nil {
		t.Fatal(err)
	}
	if err := dp.ReplaceNeighbor(cA, cY, false); err != nil {
		t.Fatal(err)
	}
	wantNeighbors(t, dp, "replaced again", "10.0.0.2 lladdr 198.51.100.3 dynamic", "10.0.0.3 lladdr 198.51.100.4 permanent")
	if err := dp.DeleteNeighbor(cA); err != nil {
		t.Fatal(err)
	}
	if err := dp.DeleteNeighbor(cA); err != nil {
		t.Errorf("deleting a missing entry: %v, want nil", err)
	}
	wantNeighbors(t, dp, "deleted", "10.0.0.3 lladdr 198.51.100.4 permanent")
	for what, err := range map[string]error{
		"ReplaceNeighbor(IPv6 address)": dp.ReplaceNeighbor(cV6, cX, false),
		"ReplaceNeighbor(IPv6 NBMA)":    dp.ReplaceNeighbor(cC, cV6, false),
		"DeleteNeighbor(IPv6)":          dp.DeleteNeighbor(cV6),
	} {
		var oe *kernel.OpError
		if !errors.As(err, &oe) {
			t.Errorf("%s: %v, want a *kernel.OpError", what, err)
		}
	}
	wantNeighbors(t, dp, "after refusals", "10.0.0.3 lladdr 198.51.100.4 permanent")
}

func contractNeighborBatch(t *testing.T, s System) {
	dp, _ := ensure(t, s)
	errs := dp.ApplyNeighbors([]kernel.NeighborOp{
		{Addr: cA, NBMA: cX},
		{Addr: cB, NBMA: cY, Permanent: true},
		{Addr: cV6, NBMA: cX},    // refused alone
		{Addr: cD, Delete: true}, // missing: not an error
		{Addr: cC, NBMA: cZ},
		{Addr: cA, Delete: true},
	})
	if len(errs) != 6 {
		t.Fatalf("ApplyNeighbors returned %d errors for 6 ops", len(errs))
	}
	for i, err := range errs {
		if (err != nil) != (i == 2) {
			t.Errorf("ApplyNeighbors op %d: %v (only op 2, the IPv6 one, is refused)", i, err)
		}
	}
	wantNeighbors(t, dp, "batch", "10.0.0.3 lladdr 198.51.100.3 permanent", "10.0.0.4 lladdr 198.51.100.4 dynamic")
}

// routeText renders routes as their sorted String forms.
func routeText(rs []kernel.Route) []string {
	out := make([]string, 0, len(rs))
	for _, r := range rs {
		out = append(out, r.String())
	}
	slices.Sort(out)
	return out
}

func wantRoutes(t *testing.T, dp ContractDataplane, stage string, want ...kernel.Route) {
	t.Helper()
	got, err := dp.ListRoutes()
	if err != nil {
		t.Fatalf("%s: ListRoutes: %v", stage, err)
	}
	if d := cmp.Diff(routeText(want), routeText(got)); d != "" {
		t.Errorf("%s: ListRoutes (-want +got):\n%s", stage, d)
	}
}

func contractRoutes(t *testing.T, s System) {
	dp, _ := ensure(t, s)
	wantRoutes(t, dp, "fresh tunnel")
	lan2 := kernel.Route{Dst: netip.MustParsePrefix("192.168.2.0/24"), Via: cA}
	lan2b := kernel.Route{Dst: netip.MustParsePrefix("192.168.2.0/24"), Via: cB, Metric: 20}
	lan3 := kernel.Route{Dst: netip.MustParsePrefix("192.168.3.0/24")} // on-link
	host := kernel.Route{Dst: netip.MustParsePrefix("192.168.4.7/32"), Via: cC}
	if err := dp.SetRoutes([]kernel.Route{lan2, lan2b, lan3, host}); err != nil {
		t.Fatal(err)
	}
	wantRoutes(t, dp, "installed", lan2, lan2b, lan3, host)
	if err := dp.SetRoutes([]kernel.Route{lan2, lan2b, lan3, host}); err != nil {
		t.Fatalf("same desired state again: %v", err)
	}

	moved := kernel.Route{Dst: lan2.Dst, Via: cD}
	unmasked := kernel.Route{Dst: netip.MustParsePrefix("192.168.5.9/24"), Via: cA}
	if err := dp.SetRoutes([]kernel.Route{moved, unmasked}); err != nil {
		t.Fatal(err)
	}
	wantRoutes(t, dp, "pruned and moved", moved, kernel.Route{Dst: unmasked.Dst.Masked(), Via: cA})

	bad := kernel.Route{Dst: netip.MustParsePrefix("2001:db8::/64"), Via: cA}
	err := dp.SetRoutes([]kernel.Route{bad, lan3})
	var re *kernel.RouteErrors
	if !errors.As(err, &re) || len(re.Failed) != 1 || re.Failed[0].Route != bad {
		t.Errorf("SetRoutes with an IPv6 route: %v, want a *kernel.RouteErrors naming only %v", err, bad)
	}
	wantRoutes(t, dp, "one refused", lan3)

	foreign := netip.MustParsePrefix("192.168.9.0/24")
	s.AddForeignRoute(t, foreign)
	if err := dp.SetRoutes(nil); err != nil {
		t.Fatal(err)
	}
	wantRoutes(t, dp, "none desired")
	if !s.HasForeignRoute(t, foreign) {
		t.Errorf("SetRoutes(nil) removed the foreign route %v", foreign)
	}
}

func contractMissWatch(t *testing.T, s System) {
	dp, _ := ensure(t, s)
	ctx, cancel := context.WithCancel(context.Background())
	ch, err := dp.WatchMisses(ctx)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	cancel()
	deadline := time.After(10 * time.Second)
	for {
		select {
		case _, ok := <-ch:
			if !ok {
				return
			}
		case <-deadline:
			t.Fatal("WatchMisses: channel still open 10 s after its context ended")
		}
	}
}
