package routing

import (
	"context"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"sync"
	"time"

	"go.uber.org/zap"
)

// FIB defaults.
const (
	DefaultFIBDebounce   = 50 * time.Millisecond
	DefaultFIBMinBackoff = 250 * time.Millisecond
	DefaultFIBMaxBackoff = 30 * time.Second
)

// FIBOptions configures a FIB reconciler. Zero values mean the defaults.
type FIBOptions struct {
	Table  int
	Metric int
	// Debounce is how long changes are collected before the sink is called.
	Debounce time.Duration
	// MinBackoff and MaxBackoff bound the retry delay after a sink error; the
	// delay doubles per consecutive failure.
	MinBackoff time.Duration
	MaxBackoff time.Duration
	Logger     *zap.Logger
	Clock      Clock
}

// FIBStats is a snapshot of the reconciler's counters.
type FIBStats struct {
	// Routes is the number of routes in the desired set.
	Routes int
	// Syncs and Failures count sink calls that succeeded and failed.
	Syncs    uint64
	Failures uint64
	// Ignored counts best paths that were not turned into routes (own
	// prefix, own or unusable next hop).
	Ignored uint64
	// LastError is the last sink error, "" after a success.
	LastError string
}

// FIB turns BGP best-path changes into the desired set of kernel routes and
// pushes that set to a RouteSink: batched (Debounce), level-triggered, and
// retried with capped exponential backoff on errors.
//
// Best paths for the node's own prefixes and best paths whose next hop is
// one of the node's own addresses (or unspecified: locally originated) are
// not installed. Any other next hop is kept as-is, including another spoke's
// tunnel address.
type FIB struct {
	sink RouteSink
	opts FIBOptions
	log  *zap.Logger

	kick chan struct{}

	mu          sync.Mutex
	best        map[netip.Prefix]netip.Addr
	ownPrefixes map[netip.Prefix]bool
	ownAddrs    map[netip.Addr]bool
	gen         uint64 // bumped on every change of the desired set
	stats       FIBStats
}

// NewFIB returns a reconciler for sink. Call Run to start pushing.
func NewFIB(sink RouteSink, opts FIBOptions) *FIB {
	if opts.Metric == 0 {
		opts.Metric = DefaultRouteMetric
	}
	if opts.Debounce <= 0 {
		opts.Debounce = DefaultFIBDebounce
	}
	if opts.MinBackoff <= 0 {
		opts.MinBackoff = DefaultFIBMinBackoff
	}
	if opts.MaxBackoff < opts.MinBackoff {
		opts.MaxBackoff = max(DefaultFIBMaxBackoff, opts.MinBackoff)
	}
	if opts.Clock == nil {
		opts.Clock = realClock{}
	}
	log := opts.Logger
	if log == nil {
		log = zap.NewNop()
	}
	return &FIB{
		sink:        sink,
		opts:        opts,
		log:         log.Named("fib"),
		kick:        make(chan struct{}, 1),
		best:        make(map[netip.Prefix]netip.Addr),
		ownPrefixes: make(map[netip.Prefix]bool),
		ownAddrs:    make(map[netip.Addr]bool),
	}
}

// SetOwn replaces the node's own prefixes and addresses, which are never
// installed as routes.
func (f *FIB) SetOwn(prefixes []netip.Prefix, addrs []netip.Addr) {
	f.mu.Lock()
	f.ownPrefixes = make(map[netip.Prefix]bool, len(prefixes))
	for _, p := range prefixes {
		f.ownPrefixes[p.Masked()] = true
	}
	f.ownAddrs = make(map[netip.Addr]bool, len(addrs))
	for _, a := range addrs {
		f.ownAddrs[a.Unmap()] = true
	}
	f.gen++
	f.mu.Unlock()
	f.trigger()
}

// Apply records best-path changes in order (a later update of the same prefix
// wins) and schedules a sync. An empty batch also schedules one, so that the
// initial (possibly empty) table dump prunes stale routes.
func (f *FIB) Apply(updates []PathUpdate) {
	f.mu.Lock()
	for _, u := range updates {
		p := u.Prefix.Masked()
		if u.Withdraw {
			delete(f.best, p)
			continue
		}
		f.best[p] = u.NextHop.Unmap()
	}
	f.gen++
	f.mu.Unlock()
	f.trigger()
}

// forget drops all recorded best paths without scheduling a sync; the
// speaker calls it before a new watch replays the table, so that paths of a
// previous run do not linger.
func (f *FIB) forget() {
	f.mu.Lock()
	clear(f.best)
	f.gen++
	f.mu.Unlock()
}

// Resync schedules a sync of the unchanged desired set (periodic full resync).
func (f *FIB) Resync() {
	f.mu.Lock()
	f.gen++
	f.mu.Unlock()
	f.trigger()
}

func (f *FIB) trigger() {
	select {
	case f.kick <- struct{}{}:
	default:
	}
}

// Routes returns the desired routes, sorted.
func (f *FIB) Routes() []Route {
	f.mu.Lock()
	defer f.mu.Unlock()
	rs, _ := f.desiredLocked()
	return rs
}

// Stats returns the counters.
func (f *FIB) Stats() FIBStats {
	f.mu.Lock()
	defer f.mu.Unlock()
	s := f.stats
	rs, _ := f.desiredLocked()
	s.Routes = len(rs)
	return s
}

func (f *FIB) desiredLocked() (routes []Route, ignored int) {
	for _, p := range slices.SortedFunc(maps.Keys(f.best), comparePrefix) {
		nh := f.best[p]
		if f.ownPrefixes[p] || f.ownAddrs[nh] || !nh.IsValid() || nh.IsUnspecified() || !p.IsValid() {
			ignored++
			continue
		}
		routes = append(routes, Route{Prefix: p, Via: nh, Table: f.opts.Table, Metric: f.opts.Metric})
	}
	SortRoutes(routes)
	return routes, ignored
}

// Run pushes the desired set to the sink whenever it changes until ctx ends.
// It returns ctx's error.
func (f *FIB) Run(ctx context.Context) error {
	var applied uint64
	synced := false
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-f.kick:
		}
		if err := f.wait(ctx, f.opts.Debounce); err != nil {
			return err
		}
		backoff := f.opts.MinBackoff
		for {
			f.mu.Lock()
			gen := f.gen
			routes, ignored := f.desiredLocked()
			f.mu.Unlock()
			if synced && gen == applied {
				break
			}
			err := f.sink.SetRoutes(ctx, routes)
			f.mu.Lock()
			if err == nil {
				f.stats.Syncs++
				f.stats.Ignored = uint64(ignored)
				f.stats.LastError = ""
			} else {
				f.stats.Failures++
				f.stats.LastError = err.Error()
			}
			f.mu.Unlock()
			if err == nil {
				applied, synced = gen, true
				f.log.Debug("routes synced", zap.Int("routes", len(routes)))
				break
			}
			if ctx.Err() != nil {
				return ctx.Err()
			}
			f.log.Warn("route sync failed, retrying", zap.Error(fmt.Errorf("routing: fib: %w", err)), zap.Duration("backoff", backoff))
			if err := f.wait(ctx, backoff); err != nil {
				return err
			}
			backoff = min(backoff*2, f.opts.MaxBackoff)
		}
	}
}

func (f *FIB) wait(ctx context.Context, d time.Duration) error {
	t := f.opts.Clock.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C():
		return nil
	}
}
