package e2e

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/dmvpnd/dmvpnd/controller/api"
	"github.com/dmvpnd/dmvpnd/e2e/lab"
)

// TestDMVPNChurn is issue 9 scenario 6: a spoke whose NBMA address changes
// (DHCP-like: eth0 gets a new address, dmvpnd restarts with the new
// local_nbma) is reachable again after re-registering, and what others
// learnt about its old address is purged.
//
// Spokes whose underlay address may change must register no-unique: a
// unique registration pins the protocol address to the NBMA address that
// registered it until the entry expires, so the hub refuses the new
// address with code 14. The test uses no-unique for the address change
// and then checks that a unique registration from yet another address is
// refused while the no-unique entry lives.
//
// With real packets it checks: s1 resolves s2 through the hub (Phase 3
// shortcut, s1's neighbor entry for s2 points at s2's NBMA); s2 moves to a
// new NBMA address and re-registers; the hub's cache shows only the new
// address; s1's neighbor entry no longer points at the old address; the
// hub and s1 reach s2's tunnel address and LAN again.
func TestDMVPNChurn(t *testing.T) {
	l, n := scLab(t,
		scSpec{name: "hub", nbma: "198.51.100.1", tunnel: "10.0.0.1", hub: true},
		scSpec{name: "s1", nbma: "198.51.100.2", tunnel: "10.0.0.2", lan: "10.1.1.1/24"},
		scSpec{name: "s2", nbma: "198.51.100.3", tunnel: "10.0.0.3", lan: "10.1.2.1/24"},
	)
	hub, s1, s2 := n["hub"], n["s1"], n["s2"]
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer cancel()

	spokeCfg := func(registration string) string {
		return scSpokeNHRP("300s", true, registration, scNHS{hub, 0})
	}
	scStart(t, l, hub, scConfig(hub, scHubNHRP("300s", true)))
	for _, s := range []*dnode{s1, s2} {
		scStart(t, l, s, scConfig(s, spokeCfg("no-unique")))
	}
	for _, s := range []*dnode{s1, s2} {
		if _, err := scWaitNHS(ctx, s, 90*time.Second, map[netip.Addr]bool{hub.nbma: true}); err != nil {
			t.Fatal(err)
		}
		s.node.MustRun("ip route replace 10.1.0.0/16 via 10.0.0.1 dev gre1 onlink")
		hub.node.MustRun(fmt.Sprintf("ip route replace %s via %s dev gre1 onlink", s.lan.Masked(), s.tunnel))
	}

	// s1 resolves s2 (Phase 3): a shortcut to s2's LAN via s2, and a
	// neighbor entry for s2 at its NBMA address once the direct path works.
	oldNBMA := s2.nbma
	err := lab.WaitFor(ctx, 500*time.Millisecond, func(ctx context.Context) error {
		_, _ = s1.node.Exec(ctx, fmt.Sprintf("ping -n -q -c 3 -i 0.2 -W 1 -I %s %s", s1.lan.Addr(), s2.lan.Addr()))
		neigh, raw, err := scNeighbors(ctx, s1)
		if err != nil {
			return err
		}
		if neigh[s2.tunnel] != oldNBMA {
			return fmt.Errorf("s1 has no neighbor %s at %s yet; gre1 neighbors:\n%s", s2.tunnel, oldNBMA, raw)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("s1 never resolved s2: %v", err)
	}

	// s1's and the hub's events from before the change.
	mons := map[*dnode]*obsMonitor{}
	for _, d := range []*dnode{s1, hub} {
		if mons[d], err = obsStartMonitor(ctx, d); err != nil {
			t.Fatal(err)
		}
	}

	// The DHCP-like change: s2's address changes under it, dmvpnd restarts.
	newNBMA := netip.MustParseAddr("198.51.100.33")
	scStop(t, s2)
	s2.node.MustRun(fmt.Sprintf("ip addr del %s/24 dev eth0 && ip addr add %s/24 dev eth0", oldNBMA, newNBMA))
	s2.nbma = newNBMA
	tRestart := time.Now()
	scStart(t, l, s2, scConfig(s2, spokeCfg("no-unique")))
	if _, err := scWaitNHS(ctx, s2, 60*time.Second, map[netip.Addr]bool{hub.nbma: true}); err != nil {
		t.Fatalf("s2 did not re-register from its new address: %v", err)
	}
	t.Logf("timing: re-registration after the NBMA change %v (dmvpnd start to NHS responding, dmvpnctl view)", scMS(time.Since(tRestart)))
	if rtt, ok := scRegistrationRTT(t, s2, hub.nbma); ok {
		t.Logf("timing: re-registration request to reply (dmvpnd log) %v", scMS(rtt))
	}

	// The hub's cache holds the new address only.
	if _, err := scWaitPeers(ctx, hub, 10*time.Second, map[netip.Addr]netip.Addr{s2.tunnel: newNBMA, s1.tunnel: s1.nbma}); err != nil {
		t.Fatal(err)
	}
	cache, err := scCache(ctx, hub)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range cache {
		if e.NBMA == oldNBMA || e.ObservedNBMA == oldNBMA {
			t.Errorf("hub cache still has an entry for the old NBMA %s: %+v", oldNBMA, e)
		}
	}
	hubNeigh, raw, err := scNeighbors(ctx, hub)
	if err != nil {
		t.Fatal(err)
	}
	if hubNeigh[s2.tunnel] != newNBMA {
		t.Errorf("hub neighbor for %s does not point at %s:\n%s", s2.tunnel, newNBMA, raw)
	}

	// s1 forgets the old binding (the hub purges the clients that resolved
	// s2's registration when its NBMA changes).
	wctx, wcancel := context.WithTimeout(ctx, 30*time.Second)
	err = lab.WaitFor(wctx, 250*time.Millisecond, func(ctx context.Context) error {
		neigh, raw, err := scNeighbors(ctx, s1)
		if err != nil {
			return err
		}
		if neigh[s2.tunnel] == oldNBMA {
			return fmt.Errorf("s1 neighbor %s still points at the old NBMA %s:\n%s", s2.tunnel, oldNBMA, raw)
		}
		return nil
	})
	wcancel()
	if err != nil {
		t.Fatalf("stale binding not purged: %v", err)
	}
	t.Logf("stale binding confirmed gone from s1 (polled) %v after s2's restart", scMS(time.Since(tRestart)))
	purged, err := mons[s1].first(func(e api.Event) bool { return e.Kind == api.EventPurge && e.PeerTunnel == s2.tunnel })
	if err != nil {
		t.Errorf("s1 saw no purge of %s, the stale entry went away some other way: %v", s2.tunnel, err)
	}
	replaced, err := mons[hub].first(func(e api.Event) bool {
		return e.Kind == api.EventPeerDown && e.PeerTunnel == s2.tunnel && e.NBMA == oldNBMA && e.Reason == "replaced: NBMA address changed"
	})
	if err != nil {
		t.Errorf("the hub did not replace s2's registration: %v", err)
	}
	if !purged.Time.IsZero() && !replaced.Time.IsZero() {
		t.Logf("timing: purge reached s1 %v after the hub replaced s2's registration (dmvpnctl monitor)", scMS(purged.Time.Sub(replaced.Time)))
	}

	// s2 is reachable again: from the hub (tunnel) and from s1 (tunnel and
	// LAN; s1 resolves s2 again, at its new address).
	pctx, pcancel := context.WithTimeout(ctx, 30*time.Second)
	defer pcancel()
	if err := hub.node.WaitPing(pctx, s2.tunnel); err != nil {
		t.Fatalf("hub -> s2 tunnel address after the change: %v", err)
	}
	if err := s1.node.WaitPing(pctx, s2.tunnel); err != nil {
		t.Fatalf("s1 -> s2 tunnel address after the change: %v", err)
	}
	err = lab.WaitFor(pctx, 500*time.Millisecond, func(ctx context.Context) error {
		return scLANPing(ctx, s1, s2.lan.Addr(), 3)
	})
	if err != nil {
		t.Fatalf("s1 LAN -> s2 LAN after the change: %v", err)
	}
	neigh, raw, err := scNeighbors(ctx, s1)
	if err != nil {
		t.Fatal(err)
	}
	if neigh[s2.tunnel] == oldNBMA {
		t.Errorf("s1 re-learnt the old NBMA for s2:\n%s", raw)
	}

	// Unique registrations pin the address: s2 moving once more and
	// registering unique is refused (code 14) while the entry lives.
	uniqNBMA := netip.MustParseAddr("198.51.100.34")
	scStop(t, s2)
	s2.node.MustRun(fmt.Sprintf("ip addr del %s/24 dev eth0 && ip addr add %s/24 dev eth0", newNBMA, uniqNBMA))
	s2.nbma = uniqNBMA
	scStart(t, l, s2, scConfig(s2, spokeCfg("unique")))
	uctx, ucancel := context.WithTimeout(ctx, 30*time.Second)
	defer ucancel()
	err = lab.WaitFor(uctx, 250*time.Millisecond, func(ctx context.Context) error {
		v, err := scNHSList(ctx, s2)
		if err != nil {
			return err
		}
		if len(v) != 1 {
			return lab.Permanent(fmt.Errorf("s2 NHSs: %s", scNHSStates(v)))
		}
		if v[0].State == api.NHSResponding {
			return lab.Permanent(fmt.Errorf("s2 registered uniquely from %s while %s holds the entry: %s", uniqNBMA, newNBMA, scNHSStates(v)))
		}
		if !strings.Contains(v[0].Reason, "unique-address-already-registered") {
			return fmt.Errorf("s2 NHS not refused yet: %s", scNHSStates(v))
		}
		return nil
	})
	if err != nil {
		t.Fatalf("unique registration from a new address: %v", err)
	}
	if _, err := scWaitPeers(ctx, hub, 5*time.Second, map[netip.Addr]netip.Addr{s2.tunnel: newNBMA}); err != nil {
		t.Errorf("hub replaced a registration for a refused unique request: %v", err)
	}
	for _, d := range []*dnode{hub, s1} {
		out, _ := d.ctl(ctx, "show dmvpn")
		t.Logf("%s show dmvpn:\n%s", d.name, out)
	}
}
