package controller

import (
	"context"
	"net/netip"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/dmvpnd/dmvpnd/kernel"
	"github.com/dmvpnd/dmvpnd/kernel/kerneltest"
)

// TestHubAndSpokesRegister runs a hub and two spokes on the in-memory NBMA
// network: each spoke registers, the hub programs a neighbor per spoke and
// each spoke one for its NHS, and the spokes report ready.
func TestHubAndSpokesRegister(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		hub, s1, s2 := registeredCloud(t, kerneltest.NewNetwork())
		defer stopAll(t, s1, s2, hub)
		for _, want := range []struct {
			n     *node
			parts []string
		}{
			{hub, []string{"neigh 10.0.0.2", "198.51.100.2"}},
			{hub, []string{"neigh 10.0.0.3", "198.51.100.3"}},
			{s1, []string{"neigh 10.0.0.1", "198.51.100.1"}},
			{s2, []string{"neigh 10.0.0.1", "198.51.100.1"}},
		} {
			if !want.n.has(want.parts...) {
				t.Errorf("%s: no kernel line with %q; state:\n%s", want.n.name, want.parts, want.n.kernel.Render())
			}
		}
		for _, s := range []*node{s1, s2} {
			st, err := s.ctl.Status(context.Background())
			if err != nil || !st.Ready {
				t.Errorf("%s: status %+v, %v; want ready", s.name, st, err)
			}
		}
		time.Sleep(metricsInterval)
		synctest.Wait()
		if got := metricValue(t, hub.m.Registrations.WithLabelValues("received", "success")); got < 2 {
			t.Errorf("hub registrations received/success = %v, want >= 2", got)
		}
		if got := metricValue(t, s1.m.PacketsSent.WithLabelValues("registration_request")); got < 1 {
			t.Errorf("s1 registration requests sent = %v, want >= 1", got)
		}
		if got := metricValue(t, hub.m.Peers.WithLabelValues("up")); got != 2 {
			t.Errorf("hub peers up = %v, want 2", got)
		}
		d, err := hub.ctl.DMVPN(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if len(d.Peers) != 2 {
			t.Errorf("hub show dmvpn: %d peers, want 2: %+v", len(d.Peers), d.Peers)
		}
	})
}

// TestSpokeNotReadyWithoutHub proves the readiness check can fail: a spoke
// whose NHS never answers is not ready and says why.
func TestSpokeNotReadyWithoutHub(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		netw := kerneltest.NewNetwork()
		s1 := start(t, netw, "s1", spokeYAML("198.51.100.2", "10.0.0.2/24", "198.51.100.1", "10.0.0.1"), nil)
		defer stopAll(t, s1)
		time.Sleep(10 * time.Second)
		synctest.Wait()
		st, err := s1.ctl.Status(context.Background())
		if err != nil || st.Ready || !strings.Contains(st.Reason, "not registered") {
			t.Errorf("status %+v, %v; want not ready, not registered", st, err)
		}
	})
}

// TestPhase3Shortcut: a packet hairpinned on the hub makes it send a traffic
// indication; the spoke resolves the destination through the hub, the
// egress spoke answers with its LAN prefix, and once the direct path is
// proven the ingress spoke's kernel gets "LAN via peer" as a shortcut route.
// When traffic stops, the shortcut expires and the route goes.
func TestPhase3Shortcut(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		netw := kerneltest.NewNetwork()
		hub, s1, s2 := registeredCloud(t, netw)
		defer stopAll(t, s1, s2, hub)

		// s1's host 192.168.1.10 sends to 192.168.2.20 through the hub.
		if n := hub.kernel.InjectHairpin(kernel.Hairpin{InIfindex: 1, Packet: ipv4Packet("192.168.1.10", "192.168.2.20")}); n == 0 {
			t.Fatal("hub has no hairpin subscriber")
		}
		deadline := time.Now().Add(30 * time.Second)
		for !s1.has("route 192.168.2.0/24", "via 10.0.0.3") && time.Now().Before(deadline) {
			time.Sleep(100 * time.Millisecond)
		}
		if !s1.has("route 192.168.2.0/24", "via 10.0.0.3") {
			t.Fatalf("s1: no shortcut route to 192.168.2.0/24 via 10.0.0.3; state:\n%s", s1.kernel.Render())
		}
		if !s1.has("neigh 10.0.0.3", "198.51.100.3") {
			t.Errorf("s1: no neighbor for the shortcut's next hop; state:\n%s", s1.kernel.Render())
		}
		scs, err := s1.ctl.Shortcuts(context.Background())
		if err != nil || len(scs) != 1 || scs[0].Prefix != netip.MustParsePrefix("192.168.2.0/24") {
			t.Errorf("s1 shortcuts %+v, %v", scs, err)
		}

		// An operator's clear removes the shortcut route.
		if n, err := s1.ctl.ClearShortcuts(context.Background()); err != nil || n != 1 {
			t.Errorf("ClearShortcuts = %d, %v; want 1", n, err)
		}
		synctest.Wait()
		if s1.has("route 192.168.2.0/24") {
			t.Errorf("s1: shortcut route still present after clear:\n%s", s1.kernel.Render())
		}
		// The next hairpin builds it again.
		time.Sleep(15 * time.Second) // past the hub's per-flow indication interval
		hub.kernel.InjectHairpin(kernel.Hairpin{InIfindex: 1, Packet: ipv4Packet("192.168.1.10", "192.168.2.20")})
		deadline = time.Now().Add(30 * time.Second)
		for !s1.has("route 192.168.2.0/24", "via 10.0.0.3") && time.Now().Before(deadline) {
			time.Sleep(100 * time.Millisecond)
		}
		if !s1.has("route 192.168.2.0/24", "via 10.0.0.3") {
			t.Fatalf("s1: shortcut not rebuilt after clear; state:\n%s", s1.kernel.Render())
		}

		// Idle: nothing uses it any more; it must expire (holding time 600 s).
		time.Sleep(20 * time.Minute)
		synctest.Wait()
		if s1.has("route 192.168.2.0/24") {
			t.Errorf("s1: shortcut route still present after 20 idle minutes:\n%s", s1.kernel.Render())
		}
	})
}

// ipv4Packet builds a minimal IPv4 header (no options) from src to dst.
func ipv4Packet(src, dst string) []byte {
	b := make([]byte, 28)
	b[0] = 0x45
	b[2], b[3] = 0, 28
	b[8] = 64
	b[9] = 1 // ICMP
	s, d := netip.MustParseAddr(src).As4(), netip.MustParseAddr(dst).As4()
	copy(b[12:16], s[:])
	copy(b[16:20], d[:])
	var sum uint32
	for i := 0; i < 20; i += 2 {
		sum += uint32(b[i])<<8 | uint32(b[i+1])
	}
	for sum > 0xffff {
		sum = sum&0xffff + sum>>16
	}
	cs := ^uint16(sum)
	b[10], b[11] = byte(cs>>8), byte(cs)
	return b
}
