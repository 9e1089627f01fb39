package routing

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	api "github.com/osrg/gobgp/v3/api"
	"go.uber.org/zap"
	"google.golang.org/protobuf/proto"
)

// RestartError lists the Config fields a running speaker cannot change
// (Reconfigure); they take effect when it starts again.
type RestartError struct {
	Fields []string
}

func (e *RestartError) Error() string {
	return "routing: " + strings.Join(e.Fields, ", ") + " change only with a restart of the speaker"
}

// restartFields returns the fields that differ between a and b (both with
// defaults) and that Reconfigure cannot apply: the local AS, router id and
// listener are GoBGP's StartBgp, graceful restart is advertised in every
// OPEN and set at StartBgp, the API server is started with the server, and
// the role, tunnel, dynamic range, peer group, cluster id, hub mode and
// eBGP spokes shape the peer group, the export policy assignment and the
// guard built at start.
func restartFields(a, b Config) []string {
	var out []string
	for _, f := range []struct {
		name string
		same bool
	}{
		{"asn", a.ASN == b.ASN},
		{"router_id", a.RouterID == b.RouterID},
		{"listen_address", a.ListenAddress == b.ListenAddress},
		{"listen_port", a.ListenPort == b.ListenPort},
		{"api", a.API == b.API && a.APIWrite == b.APIWrite && a.APIGroup == b.APIGroup},
		{"role", a.Role == b.Role},
		{"tunnel", a.Tunnel == b.Tunnel},
		{"hub.dynamic_range", a.Hub.DynamicRange == b.Hub.DynamicRange},
		{"hub.peer_group", a.Hub.PeerGroup == b.Hub.PeerGroup},
		{"hub.ebgp_spokes", a.Hub.EBGPSpokes == b.Hub.EBGPSpokes},
		{"hub.cluster_id", a.Hub.ClusterID == b.Hub.ClusterID},
		{"hub.mode", a.Hub.Mode == b.Hub.Mode},
		{"graceful_restart", a.GracefulRestart == b.GracefulRestart},
		{"fib", a.FIB == b.FIB},
	} {
		if !f.same {
			out = append(out, f.name)
		}
	}
	return out
}

// Reconfigure applies next to the speaker without restarting it. What
// did not change is left alone: a neighbor whose settings are the same
// keeps its session.
//
//   - Static neighbors (Hub.Peers, Spoke.Hubs) are added and deleted; one
//     whose settings changed is updated in GoBGP (UpdatePeer): a new AS,
//     port, local address, AllowOwnAS or password restarts its session
//     (GoBGP re-sends the OPEN), a new max-prefix limit applies at once,
//     new timers restart the session (they are negotiated in the OPEN).
//   - The hub's spokes' peer group (password, timers, max-prefix): GoBGP
//     gives a peer group's change to new members only, so the group is
//     updated, the dynamic range re-added (which re-keys the listener's
//     TCP MD5 for it), and every spoke session is closed; the spokes
//     reconnect under the new settings.
//   - The import policy (Import, Protected, Prefixes, the hubs) is
//     replaced as a whole with the hub's current per-spoke statements
//     (SetPolicies) and re-applied to what every neighbor sent (soft
//     reset in): no session restarts.
//   - Hub.DynamicLimit applies to new spokes; Hub.RequireRegistration
//     newly on closes the sessions of spokes that are not registered.
//   - The originated prefixes become next.Originated().
//
// Fields restartFields names are refused with a *RestartError before
// anything changes. Each step compares next with what GoBGP was last
// given successfully, so a step that fails is reported (joined), the
// others are still applied, and calling Reconfigure again with the same
// next tries the failed one again. On a stopped speaker next is only
// stored for the next Start.
func (s *Speaker) Reconfigure(ctx context.Context, next Config) error {
	plan, err := BuildPlan(next)
	if err != nil {
		return err
	}
	drop, err := s.reconfigure(ctx, next.withDefaults(), plan)
	// refusePeer takes s.mu: after reconfigure let go of it.
	for _, a := range drop {
		s.refusePeer(a, RefusedUnregistered)
	}
	return err
}

