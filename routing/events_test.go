package routing

import (
	"net/netip"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	api "github.com/osrg/gobgp/v3/api"
	"google.golang.org/protobuf/types/known/timestamppb"
)

var cmpAddr = cmp.Comparer(func(a, b netip.Addr) bool { return a == b })

func TestNeighborEvent(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	ev := func(typ api.WatchEventResponse_PeerEvent_Type, addr, id string, st api.PeerState_SessionState) *api.WatchEventResponse_PeerEvent {
		return &api.WatchEventResponse_PeerEvent{Type: typ, Peer: &api.Peer{State: &api.PeerState{
			NeighborAddress: addr, PeerAsn: 65000, RouterId: id, SessionState: st,
		}}}
	}
	tests := []struct {
		name string
		in   *api.WatchEventResponse_PeerEvent
		want NeighborEvent
		ok   bool
	}{
		{"established", ev(api.WatchEventResponse_PeerEvent_STATE, "10.0.0.12", "10.0.0.12", api.PeerState_ESTABLISHED),
			NeighborEvent{Time: now, Neighbor: netip.MustParseAddr("10.0.0.12"), AS: 65000, RouterID: netip.MustParseAddr("10.0.0.12"), State: StateEstablished}, true},
		{"idle without router id", ev(api.WatchEventResponse_PeerEvent_STATE, "10.0.0.12", "<nil>", api.PeerState_IDLE),
			NeighborEvent{Time: now, Neighbor: netip.MustParseAddr("10.0.0.12"), AS: 65000, State: StateIdle}, true},
		{"unspecified router id", ev(api.WatchEventResponse_PeerEvent_INIT, "10.0.0.12", "0.0.0.0", api.PeerState_ACTIVE),
			NeighborEvent{Time: now, Neighbor: netip.MustParseAddr("10.0.0.12"), AS: 65000, State: StateActive}, true},
		{"end of init", ev(api.WatchEventResponse_PeerEvent_END_OF_INIT, "10.0.0.12", "", api.PeerState_IDLE), NeighborEvent{}, false},
		{"bad address", ev(api.WatchEventResponse_PeerEvent_STATE, "nope", "", api.PeerState_IDLE), NeighborEvent{}, false},
		{"nil", nil, NeighborEvent{}, false},
		{"no state", &api.WatchEventResponse_PeerEvent{Type: api.WatchEventResponse_PeerEvent_STATE, Peer: &api.Peer{}}, NeighborEvent{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := neighborEvent(now, tt.in)
			if ok != tt.ok {
				t.Fatalf("ok = %v, want %v", ok, tt.ok)
			}
			if diff := cmp.Diff(tt.want, got, cmpAddr); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
	for s, want := range map[api.PeerState_SessionState]NeighborState{
		api.PeerState_CONNECT: StateConnect, api.PeerState_OPENSENT: StateOpenSent,
		api.PeerState_OPENCONFIRM: StateOpenConfirm, api.PeerState_UNKNOWN: StateUnknown,
	} {
		if got := stateFromAPI(s); got != want {
			t.Errorf("stateFromAPI(%v) = %v, want %v", s, got, want)
		}
	}
}

func TestNeighborSummary(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	p := &api.Peer{
		Conf:   &api.PeerConf{NeighborAddress: "10.0.0.12", PeerAsn: 65000, PeerGroup: "dmvpn-spokes"},
		State:  &api.PeerState{NeighborAddress: "10.0.0.12", PeerAsn: 65012, RouterId: "10.0.0.12", SessionState: api.PeerState_ESTABLISHED},
		Timers: &api.Timers{State: &api.TimersState{Uptime: timestamppb.New(now.Add(-90*time.Second - 300*time.Millisecond))}},
		AfiSafis: []*api.AfiSafi{
			{State: &api.AfiSafiState{Received: 3, Accepted: 2}},
			{State: &api.AfiSafiState{Received: 1, Accepted: 1}},
		},
	}
	got, err := neighborSummary(now, p)
	if err != nil {
		t.Fatal(err)
	}
	want := NeighborSummary{
		Neighbor: netip.MustParseAddr("10.0.0.12"), AS: 65012, RouterID: netip.MustParseAddr("10.0.0.12"),
		State: StateEstablished, PeerGroup: "dmvpn-spokes", Uptime: 90 * time.Second,
		PrefixesReceived: 4, PrefixesAccepted: 3,
	}
	if diff := cmp.Diff(want, got, cmpAddr); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	// Not established: no uptime even though GoBGP keeps the old timestamp;
	// the AS falls back to the configured one.
	p.State.SessionState, p.State.PeerAsn = api.PeerState_ACTIVE, 0
	got, err = neighborSummary(now, p)
	if err != nil {
		t.Fatal(err)
	}
	if got.Uptime != 0 || got.State != StateActive || got.AS != 65000 {
		t.Errorf("inactive neighbor summary = %+v", got)
	}
	if _, err := neighborSummary(now, &api.Peer{}); err == nil {
		t.Error("peer without address accepted")
	}
}
