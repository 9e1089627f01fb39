package routing

import (
	"fmt"
	"net/netip"

	api "github.com/osrg/gobgp/v3/api"
)

// Names of the import policy's objects inside GoBGP.
const (
	importPolicyName = "dmvpn-import"
	setDefault       = "dmvpn-default"
	setTunnel        = "dmvpn-tunnel"
	setProtected     = "dmvpn-protected"
	setOwn           = "dmvpn-own"
	setHubs          = "dmvpn-hubs"
)

// acceptSetName names the prefix set of Import.Accept[i]. Each range gets its
// own set and statement: GoBGP matches a path against the longest key of a
// set only, so ranges sharing one set would shadow each other.
func acceptSetName(i int) string { return fmt.Sprintf("dmvpn-accept-%d", i) }

// importPolicy returns the defined sets and the import policy (default
// action REJECT) applied to every path entering the global RIB:
//
//  1. locally originated paths are accepted;
//  2. the default route is rejected, unless Import.AcceptDefault and it
//     comes from a hub (a spoke's neighbors; a hub's static peers);
//  3. anything overlapping the tunnel prefix or a protected prefix (NBMA
//     addresses, the underlay route), and the node's own LAN prefixes and
//     their more-specifics (not the summaries), are rejected;
//  4. a next hop that is the tunnel's network or broadcast address is
//     rejected;
//  5. a path matching an Accept range with its next hop inside the tunnel
//     is accepted: on a spoke from any neighbor (its hubs), on a hub from
//     its static peers (other hubs); a spoke's path only with the spoke's
//     own address as next hop (spokeImport, per spoke), so that no spoke
//     can point a route at another node;
//  6. everything else is rejected.
func importPolicy(c Config) ([]*api.DefinedSet, *api.Policy) {
	net, bcast := c.Tunnel.Addr(), broadcast(c.Tunnel)
	sets := []*api.DefinedSet{
		prefixSet(setDefault, []setEntry{{Key: netip.PrefixFrom(netip.IPv4Unspecified(), 0), Min: 0, Max: 0}}),
		prefixSet(setTunnel, overlapEntries([]netip.Prefix{c.Tunnel})),
		prefixSet(setProtected, overlapEntries(c.Protected)),
		prefixSet(setOwn, insideEntries(c.Prefixes)),
	}
	var hubs []string
	for _, n := range append(append([]Neighbor(nil), c.Spoke.Hubs...), c.Hub.Peers...) {
		hubs = append(hubs, netip.PrefixFrom(n.Address, 32).String())
	}
	if len(hubs) > 0 {
		sets = append(sets, &api.DefinedSet{DefinedType: api.DefinedType_NEIGHBOR, Name: setHubs, List: hubs})
	}
	inTunnel := []string{c.Tunnel.String()}
	reject := &api.Actions{RouteAction: api.RouteAction_REJECT}
	accept := func() *api.Actions { return &api.Actions{RouteAction: api.RouteAction_ACCEPT} }
	match := func(name string) *api.MatchSet { return &api.MatchSet{Name: name, Type: api.MatchSet_ANY} }
	st := []*api.Statement{{
		Name:       "local",
		Conditions: &api.Conditions{RouteType: api.Conditions_ROUTE_TYPE_LOCAL},
		Actions:    accept(),
	}}
	if c.Import.AcceptDefault && len(hubs) > 0 {
		st = append(st, &api.Statement{
			Name:       "accept-default-from-hubs",
			Conditions: &api.Conditions{PrefixSet: match(setDefault), NeighborSet: match(setHubs), NextHopInList: inTunnel},
			Actions:    accept(),
		})
	}
	st = append(st,
		&api.Statement{Name: "reject-" + RejectDefault, Conditions: &api.Conditions{PrefixSet: match(setDefault)}, Actions: reject},
		&api.Statement{Name: "reject-" + RejectTunnel, Conditions: &api.Conditions{PrefixSet: match(setTunnel)}, Actions: reject},
	)
	if len(c.Protected) > 0 {
		st = append(st, &api.Statement{Name: "reject-" + RejectProtected, Conditions: &api.Conditions{PrefixSet: match(setProtected)}, Actions: reject})
	}
	if len(c.Prefixes) > 0 {
		st = append(st, &api.Statement{Name: "reject-" + RejectOwnPrefix, Conditions: &api.Conditions{PrefixSet: match(setOwn)}, Actions: reject})
	}
	st = append(st, &api.Statement{
		Name:       "reject-" + RejectNextHop,
		Conditions: &api.Conditions{NextHopInList: []string{netip.PrefixFrom(net, 32).String(), netip.PrefixFrom(bcast, 32).String()}},
		Actions:    reject,
	})
	for i, r := range c.Import.Accept {
		ge, le := r.Bounds()
		sets = append(sets, prefixSet(acceptSetName(i), []setEntry{{Key: r.Prefix, Min: ge, Max: le}}))
		if c.Role == RoleHub && len(hubs) > 0 {
			// Other hubs pass on reflected spoke routes: keep their next hop.
			st = append(st, &api.Statement{
				Name:       fmt.Sprintf("accept-%d-from-hubs", i),
				Conditions: &api.Conditions{PrefixSet: match(acceptSetName(i)), NeighborSet: match(setHubs), NextHopInList: inTunnel},
				Actions:    accept(),
			})
		}
		if c.Role == RoleHub {
			// Spokes: one statement per spoke and range, added while the
			// spoke is a neighbor (spokeImport).
			continue
		}
		st = append(st, &api.Statement{
			Name:       fmt.Sprintf("accept-%d", i),
			Conditions: &api.Conditions{PrefixSet: match(acceptSetName(i)), NextHopInList: inTunnel},
			Actions:    accept(),
		})
	}
	return sets, &api.Policy{Name: importPolicyName, Statements: st}
}

