package ipsec_test

import (
	"net/netip"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/dmvpnd/dmvpnd/ipsec"
	"github.com/dmvpnd/dmvpnd/ipsec/vicitest"
)

func spokeSA(conn string, id uint32, local, remote string, initiator bool, children ...vicitest.ChildSA) vicitest.SA {
	return vicitest.SA{Conn: conn, UniqueID: id, State: "ESTABLISHED", LocalHost: local, LocalPort: 500,
		RemoteHost: remote, RemotePort: 500, LocalID: local, RemoteID: remote, Initiator: initiator, Children: children}
}

func spokeChild(id uint32, local, remote string) vicitest.ChildSA {
	return vicitest.ChildSA{Name: "gre", UniqueID: id, State: "INSTALLED", Mode: "TRANSPORT",
		LocalTS: []string{local + "/32[gre]"}, RemoteTS: []string{remote + "/32[gre]"}}
}

// TestTieBreak covers both ends of a spoke-to-spoke pair that want the SA
// at the same moment.
func TestTieBreak(t *testing.T) {
	const a, b = "192.0.2.10", "192.0.2.20" // a is lower
	pair := func(remote string) []ipsec.Peer {
		return []ipsec.Peer{{RemoteNBMA: netip.MustParseAddr(remote), Initiate: ipsec.InitiateTieBreak}}
	}
	cfgFor := func(local string) ipsec.Config {
		c := pskConfig(local)
		c.FallbackDelay = 3 * time.Second
		return c
	}

	syncRun(t, "lower initiates at once", func(t *testing.T) {
		h := newHarness(t, cfgFor(a), pair(b))
		h.waitCmd("initiate", isCmd("initiate", "ike", "dmvpn-peer-"+b))
	})

	syncRun(t, "higher waits and falls back", func(t *testing.T) {
		h := newHarness(t, cfgFor(b), pair(a))
		h.waitCmd("peer loaded", isCmd("load-conn"))
		h.waitState("peer known", func(s ipsec.State) bool { return len(s.Peers) == 1 })
		if n := h.count(isCmd("initiate")); n != 0 {
			t.Fatalf("higher end initiated %d times before the fallback delay", n)
		}
		gen := h.m.State().Generation
		h.after(3*time.Second, "fallback initiate", func() bool { return h.count(isCmd("initiate")) > 0 })
		h.settle(gen)
		h.waitCmd("fallback initiate", isCmd("initiate", "ike", "dmvpn-peer-"+a))
	})

	syncRun(t, "higher responds and never initiates", func(t *testing.T) {
		h := newHarness(t, cfgFor(b), pair(a))
		h.waitState("peer known", func(s ipsec.State) bool { return len(s.Peers) == 1 })
		conn := "dmvpn-peer-" + a
		h.srv.Emit("ike-updown", vicitest.IKEUpdown(true, spokeSA(conn, 1, b, a, false)))
		h.srv.Emit("child-updown", vicitest.ChildUpdown(true, spokeSA(conn, 1, b, a, false, spokeChild(2, b, a))))
		h.waitEvent("up", func(e ipsec.Event) bool { return e.Status == ipsec.StatusUp })
		gen := h.m.State().Generation
		h.advance(5 * time.Second)
		h.settle(gen)
		if n := h.count(isCmd("initiate")); n != 0 {
			t.Fatalf("higher end initiated although the SA from the lower end is up")
		}
	})

	syncRun(t, "after a loss the higher end waits again", func(t *testing.T) {
		h := newHarness(t, cfgFor(b), pair(a))
		h.waitState("peer known", func(s ipsec.State) bool { return len(s.Peers) == 1 })
		conn := "dmvpn-peer-" + a
		h.advance(10 * time.Second) // long after the first fallback delay
		h.waitCmd("fallback initiate", isCmd("initiate"))
		h.srv.Emit("child-updown", vicitest.ChildUpdown(true, spokeSA(conn, 1, b, a, true, spokeChild(2, b, a))))
		h.waitEvent("up", func(e ipsec.Event) bool { return e.Status == ipsec.StatusUp })
		h.srv.Emit("ike-updown", vicitest.IKEUpdown(false, spokeSA(conn, 1, b, a, true)))
		h.waitEvent("down", func(e ipsec.Event) bool { return e.Status == ipsec.StatusDown })
		if n := h.count(isCmd("initiate")); n != 1 {
			t.Fatalf("re-initiated at once after the loss (%d initiates)", n)
		}
		h.after(3*time.Second, "initiate after the fallback delay following the loss",
			func() bool { return h.count(isCmd("initiate")) == 2 })
	})

	// Both ends initiated: two IKE_SAs. Only the higher end acts, and only
	// on the SA it initiated, so exactly one remains.
	dup := func(t *testing.T, local, remote string, mineInitiated uint32) (*harness, string) {
		h := newHarness(t, cfgFor(local), pair(remote))
		h.waitState("peer known", func(s ipsec.State) bool { return len(s.Peers) == 1 })
		conn := "dmvpn-peer-" + remote
		for _, id := range []uint32{1, 3} {
			init := id == mineInitiated
			h.srv.Emit("ike-updown", vicitest.IKEUpdown(true, spokeSA(conn, id, local, remote, init)))
			h.srv.Emit("child-updown", vicitest.ChildUpdown(true,
				spokeSA(conn, id, local, remote, init, spokeChild(id+1, local, remote))))
		}
		h.waitState("two SAs", func(s ipsec.State) bool { return len(s.Peers) == 1 && len(s.Peers[0].SAs) == 2 })
		return h, conn
	}
	syncRun(t, "duplicate: higher terminates its own", func(t *testing.T) {
		h, _ := dup(t, b, a, 3)
		h.waitCmd("terminate of own SA", isCmd("terminate", "ike-id", "3"))
		if n := h.count(isCmd("terminate", "ike-id", "1")); n != 0 {
			t.Error("terminated the SA the lower end initiated")
		}
		h.waitState("terminated counted", func(s ipsec.State) bool { return s.Terminated == 1 })
	})
	syncRun(t, "duplicate: lower does nothing", func(t *testing.T) {
		h, _ := dup(t, a, b, 1)
		gen := h.m.State().Generation
		h.srv.Emit("ike-rekey", vicitest.IKERekey(spokeSA("dmvpn-peer-"+b, 1, a, b, true), spokeSA("dmvpn-peer-"+b, 5, a, b, true)))
		h.settle(gen)
		if n := h.count(isCmd("terminate")); n != 0 {
			t.Errorf("lower end terminated %d SAs", n)
		}
	})
}

