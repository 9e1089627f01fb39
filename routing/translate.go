package routing

import (
	"fmt"
	"net/netip"
	"time"

	api "github.com/osrg/gobgp/v3/api"
	"google.golang.org/protobuf/types/known/anypb"
)

// Names of the objects dmvpnd creates inside GoBGP.
const (
	exportPolicyName = "dmvpn-export"
	globalAssignment = "global"
)

// Plan is the sequence of GoBGP API requests that realises a Config, in the
// order they must be issued. BuildPlan is pure, so the translation is tested
// without a running server.
type Plan struct {
	Start            *api.StartBgpRequest
	DefinedSets      []*api.AddDefinedSetRequest
	Policies         []*api.AddPolicyRequest
	Assignments      []*api.AddPolicyAssignmentRequest
	PeerGroups       []*api.AddPeerGroupRequest
	DynamicNeighbors []*api.AddDynamicNeighborRequest
	Peers            []*api.AddPeerRequest
}

// addGlobalPolicy adds pol and assigns it to the global RIB in dir, with
// def for the routes it does not decide.
func (p *Plan) addGlobalPolicy(pol *api.Policy, dir api.PolicyDirection, def api.RouteAction) {
	p.Policies = append(p.Policies, &api.AddPolicyRequest{Policy: pol})
	p.Assignments = append(p.Assignments, &api.AddPolicyAssignmentRequest{
		Assignment: &api.PolicyAssignment{
			Name:          globalAssignment,
			Direction:     dir,
			Policies:      []*api.Policy{{Name: pol.Name}},
			DefaultAction: def,
		},
	})
}

// BuildPlan validates cfg and translates it into GoBGP API requests.
// Origination of prefixes is separate (OriginateRequest), because prefixes
// change at runtime without restarting the server.
func BuildPlan(cfg Config) (Plan, error) {
	if err := cfg.Validate(); err != nil {
		return Plan{}, err
	}
	c := cfg.withDefaults()
	p := Plan{Start: startRequest(c)}
	sets, imp := importPolicy(c)
	for _, ds := range sets {
		p.DefinedSets = append(p.DefinedSets, &api.AddDefinedSetRequest{DefinedSet: ds})
	}
	p.addGlobalPolicy(imp, api.PolicyDirection_IMPORT, api.RouteAction_REJECT)
	if pol, def := exportPolicy(c); pol != nil {
		p.addGlobalPolicy(pol, api.PolicyDirection_EXPORT, def)
	}
	switch c.Role {
	case RoleHub:
		p.PeerGroups = append(p.PeerGroups, &api.AddPeerGroupRequest{PeerGroup: spokePeerGroup(c)})
		p.DynamicNeighbors = append(p.DynamicNeighbors, &api.AddDynamicNeighborRequest{
			DynamicNeighbor: &api.DynamicNeighbor{
				Prefix:    c.Hub.DynamicRange.String(),
				PeerGroup: c.Hub.PeerGroup,
			},
		})
		for _, n := range c.Hub.Peers {
			p.Peers = append(p.Peers, &api.AddPeerRequest{Peer: staticPeer(c, n)})
		}
	case RoleSpoke:
		for _, n := range c.Spoke.Hubs {
			p.Peers = append(p.Peers, &api.AddPeerRequest{Peer: staticPeer(c, n)})
		}
	}
	return p, nil
}

func startRequest(c Config) *api.StartBgpRequest {
	g := &api.Global{
		Asn:        c.ASN,
		RouterId:   c.RouterID.String(),
		ListenPort: int32(c.ListenPort),
	}
	if c.ListenPort < 0 {
		g.ListenPort = -1
	}
	if c.ListenAddress.IsValid() {
		g.ListenAddresses = []string{c.ListenAddress.String()}
	}
	if gr := gracefulRestart(c); gr != nil {
		g.GracefulRestart = gr
	}
	return &api.StartBgpRequest{Global: g}
}

