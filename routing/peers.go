package routing

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"time"

	api "github.com/osrg/gobgp/v3/api"
	"go.uber.org/zap"
)

// Why a dynamic neighbor was refused.
const (
	RefusedLimit        = "dynamic-limit"
	RefusedUnregistered = "not-registered"
)

// peerGuard enforces the hub's dynamic-neighbor cap and the binding of a
// spoke's session to its NHRP registration, and remembers why sessions went
// down. GoBGP accepts any address of the dynamic range and has no cap, so
// the guard watches GoBGP's peer events: a dynamic neighbor seen for the
// first time (GoBGP reports it as soon as it accepted the TCP connection,
// before the OPEN exchange) that is over the cap or not registered is
// deleted again (Cease, "peer de-configured").
type peerGuard struct {
	log      *zap.Logger
	dynRange netip.Prefix // the hub's dynamic range; invalid on a spoke

	mu sync.Mutex
	// limit, requireReg and static change with Speaker.Reconfigure.
	limit      int
	requireReg bool
	static     map[netip.Addr]bool
	dynamic    map[netip.Addr]bool
	registered map[netip.Addr]bool
	refused    map[string]uint64
	downReason map[netip.Addr]string
	maxPrefix  map[netip.Addr]uint64
}

func newPeerGuard(c Config, log *zap.Logger) *peerGuard {
	g := &peerGuard{
		log:        log,
		dynamic:    map[netip.Addr]bool{},
		registered: map[netip.Addr]bool{},
		refused:    map[string]uint64{},
		downReason: map[netip.Addr]string{},
		maxPrefix:  map[netip.Addr]uint64{},
	}
	if c.Role == RoleHub {
		g.dynRange = c.Hub.DynamicRange
	}
	g.setConfig(c)
	return g
}

// setConfig takes the cap, the registration requirement and the static
// neighbors from c (a reload) and returns the dynamic neighbors to refuse
// now: with the requirement newly on, those not registered. A lower cap
// refuses new spokes only; sessions already accepted stay, as with
// Cisco's "bgp listen limit".
func (g *peerGuard) setConfig(c Config) []netip.Addr {
	g.mu.Lock()
	defer g.mu.Unlock()
	was := g.requireReg
	g.limit = c.Hub.DynamicLimit
	g.requireReg = c.Role == RoleHub && c.Hub.RequireRegistration
	g.static = map[netip.Addr]bool{}
	for _, n := range append(slices.Clone(c.Hub.Peers), c.Spoke.Hubs...) {
		g.static[n.Address] = true
	}
	if !g.requireReg || was {
		return nil
	}
	return g.dropUnregistered()
}

// dropUnregistered forgets and counts the dynamic neighbors that are not
// registered, and returns them sorted. g.mu is held.
func (g *peerGuard) dropUnregistered() (drop []netip.Addr) {
	for a := range g.dynamic {
		if !g.registered[a] {
			drop = append(drop, a)
			delete(g.dynamic, a)
			g.refused[RefusedUnregistered]++
		}
	}
	slices.SortFunc(drop, netip.Addr.Compare)
	return drop
}

// forget drops a dynamic neighbor the speaker deleted itself: GoBGP
// reports no state change for it, and it must count against the cap
// again only when it comes back.
func (g *peerGuard) forget(a netip.Addr) {
	g.mu.Lock()
	defer g.mu.Unlock()
	delete(g.dynamic, a)
}

// isStatic reports whether a is a configured neighbor (a hub).
func (g *peerGuard) isStatic(a netip.Addr) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.static[a]
}

