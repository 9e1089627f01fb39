package routing

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	api "github.com/osrg/gobgp/v3/api"
	gobgplog "github.com/osrg/gobgp/v3/pkg/log"
	"github.com/osrg/gobgp/v3/pkg/server"
	"go.uber.org/zap"
)

// ErrNotRunning is returned by Speaker methods that need a started speaker.
var ErrNotRunning = errors.New("routing: speaker not running")

// Option configures a Speaker.
type Option func(*Speaker)

// WithLogger sets the logger (default: no-op).
func WithLogger(l *zap.Logger) Option { return func(s *Speaker) { s.log = l } }

// WithRouteSink makes the speaker hand the desired kernel routes to sink
// (through a FIB). Without it no routes are pushed anywhere.
func WithRouteSink(sink RouteSink) Option {
	return func(s *Speaker) { s.sink = sink }
}

// Speaker is the embedded GoBGP server of one dmvpnd node.
type Speaker struct {
	cfg    Config
	plan   Plan
	log    *zap.Logger
	sink   RouteSink
	peers  *peerGuard
	spokes *spokeImports // hub: per-spoke import statements; nil on a spoke

	fib     *FIB
	events  chan NeighborEvent
	dropped atomic.Uint64
	badPath atomic.Uint64

	mu         sync.Mutex
	srv        *server.BgpServer
	wctx       context.Context // the watches' context, ended by stop
	cancel     context.CancelFunc
	wg         sync.WaitGroup
	originated map[netip.Prefix]bool
	protected  []netip.Prefix // the protected set last given to GoBGP
	learned    []netip.Prefix // SetProtected's prefixes (beyond cfg.Protected)
	stopSpokes func()         // ends the spokes' loop and waits for it
	// What GoBGP was last given successfully (Reconfigure diffs against
	// it, so that a failed step is tried again): the static neighbors,
	// the spokes' peer group (hub), the policies without per-spoke
	// statements.
	appliedPeers  map[netip.Addr]*api.Peer
	appliedGroup  *api.PeerGroup
	appliedPolicy *api.SetPoliciesRequest

	fatalMu sync.Mutex
	fatal   error
	fatalCh chan struct{} // closed when fatal is set
}

// NewSpeaker validates cfg and returns a stopped speaker.
func NewSpeaker(cfg Config, opts ...Option) (*Speaker, error) {
	plan, err := BuildPlan(cfg)
	if err != nil {
		return nil, err
	}
	s := &Speaker{
		cfg:        cfg.withDefaults(),
		plan:       plan,
		log:        zap.NewNop(),
		originated: make(map[netip.Prefix]bool),
		fatalCh:    make(chan struct{}),
	}
	for _, o := range opts {
		o(s)
	}
	s.events = make(chan NeighborEvent, eventBuffer)
	s.peers = newPeerGuard(s.cfg, s.log)
	if s.cfg.Role == RoleHub {
		s.spokes = newSpokeImports(s.cfg, s.log)
	}
	if s.sink != nil {
		g := s.guard(s.cfg.Protected)
		s.fib = newFIB(s.sink, s.cfg.FIB.Metric, g, s.log)
		s.fib.setPolicyLocked(s.cfg.fibPolicy()) // not shared yet: no push
	}
	return s, nil
}

// fibPolicy is what the FIB takes from c besides the guard: whether a
// hub's default route is accepted, the hubs, and the "drop" limit.
func (c Config) fibPolicy() (acceptDefault bool, hubs []netip.Addr, maxPerNbr int) {
	for _, n := range append(slices.Clone(c.Spoke.Hubs), c.Hub.Peers...) {
		hubs = append(hubs, n.Address)
	}
	if c.MaxPrefixes > 0 && c.MaxPrefixAction == MaxPrefixDrop {
		maxPerNbr = int(c.MaxPrefixes)
	}
	return c.Import.AcceptDefault, hubs, maxPerNbr
}

// eventBuffer is the capacity of the Events channel. Events that do not fit
// are dropped and counted, never blocking GoBGP.
const eventBuffer = 256

// guard returns the built-in rejections with the given protected prefixes.
func (s *Speaker) guard(protected []netip.Prefix) guard {
	g := guard{tunnel: s.cfg.Tunnel, acceptDefault: s.cfg.Import.AcceptDefault, own: s.cfg.Prefixes, protected: protected}
	if s.cfg.Role == RoleHub {
		g.spokes = s.cfg.Hub.DynamicRange
	}
	return g
}

