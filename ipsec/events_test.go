package ipsec_test

import (
	"net/netip"
	"testing"
	"testing/synctest"
	"time"

	"github.com/dmvpnd/dmvpnd/ipsec"
	"github.com/dmvpnd/dmvpnd/ipsec/vicitest"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

func hubSA(id uint32, initiator bool, children ...vicitest.ChildSA) vicitest.SA {
	return vicitest.SA{
		Conn: "dmvpn-peer-hub", UniqueID: id, State: "ESTABLISHED",
		LocalHost: "192.0.2.50", LocalPort: 4500, RemoteHost: "192.0.2.1", RemotePort: 4500,
		LocalID: "192.0.2.50", RemoteID: "192.0.2.1", Initiator: initiator, Children: children,
	}
}

func greChild(id uint32, state string) vicitest.ChildSA {
	return vicitest.ChildSA{Name: "gre", UniqueID: id, State: state, Mode: "TRANSPORT",
		LocalTS: []string{"192.0.2.50/32[gre]"}, RemoteTS: []string{"192.0.2.1/32[gre]"}}
}

type peerView struct {
	Status   ipsec.Status
	Reason   string
	Observed netip.AddrPort
	NAT      bool
}

func view(st ipsec.State, name string) peerView {
	for _, p := range st.Peers {
		if p.Name == name {
			return peerView{p.Status, p.Reason, p.Observed, p.NATRemote}
		}
	}
	return peerView{Reason: "peer missing"}
}

// TestEventsToState replays charon events and checks the per-peer state.
func TestEventsToState(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		natSA := vicitest.SA{
			Conn: "dmvpn-peer-172.16.0.2", UniqueID: 7, State: "ESTABLISHED",
			LocalHost: "192.0.2.50", LocalPort: 4500, RemoteHost: "198.51.100.7", RemotePort: 61001,
			RemoteID: "172.16.0.2", NATRemote: true,
			Children: []vicitest.ChildSA{{Name: "gre", UniqueID: 8, State: "INSTALLED", Mode: "TUNNEL", Encap: true,
				LocalTS: []string{"192.0.2.50/32[gre]"}, RemoteTS: []string{"172.16.0.2/32[gre]"}}},
		}
		type step struct {
			event string
			msg   *vicitest.Message
			peer  string
			want  peerView
		}
		steps := []step{
			{"ike-updown", vicitest.IKEUpdown(true, hubSA(1, true)), "hub",
				peerView{Status: ipsec.StatusConnecting, Observed: netip.MustParseAddrPort("192.0.2.1:4500")}},
			{"child-updown", vicitest.ChildUpdown(true, hubSA(1, true, greChild(2, "INSTALLED"))), "hub",
				peerView{Status: ipsec.StatusUp, Observed: netip.MustParseAddrPort("192.0.2.1:4500")}},
			{"child-rekey", vicitest.ChildUpdown(true, hubSA(1, true, greChild(3, "INSTALLED"))), "hub",
				peerView{Status: ipsec.StatusUp, Observed: netip.MustParseAddrPort("192.0.2.1:4500")}},
			{"ike-rekey", vicitest.IKERekey(hubSA(1, true), hubSA(4, true)), "hub",
				peerView{Status: ipsec.StatusUp, Observed: netip.MustParseAddrPort("192.0.2.1:4500")}},
			{"ike-updown", vicitest.IKEUpdown(true, natSA), "172.16.0.2",
				peerView{Status: ipsec.StatusConnecting, Observed: netip.MustParseAddrPort("198.51.100.7:61001"), NAT: true}},
			{"child-updown", vicitest.ChildUpdown(true, natSA), "172.16.0.2",
				peerView{Status: ipsec.StatusUp, Observed: netip.MustParseAddrPort("198.51.100.7:61001"), NAT: true}},
			{"ike-updown", vicitest.IKEUpdown(false, natSA), "172.16.0.2",
				peerView{Status: ipsec.StatusDown, Reason: "IKE_SA deleted"}},
			{"ike-updown", vicitest.IKEUpdown(false, hubSA(4, true)), "hub",
				peerView{Status: ipsec.StatusConnecting, Reason: "IKE_SA deleted"}}, // re-initiated at once
		}
		h := newHarness(t, pskConfig("192.0.2.50"), []ipsec.Peer{plainHub, nattedPeer})
		h.waitCmd("initiate", isCmd("initiate", "ike", "dmvpn-peer-hub"))
		for i, s := range steps {
			if n := h.srv.Emit(s.event, s.msg); n != 1 {
				t.Fatalf("step %d: %s reached %d subscribers", i, s.event, n)
			}
			synctest.Wait()
			if diff := cmp.Diff(s.want, view(h.m.State(), s.peer), cmpopts.EquateComparable(netip.AddrPort{})); diff != "" {
				t.Errorf("step %d (%s): %s (-want +got):\n%s", i, s.event, s.peer, diff)
			}
		}
		// The events channel reported the NATed peer's observed endpoint.
		ev := h.waitEvent("NATed peer up", func(e ipsec.Event) bool { return e.Peer == "172.16.0.2" && e.Status == ipsec.StatusUp })
		if want := netip.MustParseAddrPort("198.51.100.7:61001"); ev.Observed != want || !ev.NATRemote {
			t.Errorf("event observed %v nat %v, want %v nat true", ev.Observed, ev.NATRemote, want)
		}
	})
}