// exportPolicy returns the global export policy and its default action, or
// nil when none is needed.
//
//   - Spoke: export only locally originated routes. An iBGP spoke would not
//     re-advertise anyway; an eBGP spoke with two hubs would otherwise become
//     a transit between them.
//   - Hub, summary mode: export only locally originated routes (LAN prefixes
//     and summaries) with next-hop-self; spoke routes are never reflected.
//     This is one policy for iBGP and eBGP spokes alike, and switching modes
//     does not change the peer group.
//   - Hub, reflect mode with eBGP spokes: keep the originating spoke's next hop
//     (eBGP would otherwise rewrite it to the hub). With iBGP spokes route
//     reflection keeps the next hop by itself and no policy is needed.
func exportPolicy(c Config) (*api.Policy, api.RouteAction) {
	local := &api.Statement{
		Name:       "originated-only",
		Conditions: &api.Conditions{RouteType: api.Conditions_ROUTE_TYPE_LOCAL},
		Actions:    &api.Actions{RouteAction: api.RouteAction_ACCEPT},
	}
	switch {
	case c.Role == RoleSpoke:
		return &api.Policy{Name: exportPolicyName, Statements: []*api.Statement{local}}, api.RouteAction_REJECT
	case c.Hub.Mode == HubModeSummary:
		local.Actions.Nexthop = &api.NexthopAction{Self: true}
		return &api.Policy{Name: exportPolicyName, Statements: []*api.Statement{local}}, api.RouteAction_REJECT
	case c.Hub.EBGPSpokes:
		keep := &api.Statement{
			Name:       "keep-spoke-nexthop",
			Conditions: &api.Conditions{RouteType: api.Conditions_ROUTE_TYPE_EXTERNAL},
			Actions:    &api.Actions{Nexthop: &api.NexthopAction{Unchanged: true}},
		}
		return &api.Policy{Name: exportPolicyName, Statements: []*api.Statement{keep}}, api.RouteAction_ACCEPT
	}
	return nil, api.RouteAction_NONE
}

func timers(c Config) *api.Timers {
	return &api.Timers{Config: &api.TimersConfig{
		ConnectRetry:      seconds(c.ConnectRetry),
		HoldTime:          seconds(c.HoldTime),
		KeepaliveInterval: seconds(c.KeepaliveInterval),
	}}
}

func seconds(d time.Duration) uint64 {
	s := uint64(d / time.Second)
	if s == 0 && d > 0 {
		s = 1
	}
	return s
}

func ipv4Unicast() *api.Family {
	return &api.Family{Afi: api.Family_AFI_IP, Safi: api.Family_SAFI_UNICAST}
}

func afiSafis(c Config) []*api.AfiSafi {
	af := &api.AfiSafi{Config: &api.AfiSafiConfig{Family: ipv4Unicast(), Enabled: true}}
	if c.MaxPrefixes > 0 && c.MaxPrefixAction == MaxPrefixTeardown {
		// GoBGP counts what the neighbor sent (Adj-RIB-In) and closes the
		// session with Cease/maximum number of prefixes reached.
		af.PrefixLimits = &api.PrefixLimit{Family: ipv4Unicast(), MaxPrefixes: c.MaxPrefixes, ShutdownThresholdPct: 80}
	}
	if c.GracefulRestart.Enabled {
		af.MpGracefulRestart = &api.MpGracefulRestart{Config: &api.MpGracefulRestartConfig{Enabled: true}}
	}
	return []*api.AfiSafi{af}
}

// gracefulRestart is the per-session graceful restart configuration.
// LocalRestarting is set on every start: a dmvpnd that starts may be a
// restart (even after kill -9), so it advertises the Restart State bit and
// defers its own updates until the neighbors sent End-of-RIB (or
// DeferralTime passed), as "gobgpd -r" does; the neighbors keep our routes
// as stale meanwhile.
func gracefulRestart(c Config) *api.GracefulRestart {
	if !c.GracefulRestart.Enabled {
		return nil
	}
	return &api.GracefulRestart{
		Enabled:         true,
		RestartTime:     uint32(seconds(c.GracefulRestart.RestartTime)),
		StaleRoutesTime: uint32(seconds(c.GracefulRestart.StaleTime)),
		DeferralTime:    uint32(seconds(c.ConnectRetry)) + 10,
		LocalRestarting: true,
		// RFC 8538: a Cease other than a Hard Reset keeps the graceful
		// restart (Speaker.StopGraceful relies on it); GoBGP sends its
		// other Ceases (peer de-configured, maximum prefixes, shutdown)
		// as Hard Reset to a neighbor that advertised the N bit.
		NotificationEnabled: true,
	}
}

