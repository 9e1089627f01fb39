package routing

import (
	"net/netip"
	"time"

	api "github.com/osrg/gobgp/v3/api"
)

// NeighborState is a BGP session state (RFC 4271 §8.2.2).
type NeighborState string

// Session states.
const (
	StateUnknown     NeighborState = "unknown"
	StateIdle        NeighborState = "idle"
	StateConnect     NeighborState = "connect"
	StateActive      NeighborState = "active"
	StateOpenSent    NeighborState = "opensent"
	StateOpenConfirm NeighborState = "openconfirm"
	StateEstablished NeighborState = "established"
)

func stateFromAPI(s api.PeerState_SessionState) NeighborState {
	switch s {
	case api.PeerState_IDLE:
		return StateIdle
	case api.PeerState_CONNECT:
		return StateConnect
	case api.PeerState_ACTIVE:
		return StateActive
	case api.PeerState_OPENSENT:
		return StateOpenSent
	case api.PeerState_OPENCONFIRM:
		return StateOpenConfirm
	case api.PeerState_ESTABLISHED:
		return StateEstablished
	}
	return StateUnknown
}

// NeighborEvent reports a neighbor's session state change, for dmvpnctl and
// metrics.
type NeighborEvent struct {
	Time     time.Time
	Neighbor netip.Addr
	AS       uint32
	RouterID netip.Addr // zero until the OPEN was received
	State    NeighborState
}

// neighborEvent converts a GoBGP peer event; ok is false for events that are
// not state changes of a known neighbor.
func neighborEvent(now time.Time, ev *api.WatchEventResponse_PeerEvent) (NeighborEvent, bool) {
	if ev == nil || ev.Peer == nil || ev.Peer.State == nil {
		return NeighborEvent{}, false
	}
	if ev.Type != api.WatchEventResponse_PeerEvent_STATE && ev.Type != api.WatchEventResponse_PeerEvent_INIT {
		return NeighborEvent{}, false
	}
	st := ev.Peer.State
	n, err := netip.ParseAddr(st.NeighborAddress)
	if err != nil {
		return NeighborEvent{}, false
	}
	out := NeighborEvent{Time: now, Neighbor: n.Unmap(), AS: st.PeerAsn, State: stateFromAPI(st.SessionState)}
	if id, err := netip.ParseAddr(st.RouterId); err == nil && !id.IsUnspecified() {
		out.RouterID = id
	}
	return out, true
}