// TestReinitiateAfterChildDown: a wanted peer whose child SA dies is
// initiated again.
func TestReinitiateAfterChildDown(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, pskConfig("192.0.2.50"), []ipsec.Peer{plainHub})
		initiates := isCmd("initiate", "ike", "dmvpn-peer-hub")
		h.waitCmd("first initiate", initiates)
		h.srv.Emit("ike-updown", vicitest.IKEUpdown(true, hubSA(1, true)))
		h.srv.Emit("child-updown", vicitest.ChildUpdown(true, hubSA(1, true, greChild(2, "INSTALLED"))))
		h.waitEvent("hub up", func(e ipsec.Event) bool { return e.Peer == "hub" && e.Status == ipsec.StatusUp })
		if n := h.count(initiates); n != 1 {
			t.Fatalf("%d initiates while up, want 1", n)
		}
		h.srv.Emit("child-updown", vicitest.ChildUpdown(false, hubSA(1, true, greChild(2, "DELETING"))))
		ev := h.waitEvent("hub down", func(e ipsec.Event) bool { return e.Peer == "hub" && e.Status != ipsec.StatusUp })
		if ev.Reason != "CHILD_SA deleted" {
			t.Errorf("reason %q, want CHILD_SA deleted", ev.Reason)
		}
		synctest.Wait()
		if n := h.count(initiates); n != 2 {
			t.Fatalf("%d initiates, want 2 (no second initiate)", n)
		}
		// The retry is on the IKE_SA that is still up; then the IKE_SA dies too.
		h.srv.Emit("child-updown", vicitest.ChildUpdown(true, hubSA(1, true, greChild(5, "INSTALLED"))))
		h.waitEvent("hub up again", func(e ipsec.Event) bool { return e.Peer == "hub" && e.Status == ipsec.StatusUp })
		h.srv.Emit("ike-updown", vicitest.IKEUpdown(false, hubSA(1, true)))
		synctest.Wait()
		if n := h.count(initiates); n != 3 {
			t.Fatalf("%d initiates, want 3 (no third initiate)", n)
		}
	})
}

// TestInitiateTimeoutBackoff: an attempt without result is terminated after
// ConnectTimeout and retried with growing delays.
func TestInitiateTimeoutBackoff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cfg := pskConfig("192.0.2.50")
		cfg.ConnectTimeout = 10 * time.Second
		cfg.RetryMin = 2 * time.Second
		h := newHarness(t, cfg, []ipsec.Peer{plainHub})
		initiates := isCmd("initiate", "ike", "dmvpn-peer-hub")
		h.waitCmd("first initiate", initiates)
		advance := func(d time.Duration) {
			t.Helper()
			gen := h.m.State().Generation
			h.advance(d)
			h.settle(gen)
		}
		advance(10 * time.Second) // timeout: terminate, retry in 2s
		h.waitCmd("terminate of the half-open SA", isCmd("terminate", "ike", "dmvpn-peer-hub"))
		if n := h.count(initiates); n != 1 {
			t.Fatalf("%d initiates right after the timeout, want 1", n)
		}
		if got := view(h.m.State(), "hub").Reason; got != "initiation timed out" {
			t.Errorf("reason %q", got)
		}
		h.after(2*time.Second, "retry after the timeout", func() bool { return h.count(initiates) == 2 })
		advance(10 * time.Second) // second timeout: next retry after 4s
		if p := h.m.State().Peers[0]; time.Until(p.NextAttempt) != 4*time.Second || p.Attempts != 2 {
			t.Fatalf("after second timeout: next attempt in %v after %d attempts, want 4s after 2",
				time.Until(p.NextAttempt), p.Attempts)
		}
		h.after(4*time.Second, "retry after the second timeout", func() bool { return h.count(initiates) == 3 })
	})
}

