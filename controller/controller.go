package controller

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/dmvpnd/dmvpnd/controller/api"
	"github.com/dmvpnd/dmvpnd/controller/config"
	"github.com/dmvpnd/dmvpnd/ipsec"
	"github.com/dmvpnd/dmvpnd/kernel"
	"github.com/dmvpnd/dmvpnd/nhrp/backoff"
	"github.com/dmvpnd/dmvpnd/nhrp/engine"
	"github.com/dmvpnd/dmvpnd/routing"
)

// resyncInterval is the period of the full level-triggered resync of the
// kernel and IPsec desired state.
const resyncInterval = 30 * time.Second

// Controller runs one dmvpnd node. Create it with New, run it with Run; its
// api.Source methods may be called from any goroutine.
type Controller struct {
	log  *zap.Logger
	deps Deps

	// reqs carries closures to run on the loop goroutine.
	reqs chan func()
	// ready is closed once the loop has run its first reconcile: the
	// tunnel, the NHRP socket and the adopted kernel state are in place.
	ready     chan struct{}
	readyOnce sync.Once
	// wake nudges the loop to re-examine its timers and dirty state.
	wake chan struct{}

	// started is when Run began (nil before): written by Run, read by
	// Status from API goroutines.
	started atomic.Pointer[time.Time]
	// events fans operator events out (events.go); safe for concurrent use.
	events *api.Broker
	// eventMu makes stamping, logging and publishing one event atomic, so
	// that the stream's order is the order of the events' times (the loop
	// and the metrics publisher both emit).
	eventMu sync.Mutex

	// lt makes the loop goroutine and the packet reader one owner of the
	// loop-owned state (loop.go).
	lt loopState

	// Loop-owned state (only the holder of lt.mu touches it: the loop
	// goroutine, or the packet reader handing the engine a batch).
	cfgp      atomic.Pointer[config.Config]
	nbma      netip.Addr
	ifindex   int
	eng       *engine.Engine
	conn      kernel.PacketConn
	sock      atomic.Pointer[socketStats] // the running socket's counters (socketstats.go)
	bgp       BGP
	shortcuts map[netip.Prefix]netip.Addr // usable shortcuts: prefix -> via
	bgpRoutes []routing.Route
	peers     map[netip.Addr]ipsec.Peer // wanted IPsec peers by claimed NBMA
	saUp      map[string]bool           // IPsec peers (Event.Peer) whose SA is up
	// ipsecEvents is the IPsec side's event channel (the loop's
	// inputs.ipsec); syncProtections drains it before acting on a new
	// snapshot.
	ipsecEvents <-chan ipsec.Event
	// protGen is the IPsec snapshot generation the engine's protections
	// were derived from; protGenKnown says it may be compared.
	protGen      uint64
	protGenKnown bool
	// nat gives NATed peers' marked SAs their GRE addresses (natalias.go);
	// natSteer is the kernel steering they need.
	nat           natAliases
	natSteer      []kernel.NATSteer
	natSteerKnown bool // natSteer reflects a listing of charon's SAs
	dirty         dirtySet
	retry         backoff.Backoff
	// routesFailed: the last route push failed (some routes refused); it
	// is retried when the backoff timer fires. refusedRoutes are the
	// routes the kernel refused then, logged once each.
	routesFailed  bool
	refusedRoutes map[kernel.Route]bool
	stats         stats
	// lastCounters are the engine counters last published to Prometheus,
	// peerCounts the peers by state last counted for them (metrics.go).
	lastCounters map[string]uint64
	peerCounts   peerCountCache
	// pktCounters are the packet counters by direction (received, sent)
	// and NHRP type, looked up once (countPacket). Loop only.
	pktCounters [2][256]prometheus.Counter
	// nhsExpires is each NHS's registration expiry last seen, lastReg the
	// time of its last successful registration (outcomes.go).
	nhsExpires map[netip.Addr]time.Time
	lastReg    map[netip.Addr]time.Time
	// nhrpView is what BGP must know about NHRP (bgpview.go).
	nhrpView nhrpView
	// adopt is the kernel state a previous run left (adopt.go).
	adopt adoption
	// mcast is the multicast replication's target set (multicast.go);
	// mcastRep the running replicator, for counters read off the loop.
	mcast multicastState
	// bio is the state of the packet batch being handled (batchio.go),
	// nresync the periodic neighbor repair's (resync.go).
	bio      batchIO
	nresync  neighborResync
	mcastRep atomic.Pointer[replicator]
	// qosTunnels maps the QoS targets' GRE destinations to their peers'
	// tunnel addresses, for show qos and the metrics read off the loop.
	qosTunnels atomic.Pointer[map[netip.Addr]netip.Addr]
	// qos is the per-tunnel QoS last installed (qos.go).
	qos qosState

	// reloadMu serializes Reload; it guards bgpCfg, what bgp is built or
	// was last reconfigured with (New sets it, Run reads it before the
	// loop starts, Reload reads and writes it off the loop).
	reloadMu sync.Mutex
	bgpCfg   routing.Config

	// bgpMu guards pendingBGP, written by the FIB from its goroutine.
	bgpMu      sync.Mutex
	pendingBGP []routing.Route
	bgpNew     bool
}

