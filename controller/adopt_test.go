package controller

import (
	"context"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/dmvpnd/dmvpnd/kernel"
	"github.com/dmvpnd/dmvpnd/kernel/kerneltest"
)

// previousRun is the kernel state a killed dmvpnd on s1 left: its tunnel,
// the permanent entry for its NHS, a shortcut to s2's LAN with s2's
// REACHABLE neighbor entry, and a shortcut via 10.0.0.9, a peer that is
// gone.
func previousRun(t *testing.T, cfgYAML string) *kerneltest.Fake {
	t.Helper()
	k := kerneltest.New()
	if _, err := k.EnsureTunnel(tunnelConfig(parseConfig(t, cfgYAML))); err != nil {
		t.Fatal(err)
	}
	for _, n := range []struct {
		proto, nbma string
		permanent   bool
	}{
		{"10.0.0.1", "198.51.100.1", true},
		{"10.0.0.3", "198.51.100.3", false},
		{"10.0.0.9", "198.51.100.9", false},
	} {
		if err := k.ReplaceNeighbor(netip.MustParseAddr(n.proto), netip.MustParseAddr(n.nbma), n.permanent); err != nil {
			t.Fatal(err)
		}
	}
	err := k.SetRoutes([]kernel.Route{
		{Dst: netip.MustParsePrefix("192.168.2.0/24"), Via: netip.MustParseAddr("10.0.0.3"), Metric: shortcutMetric},
		{Dst: netip.MustParsePrefix("192.168.9.0/24"), Via: netip.MustParseAddr("10.0.0.9"), Metric: shortcutMetric},
	})
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// s1YAML is spoke s1 of hubWithLANs's cloud.
var s1YAML = spokeYAML("198.51.100.2", "10.0.0.2/24", "198.51.100.1", "10.0.0.1")

// restartS1 starts s1 on the kernel state previousRun left, cut off the
// network while cut is set; base is the number of kernel operations
// before s1 started.
func restartS1(t *testing.T, netw *kerneltest.Network, cut *atomic.Bool) (s1 *node, k *kerneltest.Fake, base int) {
	t.Helper()
	k = previousRun(t, s1YAML)
	base = len(k.Ops())
	s1 = startOn(t, netw, "s1", s1YAML, lanRoutes("192.168.1.0/24", "192.168.0.0/16", "10.0.0.1"), k, cut)
	return s1, k, base
}

// gatedConn drops everything while cut is set: the node is cut off from
// the NBMA network.
type gatedConn struct {
	kernel.PacketConn
	cut *atomic.Bool
}

func (g gatedConn) WriteTo(b []byte, nbma netip.Addr) (int, error) {
	if g.cut.Load() {
		return len(b), nil
	}
	return g.PacketConn.WriteTo(b, nbma)
}

func (g gatedConn) ReadFrom(b []byte) (int, netip.Addr, error) {
	for {
		n, from, err := g.PacketConn.ReadFrom(b)
		if err != nil || !g.cut.Load() {
			return n, from, err
		}
	}
}

// opsSince returns the fake's operations after the first n, those
// touching the given addresses or prefixes only.
func opsSince(k *kerneltest.Fake, n int, about ...string) []string {
	var out []string
	for _, op := range k.Ops()[n:] {
		for _, a := range about {
			if strings.Contains(op, a+" ") || strings.HasSuffix(op, a) {
				out = append(out, op)
				break
			}
		}
	}
	return out
}

// TestRestartAdoptsShortcut: s1 restarts (its hub is unreachable for the
// first seconds) on a kernel that carries its previous shortcut. The
// shortcut route and its neighbor entry are kept while nothing is known,
// never deleted nor pointed at the hub; once registered, s1 re-resolves
// the prefix, the engine owns the shortcut again (show nhrp shortcuts),
// and the route via the peer that is gone is removed as soon as its
// resolution fails.
func TestRestartAdoptsShortcut(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		netw := kerneltest.NewNetwork()
		hub := hubWithLANs(t, netw, "")
		s2 := startSpoke(t, netw, 2, "")
		var cut atomic.Bool
		cut.Store(true)
		s1, k, base := restartS1(t, netw, &cut)
		defer stopAll(t, s1, s2, hub)

		// s1 cannot reach its hub yet: nothing can be re-learnt; everything
		// is kept.
		time.Sleep(10 * time.Second)
		synctest.Wait()
		for _, want := range [][]string{
			{"route 192.168.2.0/24", "via 10.0.0.3"},
			{"route 192.168.9.0/24", "via 10.0.0.9"},
			{"neigh 10.0.0.3", "198.51.100.3"},
		} {
			if !s1.has(want...) {
				t.Errorf("s1 before registration: no %q; state:\n%s", want, k.Render())
			}
		}
		if got := opsSince(k, base, "192.168.2.0/24", "192.168.9.0/24", "10.0.0.3", "10.0.0.9"); len(got) != 0 {
			t.Errorf("s1 touched adopted state before learning anything: %q", got)
		}

		cut.Store(false)
		deadline := time.Now().Add(60 * time.Second)
		for time.Now().Before(deadline) {
			if scs, _ := s1.ctl.Shortcuts(context.Background()); len(scs) == 1 && s1.has("route 192.168.2.0/24") && !s1.has("route 192.168.9.0/24") {
				break
			}
			time.Sleep(500 * time.Millisecond)
		}
		scs, err := s1.ctl.Shortcuts(context.Background())
		if err != nil || len(scs) != 1 || scs[0].Prefix != netip.MustParsePrefix("192.168.2.0/24") || scs[0].Via != netip.MustParseAddr("10.0.0.3") {
			t.Fatalf("s1 shortcuts after re-learning: %+v, %v; want 192.168.2.0/24 via 10.0.0.3", scs, err)
		}
		// The adopted route and entry were re-learnt in place: the entry
		// was only ever re-written with the same address, the route never.
		want := []string{"replace neighbor 10.0.0.3 lladdr 198.51.100.3 REACHABLE"}
		if diff := cmp.Diff(want, opsSince(k, base, "192.168.2.0/24", "10.0.0.3")); diff != "" {
			t.Errorf("s1 kernel operations on the adopted shortcut (-want +got):\n%s\nstate:\n%s", diff, k.Render())
		}
		if got := opsSince(k, base, "192.168.9.0/24"); !cmp.Equal(got, []string{"delete route 192.168.9.0/24 via 10.0.0.9 metric 10"}) {
			t.Errorf("s1 operations on the stale shortcut = %q, want only its deletion", got)
		}
		if s1.has("route 192.168.9.0/24") {
			t.Errorf("s1 kept the route via a peer that is gone:\n%s", k.Render())
		}
		for _, op := range k.Ops()[base:] {
			if strings.HasPrefix(op, "delete neighbor 10.0.0.1") || strings.HasPrefix(op, "create tunnel") {
				t.Errorf("s1 operation %q on adopted state", op)
			}
		}

		// The entry for the gone peer goes at the end of the grace period.
		time.Sleep(adoptGrace)
		synctest.Wait()
		if s1.has("neigh 10.0.0.9") {
			t.Errorf("s1 kept the neighbor entry of a peer that is gone after the grace period:\n%s", k.Render())
		}
		if !s1.has("neigh 10.0.0.3", "198.51.100.3") || !s1.has("route 192.168.2.0/24", "via 10.0.0.3") {
			t.Errorf("s1 lost the re-learnt shortcut at the end of the grace period:\n%s", k.Render())
		}
	})
}

