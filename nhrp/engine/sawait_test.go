package engine_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/dmvpnd/dmvpnd/nhrp/engine"
	"github.com/google/go-cmp/cmp"
)

// sawaitCounters are the counters of the hold for an SA.
var sawaitCounters = []string{"rx_held_for_sa", "rx_released_by_sa", "drop_untrusted", "drop_ambiguous_sa"}

// holdCounts reads sawaitCounters.
func (r *rig) holdCounts() map[string]uint64 {
	out := map[string]uint64{}
	for _, n := range sawaitCounters {
		out[n] = r.counter(n)
	}
	return out
}

// wantHoldCounts checks held, released, untrusted and ambiguous drops.
func (r *rig) wantHoldCounts(held, released, untrusted, ambiguous uint64) {
	r.t.Helper()
	want := map[string]uint64{"rx_held_for_sa": held, "rx_released_by_sa": released, "drop_untrusted": untrusted, "drop_ambiguous_sa": ambiguous}
	if diff := cmp.Diff(want, r.holdCounts()); diff != "" {
		r.t.Errorf("counters (-want +got):\n%s", diff)
	}
}

// regFrom is a registration of tunnel address 10.255.0.<host> from nbma,
// with request id id.
func regFrom(t *testing.T, nbma string, host int, id uint32) []byte {
	t.Helper()
	proto := fmt.Sprintf("10.255.0.%d", host)
	return registration(t, nbma, proto, id, false, cie{proto, nbma, 600})
}

// replyIDs lists the request ids of the packets sent, with their
// destinations.
func replyIDs(sp []sentPacket) []string {
	var out []string
	for _, s := range sp {
		out = append(out, fmt.Sprintf("%s %s id %d", s.to, s.p.Type, s.p.RequestID))
	}
	return out
}

const spokeX = "198.51.100.9"

var protX = engine.Protection{NBMA: addr(spokeX), Identity: "spoke9"}

// A packet that arrives before the SA that carried it was reported is
// held, and handled, in arrival order, when SetProtections proves its
// NBMA: the race between charon's SA and its event is not a drop.
func TestSAWaitReleasedInOrder(t *testing.T) {
	r := newRig(t, ipsecOn)
	for id := uint32(1); id <= 3; id++ {
		if sent := r.recv(spokeX, regFrom(t, spokeX, 9, id)); len(sent) != 0 {
			t.Fatalf("answered %v before the SA", replyIDs(sent))
		}
	}
	if got := r.state(); got != "" {
		t.Fatalf("state before the SA:\n%s", got)
	}
	r.wantHoldCounts(3, 0, 0, 0)

	r.advance(engine.SAWaitFor - time.Millisecond)
	r.node.Engine.SetProtections([]engine.Protection{protX})
	if err := r.net.Run(); err != nil {
		t.Fatal(err)
	}
	want := []string{
		"198.51.100.9 registration-reply id 1",
		"198.51.100.9 registration-reply id 2",
		"198.51.100.9 registration-reply id 3",
	}
	if diff := cmp.Diff(want, replyIDs(r.sent)); diff != "" {
		t.Errorf("sent (-want +got):\n%s", diff)
	}
	if got := codes(r.sent); !cmp.Equal(got, []string{"success", "success", "success"}) {
		t.Errorf("codes %v, want three successes", got)
	}
	r.wantHoldCounts(3, 3, 0, 0)
	// Nothing is left to expire, and the SA proves the next packet at once.
	r.advance(time.Minute)
	r.wantHoldCounts(3, 3, 0, 0)
	if sent := r.recv(spokeX, regFrom(t, spokeX, 9, 4)); len(sent) != 1 {
		t.Errorf("with the SA: answered %d packets, want 1", len(sent))
	}
	r.wantHoldCounts(3, 3, 0, 0)
}

// Held packets are handled before what SetProtections resends to the
// same NBMA: a spoke whose registration reply arrived ahead of the
// hub's SA is up when the SA is reported, and does not register again.
func TestSAWaitHandledBeforeResends(t *testing.T) {
	cfg := spokeConfig(2)
	cfg.IPsec = true
	next := uint32(100)
	cfg.RequestIDs = func() uint32 { next++; return next - 1 }
	r := newRigNode(t, "198.51.100.2", cfg)
	hub := []engine.Protection{{NBMA: addr(hubNBMA), Identity: "hub"}}
	r.node.Engine.SetProtections(hub)
	r.node.Engine.Start()
	if err := r.net.Run(); err != nil {
		t.Fatal(err)
	}
	if len(r.sent) != 1 {
		t.Fatalf("sent %v, want the registration", replyIDs(r.sent))
	}
	reply := marshal(t, regReply(t, r.sent[0].p))
	// The SA is rekeyed: the old one is reported gone first, and the
	// reply comes through the new one before it is reported.
	r.node.Engine.SetProtections(nil)
	r.recv(hubNBMA, reply)
	if got := nhsStates(r.node); got == "192.0.2.1=up" {
		t.Fatalf("NHS %s before the new SA", got)
	}
	r.node.Engine.SetProtections(hub)
	if err := r.net.Run(); err != nil {
		t.Fatal(err)
	}
	if got := nhsStates(r.node); got != "192.0.2.1=up" {
		t.Errorf("NHS %s after the new SA, want up", got)
	}
	if len(r.sent) != 1 {
		t.Errorf("sent %v after the new SA, want nothing more (the held reply first, then no resend)", replyIDs(r.sent[1:]))
	}
	r.wantHoldCounts(1, 1, 0, 0)
}

