package controller

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/dmvpnd/dmvpnd/controller/api"
	"github.com/dmvpnd/dmvpnd/kernel/kerneltest"
	"github.com/dmvpnd/dmvpnd/nhrp/engine"
	"github.com/dmvpnd/dmvpnd/routing"
)

// bgpSessionEvents keeps the bgp-session events of evs.
func bgpSessionEvents(evs []api.Event) []api.Event {
	var out []api.Event
	for _, e := range evs {
		if e.Kind == api.EventBGPSession {
			out = append(out, api.Event{Kind: e.Kind, Level: e.Level, PeerTunnel: e.PeerTunnel, State: e.State, Reason: e.Reason})
		}
	}
	return out
}

// TestBGPSessionsDriveStatus: a registered spoke is ready only while its
// BGP sessions are established; show bgp summary, the session events and
// the BGP gauges follow the speaker's summary, and a summary the speaker
// cannot give is reported, not taken as "no session".
func TestBGPSessionsDriveStatus(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		netw := kerneltest.NewNetwork()
		hub := start(t, netw, "hub", hubYAML("198.51.100.1", "10.0.0.1/24"), nil)
		sp := &stubBGP{}
		hubAddr, other := netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.0.0.7")
		sp.setSummary([]routing.NeighborSummary{
			{Neighbor: hubAddr, AS: 65000, State: routing.StateActive},
			{Neighbor: other, AS: 65000, State: routing.StateOpenSent},
		}, nil)
		s1 := start(t, netw, "s1", spokeYAML("198.51.100.2", "10.0.0.2/24", "198.51.100.1", "10.0.0.1")+spokeBGP, nil,
			func(d *Deps) { d.NewBGP = func(routing.Config, routing.RouteSink) (BGP, error) { return sp, nil } })
		defer stopAll(t, s1, hub)
		sub := s1.ctl.Subscribe()
		ctx := context.Background()
		time.Sleep(metricsInterval)
		synctest.Wait()

		st, err := s1.ctl.Status(ctx)
		if err != nil || st.Ready || !strings.Contains(st.Reason, "bgp neighbor 10.0.0.1 active") ||
			!strings.Contains(st.Reason, "bgp neighbor 10.0.0.7 opensent") {
			t.Errorf("status with sessions down: %+v, %v; want not ready, naming both neighbors", st, err)
		}
		sum, err := s1.ctl.BGP(ctx)
		if err != nil {
			t.Fatal(err)
		}
		want := api.BGPSummary{Enabled: true, AS: 65000, RouterID: netip.MustParseAddr("10.0.0.2"), Neighbors: []api.BGPNeighbor{
			{Address: hubAddr, AS: 65000, State: "Active"},
			{Address: other, AS: 65000, State: "OpenSent"},
		}}
		if d := cmp.Diff(want, sum, cmpopts.EquateComparable(netip.Addr{}, netip.Prefix{})); d != "" {
			t.Errorf("show bgp summary (-want +got):\n%s", d)
		}
		wantEv := []api.Event{
			{Kind: api.EventBGPSession, Level: "warn", PeerTunnel: hubAddr, State: "Active"},
			{Kind: api.EventBGPSession, Level: "warn", PeerTunnel: other, State: "OpenSent"},
		}
		if d := cmp.Diff(wantEv, bgpSessionEvents(drain(sub)), cmpopts.EquateComparable(netip.Addr{}, netip.Prefix{})); d != "" {
			t.Errorf("session events at start (-want +got):\n%s", d)
		}
		if got := metricValue(t, s1.m.Ready); got != 0 {
			t.Errorf("ready gauge = %v with sessions down, want 0", got)
		}

		// Both sessions come up; the hub's went down once before.
		sp.setSummary([]routing.NeighborSummary{
			{Neighbor: hubAddr, AS: 65000, State: routing.StateEstablished, Uptime: 90 * time.Second,
				PrefixesReceived: 3, PrefixesAccepted: 2, PrefixesRejected: 1, LastDownReason: "hold timer expired"},
			{Neighbor: other, AS: 65000, State: routing.StateEstablished, Uptime: time.Second},
		}, nil)
		time.Sleep(metricsInterval)
		synctest.Wait()
		if st, err := s1.ctl.Status(ctx); err != nil || !st.Ready || st.State != "running" {
			t.Errorf("status with sessions established: %+v, %v; want ready", st, err)
		}
		sum, err = s1.ctl.BGP(ctx)
		if err != nil || len(sum.Neighbors) != 2 {
			t.Fatalf("show bgp summary: %+v, %v", sum, err)
		}
		if n := sum.Neighbors[0]; n.State != "Established" || !n.Since.Equal(time.Now().Add(-90*time.Second)) ||
			n.Received != 3 || n.Accepted != 2 || n.Rejected != 1 || n.LastDown != "hold timer expired" {
			t.Errorf("hub neighbor %+v; want Established for 90 s, 3/2/1 prefixes, last down hold timer expired", n)
		}
		wantEv = []api.Event{
			{Kind: api.EventBGPSession, Level: "info", PeerTunnel: hubAddr, State: "Established", Reason: "was Active"},
			{Kind: api.EventBGPSession, Level: "info", PeerTunnel: other, State: "Established", Reason: "was OpenSent"},
		}
		if d := cmp.Diff(wantEv, bgpSessionEvents(drain(sub)), cmpopts.EquateComparable(netip.Addr{}, netip.Prefix{})); d != "" {
			t.Errorf("session events when established (-want +got):\n%s", d)
		}
		wantMetrics := `
# HELP dmvpnd_bgp_neighbor_last_down_info Always 1: why a BGP neighbor's session last went down (only neighbors whose session went down).
# TYPE dmvpnd_bgp_neighbor_last_down_info gauge
dmvpnd_bgp_neighbor_last_down_info{neighbor="10.0.0.1",reason="hold timer expired"} 1
# HELP dmvpnd_bgp_neighbor_prefixes_rejected Prefixes a BGP neighbor sent that the import policy rejects (only neighbors with rejections).
# TYPE dmvpnd_bgp_neighbor_prefixes_rejected gauge
dmvpnd_bgp_neighbor_prefixes_rejected{neighbor="10.0.0.1"} 1
# HELP dmvpnd_bgp_prefixes BGP prefixes over all sessions: received, accepted and rejected by the import policy.
# TYPE dmvpnd_bgp_prefixes gauge
dmvpnd_bgp_prefixes{state="accepted"} 2
dmvpnd_bgp_prefixes{state="received"} 3
dmvpnd_bgp_prefixes{state="rejected"} 1
`
		if err := testutil.GatherAndCompare(s1.m.Registry(), strings.NewReader(wantMetrics),
			"dmvpnd_bgp_neighbor_last_down_info", "dmvpnd_bgp_neighbor_prefixes_rejected", "dmvpnd_bgp_prefixes"); err != nil {
			t.Error(err)
		}
		if got := metricValue(t, s1.m.BGPSessions.WithLabelValues("established")); got != 2 {
			t.Errorf("bgp sessions established = %v, want 2", got)
		}
		if got := metricValue(t, s1.m.Ready); got != 1 {
			t.Errorf("ready gauge = %v with sessions established, want 1", got)
		}

		// The other neighbor is removed from the configuration.
		sp.setSummary([]routing.NeighborSummary{{Neighbor: hubAddr, AS: 65000, State: routing.StateEstablished}}, nil)
		time.Sleep(metricsInterval)
		synctest.Wait()
		wantEv = []api.Event{{Kind: api.EventBGPSession, Level: "warn", PeerTunnel: other, State: "Removed", Reason: "was Established"}}
		if d := cmp.Diff(wantEv, bgpSessionEvents(drain(sub)), cmpopts.EquateComparable(netip.Addr{}, netip.Prefix{})); d != "" {
			t.Errorf("session events when a neighbor goes (-want +got):\n%s", d)
		}

		// No session at all: a spoke without BGP session is not ready.
		sp.setSummary(nil, nil)
		if st, err := s1.ctl.Status(ctx); err != nil || st.Ready || !strings.Contains(st.Reason, "no BGP session") {
			t.Errorf("status without session: %+v, %v; want not ready, no BGP session", st, err)
		}

		// The speaker cannot answer: the views say why, and the session
		// state last seen is kept (no event claims the sessions went).
		sp.setSummary(nil, errInjected)
		if st, err := s1.ctl.Status(ctx); err != nil || st.Ready || !strings.Contains(st.Reason, "bgp: "+errInjected.Error()) {
			t.Errorf("status when the summary fails: %+v, %v; want not ready with the error", st, err)
		}
		if _, err := s1.ctl.BGP(ctx); !errors.Is(err, errInjected) {
			t.Errorf("show bgp summary when the summary fails: %v; want the error", err)
		}
		drain(sub)
		time.Sleep(metricsInterval)
		synctest.Wait()
		if evs := bgpSessionEvents(drain(sub)); len(evs) != 0 {
			t.Errorf("session events while the summary fails: %+v; want none", evs)
		}
		if got := metricValue(t, s1.m.Ready); got != 0 {
			t.Errorf("ready gauge = %v while the summary fails, want 0", got)
		}

		// A node without BGP says so.
		if _, err := hub.ctl.BGP(ctx); !errors.Is(err, api.ErrNotEnabled) {
			t.Errorf("hub show bgp summary: %v; want ErrNotEnabled", err)
		}
	})
}