// TestAdoptionExpires: when nothing re-learns adopted state (the hub never
// answers), it is kept for the grace period and removed afterwards.
func TestAdoptionExpires(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s1, k, base := restartS1(t, kerneltest.NewNetwork(), &atomic.Bool{})
		defer stopAll(t, s1)

		time.Sleep(adoptGrace - 5*time.Second)
		synctest.Wait()
		if !s1.has("route 192.168.2.0/24", "via 10.0.0.3") || !s1.has("neigh 10.0.0.3", "198.51.100.3") {
			t.Errorf("s1 dropped adopted state before the grace period ended:\n%s", k.Render())
		}
		time.Sleep(10 * time.Second)
		synctest.Wait()
		want := []string{
			"delete neighbor 10.0.0.3",
			"delete neighbor 10.0.0.9",
			"delete route 192.168.2.0/24 via 10.0.0.3 metric 10",
			"delete route 192.168.9.0/24 via 10.0.0.9 metric 10",
		}
		got := opsSince(k, base, "192.168.2.0/24", "192.168.9.0/24", "10.0.0.3", "10.0.0.9")
		if diff := cmp.Diff(want, got, sortStrings); diff != "" {
			t.Errorf("s1 operations after the grace period (-want +got):\n%s", diff)
		}
		// The NHS entry is permanent: kept until the holding time.
		if !s1.has("neigh 10.0.0.1", "198.51.100.1") {
			t.Errorf("s1 dropped the NHS entry with the dynamic ones:\n%s", k.Render())
		}
	})
}

