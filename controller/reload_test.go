package controller

import (
	"context"
	"net/netip"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/dmvpnd/dmvpnd/controller/config"
	"github.com/dmvpnd/dmvpnd/kernel"
	"github.com/dmvpnd/dmvpnd/kernel/kerneltest"
)

// TestReloadNHRPKeepsKernelState: a reload that changes NHRP settings (here
// the holding time) restarts the engine over the kernel state: the
// shortcut route and the neighbor entries are neither deleted nor
// re-pointed, the spoke registers again with the new holding time, and
// the shortcut is re-learnt. A role change is refused.
func TestReloadNHRPKeepsKernelState(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		netw := kerneltest.NewNetwork()
		hub := start(t, netw, "hub", hubYAML("198.51.100.1", "10.0.0.1/24"),
			[]kernel.RouteMatch{{Prefix: netip.MustParsePrefix("192.168.1.0/24"), Ifindex: -1, Gateway: netip.MustParseAddr("10.0.0.2")},
				{Prefix: netip.MustParsePrefix("192.168.2.0/24"), Ifindex: -1, Gateway: netip.MustParseAddr("10.0.0.3")}})
		s1YAML := spokeYAML("198.51.100.2", "10.0.0.2/24", "198.51.100.1", "10.0.0.1")
		s1 := start(t, netw, "s1", s1YAML, lanRoutes("192.168.1.0/24", "192.168.0.0/16", "10.0.0.1"))
		s2 := start(t, netw, "s2", spokeYAML("198.51.100.3", "10.0.0.3/24", "198.51.100.1", "10.0.0.1"),
			lanRoutes("192.168.2.0/24", "192.168.0.0/16", "10.0.0.1"))
		defer stopAll(t, s1, s2, hub)
		time.Sleep(5 * time.Second)
		synctest.Wait()
		hub.kernel.InjectHairpin(kernel.Hairpin{InIfindex: 1, Packet: ipv4Packet("192.168.1.10", "192.168.2.20")})
		deadline := time.Now().Add(30 * time.Second)
		for !s1.has("route 192.168.2.0/24", "via 10.0.0.3") && time.Now().Before(deadline) {
			time.Sleep(100 * time.Millisecond)
		}
		if !s1.has("route 192.168.2.0/24", "via 10.0.0.3") {
			t.Fatalf("s1: no shortcut before the reload:\n%s", s1.kernel.Render())
		}

		ctx := context.Background()
		base := len(s1.kernel.Ops())
		next := parseConfig(t, strings.Replace(s1YAML, "holding_time: 600s", "holding_time: 300s", 1))
		if err := s1.ctl.Reload(ctx, next); err != nil {
			t.Fatalf("Reload with a new holding time: %v", err)
		}
		time.Sleep(10 * time.Second)
		synctest.Wait()
		for _, op := range s1.kernel.Ops()[base:] {
			if strings.HasPrefix(op, "delete") || strings.Contains(op, "lladdr 198.51.100.1 REACHABLE") {
				t.Errorf("s1: kernel operation %q during the reload: traffic would be disturbed", op)
			}
		}
		if !s1.has("route 192.168.2.0/24", "via 10.0.0.3") || !s1.has("neigh 10.0.0.3", "198.51.100.3") {
			t.Errorf("s1: shortcut state lost in the reload:\n%s", s1.kernel.Render())
		}
		nhs, err := s1.ctl.NHS(ctx)
		if err != nil || len(nhs) != 1 {
			t.Fatalf("s1 NHS after reload: %+v, %v", nhs, err)
		}
		if left := time.Until(nhs[0].Expires); nhs[0].State != "responding" || left <= 0 || left > 300*time.Second {
			t.Errorf("s1 NHS after reload: state %s, registration expires in %v; want responding within the new 300 s", nhs[0].State, left)
		}
		scs, err := s1.ctl.Shortcuts(ctx)
		if err != nil || len(scs) != 1 {
			t.Errorf("s1 shortcuts after reload: %+v, %v; want the shortcut re-learnt", scs, err)
		}

		role := *next
		role.NHRP.Role = config.RoleHub
		if err := s1.ctl.Reload(ctx, &role); err == nil || !strings.Contains(err.Error(), "nhrp.role") {
			t.Errorf("Reload changing the role: %v, want a refusal naming nhrp.role", err)
		}
	})
}

// TestReloadRedirectLive: nhrp.redirect is applied by a reload: turning it
// off removes the hub's hairpin trigger (hairpins no longer reach the
// engine), turning it on installs it again; neither restarts the engine
// (the hub's registrations stay).
func TestReloadRedirectLive(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		netw := kerneltest.NewNetwork()
		y := hubYAML("198.51.100.1", "10.0.0.1/24")
		hub := start(t, netw, "hub", y, nil)
		defer stopAll(t, hub)
		time.Sleep(time.Second)
		synctest.Wait()
		ctx := context.Background()
		off := parseConfig(t, strings.Replace(y, "redirect: true", "redirect: false", 1))
		if err := hub.ctl.Reload(ctx, off); err != nil {
			t.Fatalf("Reload redirect off: %v", err)
		}
		if n := hub.kernel.InjectHairpin(kernel.Hairpin{InIfindex: 1, Packet: ipv4Packet("192.168.1.10", "192.168.2.20")}); n != 0 {
			t.Errorf("hairpin delivered to %d watchers with redirect off: the trigger is still installed", n)
		}
		if err := hub.ctl.Reload(ctx, parseConfig(t, y)); err != nil {
			t.Fatalf("Reload redirect on: %v", err)
		}
		ops := strings.Join(hub.kernel.Ops(), "\n")
		if !strings.Contains(ops, "remove hairpin") || strings.Count(ops, "install hairpin") != 2 {
			t.Errorf("kernel operations:\n%s\nwant the trigger installed, removed and installed again", ops)
		}
	})
}