// Events delivers neighbor state changes. The channel is never closed.
func (s *Speaker) Events() <-chan NeighborEvent { return s.events }

// EventsDropped counts events lost because the Events channel was full.
func (s *Speaker) EventsDropped() uint64 { return s.dropped.Load() }

// BadPaths counts best paths from GoBGP that could not be converted.
func (s *Speaker) BadPaths() uint64 { return s.badPath.Load() }

// FIB returns the reconciler, or nil without WithRouteSink.
func (s *Speaker) FIB() *FIB { return s.fib }

// ownAddrs are next hops that mean "this node".
func (s *Speaker) ownAddrs() []netip.Addr {
	out := []netip.Addr{s.cfg.RouterID}
	if s.cfg.ListenAddress.IsValid() {
		out = append(out, s.cfg.ListenAddress)
	}
	for _, n := range append(slices.Clone(s.cfg.Spoke.Hubs), s.cfg.Hub.Peers...) {
		if n.LocalAddress.IsValid() {
			out = append(out, n.LocalAddress)
		}
	}
	return out
}

// Start starts the embedded server, configures it, starts the watches and
// originates cfg.Originated(). On error everything started is stopped again.
func (s *Speaker) Start(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.srv != nil {
		return errors.New("routing: speaker already started")
	}
	if s.cfg.passwords() {
		if err := checkTCPMD5(s.cfg.Role == RoleHub); err != nil {
			return err
		}
	}
	if err := prepareAPIListener(s.cfg.API); err != nil {
		return err
	}
	s.fatalMu.Lock()
	s.fatal, s.fatalCh = nil, make(chan struct{})
	s.fatalMu.Unlock()
	zl := newZapLogger(s.log, s.onFatal)
	zl.onPeerDown, zl.onPrefixLimit = s.peers.down, s.peers.prefixLimit
	opts := []server.ServerOption{server.LoggerOption(zl)}
	if s.cfg.API != "" {
		opts = append(opts, server.GrpcListenAddress(s.cfg.API))
		if !s.cfg.APIWrite {
			opts = append(opts, server.GrpcOption(readOnlyOptions()))
		}
	}
	srv := server.NewBgpServer(opts...)
	// Serve must run before any API call. GoBGP's Serve never returns, so
	// this goroutine outlives Stop (a GoBGP limitation).
	go srv.Serve()
	wctx, cancel := context.WithCancel(context.Background())
	s.srv, s.wctx, s.cancel = srv, wctx, cancel
	if err := s.configure(ctx, wctx); err != nil {
		s.stopLocked()
		return err
	}
	if err := s.waitAPI(ctx); err != nil {
		s.stopLocked()
		return err
	}
	if err := s.secureAPISocket(); err != nil {
		s.stopLocked()
		return err
	}
	if err := s.setPrefixesLocked(ctx, s.cfg.Originated()); err != nil {
		s.stopLocked()
		return err
	}
	return nil
}