// TestDuplicateFromRetries: a peer retried while its slow first attempt
// still completed here, so it initiated two IKE_SAs. This end keeps the
// newest (the one the peer holds). Two SAs this end initiated are left to
// the peer to sort out.
func TestDuplicateFromRetries(t *testing.T) {
	for _, tc := range []struct {
		name      string
		initiator bool
		wantKill  string
	}{
		{"peer initiated both", false, "4"},
		{"we initiated both", true, ""},
	} {
		syncRun(t, tc.name, func(t *testing.T) {
			// We are higher than the hub, so the mixed rule does not apply.
			h := newHarness(t, pskConfig("192.0.2.50"), []ipsec.Peer{{Name: "hub", RemoteNBMA: netip.MustParseAddr("192.0.2.1")}})
			h.waitState("peer known", func(s ipsec.State) bool { return len(s.Peers) == 1 })
			for _, id := range []uint32{4, 9} {
				h.srv.Emit("child-updown", vicitest.ChildUpdown(true, hubSA(id, tc.initiator, greChild(id+1, "INSTALLED"))))
			}
			h.waitState("two SAs", func(s ipsec.State) bool { return len(s.Peers[0].SAs) == 2 })
			if tc.wantKill != "" {
				h.waitCmd("terminate of the older SA", isCmd("terminate", "ike-id", tc.wantKill))
				st := h.waitState("counted", func(s ipsec.State) bool { return s.Terminated == 1 })
				if st.Peers[0].Status != ipsec.StatusUp || st.Peers[0].SAs[0].Terminating != true {
					t.Errorf("after terminating the duplicate: %+v", st.Peers[0])
				}
			}
			gen := h.m.State().Generation
			h.srv.Emit("ike-updown", vicitest.NewMessage()) // malformed: forces one more pass
			h.settle(gen)
			want := 0
			if tc.wantKill != "" {
				want = 1
			}
			if n := h.count(isCmd("terminate")); n != want {
				t.Errorf("%d terminates, want %d", n, want)
			}
		})
	}
}