// TestReadinessOfAHubWithDynamicSpokes: a hub is ready with its configured
// BGP sessions established, whatever state the sessions of its dynamic
// range (spokes that come and go) are in; a configured one that is down
// holds readiness.
func TestReadinessOfAHubWithDynamicSpokes(t *testing.T) {
	cfg := parseConfig(t, hubYAML("198.51.100.1", "10.0.0.1/24")+`bgp:
  enabled: true
  asn: 65000
  dynamic: {prefix: 10.0.0.128/25}
  neighbors: [{address: 10.0.0.5, asn: 65001}]
`)
	spoke, core := netip.MustParseAddr("10.0.0.130"), netip.MustParseAddr("10.0.0.5")
	for _, tc := range []struct {
		name string
		sum  []routing.NeighborSummary
		want []string
	}{
		{"no session yet", nil, []string{}},
		{"dynamic spoke idle", []routing.NeighborSummary{{Neighbor: spoke, State: routing.StateIdle},
			{Neighbor: core, State: routing.StateEstablished}}, []string{}},
		{"configured neighbor down", []routing.NeighborSummary{{Neighbor: spoke, State: routing.StateEstablished},
			{Neighbor: core, State: routing.StateConnect}}, []string{"bgp neighbor 10.0.0.5 connect"}},
	} {
		got := readinessReasons(cfg, []engine.NHSStatus{}, true, tc.sum, nil)
		if d := cmp.Diff(tc.want, got); d != "" {
			t.Errorf("%s: reasons (-want +got):\n%s", tc.name, d)
		}
	}
}