func (s *Speaker) configure(ctx, wctx context.Context) error {
	srv, p := s.srv, s.plan
	if err := srv.StartBgp(ctx, p.Start); err != nil {
		return fmt.Errorf("routing: start bgp: %w", err)
	}
	// Watches first, so that no state change of the peers added below is missed.
	// GoBGP may still run a callback after wctx is cancelled (its watcher
	// goroutine selects between the event and the context): events after
	// Stop are dropped, so that Stop leaves the FIB as it was.
	onPeer := func(r *api.WatchEventResponse) {
		if wctx.Err() == nil {
			s.onPeerEvent(r)
		}
	}
	onTable := func(r *api.WatchEventResponse) {
		if wctx.Err() == nil {
			s.onTableEvent(r)
		}
	}
	if err := srv.WatchEvent(wctx, &api.WatchEventRequest{Peer: &api.WatchEventRequest_Peer{}}, onPeer); err != nil {
		return fmt.Errorf("routing: watch peers: %w", err)
	}
	if s.fib != nil {
		s.fib.forget()
		s.fib.setOwn(s.cfg.Originated(), s.cfg.Prefixes, s.ownAddrs())
		req := &api.WatchEventRequest{Table: &api.WatchEventRequest_Table{
			Filters: []*api.WatchEventRequest_Table_Filter{{Type: api.WatchEventRequest_Table_Filter_BEST, Init: true}},
		}}
		if err := srv.WatchEvent(wctx, req, onTable); err != nil {
			return fmt.Errorf("routing: watch best paths: %w", err)
		}
	}
	for _, r := range p.DefinedSets {
		if err := srv.AddDefinedSet(ctx, r); err != nil {
			return fmt.Errorf("routing: add defined set %s: %w", r.DefinedSet.Name, err)
		}
	}
	for _, r := range p.Policies {
		if err := srv.AddPolicy(ctx, r); err != nil {
			return fmt.Errorf("routing: add policy %s: %w", r.Policy.Name, err)
		}
	}
	for _, r := range p.Assignments {
		if err := srv.AddPolicyAssignment(ctx, r); err != nil {
			return fmt.Errorf("routing: assign policy: %w", err)
		}
	}
	for _, r := range p.PeerGroups {
		if err := srv.AddPeerGroup(ctx, r); err != nil {
			return fmt.Errorf("routing: add peer group %s: %w", r.PeerGroup.Conf.PeerGroupName, err)
		}
	}
	for _, r := range p.DynamicNeighbors {
		if err := srv.AddDynamicNeighbor(ctx, r); err != nil {
			return fmt.Errorf("routing: add dynamic neighbor %s: %w", r.DynamicNeighbor.Prefix, err)
		}
	}
	s.appliedPolicy = policies(s.cfg, sortPrefixes(slices.Clone(s.cfg.Protected)), nil)
	if len(p.PeerGroups) > 0 {
		s.appliedGroup = p.PeerGroups[0].PeerGroup
	}
	s.appliedPeers = map[netip.Addr]*api.Peer{}
	for _, r := range p.Peers {
		if err := srv.AddPeer(ctx, r); err != nil {
			return fmt.Errorf("routing: add neighbor %s: %w", r.Peer.Conf.NeighborAddress, err)
		}
		if a, err := netip.ParseAddr(r.Peer.Conf.NeighborAddress); err == nil {
			s.appliedPeers[a] = r.Peer
		}
	}
	if s.spokes != nil {
		s.spokes.installed = map[netip.Addr]bool{} // a new server has none
		s.startSpokesLocked()
	}
	return nil
}

// startSpokesLocked starts the loop of the hub's per-spoke import
// statements; stopSpokes ends it (Reconfigure replaces the policies
// meanwhile), as does the end of the watches.
func (s *Speaker) startSpokesLocked() {
	ctx, cancel := context.WithCancel(s.wctx)
	done := make(chan struct{})
	srv := s.srv
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		defer close(done)
		s.spokes.run(ctx, srv)
	}()
	s.stopSpokes = func() { cancel(); <-done }
}

// Stop cancels the watches, waits for the FIB loop, and stops the server
// (sessions are closed with a Cease notification). Routes already pushed to
// the sink stay; the controller decides whether to flush them.
func (s *Speaker) Stop(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.srv == nil {
		return nil
	}
	s.stopLocked()
	return nil
}

// StopGraceful stops the speaker so that neighbors keep its routes as
// stale (RFC 4724) until it is back or their restart timer ends, as after
// a crash. GoBGP's Stop sends Cease/peer-deconfigured, which ends graceful
// restart on the neighbor, and GoBGP cannot close a session silently. So
// StopGraceful first resets every session with Cease/administrative-reset,
// which a neighbor that negotiated RFC 8538 (the N bit, advertised with
// GracefulRestart) handles as a graceful restart, waits until no session
// is established (or ctx ends), and then stops the server, which has no
// session left to send its Cease on. The watches end first, so the FIB
// keeps the routes it pushed. Without GracefulRestart it is Stop.
func (s *Speaker) StopGraceful(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.srv == nil {
		return nil
	}
	if !s.cfg.GracefulRestart.Enabled {
		s.stopLocked()
		return nil
	}
	s.cancel() // the FIB keeps what it has
	s.wg.Wait()
	// "" is every neighbor: a hard reset takes no "all" (server.go
	// addrToPeers), unlike a soft one.
	err := s.srv.ResetPeer(ctx, &api.ResetPeerRequest{Address: "", Communication: "dmvpnd restarting"})
	if err == nil {
		err = s.waitSessionsDown(ctx)
	}
	s.stopLocked()
	if err != nil {
		return fmt.Errorf("routing: graceful stop (sessions closed with Cease instead): %w", err)
	}
	return nil
}