func (s *Speaker) reconfigure(ctx context.Context, nc Config, plan Plan) (drop []netip.Addr, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	old := s.cfg
	if fixed := restartFields(old, nc); len(fixed) > 0 {
		return nil, &RestartError{Fields: fixed}
	}
	if s.srv != nil && nc.passwords() && !old.passwords() {
		if err := checkTCPMD5(nc.Role == RoleHub); err != nil {
			return nil, err
		}
	}
	s.cfg, s.plan = nc, plan
	drop = s.peers.setConfig(nc)
	if s.fib != nil {
		s.fib.setPolicy(nc.fibPolicy())
	}
	if s.srv == nil {
		return nil, nil
	}
	var errs []error
	add := func(err error) {
		if err != nil {
			errs = append(errs, err)
		}
	}
	add(s.reconcilePoliciesLocked(ctx, nc))
	add(s.reconcileStaticLocked(ctx, nc))
	add(s.reconcileGroupLocked(ctx, nc))
	add(s.setPrefixesLocked(ctx, nc.Originated()))
	return drop, errors.Join(errs...)
}

// policies is the whole policy configuration for SetPolicies: the import
// policy with protected as its protected set and the per-spoke statements
// of members appended (as spokeImports adds them), and the export policy.
func policies(c Config, protected []netip.Prefix, members []netip.Addr) *api.SetPoliciesRequest {
	c.Protected = protected
	sets, imp := importPolicy(c)
	for _, a := range members {
		set, pol := spokeImport(c, a)
		sets = append(sets, set)
		imp.Statements = append(imp.Statements, pol.Statements...)
	}
	req := &api.SetPoliciesRequest{DefinedSets: sets, Policies: []*api.Policy{imp}}
	if exp, _ := exportPolicy(c); exp != nil {
		req.Policies = append(req.Policies, exp)
	}
	return req
}

// reconcilePoliciesLocked replaces GoBGP's policies when the import
// policy differs from what GoBGP was last given. The spokes' loop is
// stopped meanwhile, so that the per-spoke statements in the new policies
// are exactly those it holds installed afterwards; the assignments (by
// name) stay as they are.
func (s *Speaker) reconcilePoliciesLocked(ctx context.Context, nc Config) error {
	wantProt := sortPrefixes(append(slices.Clone(nc.Protected), s.learned...))
	want := policies(nc, wantProt, nil)
	if proto.Equal(want, s.appliedPolicy) {
		return nil
	}
	var members []netip.Addr
	if s.spokes != nil {
		s.stopSpokes()
		defer s.startSpokesLocked()
		if len(nc.Import.Accept) > 0 {
			m, err := groupMembers(ctx, s.srv, nc.Hub.PeerGroup)
			if err != nil {
				return fmt.Errorf("routing: reload policies: %w", err)
			}
			members = sortAddrs(m)
		}
	}
	if err := s.srv.SetPolicies(ctx, policies(nc, wantProt, members)); err != nil {
		return fmt.Errorf("routing: reload policies: %w", err)
	}
	s.protected, s.appliedPolicy = wantProt, want
	if s.spokes != nil {
		s.spokes.cfg = nc
		s.spokes.installed = map[netip.Addr]bool{}
		for _, a := range members {
			s.spokes.installed[a] = true
		}
	}
	if err := s.srv.ResetPeer(ctx, &api.ResetPeerRequest{Address: "all", Soft: true, Direction: api.ResetPeerRequest_IN}); err != nil {
		return fmt.Errorf("routing: re-applying import policy: %w", err)
	}
	s.log.Info("bgp policies replaced", zap.Int("spokes", len(members)))
	return nil
}

func sortAddrs(m map[netip.Addr]bool) []netip.Addr {
	out := make([]netip.Addr, 0, len(m))
	for a := range m {
		out = append(out, a)
	}
	slices.SortFunc(out, netip.Addr.Compare)
	return out
}

// staticNeighbors maps the configured neighbors' addresses to their GoBGP
// peers.
func staticNeighbors(c Config) map[netip.Addr]*api.Peer {
	out := map[netip.Addr]*api.Peer{}
	for _, n := range append(slices.Clone(c.Hub.Peers), c.Spoke.Hubs...) {
		out[n.Address] = staticPeer(c, n)
	}
	return out
}