// TestReadinessWithOneHubOfTwo: a spoke with two hubs is ready while it is
// registered with one NHS and one BGP session is established, whichever;
// with no session established it is not, and every configured neighbor is
// named.
func TestReadinessWithOneHubOfTwo(t *testing.T) {
	cfg := parseConfig(t, spokeYAML("198.51.100.2", "10.0.0.2/24", "198.51.100.1", "10.0.0.1", "198.51.100.3", "10.0.0.3")+
		"bgp: {enabled: true, asn: 65000, neighbors: [{address: 10.0.0.1}, {address: 10.0.0.3}]}\n")
	h1, h3 := netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.0.0.3")
	nbma1, nbma3 := netip.MustParseAddr("198.51.100.1"), netip.MustParseAddr("198.51.100.3")
	oneUp := []engine.NHSStatus{{NBMA: nbma1, State: engine.NHSDown}, {NBMA: nbma3, State: engine.NHSUp}}
	noneUp := []engine.NHSStatus{{NBMA: nbma1, State: engine.NHSDown}, {NBMA: nbma3, State: engine.NHSProbing}}
	for _, tc := range []struct {
		name string
		nhss []engine.NHSStatus
		sum  []routing.NeighborSummary
		want []string
	}{
		{"one hub down", oneUp, []routing.NeighborSummary{{Neighbor: h1, State: routing.StateActive},
			{Neighbor: h3, State: routing.StateEstablished}}, []string{}},
		{"the other hub down", oneUp, []routing.NeighborSummary{{Neighbor: h1, State: routing.StateEstablished},
			{Neighbor: h3, State: routing.StateIdle}}, []string{}},
		{"no session", oneUp, []routing.NeighborSummary{{Neighbor: h1, State: routing.StateActive},
			{Neighbor: h3, State: routing.StateIdle}}, []string{"bgp neighbor 10.0.0.1 active", "bgp neighbor 10.0.0.3 idle"}},
		{"no NHS", noneUp, []routing.NeighborSummary{{Neighbor: h1, State: routing.StateEstablished},
			{Neighbor: h3, State: routing.StateIdle}}, []string{"not registered with any NHS"}},
	} {
		got := readinessReasons(cfg, tc.nhss, true, tc.sum, nil)
		if d := cmp.Diff(tc.want, got); d != "" {
			t.Errorf("%s: reasons (-want +got):\n%s", tc.name, d)
		}
	}
}