// spokeSetName names the neighbor set of one spoke.
func spokeSetName(a netip.Addr) string { return "dmvpn-spoke-" + a.String() }

// spokeImport returns the neighbor set and the statements a hub appends to
// its import policy while spoke a is a (dynamic) neighbor: a path from a
// matching an Import.Accept range is accepted only with a itself as next
// hop. GoBGP has no "next hop is the neighbor's address" condition and
// policies per neighbor only for route-server clients (pkg/server/server.go
// toPolicyInfo), so the condition is spelled out per spoke; everything
// else from a spoke falls through to the policy's default, REJECT.
func spokeImport(c Config, a netip.Addr) (*api.DefinedSet, *api.Policy) {
	set := &api.DefinedSet{DefinedType: api.DefinedType_NEIGHBOR, Name: spokeSetName(a), List: []string{netip.PrefixFrom(a, 32).String()}}
	pol := &api.Policy{Name: importPolicyName}
	for i := range c.Import.Accept {
		pol.Statements = append(pol.Statements, &api.Statement{
			Name: fmt.Sprintf("accept-%d-from-%s", i, a),
			Conditions: &api.Conditions{
				PrefixSet:     &api.MatchSet{Name: acceptSetName(i), Type: api.MatchSet_ANY},
				NeighborSet:   &api.MatchSet{Name: set.Name, Type: api.MatchSet_ANY},
				NextHopInList: []string{netip.PrefixFrom(a, 32).String()},
			},
			Actions: &api.Actions{RouteAction: api.RouteAction_ACCEPT},
		})
	}
	return set, pol
}

// protectedSet is the defined set SetProtected replaces at runtime.
func protectedSet(ps []netip.Prefix) *api.DefinedSet {
	return prefixSet(setProtected, overlapEntries(ps))
}

func prefixSet(name string, entries []setEntry) *api.DefinedSet {
	ds := &api.DefinedSet{DefinedType: api.DefinedType_PREFIX, Name: name}
	for _, e := range entries {
		ds.Prefixes = append(ds.Prefixes, &api.Prefix{IpPrefix: e.Key.String(), MaskLengthMin: uint32(e.Min), MaskLengthMax: uint32(e.Max)})
	}
	return ds
}