// TestAdoptedNeighborKeptAlive: a kernel miss for an adopted entry the
// engine does not know yet (the REACHABLE entry aged while traffic uses
// it) re-writes the entry instead of resolving the address.
func TestAdoptedNeighborKeptAlive(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s1, k, base := restartS1(t, kerneltest.NewNetwork(), &atomic.Bool{})
		defer stopAll(t, s1)
		time.Sleep(time.Second)
		synctest.Wait()
		k.SetNeighborState(netip.MustParseAddr("10.0.0.3"), kernel.NeighProbe)
		if n := k.InjectMiss(kernel.Miss{Addr: netip.MustParseAddr("10.0.0.3"), State: kernel.NeighProbe}); n != 1 {
			t.Fatalf("miss delivered to %d watchers", n)
		}
		time.Sleep(time.Second)
		synctest.Wait()
		if !s1.has("neigh 10.0.0.3", "198.51.100.3", "REACHABLE") {
			t.Errorf("adopted entry not refreshed after a PROBE miss:\n%s", k.Render())
		}
		if got := opsSince(k, base, "10.0.0.3"); !cmp.Equal(got, []string{"replace neighbor 10.0.0.3 lladdr 198.51.100.3 REACHABLE"}) {
			t.Errorf("operations on 10.0.0.3 = %q", got)
		}
		c, err := s1.ctl.Cache(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range c {
			if e.Tunnel == netip.MustParseAddr("10.0.0.3") {
				t.Errorf("the miss reached the engine: cache entry %+v", e)
			}
		}
	})
}

var sortStrings = cmpopts.SortSlices(func(a, b string) bool { return a < b })

// TestResolvedNeighborRefreshedOnProbe: the REACHABLE entry of a resolved
// peer ages while traffic uses it; the kernel asks (PROBE) and fails the
// entry a second later unless userspace answers. The controller writes it
// again (same address) and tells the engine the peer is in use.
func TestResolvedNeighborRefreshedOnProbe(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		netw := kerneltest.NewNetwork()
		hub, s1, s2 := registeredCloud(t, netw)
		defer stopAll(t, s1, s2, hub)
		hub.kernel.InjectHairpin(kernel.Hairpin{InIfindex: 1, Packet: ipv4Packet("192.168.1.10", "192.168.2.20")})
		time.Sleep(5 * time.Second)
		synctest.Wait()
		if !s1.has("neigh 10.0.0.3", "198.51.100.3") {
			t.Fatalf("s1: no shortcut neighbor; state:\n%s", s1.kernel.Render())
		}
		base := len(s1.kernel.Ops())
		a := netip.MustParseAddr("10.0.0.3")
		s1.kernel.SetNeighborState(a, kernel.NeighProbe)
		s1.kernel.InjectMiss(kernel.Miss{Addr: a, State: kernel.NeighProbe})
		time.Sleep(time.Second)
		synctest.Wait()
		if got := opsSince(s1.kernel, base, "10.0.0.3"); !cmp.Equal(got, []string{"replace neighbor 10.0.0.3 lladdr 198.51.100.3 REACHABLE"}) {
			t.Errorf("operations on 10.0.0.3 after a PROBE miss = %q, want one rewrite with the same address", got)
		}
		cs, err := s1.ctl.Counters(context.Background())
		if err != nil || cs["kernel_neighbor_refreshes"] != 1 {
			t.Errorf("kernel_neighbor_refreshes = %d (%v), want 1", cs["kernel_neighbor_refreshes"], err)
		}
	})
}
