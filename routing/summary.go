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
	Uptime time.Duration
	// PrefixesReceived counts what the neighbor announced (Adj-RIB-In);
	// PrefixesRejected those of them the import policy refuses;
	// PrefixesAccepted the rest.
	PrefixesReceived uint64
	PrefixesAccepted uint64
	PrefixesRejected uint64
	// RejectedReasons splits PrefixesRejected by reason (Reject*
	// constants), in the import policy's order.
	RejectedReasons map[string]uint64
	// LastDownReason is GoBGP's reason for the last teardown of the session
	// ("notification-received code cease...", "hold-timer-expired", ...);
	// "" if it never went down.
	LastDownReason string
	// MaxPrefixTeardowns counts sessions closed for exceeding MaxPrefixes.
	MaxPrefixTeardowns uint64
}

// Stats are the speaker's counters beyond the per-neighbor summary.
type Stats struct {
	// FIBRejected counts best paths the FIB refused to install, by reason
	// (Reject* constants): what got past the import policy.
	FIBRejected map[string]uint64
	// NeighborsRefused counts dynamic neighbors refused, by reason
	// (Refused* constants).
	NeighborsRefused map[string]uint64
	// EventsDropped counts neighbor events lost because Events was full;
	// BadPaths best paths that could not be converted.
	EventsDropped uint64
	BadPaths      uint64
	// MaxPrefixTeardowns counts sessions closed for exceeding MaxPrefixes,
	// over all neighbors (a dynamic neighbor torn down disappears from
	// Summary, its count stays here).
	MaxPrefixTeardowns uint64
}

// Stats returns the counters. It does not call into GoBGP.
func (s *Speaker) Stats() Stats {
	st := Stats{NeighborsRefused: s.peers.refusedCounts(), EventsDropped: s.dropped.Load(), BadPaths: s.badPath.Load(),
		MaxPrefixTeardowns: s.peers.maxPrefixTotal()}
	if s.fib != nil {
		st.FIBRejected = s.fib.Rejected()
	}
	return st
}

// Summary returns the state of all neighbors, dynamic ones included, sorted
// by address. GoBGP's management calls ignore ctx; Summary does not: it
// returns ctx's error as soon as ctx ends (the GoBGP call finishes in the
// background).
func (s *Speaker) Summary(ctx context.Context) ([]NeighborSummary, error) {
	s.mu.Lock()
	srv := s.srv
	s.mu.Unlock()
	if srv == nil {
		return nil, ErrNotRunning
	}
	type result struct {
		out []NeighborSummary
		err error
	}
	done := make(chan result, 1)
	go func() {
		out, err := s.summary(ctx, srv)
		done <- result{out, err}
	}()
	select {
	case r := <-done:
		return r.out, r.err
	case <-ctx.Done():
		return nil, fmt.Errorf("routing: list neighbors: %w", ctx.Err())
	}
}

type bgpServer interface {
	ListPeer(context.Context, *api.ListPeerRequest, func(*api.Peer)) error
	ListPath(context.Context, *api.ListPathRequest, func(*api.Destination)) error
}

func (s *Speaker) summary(ctx context.Context, srv bgpServer) ([]NeighborSummary, error) {
	now := time.Now()
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
	for i := range out {
		n := &out[i]
		n.LastDownReason, n.MaxPrefixTeardowns = s.peers.neighbor(n.Neighbor)
		if n.State != StateEstablished || n.PrefixesReceived == 0 {
			continue
		}
		reasons, err := s.filteredIn(ctx, srv, n.Neighbor)
		if err != nil {
			continue // the session went down meanwhile
		}
		var rejected uint64
		for _, c := range reasons {
			rejected += c
		}
		n.PrefixesRejected, n.RejectedReasons = rejected, reasons
		n.PrefixesAccepted = n.PrefixesReceived - min(rejected, n.PrefixesReceived)
	}
	slices.SortFunc(out, func(a, b NeighborSummary) int { return a.Neighbor.Compare(b.Neighbor) })
	return out, nil
}

// filteredIn counts the neighbor's Adj-RIB-In paths GoBGP's import policy
// rejects ("gobgp neighbor X adj-in" marks them filtered), by reason.
func (s *Speaker) filteredIn(ctx context.Context, srv bgpServer, a netip.Addr) (map[string]uint64, error) {
	s.mu.Lock()
	prot, g, accept := s.protected, s.guard(s.protected), s.cfg.Import.Accept
	if prot == nil {
		g = s.guard(s.cfg.Protected)
	}
	s.mu.Unlock()
	fromHub := s.peers.isStatic(a)
	out := map[string]uint64{}
	err := srv.ListPath(ctx, &api.ListPathRequest{
		TableType: api.TableType_ADJ_IN, Name: a.String(), Family: ipv4Unicast(), EnableFiltered: true,
	}, func(d *api.Destination) {
		for _, p := range d.Paths {
			if !p.Filtered {
				continue
			}
			why := RejectNotAccepted
			if u, err := pathUpdate(p); err == nil {
				why = g.importReason(u.Prefix.Masked(), u.NextHop.Unmap(), a, fromHub, accept)
			}
			out[why]++
		}
	})
	return out, err
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
