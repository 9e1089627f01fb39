package engine_test

import (
	"strings"
	"testing"
	"time"

	"github.com/dmvpnd/dmvpnd/nhrp/engine"
	"github.com/dmvpnd/dmvpnd/nhrp/engine/nhrpsim"
)

// dualHub is the failover tests' cloud: hub1 (192.0.2.1, 10.255.0.1, the
// preferred NHS), hub2 (192.0.2.2, 10.255.0.254) and spoke 2 registering
// with both as configured by mod. Nothing runs until start.
type dualHub struct {
	net               *nhrpsim.Network
	hub1, hub2, spoke *nhrpsim.Node
}

func newDualHub(t *testing.T, mod func(*engine.Config)) *dualHub {
	t.Helper()
	d := &dualHub{net: nhrpsim.New()}
	mk := func(name, nbma string, cfg engine.Config) *nhrpsim.Node {
		nd, err := d.net.AddNode(name, nbma, nil, cfg)
		if err != nil {
			t.Fatal(err)
		}
		return nd
	}
	d.hub1 = mk("hub1", "192.0.2.1", hubConfig())
	h2 := hubConfig()
	h2.Proto = addr("10.255.0.254")
	d.hub2 = mk("hub2", "192.0.2.2", h2)
	c := spokeConfig(2,
		engine.NHSConfig{NBMA: addr("192.0.2.1"), Proto: addr("10.255.0.1"), Priority: 1},
		engine.NHSConfig{NBMA: addr("192.0.2.2"), Proto: addr("10.255.0.254"), Priority: 2})
	mod(&c)
	d.spoke = mk("spoke2", "198.51.100.2", c)
	return d
}

func (d *dualHub) start(t *testing.T) {
	t.Helper()
	if err := d.net.StartAll(); err != nil {
		t.Fatal(err)
	}
}

// advance moves the virtual clock by dur in steps of step.
func (d *dualHub) advance(t *testing.T, dur, step time.Duration) {
	t.Helper()
	for ; dur > 0; dur -= step {
		if err := d.net.Advance(min(step, dur)); err != nil {
			t.Fatal(err)
		}
	}
}

func TestNHSFailoverToSecondHubAndBack(t *testing.T) {
	d := newDualHub(t, func(c *engine.Config) { c.MaxActiveNHS = 1 })
	hub1, hub2, s2, net := d.hub1, d.hub2, d.spoke, d.net
	d.start(t)
	advance := func(dur time.Duration) { t.Helper(); d.advance(t, dur, dur) }
	check := func(when, want string) {
		t.Helper()
		if got := nhsStates(s2); got != want {
			t.Fatalf("%s: NHS states %q, want %q", when, got, want)
		}
	}
	check("start", "192.0.2.1=up 192.0.2.2=down")
	if st := s2.Engine.NHSs()[1]; !st.Standby || !strings.Contains(st.Reason, "standby") {
		t.Errorf("second NHS %+v, want standby", st)
	}

	hub1.Down = true
	advance(holding/3 + 7*time.Second) // refresh + 1 s + 2 s + 4 s unanswered
	check("preferred hub gone", "192.0.2.1=probing 192.0.2.2=up")
	if got, _ := s2.Neigh.Lookup(addr("10.255.0.254")); got != addr("192.0.2.2") {
		t.Errorf("spoke has no binding for the second hub: %s", s2.Neigh)
	}
	if _, ok := cacheEntry(hub2, "10.255.0.2", engine.KindRegistered); !ok {
		t.Error("second hub has no registration")
	}
	// Resolutions now go through the second hub.
	s2.Engine.Resolve(addr("10.255.0.77"))
	if err := net.Run(); err != nil {
		t.Fatal(err)
	}
	wantCounter(t, hub2, "drop_no_route", 1)

	hub1.Down = false
	advance(65 * time.Second) // retries back off to at most 64 s
	check("preferred hub back", "192.0.2.1=up 192.0.2.2=down")
	var history []string
	for _, ev := range s2.EventsOf(engine.EventNHS) {
		if ev.NBMA == addr("192.0.2.1") {
			history = append(history, ev.NHS.String())
		}
	}
	if got := strings.Join(history, ","); !strings.HasPrefix(got, "probing,up,probing") || !strings.HasSuffix(got, ",up") {
		t.Errorf("preferred NHS history %s", got)
	}
}

