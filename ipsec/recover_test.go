package ipsec_test

import (
	"net/netip"
	"testing"
	"testing/synctest"
	"time"

	"github.com/dmvpnd/dmvpnd/ipsec"
	"github.com/dmvpnd/dmvpnd/ipsec/vicitest"
)

// hubSideSA is an SA a spoke initiated to this hub (192.0.2.1) on the
// spoke's own connection.
func hubSideSA(conn, remote string, id uint32) vicitest.SA {
	return vicitest.SA{Conn: conn, UniqueID: id, State: "ESTABLISHED",
		LocalHost: "192.0.2.1", LocalPort: 500, RemoteHost: remote, RemotePort: 500,
		LocalID: "192.0.2.1", RemoteID: remote,
		Children: []vicitest.ChildSA{{Name: "gre", UniqueID: id + 100, State: "INSTALLED", Mode: "TRANSPORT",
			LocalTS: []string{"192.0.2.1/32[gre]"}, RemoteTS: []string{remote + "/32[gre]"}}}}
}

// TestRecoverAfterCharonLoss: a hub's charon dies with its SAs (kill -9).
// The spokes' charons still hold theirs and, while ESP flows through the
// kernel's leftover SAs, never negotiate again. So after reconnecting the
// hub initiates once to every peer it only responds to whose SA was up:
// not to a peer that was down, not to a peer behind NAT (its NAT would
// drop IKE_SA_INIT), and not again once that attempt timed out.
func TestRecoverAfterCharonLoss(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		up := ipsec.Peer{Name: "up", RemoteNBMA: netip.MustParseAddr("198.51.100.9")}
		down := ipsec.Peer{Name: "down", RemoteNBMA: netip.MustParseAddr("198.51.100.8")}
		natted := ipsec.Peer{Name: "natted", RemoteNBMA: netip.MustParseAddr("198.51.100.7"), ClaimedNBMA: netip.MustParseAddr("172.16.0.2")}
		cfg := pskConfig("192.0.2.1")
		cfg.ReconnectMin = 100 * time.Millisecond
		h := newHarness(t, cfg, []ipsec.Peer{up, down, natted})
		natSA := hubSideSA("dmvpn-peer-natted", "198.51.100.7", 3)
		natSA.NATRemote = true
		natSA.Children[0].Mode, natSA.Children[0].RemoteTS = "TUNNEL", []string{"172.16.0.2/32[gre]"}
		// Events are emitted once the Manager is connected (subscribed).
		h.waitState("connected", func(s ipsec.State) bool { return s.Connected })
		for _, sa := range []vicitest.SA{hubSideSA("dmvpn-peer-up", "198.51.100.9", 1), natSA} {
			h.srv.Emit("ike-updown", vicitest.IKEUpdown(true, sa))
			h.srv.Emit("child-updown", vicitest.ChildUpdown(true, sa))
		}
		h.waitState("up and natted up", func(s ipsec.State) bool {
			return view(s, "up").Status == ipsec.StatusUp && view(s, "natted").Status == ipsec.StatusUp
		})
		if n := h.count(isCmd("initiate")); n != 0 {
			t.Fatalf("a hub initiated %d times to peers it only responds to", n)
		}

		// charon is killed and comes back empty, after one failed reconnection.
		h.srv.Stop()
		h.waitEvent("up down", func(e ipsec.Event) bool { return e.Peer == "up" && e.Status == ipsec.StatusDown })
		n := h.dials()
		h.advance(cfg.ReconnectMin) // fails: still down
		if h.dials() == n {
			t.Fatalf("no reconnection attempt %v after charon went away", cfg.ReconnectMin)
		}
		h.startCharonAfter(2 * cfg.ReconnectMin)
		h.waitCmd("recovery initiation", isCmd("initiate", "ike", "dmvpn-peer-up"))
		h.waitState("connected", func(s ipsec.State) bool { return s.Connected })
		// The Manager is idle again: nothing else was initiated.
		synctest.Wait()
		for _, conn := range []string{"dmvpn-peer-down", "dmvpn-peer-natted"} {
			if n := h.count(isCmd("initiate", "ike", conn)); n != 0 {
				t.Errorf("initiated %s %d times", conn, n)
			}
		}

		// No SA comes of it (the peer is gone too): after the connect
		// timeout the attempt is cleared and not repeated.
		h.advance(30 * time.Second)
		h.waitCmd("timed-out attempt terminated", isCmd("terminate", "ike", "dmvpn-peer-up"))
		for range 3 {
			h.advance(time.Minute)
		}
		if n := h.count(isCmd("initiate", "ike", "dmvpn-peer-up")); n != 1 {
			t.Errorf("%d initiations to a peer this node only responds to, want the one recovery attempt", n)
		}
	})
}