// TestMalformedEventCounted: broken events are counted and dropped.
func TestMalformedEventCounted(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, pskConfig("192.0.2.50"), []ipsec.Peer{plainHub})
		h.waitCmd("initiate", isCmd("initiate"))
		h.srv.Emit("ike-updown", vicitest.NewMessage().Set("up", "yes"))
		h.srv.Emit("child-updown", vicitest.NewMessage().Set("x", vicitest.NewMessage().Set("state", "INSTALLED")))
		st := h.waitState("malformed counted", func(s ipsec.State) bool { return s.MalformedEvents == 2 })
		if v := view(st, "hub"); v.Status != ipsec.StatusConnecting {
			t.Errorf("hub %+v after malformed events", v)
		}
	})
}

// TestGenerationFollowsSnapshots: Generation reads the current snapshot's
// number without copying it, and a change in charon's state makes it grow.
func TestGenerationFollowsSnapshots(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, pskConfig("192.0.2.50"), []ipsec.Peer{plainHub})
		h.waitCmd("initiate", isCmd("initiate", "ike", "dmvpn-peer-hub"))
		before := h.m.State().Generation
		if g := h.m.Generation(); g < before {
			t.Fatalf("Generation %d older than State's %d", g, before)
		}
		h.srv.Emit("ike-updown", vicitest.IKEUpdown(true, hubSA(1, true)))
		st := h.settle(before)
		if g := h.m.Generation(); g < st.Generation || g <= before {
			t.Errorf("Generation %d after a new snapshot %d (was %d)", g, st.Generation, before)
		}
	})
}

// TestChangedCoversResponderSAs: an SA a spoke starts towards the hub
// belongs to no peer, so no Event reports it; Changed signals the new
// State all the same (the controller's SA hold waits on it), and one
// pending value stands for any number of snapshots.
func TestChangedCoversResponderSAs(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, pskConfig("192.0.2.1"), nil)
		h.waitState("connected", func(s ipsec.State) bool { return s.Connected })
		synctest.Wait()
		select { // what the start published
		case <-h.m.Changed():
		default:
		}
		spoke := vicitest.SA{
			Conn: "dmvpn-responder", UniqueID: 11, State: "ESTABLISHED",
			LocalHost: "192.0.2.1", LocalPort: 500, RemoteHost: "198.51.100.2", RemotePort: 500,
			LocalID: "192.0.2.1", RemoteID: "198.51.100.2",
			Children: []vicitest.ChildSA{{Name: "gre", UniqueID: 12, State: "INSTALLED", Mode: "TRANSPORT",
				LocalTS: []string{"192.0.2.1/32[gre]"}, RemoteTS: []string{"198.51.100.2/32[gre]"}}},
		}
		gen := h.m.State().Generation
		h.srv.Emit("ike-updown", vicitest.IKEUpdown(true, spoke))
		h.srv.Emit("child-updown", vicitest.ChildUpdown(true, spoke))
		synctest.Wait()
		select {
		case <-h.m.Changed():
		default:
			t.Fatal("no change signalled for the responder SA")
		}
		st := h.m.State()
		if st.Generation <= gen {
			t.Errorf("generation %d -> %d: no new snapshot", gen, st.Generation)
		}
		if len(st.Unattributed) != 1 || st.Unattributed[0].Remote != netip.MustParseAddrPort("198.51.100.2:500") {
			t.Errorf("unattributed SAs %+v, want the spoke's", st.Unattributed)
		}
		select { // charon's two events: one or two snapshots, one value
		case <-h.m.Changed():
			t.Error("a second value pending: want the snapshots coalesced into one")
		default:
		}
		select {
		case ev := <-h.m.Events():
			t.Errorf("event %+v for an SA of no peer", ev)
		default:
		}
	})
}
