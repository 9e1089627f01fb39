package routing

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"time"

	api "github.com/osrg/gobgp/v3/api"
)

// NeighborSummary is one line of "dmvpnctl show bgp summary".
type NeighborSummary struct {
	Neighbor  netip.Addr
	AS        uint32
	RouterID  netip.Addr
	State     NeighborState
	PeerGroup string
	// Uptime is the time since the session was established (0 if it is not).
	Uptime           time.Duration
	PrefixesReceived uint64
	PrefixesAccepted uint64
}

// Summary returns the state of all neighbors, dynamic ones included, sorted
// by address.
func (s *Speaker) Summary(ctx context.Context) ([]NeighborSummary, error) {
	s.mu.Lock()
	srv := s.srv
	s.mu.Unlock()
	if srv == nil {
		return nil, ErrNotRunning
	}
	now := s.clock.Now()
	var out []NeighborSummary
	var convErr error
	err := srv.ListPeer(ctx, &api.ListPeerRequest{}, func(p *api.Peer) {
		ns, err := neighborSummary(now, p)
		if err != nil {
			convErr = err
			return
		}
		out = append(out, ns)
	})
	if err != nil {
		return nil, fmt.Errorf("routing: list neighbors: %w", err)
	}
	if convErr != nil {
		return nil, convErr
	}
	slices.SortFunc(out, func(a, b NeighborSummary) int { return a.Neighbor.Compare(b.Neighbor) })
	return out, nil
}

func neighborSummary(now time.Time, p *api.Peer) (NeighborSummary, error) {
	addr := p.GetState().GetNeighborAddress()
	if addr == "" {
		addr = p.GetConf().GetNeighborAddress()
	}
	a, err := netip.ParseAddr(addr)
	if err != nil {
		return NeighborSummary{}, fmt.Errorf("routing: neighbor address: %w", err)
	}
	ns := NeighborSummary{
		Neighbor:  a.Unmap(),
		AS:        p.GetState().GetPeerAsn(),
		State:     stateFromAPI(p.GetState().GetSessionState()),
		PeerGroup: p.GetConf().GetPeerGroup(),
	}
	if ns.AS == 0 {
		ns.AS = p.GetConf().GetPeerAsn()
	}
	if id, err := netip.ParseAddr(p.GetState().GetRouterId()); err == nil && !id.IsUnspecified() {
		ns.RouterID = id
	}
	if up := p.GetTimers().GetState().GetUptime(); ns.State == StateEstablished && up != nil {
		ns.Uptime = max(now.Sub(up.AsTime()), 0).Truncate(time.Second)
	}
	for _, af := range p.GetAfiSafis() {
		ns.PrefixesReceived += af.GetState().GetReceived()
		ns.PrefixesAccepted += af.GetState().GetAccepted()
	}
	return ns, nil
}
