package routing

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"time"

	api "github.com/osrg/gobgp/v3/api"
	"go.uber.org/zap"
)

// spokeResync is how often the hub's per-spoke import statements are
// reconciled without a peer event.
const spokeResync = 30 * time.Second

// spokeImports keeps the hub's per-spoke import statements (spokeImport)
// equal to the dynamic neighbors GoBGP has. It is level-triggered: every
// peer event (and a periodic resync) kicks one loop, which lists the
// neighbors of the spokes' peer group and adds or removes statements. A
// neighbor in graceful restart stays in GoBGP, so its statements stay and
// its re-announced paths are accepted at once (no withdrawal, no flap).
// A path that arrives before its spoke's statements were added is
// rejected, and accepted by the soft reset that follows the addition.
type spokeImports struct {
	cfg  Config
	log  *zap.Logger
	kick chan struct{}
	// installed is only touched by the loop.
	installed map[netip.Addr]bool
}

func newSpokeImports(c Config, log *zap.Logger) *spokeImports {
	return &spokeImports{cfg: c, log: log, kick: make(chan struct{}, 1), installed: map[netip.Addr]bool{}}
}

// trigger asks the loop to reconcile; it never blocks.
func (si *spokeImports) trigger() {
	select {
	case si.kick <- struct{}{}:
	default:
	}
}

type policyServer interface {
	ListPeer(context.Context, *api.ListPeerRequest, func(*api.Peer)) error
	AddDefinedSet(context.Context, *api.AddDefinedSetRequest) error
	DeleteDefinedSet(context.Context, *api.DeleteDefinedSetRequest) error
	AddPolicy(context.Context, *api.AddPolicyRequest) error
	DeletePolicy(context.Context, *api.DeletePolicyRequest) error
	DeleteStatement(context.Context, *api.DeleteStatementRequest) error
	ResetPeer(context.Context, *api.ResetPeerRequest) error
}

// run reconciles until ctx ends; errors are retried after a second.
func (si *spokeImports) run(ctx context.Context, srv policyServer) {
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-si.kick:
		case <-t.C:
		}
		next := spokeResync
		if err := si.reconcile(ctx, srv); err != nil {
			if ctx.Err() != nil {
				return
			}
			si.log.Warn("per-spoke import policy", zap.Error(err))
			next = time.Second
		}
		t.Reset(next)
	}
}

func (si *spokeImports) reconcile(ctx context.Context, srv policyServer) error {
	want, err := groupMembers(ctx, srv, si.cfg.Hub.PeerGroup)
	if err != nil {
		return err
	}
	if len(si.cfg.Import.Accept) == 0 {
		clear(want) // nothing to accept from anyone
	}
	for a := range si.installed {
		if want[a] {
			continue
		}
		// Gone from GoBGP either way; a later add cleans up leftovers.
		if err := si.remove(ctx, srv, a); err != nil {
			si.log.Warn("per-spoke import policy", zap.Error(err))
		}
		delete(si.installed, a)
	}
	for a := range want {
		if si.installed[a] {
			continue
		}
		if err := si.add(ctx, srv, a); err != nil {
			return err
		}
		si.installed[a] = true
	}
	return nil
}

// groupMembers lists the neighbors GoBGP has in the peer group (the hub's
// dynamic spokes).
func groupMembers(ctx context.Context, srv interface {
	ListPeer(context.Context, *api.ListPeerRequest, func(*api.Peer)) error
}, group string) (map[netip.Addr]bool, error) {
	out := map[netip.Addr]bool{}
	err := srv.ListPeer(ctx, &api.ListPeerRequest{}, func(p *api.Peer) {
		if p.GetConf().GetPeerGroup() != group {
			return
		}
		addr := p.GetState().GetNeighborAddress()
		if addr == "" {
			addr = p.GetConf().GetNeighborAddress()
		}
		if a, err := netip.ParseAddr(addr); err == nil {
			out[a.Unmap()] = true
		}
	})
	return out, err
}

func (si *spokeImports) add(ctx context.Context, srv policyServer, a netip.Addr) error {
	set, pol := spokeImport(si.cfg, a)
	// Whatever a failed add or remove left behind would make AddPolicy
	// fail ("statement already defined"): start clean.
	_ = si.remove(ctx, srv, a)
	if err := srv.AddDefinedSet(ctx, &api.AddDefinedSetRequest{DefinedSet: set}); err != nil {
		return fmt.Errorf("routing: spoke %s: %w", a, err)
	}
	if err := srv.AddPolicy(ctx, &api.AddPolicyRequest{Policy: pol}); err != nil {
		return fmt.Errorf("routing: spoke %s: %w", a, err)
	}
	si.log.Debug("spoke import statements added", zap.Stringer("neighbor", a))
	// Re-evaluate what the spoke sent before the statements existed.
	if err := srv.ResetPeer(ctx, &api.ResetPeerRequest{Address: a.String(), Soft: true, Direction: api.ResetPeerRequest_IN}); err != nil {
		si.log.Debug("soft reset in", zap.Stringer("neighbor", a), zap.Error(err))
	}
	return nil
}

// remove takes the spoke's statements out of the import policy, then
// deletes them and its neighbor set; every step is tried. GoBGP's
// DeletePolicy keeps removed statements defined (it deletes only unused
// statements that are still in the policy: internal/pkg/table/policy.go
// DeletePolicy), so they are deleted one by one, or a later add of the same
// spoke would fail.
func (si *spokeImports) remove(ctx context.Context, srv policyServer, a netip.Addr) error {
	set, pol := spokeImport(si.cfg, a)
	var errs []error
	if err := srv.DeletePolicy(ctx, &api.DeletePolicyRequest{Policy: pol, PreserveStatements: true}); err != nil {
		errs = append(errs, err)
	}
	for _, st := range pol.Statements {
		if err := srv.DeleteStatement(ctx, &api.DeleteStatementRequest{Statement: &api.Statement{Name: st.Name}, All: true}); err != nil {
			errs = append(errs, err)
		}
	}
	if err := srv.DeleteDefinedSet(ctx, &api.DeleteDefinedSetRequest{DefinedSet: set, All: true}); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("routing: spoke %s: %w", a, err)
	}
	return nil
}