// waitSessionsDown polls until no neighbor is established.
func (s *Speaker) waitSessionsDown(ctx context.Context) error {
	for {
		up := 0
		err := s.srv.ListPeer(ctx, &api.ListPeerRequest{}, func(p *api.Peer) {
			if p.GetState().GetSessionState() == api.PeerState_ESTABLISHED {
				up++
			}
		})
		if err != nil || up == 0 {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func (s *Speaker) stopLocked() {
	s.cancel() // watches end before StopBgp
	s.wg.Wait()
	s.srv.Stop() // StopBgp, then the gRPC server
	s.srv, s.wctx, s.cancel, s.stopSpokes = nil, nil, nil, nil
	s.appliedPeers, s.appliedGroup, s.appliedPolicy = nil, nil, nil
	s.originated = make(map[netip.Prefix]bool)
	s.protected = nil
}

// Err returns a fatal condition GoBGP reported asynchronously since the
// last Start (for example that the gRPC API could not listen), or nil.
func (s *Speaker) Err() error {
	s.fatalMu.Lock()
	defer s.fatalMu.Unlock()
	return s.fatal
}

func (s *Speaker) onFatal(msg string, fields gobgplog.Fields) {
	err := fmt.Errorf("routing: gobgp: %s: %v", msg, fields["Err"])
	s.fatalMu.Lock()
	defer s.fatalMu.Unlock()
	if s.fatal == nil {
		s.fatal = err
		close(s.fatalCh)
	}
}

func (s *Speaker) onPeerEvent(r *api.WatchEventResponse) {
	ev, ok := neighborEvent(time.Now(), r.GetPeer())
	if !ok {
		return
	}
	if refuse := s.peers.observe(ev); refuse != "" {
		s.refusePeer(ev.Neighbor, refuse)
	}
	if s.spokes != nil {
		s.spokes.trigger()
	}
	s.log.Info("bgp neighbor state", zap.Stringer("neighbor", ev.Neighbor), zap.Uint32("as", ev.AS), zap.String("state", string(ev.State)))
	select {
	case s.events <- ev:
	default:
		s.dropped.Add(1)
	}
}

func (s *Speaker) onTableEvent(r *api.WatchEventResponse) {
	t := r.GetTable()
	if t == nil {
		return
	}
	ups := make([]PathUpdate, 0, len(t.Paths))
	for _, p := range t.Paths {
		u, err := pathUpdate(p)
		if errors.Is(err, errNotIPv4Unicast) {
			continue
		}
		if err != nil {
			s.badPath.Add(1)
			s.log.Warn("dropping best path", zap.Error(err))
			continue
		}
		ups = append(ups, u)
	}
	s.fib.apply(ups)
}

// SetPrefixes makes the originated prefixes exactly desired: new ones are
// advertised, missing ones withdrawn, unchanged ones left alone. It is
// idempotent and meant for config reloads (pass Config.Originated()).
func (s *Speaker) SetPrefixes(ctx context.Context, desired []netip.Prefix) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.srv == nil {
		return ErrNotRunning
	}
	return s.setPrefixesLocked(ctx, desired)
}

func (s *Speaker) setPrefixesLocked(ctx context.Context, desired []netip.Prefix) error {
	want := make(map[netip.Prefix]bool, len(desired))
	for _, p := range desired {
		if err := checkPrefix(p); err != nil {
			return fmt.Errorf("routing: set prefixes: %w", err)
		}
		want[p] = true
	}
	var errs []error
	for _, p := range sortPrefixes(slices.Collect(maps.Keys(s.originated))) {
		if want[p] {
			continue
		}
		req, err := WithdrawRequest(p)
		if err == nil {
			err = s.srv.DeletePath(ctx, req)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("routing: withdraw %s: %w", p, err))
			continue
		}
		delete(s.originated, p)
	}
	for _, p := range sortPrefixes(slices.Collect(maps.Keys(want))) {
		if s.originated[p] {
			continue
		}
		req, err := OriginateRequest(p)
		if err == nil {
			_, err = s.srv.AddPath(ctx, req)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("routing: originate %s: %w", p, err))
			continue
		}
		s.originated[p] = true
	}
	if s.fib != nil {
		all := sortPrefixes(slices.Collect(maps.Keys(want)))
		lan := slices.DeleteFunc(slices.Clone(all), func(p netip.Prefix) bool { return slices.Contains(s.cfg.Hub.Summaries, p) })
		s.fib.setOwn(all, lan, s.ownAddrs())
	}
	return errors.Join(errs...)
}

// Originated returns the prefixes currently advertised, sorted.
func (s *Speaker) Originated() []netip.Prefix {
	s.mu.Lock()
	defer s.mu.Unlock()
	return sortPrefixes(slices.Collect(maps.Keys(s.originated)))
}
