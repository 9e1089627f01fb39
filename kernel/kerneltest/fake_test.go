package kerneltest

import (
	"context"
	"errors"
	"math/rand/v2"
	"net/netip"
	"sort"
	"testing"
	"time"

	"github.com/dmvpnd/dmvpnd/e2e/golden"
	"github.com/dmvpnd/dmvpnd/kernel"
	"github.com/google/go-cmp/cmp"
)

var (
	a = netip.MustParseAddr
	p = netip.MustParsePrefix
)

func tunnelCfg() kernel.TunnelConfig {
	return kernel.TunnelConfig{
		Name: "gre1", Local: a("198.51.100.1"), Key: 42, TTL: 64, MTU: 1400,
		Address: p("10.0.0.1/32"),
	}
}

// desired is one whole desired kernel state, as the controller builds it.
type desired struct {
	neigh  map[netip.Addr]kernel.Neighbor
	routes []kernel.Route
}

// apply reconciles dp to d through the kernel.Dataplane interface only.
func apply(t *testing.T, dp kernel.Dataplane, d desired) {
	t.Helper()
	if _, err := dp.EnsureTunnel(tunnelCfg()); err != nil {
		t.Fatal(err)
	}
	have, err := dp.ListNeighbors()
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range have {
		if _, ok := d.neigh[n.Addr]; !ok {
			if err := dp.DeleteNeighbor(n.Addr); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, n := range d.neigh {
		if err := dp.ReplaceNeighbor(n.Addr, n.NBMA, n.Permanent()); err != nil {
			t.Fatal(err)
		}
	}
	if err := dp.SetRoutes(d.routes); err != nil {
		t.Fatal(err)
	}
}

func randomDesired(r *rand.Rand) desired {
	d := desired{neigh: map[netip.Addr]kernel.Neighbor{}}
	for i := 0; i < r.IntN(6); i++ {
		addr := netip.AddrFrom4([4]byte{10, 0, 0, byte(2 + r.IntN(8))})
		st := kernel.NeighReachable
		if r.IntN(3) == 0 {
			st = kernel.NeighPermanent
		}
		d.neigh[addr] = kernel.Neighbor{Addr: addr, NBMA: netip.AddrFrom4([4]byte{198, 51, 100, byte(r.IntN(250))}), State: st}
	}
	seen := map[netip.Prefix]bool{}
	for i := 0; i < r.IntN(6); i++ {
		dst := netip.PrefixFrom(netip.AddrFrom4([4]byte{192, 168, byte(r.IntN(8)), 0}), 24)
		if seen[dst] {
			continue
		}
		seen[dst] = true
		rt := kernel.Route{Dst: dst}
		if r.IntN(2) == 0 {
			rt.Via = netip.AddrFrom4([4]byte{10, 0, 0, byte(2 + r.IntN(8))})
		}
		d.routes = append(d.routes, rt)
	}
	return d
}

// TestConvergesFromAnyOrder applies random desired states in random order
// and checks that the final state always equals a fresh fake given only the
// last desired state, and that foreign routes survive every transition.
func TestConvergesFromAnyOrder(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	states := make([]desired, 12)
	for i := range states {
		states[i] = randomDesired(r)
	}
	for round := 0; round < 50; round++ {
		order := r.Perm(len(states))
		f := New()
		f.AddForeignRoute("10.99.0.0/16 via 192.0.2.1 dev eth0 proto static")
		for _, i := range order {
			apply(t, f, states[i])
		}
		last := states[order[len(order)-1]]
		fresh := New()
		fresh.AddForeignRoute("10.99.0.0/16 via 192.0.2.1 dev eth0 proto static")
		apply(t, fresh, last)
		if d := cmp.Diff(fresh.Render(), f.Render()); d != "" {
			t.Fatalf("round %d order %v: state did not converge (-want +got):\n%s", round, order, d)
		}
		// Applying the same state again changes no route and no permanent entry.
		before := len(f.Ops())
		if err := f.SetRoutes(last.routes); err != nil {
			t.Fatal(err)
		}
		if got := f.Ops()[before:]; len(got) != 0 {
			t.Fatalf("re-applying routes performed %v", got)
		}
	}
}

func TestRenderGolden(t *testing.T) {
	f := New()
	apply(t, f, desired{
		neigh: map[netip.Addr]kernel.Neighbor{
			a("10.0.0.254"): {Addr: a("10.0.0.254"), NBMA: a("203.0.113.254"), State: kernel.NeighPermanent},
			a("10.0.0.2"):   {Addr: a("10.0.0.2"), NBMA: a("198.51.100.2"), State: kernel.NeighReachable},
		},
		routes: []kernel.Route{
			{Dst: p("192.168.2.0/24"), Via: a("10.0.0.3")},
			{Dst: p("10.0.0.3/32"), Metric: 10},
		},
	})
	f.AddForeignRoute("10.99.0.0/16 via 192.0.2.1 dev eth0 proto static")
	if err := f.Install(11); err != nil {
		t.Fatal(err)
	}
	golden.File(t, "render.golden", f.Render())
}

func TestFakeErrors(t *testing.T) {
	f := New()
	if err := f.ReplaceNeighbor(a("10.0.0.2"), a("1.2.3.4"), false); !errors.Is(err, kernel.ErrNoTunnel) {
		t.Errorf("before EnsureTunnel: %v", err)
	}
	if _, err := f.EnsureTunnel(tunnelCfg()); err != nil {
		t.Fatal(err)
	}
	f.NeighborLimit = 2
	for i, addr := range []string{"10.0.0.2", "10.0.0.3"} {
		if err := f.ReplaceNeighbor(a(addr), a("198.51.100.9"), false); err != nil {
			t.Fatalf("entry %d: %v", i, err)
		}
	}
	err := f.ReplaceNeighbor(a("10.0.0.4"), a("198.51.100.4"), false)
	if !errors.Is(err, kernel.ErrResourceExhausted) {
		t.Errorf("over the limit: err = %v, want ErrResourceExhausted", err)
	}
	want := "kernel: replace neighbor 10.0.0.4 lladdr 198.51.100.4 dev gre1: no buffer space available"
	if err == nil || err.Error() != want {
		t.Errorf("err = %v, want %q", err, want)
	}
	// Permanent entries are exempt, existing ones can be refreshed.
	if err := f.ReplaceNeighbor(a("10.0.0.254"), a("203.0.113.1"), true); err != nil {
		t.Errorf("permanent entry refused: %v", err)
	}
	if err := f.ReplaceNeighbor(a("10.0.0.2"), a("198.51.100.2"), false); err != nil {
		t.Errorf("refresh refused: %v", err)
	}
	if err := f.DeleteNeighbor(a("10.0.0.77")); err != nil {
		t.Errorf("delete of missing entry: %v", err)
	}
	boom := errors.New("boom")
	f.FailNext("SetRoutes", boom)
	if err := f.SetRoutes(nil); !errors.Is(err, boom) {
		t.Errorf("FailNext: %v", err)
	}
	if err := f.SetRoutes(nil); err != nil {
		t.Errorf("failure not one-shot: %v", err)
	}
}

func TestFakeEvents(t *testing.T) {
	f := New()
	if _, err := f.EnsureTunnel(tunnelCfg()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	misses, err := f.WatchMisses(ctx)
	if err != nil {
		t.Fatal(err)
	}
	hp, err := f.Hairpins(ctx)
	if err != nil {
		t.Fatal(err)
	}
	m := kernel.Miss{Addr: a("10.0.0.5"), State: kernel.NeighIncomplete}
	if n := f.InjectMiss(m); n != 1 {
		t.Fatalf("InjectMiss reached %d watchers", n)
	}
	select {
	case got := <-misses:
		if got != m {
			t.Errorf("miss = %v, want %v", got, m)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no miss")
	}
	if n := f.InjectHairpin(kernel.Hairpin{InIfindex: 11}); n != 0 {
		t.Errorf("hairpin delivered without an installed trigger")
	}
	if err := f.Install(11); err != nil {
		t.Fatal(err)
	}
	if n := f.InjectHairpin(kernel.Hairpin{InIfindex: 11, Packet: []byte{0x45}}); n != 1 {
		t.Errorf("hairpin reached %d watchers", n)
	}
	if got := <-hp; got.InIfindex != 11 {
		t.Errorf("hairpin = %+v", got)
	}
	cancel()
	if _, ok := <-misses; ok {
		t.Error("miss channel not closed after cancel")
	}
	if _, ok := <-hp; ok {
		t.Error("hairpin channel not closed after cancel")
	}
}

func TestNetwork(t *testing.T) {
	n := NewNetwork()
	c1, err := n.Listen(a("198.51.100.1"))
	if err != nil {
		t.Fatal(err)
	}
	c2, err := n.Listen(a("198.51.100.2"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := n.Listen(a("198.51.100.2")); err == nil {
		t.Error("duplicate address accepted")
	}
	if _, err := c1.WriteTo([]byte("hello"), a("198.51.100.2")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64)
	nr, from, err := c2.ReadFrom(buf)
	if err != nil || string(buf[:nr]) != "hello" || from != a("198.51.100.1") {
		t.Errorf("ReadFrom = %q from %v, %v", buf[:nr], from, err)
	}
	_ = c2.Close()
	if _, _, err := c2.ReadFrom(buf); err == nil {
		t.Error("read after close succeeded")
	}
}

// TestFakeSetRoutesSkipsRefused: a refused, an invalid and a conflicting
// route are each reported; the others are installed and stale ones pruned.
func TestFakeSetRoutesSkipsRefused(t *testing.T) {
	f := New()
	if _, err := f.EnsureTunnel(tunnelCfg()); err != nil {
		t.Fatal(err)
	}
	p, a := netip.MustParsePrefix, netip.MustParseAddr
	stale := kernel.Route{Dst: p("192.168.9.0/24"), Via: a("10.0.0.9"), Metric: 20}
	if err := f.SetRoutes([]kernel.Route{stale}); err != nil {
		t.Fatal(err)
	}
	bcast := a("10.0.0.255")
	refused := errors.New("invalid gateway")
	f.RefuseRoutes(func(r kernel.Route) error {
		if r.Via == bcast {
			return refused
		}
		return nil
	})
	good := kernel.Route{Dst: p("192.168.2.0/24"), Via: a("10.0.0.2"), Metric: 20}
	bad := kernel.Route{Dst: p("192.168.3.0/24"), Via: bcast, Metric: 20}
	invalid := kernel.Route{Dst: p("fd00::/64")}
	conflict := kernel.Route{Dst: p("192.168.2.0/24"), Via: a("10.0.0.3"), Metric: 20}
	err := f.SetRoutes([]kernel.Route{good, bad, invalid, conflict})
	var re *kernel.RouteErrors
	if !errors.As(err, &re) {
		t.Fatalf("SetRoutes = %v, want *kernel.RouteErrors", err)
	}
	var failed []string
	for _, e := range re.Failed {
		failed = append(failed, e.Route.String())
	}
	sort.Strings(failed)
	if d := cmp.Diff([]string{conflict.String(), bad.String(), invalid.String()}, failed); d != "" {
		t.Errorf("failed (-want +got):\n%s", d)
	}
	if !errors.Is(err, refused) {
		t.Errorf("errors.Is(%v, refused) = false", err)
	}
	got, _ := f.ListRoutes()
	if d := cmp.Diff([]kernel.Route{good}, got, cmp.Comparer(func(x, y kernel.Route) bool { return x == y })); d != "" {
		t.Errorf("routes (-want +got):\n%s", d)
	}
}

// TestFakeApplyNeighborsRefusesOne: one refused op of a batch fails alone,
// the others are applied in order, and the state is what one-by-one calls
// would leave.
func TestFakeApplyNeighborsRefusesOne(t *testing.T) {
	f := New()
	if _, err := f.EnsureTunnel(tunnelCfg()); err != nil {
		t.Fatal(err)
	}
	f.RefuseNeighbors(func(o kernel.NeighborOp) error {
		if o.Addr == a("10.0.0.3") {
			return errors.New("refused")
		}
		return nil
	})
	errs := f.ApplyNeighbors([]kernel.NeighborOp{
		{Addr: a("10.0.0.2"), NBMA: a("198.51.100.2"), Permanent: true},
		{Addr: a("10.0.0.3"), NBMA: a("198.51.100.3"), Permanent: true},
		{Addr: a("10.0.0.4"), NBMA: a("198.51.100.4")},
		{Addr: a("10.0.0.9"), Delete: true},
		{Addr: a("10.0.0.2"), Delete: true},
	})
	var got []string
	for _, err := range errs {
		s := ""
		if err != nil {
			s = err.Error()
		}
		got = append(got, s)
	}
	want := []string{"", "kernel: replace neighbor 10.0.0.3 lladdr 198.51.100.3 dev gre1: refused", "", "", ""}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("errors (-want +got):\n%s", d)
	}
	ns, err := f.ListNeighbors()
	if err != nil {
		t.Fatal(err)
	}
	if len(ns) != 1 || ns[0] != (kernel.Neighbor{Addr: a("10.0.0.4"), NBMA: a("198.51.100.4"), State: kernel.NeighReachable}) {
		t.Errorf("neighbors %v, want only 10.0.0.4", ns)
	}
	if d := cmp.Diff([]int{5}, f.NeighborBatches()); d != "" {
		t.Errorf("batches (-want +got):\n%s", d)
	}
}
