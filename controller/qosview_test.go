package controller

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/dmvpnd/dmvpnd/controller/api"
)

// TestQoSView: show qos lists the hub's shapers with the peers' tunnel
// addresses and the kernel's counters, narrows to a peer by tunnel or
// NBMA address, refuses an address without a shaper; the metrics export
// the same counters for exactly the shaped peers' classes.
func TestQoSView(t *testing.T) {
	testPhase3(t, func(t *testing.T, r phase3Run) {
		ctx := context.Background()
		all, err := r.hub.ctl.QoS(ctx, netip.Addr{})
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, p := range all {
			got = append(got, p.Tunnel.String()+" "+p.NBMA.String()+" "+p.Group)
		}
		if want := []string{"10.0.0.2 198.51.100.2 branch-2m", "10.0.0.3 198.51.100.3 branch-10m"}; !cmp.Equal(want, got) {
			t.Errorf("hub show qos peers %v, want %v", got, want)
		}
		byTunnel, err := r.hub.ctl.QoS(ctx, netip.MustParseAddr("10.0.0.2"))
		if err != nil {
			t.Fatal(err)
		}
		byNBMA, err := r.hub.ctl.QoS(ctx, netip.MustParseAddr("198.51.100.2"))
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(byTunnel, byNBMA, cmpAddrs); diff != "" || len(byTunnel) != 1 {
			t.Errorf("by tunnel vs by NBMA (-tunnel +nbma):\n%s", diff)
		}
		voice := byTunnel[0].Classes[0]
		if voice.Name != "voice" || !voice.Priority || !cmp.Equal(voice.DSCP, []string{"ef"}) || voice.Packets != 200 || voice.Rate != 500_000 || voice.Ceil != 500_000 {
			t.Errorf("voice class %+v; want priority ef at 500 kbit/s with the 200 packets counted", voice)
		}
		if _, err := r.hub.ctl.QoS(ctx, netip.MustParseAddr("10.0.0.9")); !errors.Is(err, api.ErrNotFound) {
			t.Errorf("unknown peer: %v, want ErrNotFound", err)
		}

		// The metrics: one series per family and class of a shaped peer.
		mfs, err := r.hub.m.Registry().Gather()
		if err != nil {
			t.Fatal(err)
		}
		series := map[string]float64{}
		for _, mf := range mfs {
			if !strings.HasPrefix(mf.GetName(), "dmvpnd_qos_class_") {
				continue
			}
			for _, m := range mf.GetMetric() {
				key := mf.GetName()
				for _, l := range m.GetLabel() {
					key += " " + l.GetName() + "=" + l.GetValue()
				}
				series[key] = m.GetCounter().GetValue()
			}
		}
		if n := len(series); n != 3*4 { // s1: voice, video, default; s2: default
			t.Errorf("%d QoS series, want 12:\n%v", n, series)
		}
		if v := series["dmvpnd_qos_class_drops_total class=default group=branch-2m peer=10.0.0.2"]; v != 5_642 {
			t.Errorf("s1 default class drops %v, want 5642; series:\n%v", v, series)
		}

		// A node without QoS support has no such view.
		off := &Controller{}
		if _, err := off.QoS(ctx, netip.Addr{}); !errors.Is(err, api.ErrNotEnabled) {
			t.Errorf("without QoS: %v, want ErrNotEnabled", err)
		}
	})
}

// TestQoSPeerView: the kernel's default class takes the configured
// default class's name; classes carry their DSCP names and priority from
// the policy; an egress target finds the inline qos.egress policy.
func TestQoSPeerView(t *testing.T) {
	cfg := parseConfig(t, spokeYAML("198.51.100.2", "10.0.0.2/24", "198.51.100.1", "10.0.0.1")+`qos:
  egress:
    rate: 2mbit
    classes:
      - {name: voice, dscp: [ef, 44], priority: true, rate: 300kbit}
      - {name: bulk}
`)
	st := QoSTargetStats{Dst: netip.MustParseAddr("198.51.100.1"), Policy: qosEgressPolicy, Ifindex: 3,
		Shaper: QoSClassStats{Name: "shaper", Rate: 2_000_000, Ceil: 2_000_000, Bytes: 10},
		Classes: []QoSClassStats{{Name: "voice", Rate: 300_000, Ceil: 300_000, Packets: 4, Drops: 1},
			{Name: "default", Rate: 1_700_000, Ceil: 2_000_000, Backlog: 1500, Qlen: 1}}}
	got := qosPeerView(cfg, netip.MustParseAddr("10.0.0.1"), st)
	want := api.QoSPeer{Tunnel: netip.MustParseAddr("10.0.0.1"), NBMA: st.Dst, Group: "qos.egress", Ifindex: 3,
		Shaper: api.QoSClass{Name: "shaper", Rate: 2_000_000, Ceil: 2_000_000, Bytes: 10},
		Classes: []api.QoSClass{{Name: "voice", DSCP: []string{"ef", "voice-admit"}, Priority: true, Rate: 300_000, Ceil: 300_000, Packets: 4, Drops: 1},
			{Name: "bulk", Rate: 1_700_000, Ceil: 2_000_000, Backlog: 1500, Qlen: 1}}}
	if diff := cmp.Diff(want, got, cmpAddrs); diff != "" {
		t.Errorf("view (-want +got):\n%s", diff)
	}
	// A policy the configuration no longer has (a reload removed it while
	// its shaper is still installed) is shown with the kernel's names.
	st.Policy = "gone"
	if got := qosPeerView(cfg, netip.Addr{}, st); got.Classes[1].Name != "default" || got.Classes[0].DSCP != nil {
		t.Errorf("shaper of an unknown policy: %+v", got)
	}
}