type dirtySet struct {
	routes, ipsec, qos bool
	// bind: the guard's bound tunnel sources may have changed.
	bind bool
	// steer: the NAT steering changed (natalias.go).
	steer bool
}

// New checks the configuration against what the controller supports and
// returns a controller. It touches nothing: Run does.
func New(cfg *config.Config, deps Deps) (*Controller, error) {
	if deps.Dataplane == nil || deps.Listen == nil || deps.Clock == nil {
		return nil, errors.New("controller: Dataplane, Listen and Clock are required")
	}
	if deps.Log == nil {
		deps.Log = zap.NewNop()
	}
	nbma, err := localNBMA(cfg, deps.DeviceAddr)
	if err != nil {
		return nil, err
	}
	c := &Controller{
		log:    deps.Log,
		deps:   deps,
		reqs:   make(chan func()),
		wake:   make(chan struct{}, 1),
		lt:     loopState{started: make(chan struct{}), kick: make(chan struct{}, 1)},
		ready:  make(chan struct{}),
		events: api.NewBroker(eventBuffer, eventKeep),

		nbma:       nbma,
		shortcuts:  map[netip.Prefix]netip.Addr{},
		peers:      map[netip.Addr]ipsec.Peer{},
		saUp:       map[string]bool{},
		nhsExpires: map[netip.Addr]time.Time{},
		lastReg:    map[netip.Addr]time.Time{},
		retry:      backoff.New(500*time.Millisecond, 30*time.Second),
		stats:      stats{},
	}
	c.cfgp.Store(cfg)
	c.dirty.qos = true // install the egress policy even before any NHRP event
	if deps.NewBGP != nil && cfg.BGP.Enabled {
		// Computed once here (an unknown control.group refuses the
		// configuration at once); a reload computes the next one alone.
		if c.bgpCfg, err = speakerConfig(cfg); err != nil {
			return nil, err
		}
	}
	if deps.Metrics != nil {
		var reasons []string
		for _, r := range engine.AllDropReasons() {
			reasons = append(reasons, r.String())
		}
		deps.Metrics.PrecreateDrops(reasons)
	}
	if deps.Metrics != nil && deps.QoS != nil {
		deps.Metrics.SetQoSSource(c.qosSamples)
	}
	if deps.Metrics != nil && deps.Multicast != nil {
		if err := deps.Metrics.Registry().Register(newMulticastCollector(c)); err != nil {
			return nil, fmt.Errorf("controller: %w", err)
		}
	}
	if deps.Metrics != nil && deps.IPsec != nil {
		if err := deps.Metrics.Registry().Register(newIPsecRepairCollector(c)); err != nil {
			return nil, fmt.Errorf("controller: %w", err)
		}
		if err := deps.Metrics.Registry().Register(newLoadsRefusedMetric(deps.IPsec)); err != nil {
			return nil, fmt.Errorf("controller: %w", err)
		}
	}
	if deps.Metrics != nil {
		if err := deps.Metrics.Registry().Register(newSocketCollector(c)); err != nil {
			return nil, fmt.Errorf("controller: %w", err)
		}
	}
	if deps.Metrics != nil && deps.Guard != nil && deps.IPsec != nil {
		if err := deps.Metrics.Registry().Register(newGuardCollector(deps.Guard, cfg.BindsTunnelSources())); err != nil {
			return nil, fmt.Errorf("controller: %w", err)
		}
	}
	return c, nil
}

// Ready is closed once Run has programmed the tunnel, opened the NHRP
// socket, adopted the kernel state and reconciled once (systemd READY=1).
func (c *Controller) Ready() <-chan struct{} { return c.ready }

// Ping returns once the loop has run a no-op: a loop stuck in a handler
// does not answer (the systemd watchdog).
func (c *Controller) Ping(ctx context.Context) error { return c.run(ctx, func() {}) }

// startedAt is when Run began; zero before.
func (c *Controller) startedAt() time.Time {
	if t := c.started.Load(); t != nil {
		return *t
	}
	return time.Time{}
}

// config is the configuration in effect; Reload swaps it.
func (c *Controller) config() *config.Config { return c.cfgp.Load() }

