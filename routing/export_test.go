package routing

import (
	"context"
	"fmt"
	"net/netip"
	"slices"

	api "github.com/osrg/gobgp/v3/api"
)

// RIBEntry is one path of the global RIB ("dmvpnctl show bgp routes").
type RIBEntry struct {
	Prefix  netip.Prefix
	NextHop netip.Addr
	// From is the neighbor the path was learned from; zero for local paths.
	From netip.Addr
	Best bool
	// Stale: kept for a neighbor in graceful restart (RFC 4724).
	Stale bool
}

// RIB (tests only) returns the IPv4 unicast paths of the global RIB, sorted by prefix.
func (s *Speaker) RIB(ctx context.Context) ([]RIBEntry, error) {
	s.mu.Lock()
	srv := s.srv
	s.mu.Unlock()
	if srv == nil {
		return nil, ErrNotRunning
	}
	var out []RIBEntry
	var convErr error
	err := srv.ListPath(ctx, &api.ListPathRequest{TableType: api.TableType_GLOBAL, Family: ipv4Unicast()}, func(d *api.Destination) {
		for _, p := range d.Paths {
			u, err := pathUpdate(p)
			if err != nil {
				convErr = err
				continue
			}
			e := RIBEntry{Prefix: u.Prefix, NextHop: u.NextHop, Best: p.Best, Stale: p.Stale}
			if from, err := netip.ParseAddr(p.NeighborIp); err == nil && !from.IsUnspecified() {
				e.From = from.Unmap()
			}
			out = append(out, e)
		}
	})
	if err != nil {
		return nil, fmt.Errorf("routing: list rib: %w", err)
	}
	if convErr != nil {
		return nil, convErr
	}
	slices.SortStableFunc(out, func(a, b RIBEntry) int {
		if c := comparePrefix(a.Prefix, b.Prefix); c != 0 {
			return c
		}
		return a.From.Compare(b.From)
	})
	return out, nil
}