// reconcileStaticLocked adds, deletes and updates the static neighbors
// against what GoBGP was last given; unchanged ones are not touched.
func (s *Speaker) reconcileStaticLocked(ctx context.Context, nc Config) error {
	was, is := s.appliedPeers, staticNeighbors(nc)
	var errs []error
	for _, a := range sortAddrs(keys(was)) {
		if _, ok := is[a]; ok {
			continue
		}
		if err := s.srv.DeletePeer(ctx, &api.DeletePeerRequest{Address: a.String()}); err != nil {
			errs = append(errs, fmt.Errorf("routing: delete neighbor %s: %w", a, err))
			continue
		}
		delete(s.appliedPeers, a)
		s.log.Info("bgp neighbor deleted", zap.Stringer("neighbor", a))
	}
	for _, a := range sortAddrs(keys(is)) {
		p, before := is[a], was[a]
		switch {
		case before == nil:
			if err := s.srv.AddPeer(ctx, &api.AddPeerRequest{Peer: p}); err != nil {
				errs = append(errs, fmt.Errorf("routing: add neighbor %s: %w", a, err))
				continue
			}
			s.appliedPeers[a] = p
			s.log.Info("bgp neighbor added", zap.Stringer("neighbor", a))
		case !proto.Equal(before, p):
			rsp, err := s.srv.UpdatePeer(ctx, &api.UpdatePeerRequest{Peer: p})
			if err != nil {
				errs = append(errs, fmt.Errorf("routing: update neighbor %s: %w", a, err))
				continue
			}
			s.appliedPeers[a] = p
			reset := &api.ResetPeerRequest{Address: a.String()}
			switch {
			case !proto.Equal(before.GetTimers(), p.GetTimers()):
				// Hold time and keepalive are negotiated in the OPEN.
			case rsp.GetNeedsSoftResetIn():
				reset.Soft, reset.Direction = true, api.ResetPeerRequest_IN
			default:
				reset = nil
			}
			if reset != nil {
				if err := s.srv.ResetPeer(ctx, reset); err != nil {
					errs = append(errs, fmt.Errorf("routing: reset neighbor %s: %w", a, err))
				}
			}
			s.log.Info("bgp neighbor updated", zap.Stringer("neighbor", a))
		}
	}
	return errors.Join(errs...)
}

func keys[V any](m map[netip.Addr]V) map[netip.Addr]bool {
	out := make(map[netip.Addr]bool, len(m))
	for k := range m {
		out[k] = true
	}
	return out
}

// reconcileGroupLocked updates the hub's spokes' peer group when its
// settings changed. GoBGP applies a peer group's settings to a dynamic
// neighbor when it accepts the session (and re-keys the listener's TCP
// MD5 for the range only in AddDynamicNeighbor), so the range is
// re-added and the spoke sessions are closed: the spokes reconnect under
// the new settings.
func (s *Speaker) reconcileGroupLocked(ctx context.Context, nc Config) error {
	if nc.Role != RoleHub {
		return nil
	}
	after := spokePeerGroup(nc)
	if proto.Equal(s.appliedGroup, after) {
		return nil
	}
	dyn := &api.DeleteDynamicNeighborRequest{Prefix: nc.Hub.DynamicRange.String(), PeerGroup: nc.Hub.PeerGroup}
	// Deleting the range clears the listener's key with the group's
	// current password, so it goes first.
	if err := s.srv.DeleteDynamicNeighbor(ctx, dyn); err != nil {
		return fmt.Errorf("routing: reload spokes' peer group: %w", err)
	}
	_, errUpdate := s.srv.UpdatePeerGroup(ctx, &api.UpdatePeerGroupRequest{PeerGroup: after})
	if err := s.srv.AddDynamicNeighbor(ctx, &api.AddDynamicNeighborRequest{DynamicNeighbor: &api.DynamicNeighbor{
		Prefix: dyn.Prefix, PeerGroup: dyn.PeerGroup,
	}}); err != nil {
		return errors.Join(errUpdate, fmt.Errorf("routing: reload spokes' dynamic range: %w", err))
	}
	if errUpdate != nil {
		return fmt.Errorf("routing: reload spokes' peer group: %w", errUpdate)
	}
	s.appliedGroup = after
	members, err := groupMembers(ctx, s.srv, nc.Hub.PeerGroup)
	if err != nil {
		return fmt.Errorf("routing: reload spokes' peer group: %w", err)
	}
	var errs []error
	for _, a := range sortAddrs(members) {
		if err := s.srv.DeletePeer(ctx, &api.DeletePeerRequest{Address: a.String()}); err != nil {
			errs = append(errs, fmt.Errorf("routing: closing spoke %s for the new settings: %w", a, err))
			continue
		}
		s.peers.forget(a)
	}
	s.log.Info("spokes' peer group updated; spoke sessions restart", zap.Int("spokes", len(members)))
	return errors.Join(errs...)
}