// Run programs the node and keeps it reconciled until ctx ends. Kernel
// state is left in place on return so that a restarted dmvpnd adopts it.
func (c *Controller) Run(ctx context.Context) error {
	now := c.deps.Clock.Now()
	c.started.Store(&now)
	ifindex, err := c.deps.Dataplane.EnsureTunnel(tunnelConfig(c.config()))
	if err != nil {
		return fmt.Errorf("controller: %w", err)
	}
	c.ifindex = ifindex
	c.sizeNeighborTable()
	if err := c.applyGuard(); err != nil {
		return fmt.Errorf("controller: %w", err)
	}
	conn, err := c.deps.Listen(ifindex)
	if err != nil {
		return fmt.Errorf("controller: %w", err)
	}
	c.conn = conn
	c.setSocket(conn)
	defer func() {
		c.setSocket(nil)
		_ = conn.Close()
	}()

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()

	if err := c.startEngine(); err != nil {
		return err
	}
	var in inputs
	wg.Add(1)
	go func() { defer wg.Done(); c.readPackets(ctx) }()
	if in.misses, err = c.deps.Misses.WatchMisses(ctx); err != nil {
		return fmt.Errorf("controller: %w", err)
	}
	if c.deps.Hairpins != nil {
		// The NFLOG source is open on every hub; the trigger rule is
		// installed only while nhrp.redirect is on (a reload toggles it).
		if c.config().NHRP.Redirect {
			if err := c.deps.Hairpins.Install(ifindex); err != nil {
				return fmt.Errorf("controller: %w", err)
			}
		}
		defer func() {
			if err := c.deps.Hairpins.Remove(); err != nil {
				c.log.Warn("removing hairpin trigger", zap.Error(err))
			}
		}()
		if in.hairpins, err = c.deps.Hairpins.Hairpins(ctx); err != nil {
			return fmt.Errorf("controller: %w", err)
		}
	}
	stopMulticast, err := c.startMulticast(ctx, &wg)
	if err != nil {
		return err
	}
	defer stopMulticast()
	if c.deps.IPsec != nil {
		in.ipsec = c.deps.IPsec.Events()
		c.ipsecEvents = in.ipsec
		if n, ok := c.deps.IPsec.(snapshotNotifier); ok {
			in.ipsecChanged = n.Changed()
		}
		// The NHS peers are wanted before the manager first talks to
		// charon: it unloads dmvpnd connections it does not want, and
		// after a restart the SAs to the hubs must survive that.
		c.wantStaticPeers()
		if err := c.reconcileIPsec(); err != nil {
			return fmt.Errorf("controller: %w", err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := c.deps.IPsec.Run(ctx); err != nil && ctx.Err() == nil {
				c.log.Error("ipsec manager stopped", zap.Error(err))
			}
		}()
	}
	if c.deps.NewBGP != nil && c.config().BGP.Enabled {
		bgp, err := c.deps.NewBGP(c.bgpCfg, fibSink{c})
		if err != nil {
			return fmt.Errorf("controller: %w", err)
		}
		if err := bgp.Start(ctx); err != nil {
			return fmt.Errorf("controller: %w", err)
		}
		c.bgp = bgp
		defer c.stopBGP(bgp)
		if err := bgp.SetPrefixes(ctx, originated(c.config())); err != nil {
			return fmt.Errorf("controller: %w", err)
		}
		wg.Add(1)
		go func() { defer wg.Done(); c.bgpViewLoop(ctx, bgp) }()
	}
	c.syncProtections()
	c.eng.Start()
	c.dirty = dirtySet{routes: true, ipsec: true, steer: true}
	wg.Add(1)
	go func() { defer wg.Done(); c.publishLoop(ctx) }()
	c.log.Info("controller running", zap.String("tunnel", c.config().Tunnel.Name), zap.Int("ifindex", ifindex),
		zap.Stringer("nbma", c.nbma), zap.String("role", string(c.config().NHRP.Role)))
	return c.loop(ctx, in)
}

// bgpStopTimeout bounds the BGP speaker's stop; a graceful stop waits
// there for the neighbors to take the session reset.
const bgpStopTimeout = 5 * time.Second

// stopBGP stops the speaker when Run ends (SIGTERM: systemctl stop or
// restart, a package upgrade). With bgp.graceful_restart the stop is
// graceful, as a crash is: neighbors keep our routes as stale and the
// traffic that follows them flows while we restart (the kernel keeps our
// own routes, adopted by the next run). Without it, neighbors withdraw our
// routes at once (Cease).
func (c *Controller) stopBGP(bgp BGP) {
	ctx, cancel := context.WithTimeout(context.Background(), bgpStopTimeout)
	defer cancel()
	stop, how := bgp.Stop, "stopping BGP (neighbors withdraw our routes)"
	if c.config().BGP.GracefulRestart.Enabled {
		stop, how = bgp.StopGraceful, "stopping BGP gracefully (neighbors keep our routes as stale)"
	}
	c.log.Info(how)
	if err := stop(ctx); err != nil {
		c.log.Warn("stopping BGP", zap.Error(err))
	}
}

// startEngine builds the NHRP engine with its I/O hooks.
func (c *Controller) startEngine() error {
	ec := engineConfig(c.config(), c.nbma)
	ec.Clock = c.deps.Clock
	// The engine trusts only what SAs prove whenever an IPsec side runs.
	ec.IPsec = c.deps.IPsec != nil
	ec.Conn = engineConn{c}
	ec.Router = engineRouter{c}
	ec.Binder = engineBinder{c}
	ec.Events = c.onEngineEvent
	ec.Logger = c.log.Named("nhrp")
	eng, err := engine.New(ec)
	if err != nil {
		return fmt.Errorf("controller: %w", err)
	}
	c.eng = eng
	return nil
}
