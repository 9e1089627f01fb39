package engine_test

import (
	"strings"
	"testing"
	"time"

	"github.com/dmvpnd/dmvpnd/nhrp/engine"
	"github.com/dmvpnd/dmvpnd/nhrp/engine/nhrpsim"
)

func TestNHSFailoverToSecondHubAndBack(t *testing.T) {
	net := nhrpsim.New()
	mk := func(name, nbma string, cfg engine.Config) *nhrpsim.Node {
		nd, err := net.AddNode(name, nbma, nil, cfg)
		if err != nil {
			t.Fatal(err)
		}
		return nd
	}
	hub1 := mk("hub1", "192.0.2.1", hubConfig())
	h2 := hubConfig()
	h2.Proto = addr("10.255.0.254")
	hub2 := mk("hub2", "192.0.2.2", h2)
	nhss := []engine.NHSConfig{
		{NBMA: addr("192.0.2.2"), Proto: addr("10.255.0.254"), Priority: 2},
		{NBMA: addr("192.0.2.1"), Proto: addr("10.255.0.1"), Priority: 1},
	}
	c2 := spokeConfig(2, nhss...)
	c2.MaxActiveNHS = 1
	s2 := mk("spoke2", "198.51.100.2", c2)
	if err := net.StartAll(); err != nil {
		t.Fatal(err)
	}
	advance := func(d time.Duration) {
		t.Helper()
		if err := net.Advance(d); err != nil {
			t.Fatal(err)
		}
	}
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
	if got := hub2.Engine.Counters()["drop_no_route"]; got != 1 {
		t.Errorf("second hub did not serve the resolution (drop_no_route %d)", got)
	}

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
