package engine_test

import (
	"net/netip"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/dmvpnd/dmvpnd/nhrp"
	"github.com/dmvpnd/dmvpnd/nhrp/engine"
)

// sendLog records the instants at which packets of one type left one NBMA
// address for another, whether or not the network then drops them.
type sendLog struct {
	src, dst netip.Addr
	typ      nhrp.Type
	at       []time.Time
}

func (l *sendLog) saw(now time.Time, src, dst netip.Addr, b []byte) {
	if src != l.src || dst != l.dst {
		return
	}
	if p, err := nhrp.Parse(b); err == nil && p.Type == l.typ {
		l.at = append(l.at, now)
	}
}

// TestProtectedRegistrationSends counts what SetProtections sends to an NHS
// and when the next registration follows: one registration when the NHS's
// NBMA becomes protected (a repeated, unchanged set sends nothing) for
// an NHS whose registration is outstanding, its backoff restarted at
// RetryMin (1 s) although the next backed-off retry was 11 s away; nothing
// for an NHS that is up or for another address, whose timers are kept.
func TestProtectedRegistrationSends(t *testing.T) {
	for _, tc := range []struct {
		name        string
		registered  bool   // the NHS is up before the call
		refreshLost bool   // and its refresh (at 200 s) is outstanding
		protected   string // NBMA reported protected
		calls       int
		reachable   bool          // the hub answers from the call on
		wantNow     int           // registrations sent by the calls
		wantNext    time.Duration // from the calls to the next registration (hub unreachable)
		wantState   string
	}{
		{name: "pending, sa with the nhs, hub answers", protected: hubNBMA, calls: 1, reachable: true,
			wantNow: 1, wantState: "192.0.2.1=up"},
		{name: "pending, sa with the nhs, reply lost", protected: hubNBMA, calls: 1,
			wantNow: 1, wantNext: time.Second, wantState: "192.0.2.1=probing"},
		{name: "pending, two calls", protected: hubNBMA, calls: 2,
			wantNow: 1, wantNext: time.Second, wantState: "192.0.2.1=probing"},
		{name: "pending, sa with another peer", protected: "198.51.100.9", calls: 1,
			wantNow: 0, wantNext: 11 * time.Second, wantState: "192.0.2.1=probing"},
		{name: "registered, sa with the nhs", registered: true, protected: hubNBMA, calls: 3,
			wantNow: 0, wantNext: 180 * time.Second, wantState: "192.0.2.1=up"}, // refresh at holding/3
		{name: "registered, refresh outstanding, sa with the nhs", registered: true, refreshLost: true, protected: hubNBMA, calls: 1,
			wantNow: 0, wantNext: time.Second, wantState: "192.0.2.1=up"}, // refresh 200 s, retries 201 s, 203 s
	} {
		t.Run(tc.name, func(t *testing.T) {
			tp := newTopo(t)
			s2 := tp.spoke(2, "198.51.100.2", nil)
			regs := &sendLog{src: s2.Addr, dst: addr(hubNBMA), typ: nhrp.TypeRegistrationRequest}
			blocked := !tc.registered
			tp.net.Drop = func(src, dst netip.Addr, b []byte) bool {
				regs.saw(tp.net.Clock.Now(), src, dst, b)
				return blocked && src == s2.Addr
			}
			t0 := tp.net.Clock.Now()
			tp.start()
			// Unanswered: sent at 0, 1, 3, 7 and 15 s; the next retry is at 31 s.
			tp.advance(20 * time.Second)
			if tc.refreshLost {
				blocked = true
				tp.advance(182 * time.Second)
			}
			if !tc.registered {
				if diff := cmp.Diff([]time.Duration{0, time.Second, 3 * time.Second, 7 * time.Second, 15 * time.Second}, since(t0, regs.at)); diff != "" {
					t.Fatalf("registrations before the SA (-want +got):\n%s", diff)
				}
				if d, _ := s2.Engine.NextDeadline(); d.Sub(tp.net.Clock.Now()) < 10*time.Second {
					t.Fatalf("next retry in %v, want the backoff far away", d.Sub(tp.net.Clock.Now()))
				}
			}
			before := len(regs.at)
			deadline, _ := s2.Engine.NextDeadline()
			blocked = !tc.reachable && (!tc.registered || tc.refreshLost)
			call := tp.net.Clock.Now()
			for range tc.calls {
				s2.Engine.SetProtections([]engine.Protection{{NBMA: addr(tc.protected)}})
			}
			tp.run() // deliver, without advancing the clock
			if got := len(regs.at) - before; got != tc.wantNow {
				t.Errorf("%d registrations sent by %d calls, want %d", got, tc.calls, tc.wantNow)
			}
			if got := nhsStates(s2); got != tc.wantState {
				t.Errorf("NHS states %s right after the calls, want %s", got, tc.wantState)
			}
			if tc.wantNow == 0 {
				if d, _ := s2.Engine.NextDeadline(); !d.Equal(deadline) {
					t.Errorf("next deadline moved from %v to %v", deadline.Sub(call), d.Sub(call))
				}
			}
			if tc.reachable {
				return
			}
			after := len(regs.at)
			tp.advance(tc.wantNext + 10*time.Second)
			if len(regs.at) == after {
				t.Fatalf("no registration within %v of the calls", tc.wantNext+10*time.Second)
			}
			if got := regs.at[after].Sub(call); got != tc.wantNext {
				t.Errorf("next registration %v after the calls, want %v", got, tc.wantNext)
			}
		})
	}
}