// A packet whose SA is not reported within SAWaitFor is dropped as
// untrusted, each at its own deadline, and an SA reported later does not
// bring it back.
func TestSAWaitExpires(t *testing.T) {
	r := newRig(t, ipsecOn)
	r.recv(spokeX, regFrom(t, spokeX, 9, 1))
	r.advance(time.Second)
	r.recv(spokeX, regFrom(t, spokeX, 10, 2))
	r.advance(engine.SAWaitFor - time.Second - time.Millisecond)
	r.wantHoldCounts(2, 0, 0, 0)
	r.advance(time.Millisecond) // the first one's deadline
	r.wantHoldCounts(2, 0, 1, 0)
	// Another NBMA's SA releases nothing of spokeX's.
	r.node.Engine.SetProtections([]engine.Protection{{NBMA: addr("198.51.100.8"), Identity: "spoke8"}})
	r.wantHoldCounts(2, 0, 1, 0)
	r.advance(time.Second) // the second one's
	r.wantHoldCounts(2, 0, 2, 0)
	r.node.Engine.SetProtections([]engine.Protection{protX})
	if err := r.net.Run(); err != nil {
		t.Fatal(err)
	}
	if len(r.sent) != 0 || r.state() != "" {
		t.Errorf("after expiry, the SA released %v, state %q", replyIDs(r.sent), r.state())
	}
	r.wantHoldCounts(2, 0, 2, 0)
	if _, ok := r.node.Engine.NextDeadline(); ok {
		t.Error("a timer is still armed after every held packet expired")
	}

	// An SA reported after the deadline but before the timer ran (the
	// loop was late) does not release the packet either.
	r.node.Engine.SetProtections(nil)
	r.recv(spokeX, regFrom(t, spokeX, 9, 3))
	r.net.Clock.Set(r.net.Clock.Now().Add(engine.SAWaitFor))
	r.node.Engine.SetProtections([]engine.Protection{protX})
	if err := r.net.Run(); err != nil {
		t.Fatal(err)
	}
	if len(r.sent) != 0 {
		t.Errorf("a packet past its deadline was released: sent %v", replyIDs(r.sent))
	}
	r.wantHoldCounts(3, 0, 3, 0)
}

// At most SAWaitPerNBMA packets are held per NBMA: the next are dropped
// as untrusted at once, and the held ones are still released.
func TestSAWaitPerNBMACap(t *testing.T) {
	r := newRig(t, ipsecOn)
	n := engine.SAWaitPerNBMA
	for i := range n + 2 {
		r.recv(spokeX, regFrom(t, spokeX, 9+i, uint32(1+i)))
	}
	r.wantHoldCounts(uint64(n), 0, 2, 0)
	// Another NBMA is not affected.
	r.recv("198.51.100.8", regFrom(t, "198.51.100.8", 50, 50))
	r.wantHoldCounts(uint64(n)+1, 0, 2, 0)
	r.node.Engine.SetProtections([]engine.Protection{protX})
	if err := r.net.Run(); err != nil {
		t.Fatal(err)
	}
	var want []string
	for i := range n {
		want = append(want, fmt.Sprintf("198.51.100.9 registration-reply id %d", 1+i))
	}
	if diff := cmp.Diff(want, replyIDs(r.sent)); diff != "" {
		t.Errorf("sent (-want +got):\n%s", diff)
	}
	r.wantHoldCounts(uint64(n)+1, uint64(n), 2, 0)
	// Once released, spokeX's quota is free again.
	r.node.Engine.SetProtections(nil)
	for i := range n {
		r.recv(spokeX, regFrom(t, spokeX, 9+i, uint32(10+i)))
	}
	r.wantHoldCounts(2*uint64(n)+1, uint64(n), 2, 0)
}

