package engine_test

import (
	"net/netip"
	"testing"
	"time"

	"github.com/dmvpnd/dmvpnd/nhrp/engine"
	"github.com/dmvpnd/dmvpnd/nhrp/engine/nhrpsim"
)

// TestProtectedResendsRegistration: while a spoke's SA with its hub is
// being negotiated its registrations are dropped and their retransmission
// backs off; when the SA comes up the registration goes out at once
// instead of at the next backed-off retry.
func TestProtectedResendsRegistration(t *testing.T) {
	for _, tc := range []struct {
		name      string
		protected string // NBMA reported protected; "" for none
		wantUp    bool
	}{
		{"sa with the nhs", hubNBMA, true},
		{"sa with another peer", "198.51.100.9", false},
		{"no sa event", "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tp := newTopo(t)
			s2 := tp.spoke(2, "198.51.100.2", nil)
			noSA := true
			tp.net.Drop = func(src, _ netip.Addr, _ []byte) bool { return noSA && src == addr("198.51.100.2") }
			tp.start()
			// Retries after 1, 2, 4 and 8 s: the next one is 16 s away.
			tp.advance(20 * time.Second)
			if got := nhsStates(s2); got == "192.0.2.1=up" {
				t.Fatalf("registered without a path: %s", got)
			}
			noSA = false
			if tc.protected != "" {
				s2.Engine.SetProtections([]engine.Protection{{NBMA: addr(tc.protected)}})
			}
			tp.run() // deliver what the engine sent, without advancing the clock
			if got, want := nhsStates(s2) == "192.0.2.1=up", tc.wantUp; got != want {
				t.Errorf("registered at the SA event: %v, want %v (NHS states %s)", got, want, nhsStates(s2))
			}
		})
	}
}

// TestProtectedProbesDirectPath: a shortcut's direct path is validated
// by probes that are dropped while the spoke-to-spoke SA is negotiated;
// when the SA comes up the path is probed at once, whether the probes so
// far are still being retried (validating) or have given up (down, next
// retry 4 s or more away).
func TestProtectedProbesDirectPath(t *testing.T) {
	for _, tc := range []struct {
		name      string
		wait      time.Duration // from the traffic indication to the SA
		before    engine.ShortcutState
		protected string
		want      engine.ShortcutState
	}{
		{"validating, sa with the peer", 1500 * time.Millisecond, engine.ShortcutValidating, "198.51.100.3", engine.ShortcutUp},
		{"down, sa with the peer", 3500 * time.Millisecond, engine.ShortcutDown, "198.51.100.3", engine.ShortcutUp},
		{"down, sa with another peer", 3500 * time.Millisecond, engine.ShortcutDown, "198.51.100.9", engine.ShortcutDown},
	} {
		t.Run(tc.name, func(t *testing.T) {
			noSA := true
			tp, s2 := shortcutWithoutSA(t, &noSA, nil, tc.wait, tc.before)
			noSA = false
			s2.Engine.SetProtections([]engine.Protection{{NBMA: addr(tc.protected)}})
			tp.run() // deliver what the engine sent, without advancing the clock
			if st := shortcutState(s2, "10.0.3.0/24"); st != tc.want {
				t.Errorf("shortcut %v right after the SA event, want %v (history %v)", st, tc.want, shortcutHistory(s2, "10.0.3.0/24"))
			}
		})
	}
}

// shortcutWithoutSA runs the hub and spokes 2 and 3, the packets between
// the spokes dropped while *noSA holds (no SA yet), has the hub send s2 a
// traffic indication for 10.0.3.7 and waits wait; the test fails unless
// s2's shortcut to 10.0.3.0/24 is then in state want. saw, when not nil,
// sees every packet the network carries, with the simulated time.
func shortcutWithoutSA(t *testing.T, noSA *bool, saw func(now time.Time, src, dst netip.Addr, b []byte), wait time.Duration, want engine.ShortcutState) (*topo, *nhrpsim.Node) {
	t.Helper()
	tp := newTopo(t)
	s2 := tp.spoke(2, "198.51.100.2", nil)
	tp.spoke(3, "198.51.100.3", nil)
	tp.net.Drop = func(src, dst netip.Addr, b []byte) bool {
		if saw != nil {
			saw(tp.net.Clock.Now(), src, dst, b)
		}
		return *noSA && (src == addr("198.51.100.2") && dst == addr("198.51.100.3") ||
			src == addr("198.51.100.3") && dst == addr("198.51.100.2"))
	}
	tp.start()
	tp.hub.Engine.Hairpin(ipv4("10.0.2.5", "10.0.3.7"))
	tp.run()
	tp.advance(wait)
	if st := shortcutState(s2, "10.0.3.0/24"); st != want {
		t.Fatalf("shortcut %v %v after the indication without SA, want %v (history %v)", st, wait, want, shortcutHistory(s2, "10.0.3.0/24"))
	}
	return tp, s2
}
