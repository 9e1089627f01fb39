package controller

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/dmvpnd/dmvpnd/controller/api"
	"github.com/dmvpnd/dmvpnd/controller/metrics"
	"github.com/dmvpnd/dmvpnd/ipsec"
)

// TestSALossEvents: an established SA that goes away is reported (sa-down
// at warning, an IKE failure by reason) whether the IPsec side reports it
// down or, as an initiator re-initiating at once, connecting; a first
// initiation and its retries are not losses of an established SA.
func TestSALossEvents(t *testing.T) {
	peer := "198.51.100.3"
	up := ipsec.Event{Peer: peer, Status: ipsec.StatusUp}
	for _, tc := range []struct {
		name     string
		evs      []ipsec.Event
		want     []brief
		failures map[string]float64 // dmvpnd_ipsec_ike_failures_total by reason
	}{
		{
			name: "deleted and re-initiated",
			evs:  []ipsec.Event{{Peer: peer, Status: ipsec.StatusConnecting}, up, {Peer: peer, Status: ipsec.StatusConnecting, Reason: ipsec.ReasonIKEDeleted}, up},
			want: []brief{
				{Kind: api.EventSAUp, Level: "info", NBMA: peer},
				{Kind: api.EventSADown, Level: "warn", NBMA: peer, Reason: ipsec.ReasonIKEDeleted},
				{Kind: api.EventSAUp, Level: "info", NBMA: peer},
			},
			failures: map[string]float64{"ike_sa_deleted": 1},
		},
		{
			name: "deleted and down",
			evs:  []ipsec.Event{up, {Peer: peer, Status: ipsec.StatusDown, Reason: ipsec.ReasonChildDeleted}},
			want: []brief{
				{Kind: api.EventSAUp, Level: "info", NBMA: peer},
				{Kind: api.EventSADown, Level: "warn", NBMA: peer, Reason: ipsec.ReasonChildDeleted},
			},
			failures: map[string]float64{"child_sa_deleted": 1},
		},
		{
			name: "initiation retried",
			evs: []ipsec.Event{{Peer: peer, Status: ipsec.StatusConnecting}, {Peer: peer, Status: ipsec.StatusDown, Reason: ipsec.ReasonTimeout},
				{Peer: peer, Status: ipsec.StatusConnecting, Reason: ipsec.ReasonTimeout}, up},
			want: []brief{
				{Kind: api.EventSADown, Level: "warn", NBMA: peer, Reason: ipsec.ReasonTimeout},
				{Kind: api.EventSAUp, Level: "info", NBMA: peer},
			},
			failures: map[string]float64{"timeout": 1},
		},
		{
			name:     "no longer wanted",
			evs:      []ipsec.Event{up, {Peer: peer, Status: ipsec.StatusDown, Reason: ipsec.ReasonPeerRemoved}},
			want:     []brief{{Kind: api.EventSAUp, Level: "info", NBMA: peer}, {Kind: api.EventSADown, Level: "info", NBMA: peer, Reason: ipsec.ReasonPeerRemoved}},
			failures: map[string]float64{},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := metrics.New("test")
			c, _, _ := engineOnly(t, spokeYAML("198.51.100.2", "10.0.0.2/24", "198.51.100.1", "10.0.0.1"), m)
			sub := c.Subscribe()
			defer sub.Close()
			for _, ev := range tc.evs {
				c.onIPsecEvent(ev)
			}
			if diff := cmp.Diff(tc.want, briefs(drain(sub))); diff != "" {
				t.Errorf("events (-want +got):\n%s", diff)
			}
			got := map[string]float64{}
			for _, r := range metrics.IKEFailureReasons {
				if v := metricValue(t, m.IKEFailures.WithLabelValues(r)); v != 0 {
					got[r] = v
				}
			}
			if diff := cmp.Diff(tc.failures, got); diff != "" {
				t.Errorf("IKE failures (-want +got):\n%s", diff)
			}
		})
	}
}
