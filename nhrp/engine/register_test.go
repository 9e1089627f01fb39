package engine_test

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/dmvpnd/dmvpnd/nhrp/engine"
	"github.com/dmvpnd/dmvpnd/nhrp/engine/nhrpsim"
	"github.com/google/go-cmp/cmp"
)

func TestHubWithThreeSpokesRegisters(t *testing.T) {
	tp := newTopo(t)
	s2 := tp.spoke(2, "198.51.100.2", nil)
	s3 := tp.spoke(3, "198.51.100.3", nil)
	s4 := tp.spoke(4, "198.51.100.4", nil)
	tp.start()

	want := "10.255.0.2 lladdr 198.51.100.2\n10.255.0.3 lladdr 198.51.100.3\n10.255.0.4 lladdr 198.51.100.4\n"
	if diff := cmp.Diff(want, tp.hub.Neigh.String()); diff != "" {
		t.Errorf("hub neighbor table (-want +got):\n%s", diff)
	}
	for _, s := range []*nhrpsim.Node{s2, s3, s4} {
		if got := nhsStates(s); got != "192.0.2.1=up" {
			t.Errorf("%s: NHS states %q, want up", s.Name, got)
		}
		if diff := cmp.Diff("10.255.0.1 lladdr 192.0.2.1\n", s.Neigh.String()); diff != "" {
			t.Errorf("%s neighbor table (-want +got):\n%s", s.Name, diff)
		}
	}
	var ups []string
	for _, ev := range tp.hub.EventsOf(engine.EventPeerUp) {
		ups = append(ups, ev.Proto.String()+"@"+ev.NBMA.String())
	}
	if diff := cmp.Diff([]string{"10.255.0.2@198.51.100.2", "10.255.0.3@198.51.100.3", "10.255.0.4@198.51.100.4"}, ups); diff != "" {
		t.Errorf("hub peer-up events (-want +got):\n%s", diff)
	}
	wantCounter(t, tp.hub, "registrations_accepted", 3)
}

func TestRegistrationRefreshAndExpiry(t *testing.T) {
	tp := newTopo(t)
	s2 := tp.spoke(2, "198.51.100.2", nil)
	tp.start()
	accepted := func() uint64 { return tp.hub.Engine.Counters()["registrations_accepted"] }

	tp.advance(holding/3 - time.Second)
	if got := accepted(); got != 1 {
		t.Fatalf("before holding/3: %d registrations, want 1", got)
	}
	tp.advance(2 * time.Second)
	if got := accepted(); got != 2 {
		t.Fatalf("after holding/3: %d registrations, want 2 (refresh)", got)
	}
	ce, ok := cacheEntry(tp.hub, "10.255.0.2", engine.KindRegistered)
	if !ok || !ce.Expires.Equal(tp.net.Clock.Now().Add(holding-time.Second)) {
		t.Fatalf("hub entry after refresh: %+v (found %v), want expiry refreshed", ce, ok)
	}

	// The spoke disappears: the entry expires exactly one holding time
	// after the last refresh, not earlier.
	s2.Down = true
	tp.advance(holding - 3*time.Second)
	if _, ok := cacheEntry(tp.hub, "10.255.0.2", engine.KindRegistered); !ok {
		t.Fatal("registration expired early")
	}
	tp.advance(3 * time.Second)
	if _, ok := cacheEntry(tp.hub, "10.255.0.2", engine.KindRegistered); ok {
		t.Fatal("registration did not expire")
	}
	downs := tp.hub.EventsOf(engine.EventPeerDown)
	if len(downs) != 1 || downs[0].Reason != "expired" || downs[0].Proto != addr("10.255.0.2") {
		t.Errorf("peer-down events: %v", downs)
	}
	if tp.hub.Neigh.Len() != 0 {
		t.Errorf("hub neighbor table not empty:\n%s", tp.hub.Neigh)
	}
	// The spoke noticed too: no reply to its refreshes.
	if st := s2.Engine.NHSs()[0]; st.State != engine.NHSProbing || !strings.Contains(st.Reason, "no reply") {
		t.Errorf("spoke NHS state %v (%s), want probing after unanswered refreshes", st.State, st.Reason)
	}
}

func TestUniqueConflictReturnsCode14(t *testing.T) {
	tp := newTopo(t)
	unique := func(c *engine.Config) { c.Unique = true }
	tp.spoke(2, "198.51.100.2", nil, unique)
	tp.start()
	impostor := tp.add("impostor", "198.51.100.9", nil, spokeConfig(2))
	impostor.Engine.Start()
	tp.run()

	st := impostor.Engine.NHSs()[0]
	if st.State != engine.NHSDown || !strings.Contains(st.Reason, "unique-address-already-registered") {
		t.Errorf("impostor NHS state %v reason %q, want down with code 14", st.State, st.Reason)
	}
	if got, _ := tp.hub.Neigh.Lookup(addr("10.255.0.2")); got != addr("198.51.100.2") {
		t.Errorf("hub binding for 10.255.0.2 = %v, want the original 198.51.100.2", got)
	}
	wantCounter(t, tp.hub, "registrations_refused", 1)
}

func TestRegistrationRefusals(t *testing.T) {
	tests := []struct {
		name   string
		hub    func(*engine.Config, *nhrpsim.Node)
		reason string
	}{
		{"prefix not accepted", func(c *engine.Config, _ *nhrpsim.Node) {
			c.AcceptPrefixes = []netip.Prefix{pfx("10.254.0.0/24")}
		}, "administratively-prohibited"},
		{"cache limit", func(c *engine.Config, _ *nhrpsim.Node) { c.MaxCache = 1 }, "insufficient-resources"},
		{"binder refuses", func(_ *engine.Config, n *nhrpsim.Node) {
			if n != nil {
				n.Neigh.Limit = 1
			}
		}, "insufficient-resources"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			net := nhrpsim.New()
			cfg := hubConfig()
			tc.hub(&cfg, nil)
			hub, err := net.AddNode("hub", hubNBMA, nil, cfg)
			if err != nil {
				t.Fatal(err)
			}
			tc.hub(&cfg, hub)
			s2, _ := net.AddNode("s2", "198.51.100.2", nil, spokeConfig(2))
			if err := net.StartAll(); err != nil {
				t.Fatal(err)
			}
			s3, _ := net.AddNode("s3", "198.51.100.3", nil, spokeConfig(3))
			s3.Engine.Start()
			if err := net.Run(); err != nil {
				t.Fatal(err)
			}
			last := s3.Engine.NHSs()[0]
			if tc.name == "prefix not accepted" {
				last = s2.Engine.NHSs()[0]
			}
			if last.State != engine.NHSDown || !strings.Contains(last.Reason, tc.reason) {
				t.Errorf("NHS state %v reason %q, want down with %s", last.State, last.Reason, tc.reason)
			}
		})
	}
}

func TestDynamicNHSLearnsProtocolAddress(t *testing.T) {
	tp := newTopo(t)
	s2 := tp.spoke(2, "198.51.100.2", nil, func(c *engine.Config) {
		c.NHSs = []engine.NHSConfig{{NBMA: addr(hubNBMA)}}
	})
	tp.start()
	st := s2.Engine.NHSs()[0]
	if st.State != engine.NHSUp || st.Proto != addr(hubProto) {
		t.Errorf("dynamic NHS: state %v proto %v, want up with %s learnt", st.State, st.Proto, hubProto)
	}
	if got, _ := s2.Neigh.Lookup(addr(hubProto)); got != addr(hubNBMA) {
		t.Errorf("spoke binding for the learnt NHS = %v", got)
	}
}
