package controller

import (
	"context"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/dmvpnd/dmvpnd/kernel"
	"github.com/dmvpnd/dmvpnd/kernel/kerneltest"
)

// TestSpokeWithoutShortcutIgnoresRedirect: a spoke with nhrp.shortcut
// false drops the hub's traffic indication (counted) and installs no
// shortcut; its spoke-to-spoke traffic stays on the hub path (Phase 1).
func TestSpokeWithoutShortcutIgnoresRedirect(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		netw := kerneltest.NewNetwork()
		hub := hubWithLANs(t, netw, "")
		noShortcut := strings.Replace(spokeYAML("198.51.100.2", "10.0.0.2/24", "198.51.100.1", "10.0.0.1"),
			"shortcut: true", "shortcut: false", 1)
		s1 := start(t, netw, "s1", noShortcut, lanRoutes("192.168.1.0/24", "192.168.0.0/16", "10.0.0.1"))
		s2 := startSpoke(t, netw, 2, "")
		defer stopAll(t, s1, s2, hub)
		time.Sleep(5 * time.Second)
		synctest.Wait()

		if n := hub.kernel.InjectHairpin(kernel.Hairpin{InIfindex: 1, Packet: ipv4Packet("192.168.1.10", "192.168.2.20")}); n == 0 {
			t.Fatal("hub has no hairpin subscriber")
		}
		time.Sleep(30 * time.Second)
		synctest.Wait()
		if s1.has("route 192.168.2.0/24") {
			t.Errorf("s1 (shortcut: false) installed a shortcut:\n%s", s1.kernel.Render())
		}
		c, err := s1.ctl.Counters(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if c["traffic_indications_ignored"] != 1 {
			t.Errorf("s1 traffic_indications_ignored = %d, want 1; counters %v", c["traffic_indications_ignored"], c)
		}
	})
}