// At most SAWaitPackets packets are held in all, whatever their sources,
// and at most 256 KiB: the next are dropped as untrusted at once.
func TestSAWaitGlobalCap(t *testing.T) {
	t.Run("packets", func(t *testing.T) {
		r := newRig(t, ipsecOn)
		a := addr("198.18.0.1")
		for i := range engine.SAWaitPackets {
			r.recv(a.String(), regFrom(t, a.String(), 9, uint32(i)))
			if i%engine.SAWaitPerNBMA == engine.SAWaitPerNBMA-1 {
				a = a.Next()
			}
		}
		r.wantHoldCounts(engine.SAWaitPackets, 0, 0, 0)
		r.recv("198.51.100.200", regFrom(t, "198.51.100.200", 9, 1))
		r.wantHoldCounts(engine.SAWaitPackets, 0, 1, 0)
		// Releasing one NBMA's packets makes room.
		first := addr("198.18.0.1")
		r.node.Engine.SetProtections([]engine.Protection{{NBMA: first, Identity: "first"}})
		r.wantHoldCounts(engine.SAWaitPackets, engine.SAWaitPerNBMA, 1, 0)
		r.recv("198.51.100.200", regFrom(t, "198.51.100.200", 9, 2))
		r.wantHoldCounts(engine.SAWaitPackets+1, engine.SAWaitPerNBMA, 1, 0)
		r.advance(engine.SAWaitFor)
		r.wantHoldCounts(engine.SAWaitPackets+1, engine.SAWaitPerNBMA, 1+engine.SAWaitPackets-engine.SAWaitPerNBMA+1, 0)
	})
	t.Run("bytes", func(t *testing.T) {
		r := newRig(t, ipsecOn)
		big := make([]byte, 60000) // not NHRP: held before it is decoded
		for i := range 4 {
			r.recv(fmt.Sprintf("198.18.0.%d", i+1), big)
		}
		r.wantHoldCounts(4, 0, 0, 0)
		r.recv("198.18.0.5", big)
		r.wantHoldCounts(4, 0, 1, 0)
		r.recv("198.18.0.5", regFrom(t, "198.18.0.5", 9, 1))
		r.wantHoldCounts(5, 0, 1, 0)
		r.node.Engine.SetProtections([]engine.Protection{{NBMA: addr("198.18.0.1"), Identity: "first"}})
		if r.counter("drop_malformed") != 1 {
			t.Errorf("drop_malformed %d after the release, want 1", r.counter("drop_malformed"))
		}
		r.recv("198.18.0.6", big)
		r.wantHoldCounts(6, 1, 1, 0)
	})
}

// The holder's copy is its own: the caller reuses its buffer.
func TestSAWaitCopiesPacket(t *testing.T) {
	r := newRig(t, ipsecOn)
	b := regFrom(t, spokeX, 9, 1)
	r.recv(spokeX, b)
	clear(b)
	r.node.Engine.SetProtections([]engine.Protection{protX})
	if err := r.net.Run(); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"198.51.100.9 registration-reply id 1"}, replyIDs(r.sent)); diff != "" {
		t.Errorf("sent (-want +got):\n%s", diff)
	}
}

// An NBMA two SAs claim proves nothing now and will not prove the packet
// later: its packets are never held, and those held when it becomes
// ambiguous are dropped as ambiguous.
func TestSAWaitAmbiguous(t *testing.T) {
	attacker := engine.Protection{NBMA: addr(spokeX), Outer: addr("203.0.113.66"), Identity: "attacker"}
	t.Run("never held", func(t *testing.T) {
		r := newRig(t, ipsecOn)
		r.node.Engine.SetProtections([]engine.Protection{protX, attacker})
		r.recv(spokeX, regFrom(t, spokeX, 9, 1))
		r.wantHoldCounts(0, 0, 0, 1)
	})
	t.Run("held, then ambiguous", func(t *testing.T) {
		r := newRig(t, ipsecOn)
		r.recv(spokeX, regFrom(t, spokeX, 9, 1))
		r.recv(spokeX, regFrom(t, spokeX, 10, 2))
		r.node.Engine.SetProtections([]engine.Protection{protX, attacker})
		r.wantHoldCounts(2, 0, 0, 2)
		r.node.Engine.SetProtections([]engine.Protection{protX})
		if err := r.net.Run(); err != nil {
			t.Fatal(err)
		}
		if len(r.sent) != 0 || r.state() != "" {
			t.Errorf("the unambiguous SA released %v, state %q", replyIDs(r.sent), r.state())
		}
		r.wantHoldCounts(2, 0, 0, 2)
	})
}

// Without IPsec nothing is proven or held: every packet is handled at
// once.
func TestSAWaitOnlyWithIPsec(t *testing.T) {
	r := newRig(t)
	if sent := r.recv(spokeX, regFrom(t, spokeX, 9, 1)); len(sent) != 1 {
		t.Errorf("answered %d packets, want 1", len(sent))
	}
	r.wantHoldCounts(0, 0, 0, 0)
	if _, ok := r.node.Engine.NextDeadline(); !ok {
		t.Error("no registration expiry armed")
	}
}