// observe records a peer event and returns why the neighbor must be
// refused, or "". Dynamic neighbors are the addresses of the dynamic range
// that are not configured statically.
func (g *peerGuard) observe(ev NeighborEvent) string {
	if !g.dynRange.IsValid() || !g.dynRange.Contains(ev.Neighbor) {
		return ""
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.static[ev.Neighbor] {
		return ""
	}
	if ev.State == StateIdle || ev.State == StateUnknown {
		delete(g.dynamic, ev.Neighbor)
		return ""
	}
	if g.dynamic[ev.Neighbor] {
		return ""
	}
	why := ""
	switch {
	case g.requireReg && !g.registered[ev.Neighbor]:
		why = RefusedUnregistered
	case g.limit > 0 && len(g.dynamic) >= g.limit:
		why = RefusedLimit
	}
	if why != "" {
		g.refused[why]++
		return why
	}
	g.dynamic[ev.Neighbor] = true
	return ""
}

// setRegistered replaces the registered tunnel addresses and returns the
// dynamic neighbors that are no longer registered.
func (g *peerGuard) setRegistered(addrs []netip.Addr) []netip.Addr {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.registered = make(map[netip.Addr]bool, len(addrs))
	for _, a := range addrs {
		g.registered[a.Unmap()] = true
	}
	if !g.requireReg {
		return nil
	}
	return g.dropUnregistered()
}

// down records GoBGP's reason for a session going down ("Peer Down" log).
func (g *peerGuard) down(addr, reason string) {
	a, err := netip.ParseAddr(addr)
	if err != nil {
		return
	}
	g.mu.Lock()
	g.downReason[a.Unmap()] = reason
	g.mu.Unlock()
}

// prefixLimit records GoBGP's "prefix limit reached" (the session is torn
// down next).
func (g *peerGuard) prefixLimit(addr string) {
	a, err := netip.ParseAddr(addr)
	if err != nil {
		return
	}
	g.mu.Lock()
	g.maxPrefix[a.Unmap()]++
	g.mu.Unlock()
}

func (g *peerGuard) neighbor(a netip.Addr) (reason string, maxPrefix uint64) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.downReason[a], g.maxPrefix[a]
}

func (g *peerGuard) maxPrefixTotal() uint64 {
	g.mu.Lock()
	defer g.mu.Unlock()
	var n uint64
	for _, c := range g.maxPrefix {
		n += c
	}
	return n
}

func (g *peerGuard) refusedCounts() map[string]uint64 {
	g.mu.Lock()
	defer g.mu.Unlock()
	out := make(map[string]uint64, len(g.refused))
	for k, v := range g.refused {
		out[k] = v
	}
	return out
}

// refusePeer deletes a dynamic neighbor GoBGP accepted. It runs in its own
// goroutine: the watch callback must not wait for GoBGP's loop.
func (s *Speaker) refusePeer(a netip.Addr, why string) {
	s.mu.Lock()
	srv := s.srv
	s.mu.Unlock()
	if srv == nil {
		return
	}
	s.log.Warn("refusing bgp neighbor", zap.Stringer("neighbor", a), zap.String("reason", why))
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := srv.DeletePeer(ctx, &api.DeletePeerRequest{Address: a.String()}); err != nil {
			s.log.Debug("deleting refused neighbor", zap.Stringer("neighbor", a), zap.Error(err))
		}
	}()
}

// SetRegistered replaces the set of tunnel addresses registered with this
// hub's NHRP server. With Hub.RequireRegistration, a spoke's session is
// accepted only from a registered address, and a session whose
// registration is gone is closed. The controller calls it whenever the set
// changes; it does not block on GoBGP.
func (s *Speaker) SetRegistered(addrs []netip.Addr) {
	for _, a := range s.peers.setRegistered(addrs) {
		s.refusePeer(a, RefusedUnregistered)
	}
}

// SetProtected replaces the prefixes no learned route may overlap beyond
// Config.Protected: the learned NBMA addresses (as /32). The FIB drops
// overlapping routes at once; GoBGP's import policy is updated and
// re-applied to what the neighbors sent (soft reset in). The controller
// calls it when the set changes, off its loop.
func (s *Speaker) SetProtected(ctx context.Context, ps []netip.Prefix) error {
	for _, p := range ps {
		if err := checkPrefix(p); err != nil {
			return fmt.Errorf("routing: protected: %w", err)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.learned = sortPrefixes(slices.Clone(ps))
	all := s.protectedLocked()
	if s.fib != nil {
		s.fib.setProtected(all)
	}
	if s.srv == nil {
		return ErrNotRunning
	}
	if slices.Equal(all, s.protected) {
		return nil
	}
	if err := s.srv.AddDefinedSet(ctx, &api.AddDefinedSetRequest{DefinedSet: protectedSet(all), Replace: true}); err != nil {
		return fmt.Errorf("routing: protected set: %w", err)
	}
	s.protected = all
	s.appliedPolicy = policies(s.cfg, all, nil)
	if err := s.srv.ResetPeer(ctx, &api.ResetPeerRequest{Address: "all", Soft: true, Direction: api.ResetPeerRequest_IN}); err != nil {
		return fmt.Errorf("routing: re-applying import policy: %w", err)
	}
	return nil
}

// protectedLocked is every prefix no learned route may overlap: the
// configured ones and SetProtected's.
func (s *Speaker) protectedLocked() []netip.Prefix {
	return sortPrefixes(append(slices.Clone(s.cfg.Protected), s.learned...))
}