// TestNATBinding: the responder's NAT child must carry an inner address
// bound to the peer's identity.
func TestNATBinding(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := natResponder(t)
		sa := func(id uint32, remoteID, inner string) vicitest.SA { return natSA(id, remoteID, "198.51.100.7", inner) }
		h.srv.Emit("child-updown", vicitest.ChildUpdown(true, sa(1, "172.16.0.2", "172.16.0.2")))
		h.srv.Emit("child-updown", vicitest.ChildUpdown(true, sa(2, "172.16.0.3", "172.16.0.2"))) // claims .2
		h.waitCmd("terminate of the impostor", isCmd("terminate", "ike-id", "2"))
		st := h.waitState("counted", func(s ipsec.State) bool { return s.Terminated == 1 })
		for addr, want := range map[string]bool{"172.16.0.2": true, "172.16.0.3": false, "198.51.100.7": false} {
			if got := protects(st, addr); got != want {
				t.Errorf("protects(%s) = %v, want %v; protections %+v", addr, got, want, st.Protections())
			}
		}
		// The impostor's SA no longer protects anything, even before charon
		// reports it gone.
		h.srv.Emit("child-updown", vicitest.ChildUpdown(false, sa(1, "172.16.0.2", "172.16.0.2")))
		st = h.waitState("bound SA gone", func(s ipsec.State) bool {
			for _, u := range s.Unattributed {
				if u.UniqueID == "1" && len(u.Children) == 0 {
					return true
				}
			}
			return false
		})
		if protects(st, "172.16.0.2") {
			t.Error("172.16.0.2 still protected by the impostor's SA being terminated")
		}
		h.srv.Emit("child-updown", vicitest.ChildUpdown(true, sa(1, "172.16.0.2", "172.16.0.2")))
		h.waitState("bound SA back", func(s ipsec.State) bool { return protects(s, "172.16.0.2") })
		if n := h.count(isCmd("terminate", "ike-id", "1")); n != 0 {
			t.Error("terminated the bound SA")
		}
		if len(st.Unattributed) != 2 {
			t.Errorf("unattributed SAs: %d, want 2", len(st.Unattributed))
		}
		// Once the controller wants the peer, the responder SA counts for it.
		if err := h.m.SetPeers([]ipsec.Peer{{RemoteNBMA: netip.MustParseAddr("198.51.100.7"),
			ClaimedNBMA: netip.MustParseAddr("172.16.0.2")}}); err != nil {
			t.Fatal(err)
		}
		h.waitState("peer up via responder SA", func(s ipsec.State) bool {
			return len(s.Peers) == 1 && s.Peers[0].Status == ipsec.StatusUp &&
				s.Peers[0].Observed == netip.MustParseAddrPort("198.51.100.7:40001")
		})
	})
}

// TestNATInnerFirstComeFirstServed: a tunnel-mode SA whose inner address
// an older SA of another peer already carries is terminated, whichever of
// identity or post-NAT address differs (a group-key holder claiming a
// NATed spoke's private address with that spoke's identity, from its own
// address); the older SA keeps proving the address throughout.
func TestNATInnerFirstComeFirstServed(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := natResponder(t)
		sa := natSA
		victim := sa(1, "172.16.0.2", "198.51.100.7", "172.16.0.2")
		h.srv.Emit("child-updown", vicitest.ChildUpdown(true, victim))
		h.waitState("victim up", func(s ipsec.State) bool { return protects(s, "172.16.0.2") })
		// The attacker asserts the victim's identity (a PSK proves none) from its own address.
		h.srv.Emit("child-updown", vicitest.ChildUpdown(true, sa(2, "172.16.0.2", "203.0.113.66", "172.16.0.2")))
		h.waitCmd("terminate of the newcomer", isCmd("terminate", "ike-id", "2"))
		st := h.waitState("counted", func(s ipsec.State) bool { return s.Terminated == 1 })
		want := []ipsec.Protection{{NBMA: netip.MustParseAddr("172.16.0.2"), Outer: netip.MustParseAddr("198.51.100.7"), Identity: "172.16.0.2", ReqID: 101}}
		if d := cmp.Diff(want, st.Protections(), cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); d != "" {
			t.Errorf("protections after the takeover attempt (-want +got):\n%s", d)
		}
		if n := h.count(isCmd("terminate", "ike-id", "1")); n != 0 {
			t.Error("terminated the older SA")
		}
	})
}