// TestRegistrationIntervalBoundsFailover: with a registration interval
// (Cisco's "ip nhrp registration timeout") a spoke registers every
// interval while its NHS answers, and marks an NHS that stops answering
// failed within (RegisterFailAfter+1) intervals of its failure, whatever
// the holding time; the other NHS keeps the spoke registered. Without the
// interval the same failure goes unnoticed for a third of the holding
// time (the control).
func TestRegistrationIntervalBoundsFailover(t *testing.T) {
	const interval = 400 * time.Millisecond
	for _, tc := range []struct {
		name     string
		interval time.Duration
		// bound on the detection time; 0: must not be detected within
		// the observation window below.
		within time.Duration
	}{
		{"interval", interval, 4 * interval},
		{"holding time only (control)", 0, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := newDualHub(t, func(c *engine.Config) { c.RegistrationInterval = tc.interval })
			hub1, s := d.hub1, d.spoke
			d.start(t)
			const step = 50 * time.Millisecond
			advance := func(dur time.Duration) { t.Helper(); d.advance(t, dur, step) }
			advance(3 * time.Second) // past the first registrations' settling
			if got := nhsStates(s); got != "192.0.2.1=up 192.0.2.2=up" {
				t.Fatalf("before the failure: NHS states %q", got)
			}
			// While hub1 answers, the spoke refreshes every interval.
			before := hub1.Engine.Counters()["registrations_accepted"]
			advance(10 * interval)
			refreshes := hub1.Engine.Counters()["registrations_accepted"] - before
			if tc.interval > 0 && (refreshes < 9 || refreshes > 11) {
				t.Errorf("%d registrations accepted by hub1 in %v, want one per interval (%v)", refreshes, 10*interval, interval)
			}
			if tc.interval == 0 && refreshes > 1 {
				t.Errorf("%d registrations accepted by hub1 in %v without an interval, want at most one (refresh every %v)", refreshes, 10*interval, holding/3)
			}

			hub1.Down = true
			var detected time.Duration
			for elapsed := time.Duration(0); elapsed <= 20*interval; elapsed += step {
				if nhsStates(s) != "192.0.2.1=up 192.0.2.2=up" {
					detected = elapsed
					break
				}
				advance(step)
			}
			switch {
			case tc.within > 0 && (detected == 0 || detected > tc.within):
				t.Fatalf("hub1's failure detected after %v (0: not within %v), want within %v", detected, 20*interval, tc.within)
			case tc.within == 0 && detected != 0:
				t.Fatalf("hub1's failure detected after %v without a registration interval: the control is not a control", detected)
			}
			if tc.within > 0 {
				if got := nhsStates(s); got != "192.0.2.1=probing 192.0.2.2=up" {
					t.Errorf("after the failure: NHS states %q", got)
				}
				if _, ok := s.Neigh.Lookup(addr("10.255.0.1")); ok {
					t.Errorf("spoke still has a neighbor entry for the failed hub: %s", s.Neigh)
				}
				t.Logf("hub1's failure detected %v after it stopped answering (interval %v)", detected, interval)
			}
		})
	}
}

// TestOnlyNHSKeepsBindingWhenItFails: a spoke whose only NHS stops
// answering marks it failed but keeps its binding (the kernel's neighbour
// entry): there is nothing to fail over to, and the hub may still forward
// (its dmvpnd restarting under BGP graceful restart). With a second NHS
// up, the failed one's binding goes at once; when a second NHS comes up
// later, the binding kept for the failed one goes then.
func TestOnlyNHSKeepsBindingWhenItFails(t *testing.T) {
	d := newDualHub(t, func(c *engine.Config) { c.RegistrationInterval = 400 * time.Millisecond })
	hub1, hub2, s := d.hub1, d.hub2, d.spoke
	hub2.Down = true
	d.start(t)
	advance := func(dur time.Duration) { t.Helper(); d.advance(t, dur, dur) }
	bound := func(proto string) bool {
		_, ok := s.Neigh.Lookup(addr(proto))
		return ok
	}
	advance(3 * time.Second)
	if got := nhsStates(s); !strings.HasPrefix(got, "192.0.2.1=up ") || strings.Contains(got, "192.0.2.2=up") {
		t.Fatalf("start: NHS states %q, want hub1 up, hub2 not", got)
	}
	hub1.Down = true
	advance(5 * time.Second)
	if got := nhsStates(s); strings.Contains(got, "=up") {
		t.Fatalf("both hubs silent: NHS states %q", got)
	}
	if !bound("10.255.0.1") {
		t.Fatalf("the only NHS that was up lost its binding when it failed: %s", s.Neigh)
	}
	hub2.Down = false
	advance(70 * time.Second) // hub2's retries back off to at most 64 s
	if got := nhsStates(s); !strings.Contains(got, "192.0.2.2=up") {
		t.Fatalf("hub2 answering again: NHS states %q", got)
	}
	if bound("10.255.0.1") {
		t.Errorf("hub2 is up but the failed hub1 keeps its binding: %s", s.Neigh)
	}
	if !bound("10.255.0.254") {
		t.Errorf("hub2 is up but has no binding: %s", s.Neigh)
	}
	// hub1 back, then hub2 failing: hub1 is up, so hub2's binding goes.
	hub1.Down = false
	advance(70 * time.Second)
	hub2.Down = true
	advance(5 * time.Second)
	if got := nhsStates(s); !strings.Contains(got, "192.0.2.1=up") || strings.Contains(got, "192.0.2.2=up") {
		t.Fatalf("hub2 silent, hub1 back: NHS states %q", got)
	}
	if bound("10.255.0.254") {
		t.Errorf("hub2 failed while hub1 is up but keeps its binding: %s", s.Neigh)
	}
}
