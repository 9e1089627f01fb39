package engine_test

import (
	"net/netip"
	"testing"
	"time"
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
				s2.Engine.Protected(addr(tc.protected))
			}
			tp.run() // deliver what the engine sent, without advancing the clock
			if got, want := nhsStates(s2) == "192.0.2.1=up", tc.wantUp; got != want {
				t.Errorf("registered at the SA event: %v, want %v (NHS states %s)", got, want, nhsStates(s2))
			}
		})
	}
}