// TestNATInnerMarked: with Config.MarkNAT, two SAs of different peers
// (post-NAT addresses) with the same inner address both stay: each has
// marks of its own, and Protections lists both with their marks, reqids
// and outer addresses for the caller to tell apart.
func TestNATInnerMarked(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cfg := pskConfig("192.0.2.1")
		cfg.NATInnerPrefixes = []netip.Prefix{netip.MustParsePrefix("172.16.0.0/12")}
		cfg.MarkNAT = true
		h := newHarness(t, cfg, []ipsec.Peer{})
		h.waitCmd("responder", isCmd("load-conn"))
		sa := func(id uint32, remote string, mark uint32) vicitest.SA {
			return vicitest.SA{Conn: "dmvpn-responder", UniqueID: id, State: "ESTABLISHED",
				LocalHost: "192.0.2.1", LocalPort: 4500, RemoteHost: remote, RemotePort: 4500,
				RemoteID: "172.16.0.2", NATRemote: true,
				Children: []vicitest.ChildSA{{Name: "gre-nat", UniqueID: id + 100, State: "INSTALLED", Mode: "TUNNEL",
					Encap: true, LocalTS: []string{"192.0.2.1/32[gre]"}, RemoteTS: []string{"172.16.0.2/32[gre]"},
					MarkIn: mark, MarkOut: mark + 1}}}
		}
		h.srv.Emit("child-updown", vicitest.ChildUpdown(true, sa(1, "198.51.100.7", 0x10)))
		h.srv.Emit("child-updown", vicitest.ChildUpdown(true, sa(2, "203.0.113.9", 0x20)))
		st := h.waitState("both up", func(s ipsec.State) bool { return len(s.Protections()) == 2 })
		inner := netip.MustParseAddr("172.16.0.2")
		want := []ipsec.Protection{
			{NBMA: inner, Outer: netip.MustParseAddr("198.51.100.7"), Identity: "172.16.0.2", ReqID: 101, MarkIn: 0x10, MarkOut: 0x11},
			{NBMA: inner, Outer: netip.MustParseAddr("203.0.113.9"), Identity: "172.16.0.2", ReqID: 102, MarkIn: 0x20, MarkOut: 0x21},
		}
		if d := cmp.Diff(want, st.Protections(), cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); d != "" {
			t.Errorf("protections (-want +got):\n%s", d)
		}
		if n := h.count(isCmd("terminate")); n != 0 {
			t.Errorf("%d terminates, want none", n)
		}
		if st.Terminated != 0 {
			t.Errorf("Terminated = %d, want 0", st.Terminated)
		}
	})
}

// natResponder is a harness whose responder connection accepts
// tunnel-mode SAs with inner addresses in 172.16.0.0/12.
func natResponder(t *testing.T) *harness {
	t.Helper()
	cfg := pskConfig("192.0.2.1")
	cfg.NATInnerPrefixes = []netip.Prefix{netip.MustParsePrefix("172.16.0.0/12")}
	h := newHarness(t, cfg, []ipsec.Peer{})
	h.waitCmd("responder", isCmd("load-conn"))
	return h
}

// natSA is an established responder SA from remote (post-NAT, port
// 40000+id) with identity remoteID whose tunnel-mode child carries GRE
// from inner.
func natSA(id uint32, remoteID, remote, inner string) vicitest.SA {
	return vicitest.SA{Conn: "dmvpn-responder", UniqueID: id, State: "ESTABLISHED",
		LocalHost: "192.0.2.1", LocalPort: 4500, RemoteHost: remote, RemotePort: 40000 + uint16(id),
		RemoteID: remoteID, NATRemote: true,
		Children: []vicitest.ChildSA{{Name: "gre-nat", UniqueID: id + 100, State: "INSTALLED", Mode: "TUNNEL",
			Encap: true, LocalTS: []string{"192.0.2.1/32[gre]"}, RemoteTS: []string{inner + "/32[gre]"}}}}
}