// TestProtectedProbeSends counts the direct-path probes Protected sends:
// one for a path being validated or down, none for a confirmed path or
// for a peer at another address.
func TestProtectedProbeSends(t *testing.T) {
	for _, tc := range []struct {
		name      string
		noSA      bool          // spoke-to-spoke packets dropped until the call
		wait      time.Duration // from the traffic indication to the call
		before    engine.ShortcutState
		protected string
		wantNow   int
		want      engine.ShortcutState
	}{
		{"validating, sa with the peer", true, 1500 * time.Millisecond, engine.ShortcutValidating, "198.51.100.3", 1, engine.ShortcutUp},
		{"down, sa with the peer", true, 3500 * time.Millisecond, engine.ShortcutDown, "198.51.100.3", 1, engine.ShortcutUp},
		{"down, sa with the hub", true, 3500 * time.Millisecond, engine.ShortcutDown, hubNBMA, 0, engine.ShortcutDown},
		{"up, sa with the peer", false, 1500 * time.Millisecond, engine.ShortcutUp, "198.51.100.3", 0, engine.ShortcutUp},
	} {
		t.Run(tc.name, func(t *testing.T) {
			probes := &sendLog{src: addr("198.51.100.2"), dst: addr("198.51.100.3"), typ: nhrp.TypeResolutionRequest}
			noSA := tc.noSA
			tp, s2 := shortcutWithoutSA(t, &noSA, probes.saw, tc.wait, tc.before)
			noSA = false
			before := len(probes.at)
			s2.Engine.SetProtections([]engine.Protection{{NBMA: addr(tc.protected)}})
			tp.run()
			if got := len(probes.at) - before; got != tc.wantNow {
				t.Errorf("%d probes sent by the call, want %d", got, tc.wantNow)
			}
			if st := shortcutState(s2, "10.0.3.0/24"); st != tc.want {
				t.Errorf("shortcut %v right after the call, want %v (history %v)", st, tc.want, shortcutHistory(s2, "10.0.3.0/24"))
			}
		})
	}
}

// since returns each instant's offset from t0.
func since(t0 time.Time, at []time.Time) []time.Duration {
	out := make([]time.Duration, len(at))
	for i, a := range at {
		out[i] = a.Sub(t0)
	}
	return out
}