func spokePeerGroup(c Config) *api.PeerGroup {
	pg := &api.PeerGroup{
		Conf: &api.PeerGroupConf{
			PeerGroupName: c.Hub.PeerGroup,
			PeerAsn:       c.ASN,
		},
		Timers:          timers(c),
		Transport:       &api.Transport{PassiveMode: true},
		AfiSafis:        afiSafis(c),
		GracefulRestart: gracefulRestart(c),
	}
	pg.Conf.AuthPassword = c.Password
	if c.Hub.EBGPSpokes {
		// No fixed peer AS: GoBGP takes each spoke's AS from its OPEN.
		pg.Conf.PeerAsn = 0
	} else {
		pg.RouteReflector = &api.RouteReflector{
			RouteReflectorClient:    true,
			RouteReflectorClusterId: c.Hub.ClusterID.String(),
		}
	}
	return pg
}

func staticPeer(c Config, n Neighbor) *api.Peer {
	as := n.PeerAS
	if as == 0 {
		as = c.ASN
	}
	allow := uint32(n.AllowOwnAS)
	p := &api.Peer{
		Conf: &api.PeerConf{
			NeighborAddress: n.Address.String(),
			PeerAsn:         as,
			AllowOwnAsn:     allow,
			AuthPassword:    c.Password,
		},
		Timers:          timers(c),
		Transport:       &api.Transport{},
		AfiSafis:        afiSafis(c),
		GracefulRestart: gracefulRestart(c),
	}
	if n.Password != "" {
		p.Conf.AuthPassword = n.Password
	}
	if n.Port != 0 {
		p.Transport.RemotePort = uint32(n.Port)
	}
	if n.LocalAddress.IsValid() {
		p.Transport.LocalAddress = n.LocalAddress.String()
	}
	return p
}

// OriginateRequest returns the request that advertises a local prefix. The
// next hop is unspecified, so GoBGP sends the session's local address (the
// tunnel address) to each neighbor.
func OriginateRequest(p netip.Prefix) (*api.AddPathRequest, error) {
	path, err := localPath(p)
	if err != nil {
		return nil, err
	}
	return &api.AddPathRequest{TableType: api.TableType_GLOBAL, Path: path}, nil
}

// WithdrawRequest returns the request that withdraws a locally originated
// prefix. It names the path itself, not the UUID AddPath returned: GoBGP reads
// a delete request without UUID and path as "delete every local path".
func WithdrawRequest(p netip.Prefix) (*api.DeletePathRequest, error) {
	path, err := localPath(p)
	if err != nil {
		return nil, err
	}
	return &api.DeletePathRequest{TableType: api.TableType_GLOBAL, Family: ipv4Unicast(), Path: path}, nil
}

func localPath(p netip.Prefix) (*api.Path, error) {
	if err := checkPrefix(p); err != nil {
		return nil, fmt.Errorf("routing: originate: %w", err)
	}
	nlri, err := anypb.New(&api.IPAddressPrefix{Prefix: p.Addr().String(), PrefixLen: uint32(p.Bits())})
	if err != nil {
		return nil, fmt.Errorf("routing: originate %s: %w", p, err)
	}
	origin, err := anypb.New(&api.OriginAttribute{Origin: 0}) // IGP
	if err != nil {
		return nil, fmt.Errorf("routing: originate %s: %w", p, err)
	}
	nh, err := anypb.New(&api.NextHopAttribute{NextHop: "0.0.0.0"})
	if err != nil {
		return nil, fmt.Errorf("routing: originate %s: %w", p, err)
	}
	return &api.Path{Family: ipv4Unicast(), Nlri: nlri, Pattrs: []*anypb.Any{origin, nh}}, nil
}
