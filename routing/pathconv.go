package routing

import (
	"errors"
	"fmt"
	"net/netip"

	api "github.com/osrg/gobgp/v3/api"
)

// errNotIPv4Unicast marks paths of other families, which are ignored.
var errNotIPv4Unicast = errors.New("not ipv4-unicast")

// pathUpdate converts a best path from GoBGP's watch API.
func pathUpdate(p *api.Path) (PathUpdate, error) {
	if p == nil || p.Nlri == nil {
		return PathUpdate{}, errors.New("routing: path without NLRI")
	}
	if f := p.GetFamily(); f.GetAfi() != api.Family_AFI_IP || f.GetSafi() != api.Family_SAFI_UNICAST {
		return PathUpdate{}, errNotIPv4Unicast
	}
	var nlri api.IPAddressPrefix
	if err := p.Nlri.UnmarshalTo(&nlri); err != nil {
		return PathUpdate{}, fmt.Errorf("routing: path NLRI: %w", err)
	}
	a, err := netip.ParseAddr(nlri.Prefix)
	if err != nil {
		return PathUpdate{}, fmt.Errorf("routing: path NLRI: %w", err)
	}
	pfx, err := a.Prefix(int(nlri.PrefixLen))
	if err != nil || nlri.PrefixLen > 32 {
		return PathUpdate{}, fmt.Errorf("routing: path NLRI %s/%d: bad length", nlri.Prefix, nlri.PrefixLen)
	}
	u := PathUpdate{Prefix: pfx, Withdraw: p.IsWithdraw}
	if p.IsWithdraw {
		return u, nil
	}
	nh, err := nextHop(p)
	if err != nil {
		return PathUpdate{}, fmt.Errorf("routing: path %s: %w", pfx, err)
	}
	u.NextHop = nh
	if from, err := netip.ParseAddr(p.NeighborIp); err == nil && !from.IsUnspecified() {
		u.From = from.Unmap()
	}
	return u, nil
}

func nextHop(p *api.Path) (netip.Addr, error) {
	for _, a := range p.Pattrs {
		var nh api.NextHopAttribute
		if a.MessageIs(&nh) {
			if err := a.UnmarshalTo(&nh); err != nil {
				return netip.Addr{}, fmt.Errorf("next hop: %w", err)
			}
			return parseNextHop(nh.NextHop)
		}
		var mp api.MpReachNLRIAttribute
		if a.MessageIs(&mp) {
			if err := a.UnmarshalTo(&mp); err != nil {
				return netip.Addr{}, fmt.Errorf("next hop: %w", err)
			}
			if len(mp.NextHops) > 0 {
				return parseNextHop(mp.NextHops[0])
			}
		}
	}
	return netip.Addr{}, errors.New("no next hop attribute")
}

func parseNextHop(s string) (netip.Addr, error) {
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("next hop: %w", err)
	}
	return a.Unmap(), nil
}
