// Package kerneltest is an in-memory fake of package kernel's interfaces for
// controller tests. Its state renders as sorted text lines in the style of
// iproute2, so tests compare text:
//
//	tunnel gre1 ifindex 10 local 198.51.100.1 key 42 ttl 64 mtu 1400 addr 10.0.0.1/32
//	neigh 10.0.0.2 lladdr 198.51.100.2 PERMANENT
//	route 192.168.2.0/24 via 10.0.0.3 dev gre1 proto 157
//	route 10.0.0.0/24 dev gre1 proto 157 scope link src 10.0.0.1 (host address)
//	hairpin table dmvpnd iif 10
//	qos 198.51.100.2 policy branch-2m rate 2000000 burst 0
//	qos 198.51.100.2 class voice priority rate 256000 dscp 46
package kerneltest

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"

	"github.com/dmvpnd/dmvpnd/kernel"
)

// Fake implements kernel.Dataplane, kernel.MissWatcher and
// kernel.HairpinTrigger in memory. The zero value is not usable: call New.
type Fake struct {
	mu sync.Mutex

	protocol int
	tunnel   *kernel.TunnelConfig
	ifindex  int
	nextIdx  int
	neigh    map[netip.Addr]kernel.Neighbor
	routes   map[routeKey]kernel.Route
	foreign  map[string]bool // rendered foreign route lines
	hairpin  int             // installed trigger's ifindex, 0 none
	qos      map[netip.Addr]fakeQoS

	// NeighborLimit, when > 0, makes ReplaceNeighbor refuse new dynamic
	// entries beyond it like a full kernel table (errors.Is(err,
	// kernel.ErrResourceExhausted)). Permanent entries are exempt, as in
	// the kernel.
	NeighborLimit int

	failures     map[string]error // op -> error for the next call
	refuse       func(kernel.Route) error
	refuseNeigh  func(kernel.NeighborOp) error
	neighBatches []int // sizes of the ApplyNeighbors calls
	walks        int
	ops          []string

	missWatchers    watchers[kernel.Miss]
	hairpinWatchers watchers[kernel.Hairpin]
}

// watchers are the channels handed out by a Watch call; Fake.mu guards
// them.
type watchers[T any] []chan T

// add hands out a channel that leaves ws and closes when ctx ends.
func (ws *watchers[T]) add(ctx context.Context, mu *sync.Mutex) <-chan T {
	ch := make(chan T, 64)
	*ws = append(*ws, ch)
	go func() {
		<-ctx.Done()
		mu.Lock()
		defer mu.Unlock()
		*ws = slices.DeleteFunc(*ws, func(w chan T) bool { return w == ch })
		close(ch)
	}()
	return ch
}

// send delivers v to every watcher with room, as the kernel drops for a
// slow reader, and reports how many received it.
func (ws watchers[T]) send(v T) int {
	n := 0
	for _, w := range ws {
		select {
		case w <- v:
			n++
		default:
		}
	}
	return n
}

type routeKey struct {
	dst    netip.Prefix
	metric int
}

var (
	_ kernel.Dataplane       = (*Fake)(nil)
	_ kernel.NeighborBatcher = (*Fake)(nil)
	_ kernel.NeighborWalker  = (*Fake)(nil)
	_ kernel.MissWatcher     = (*Fake)(nil)
	_ kernel.HairpinTrigger  = (*Fake)(nil)
)

// New returns an empty fake whose routes carry protocol 157.
func New() *Fake {
	return &Fake{
		protocol: kernel.DefaultRouteProtocol,
		nextIdx:  10,
		neigh:    map[netip.Addr]kernel.Neighbor{},
		routes:   map[routeKey]kernel.Route{},
		foreign:  map[string]bool{},
		qos:      map[netip.Addr]fakeQoS{},
		failures: map[string]error{},
	}
}

// FailNext makes the next call of op ("EnsureTunnel", "ReplaceNeighbor",
// "DeleteNeighbor", "SetRoutes", "Install", "Remove", "SetQoS") fail with
// err.
func (f *Fake) FailNext(op string, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.failures[op] = err
}

func (f *Fake) fail(op string) error {
	if err, ok := f.failures[op]; ok {
		delete(f.failures, op)
		return err
	}
	return nil
}

// Ops returns the mutating operations performed so far, in order, e.g.
// "replace neighbor 10.0.0.2 lladdr 198.51.100.2 REACHABLE",
// "delete route 10.9.0.0/16". Unchanged objects produce no entry.
func (f *Fake) Ops() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.ops...)
}

// EnsureTunnel implements kernel.Dataplane.
func (f *Fake) EnsureTunnel(cfg kernel.TunnelConfig) (int, error) {
	if err := cfg.Validate(); err != nil {
		return 0, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.fail("EnsureTunnel"); err != nil {
		return 0, err
	}
	if f.tunnel != nil && f.tunnel.Name == cfg.Name {
		if *f.tunnel != cfg {
			f.ops = append(f.ops, "modify tunnel "+cfg.Name)
		}
	} else {
		f.nextIdx++
		f.ifindex = f.nextIdx
		f.ops = append(f.ops, "create tunnel "+cfg.Name)
	}
	c := cfg
	f.tunnel = &c
	return f.ifindex, nil
}

func (f *Fake) requireTunnel() error {
	if f.tunnel == nil {
		return kernel.ErrNoTunnel
	}
	return nil
}

// tunnelOp makes, with f.mu held, the checks that open every operation on
// the tunnel: a tunnel exists, and no failure is injected for method (one is
// returned like the kernel package's *kernel.OpError for op on the object
// what + "dev <tunnel>").
func (f *Fake) tunnelOp(method, op, what string) error {
	if err := f.requireTunnel(); err != nil {
		return err
	}
	if err := f.fail(method); err != nil {
		return &kernel.OpError{Op: op, Object: what + "dev " + f.tunnel.Name, Err: err}
	}
	return nil
}

// ReplaceNeighbor implements kernel.Dataplane.
func (f *Fake) ReplaceNeighbor(tunnelAddr, nbma netip.Addr, permanent bool) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.tunnelOp("ReplaceNeighbor", "replace neighbor", fmt.Sprintf("%s lladdr %s ", tunnelAddr, nbma)); err != nil {
		return err
	}
	return f.replaceNeighbor(tunnelAddr, nbma, permanent)
}

// replaceNeighbor is ReplaceNeighbor with f.mu held and a tunnel.
func (f *Fake) replaceNeighbor(tunnelAddr, nbma netip.Addr, permanent bool) error {
	obj := fmt.Sprintf("%s lladdr %s dev %s", tunnelAddr, nbma, f.tunnel.Name)
	if !tunnelAddr.Is4() || !nbma.Is4() {
		return &kernel.OpError{Op: "replace neighbor", Object: obj, Err: errors.New("both addresses must be IPv4")}
	}
	if f.refuseNeigh != nil {
		if err := f.refuseNeigh(kernel.NeighborOp{Addr: tunnelAddr, NBMA: nbma, Permanent: permanent}); err != nil {
			return &kernel.OpError{Op: "replace neighbor", Object: obj, Err: err}
		}
	}
	state := kernel.NeighReachable
	if permanent {
		state = kernel.NeighPermanent
	}
	if _, exists := f.neigh[tunnelAddr]; !exists && !permanent && f.NeighborLimit > 0 && f.dynamicCount() >= f.NeighborLimit {
		return &kernel.OpError{Op: "replace neighbor", Object: obj, Err: syscall.ENOBUFS}
	}
	n := kernel.Neighbor{Addr: tunnelAddr, NBMA: nbma, State: state}
	if old, ok := f.neigh[tunnelAddr]; ok && old == n && permanent {
		return nil // a permanent entry rewritten unchanged is a no-op
	}
	f.neigh[tunnelAddr] = n
	f.ops = append(f.ops, fmt.Sprintf("replace neighbor %s lladdr %s %s", tunnelAddr, nbma, state))
	return nil
}

// RefuseNeighbors makes ReplaceNeighbor and ApplyNeighbors refuse every
// replace for which refuse returns an error, as the kernel refuses one
// entry of a batch; nil accepts everything again.
func (f *Fake) RefuseNeighbors(refuse func(kernel.NeighborOp) error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.refuseNeigh = refuse
}

// ApplyNeighbors implements kernel.NeighborBatcher: each op as
// ReplaceNeighbor or DeleteNeighbor would do it, in order, a refusal
// leaving the others applied. A FailNext("ApplyNeighbors") fails every op.
func (f *Fake) ApplyNeighbors(ops []kernel.NeighborOp) []error {
	f.mu.Lock()
	defer f.mu.Unlock()
	errs := make([]error, len(ops))
	f.neighBatches = append(f.neighBatches, len(ops))
	err := f.requireTunnel()
	if err == nil {
		err = f.fail("ApplyNeighbors")
	}
	for i, o := range ops {
		switch {
		case err != nil:
			errs[i] = err
		case o.Delete:
			f.deleteNeighbor(o.Addr)
		default:
			errs[i] = f.replaceNeighbor(o.Addr, o.NBMA, o.Permanent)
		}
	}
	return errs
}

// NeighborBatches returns the number of ops of each ApplyNeighbors call so
// far.
func (f *Fake) NeighborBatches() []int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]int(nil), f.neighBatches...)
}

func (f *Fake) dynamicCount() int {
	c := 0
	for _, n := range f.neigh {
		if !n.Permanent() {
			c++
		}
	}
	return c
}

// DeleteNeighbor implements kernel.Dataplane.
func (f *Fake) DeleteNeighbor(tunnelAddr netip.Addr) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.tunnelOp("DeleteNeighbor", "delete neighbor", tunnelAddr.String()+" "); err != nil {
		return err
	}
	obj := fmt.Sprintf("%s dev %s", tunnelAddr, f.tunnel.Name)
	if !tunnelAddr.Is4() {
		return &kernel.OpError{Op: "delete neighbor", Object: obj, Err: errors.New("address must be IPv4")}
	}
	f.deleteNeighbor(tunnelAddr)
	return nil
}

func (f *Fake) deleteNeighbor(tunnelAddr netip.Addr) {
	if _, ok := f.neigh[tunnelAddr]; !ok {
		return
	}
	delete(f.neigh, tunnelAddr)
	f.ops = append(f.ops, "delete neighbor "+tunnelAddr.String())
}

// ListNeighbors implements kernel.Dataplane.
func (f *Fake) ListNeighbors() ([]kernel.Neighbor, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.requireTunnel(); err != nil {
		return nil, err
	}
	out := make([]kernel.Neighbor, 0, len(f.neigh))
	for _, n := range f.neigh {
		out = append(out, n)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Addr.Less(out[j].Addr) })
	return out, nil
}

// WalkNeighbors implements kernel.NeighborWalker (in map order, as the
// kernel's order is no promise either); it allocates nothing. Walks counts
// the calls.
func (f *Fake) WalkNeighbors(fn func(kernel.Neighbor)) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.tunnelOp("WalkNeighbors", "list neighbors", ""); err != nil {
		return err
	}
	f.walks++
	for _, n := range f.neigh {
		fn(n)
	}
	return nil
}

// Walks returns how many times WalkNeighbors ran.
func (f *Fake) Walks() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.walks
}

// DeleteNeighborBehindBack removes an entry as another process would,
// without recording an op of dmvpnd's.
func (f *Fake) DeleteNeighborBehindBack(addr netip.Addr) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.neigh, addr)
}

// SetNeighborState changes an entry's state as the kernel would over time
// (REACHABLE -> STALE -> PROBE...).
func (f *Fake) SetNeighborState(addr netip.Addr, st kernel.NeighState) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	n, ok := f.neigh[addr]
	if ok {
		n.State = st
		f.neigh[addr] = n
	}
	return ok
}

// RefuseRoutes makes SetRoutes refuse every route for which refuse returns
// an error, as the kernel refuses a next hop it cannot use (a broadcast
// gateway, say); nil accepts everything again.
func (f *Fake) RefuseRoutes(refuse func(kernel.Route) error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.refuse = refuse
}

// SetRoutes implements kernel.Dataplane like the kernel package: invalid,
// conflicting or refused routes are skipped and reported in a
// *kernel.RouteErrors, everything else is installed and pruned.
func (f *Fake) SetRoutes(desired []kernel.Route) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.tunnelOp("SetRoutes", "set routes", ""); err != nil {
		return err
	}
	var failed []kernel.RouteError
	want := map[routeKey]kernel.Route{}
	for _, r := range desired {
		if !r.Dst.IsValid() || !r.Dst.Addr().Is4() || (r.Via.IsValid() && !r.Via.Is4()) || r.Metric < 0 {
			failed = append(failed, kernel.RouteError{Op: "replace route", Route: r, Err: errors.New("invalid route")})
			continue
		}
		r.Dst = r.Dst.Masked()
		k := routeKey{r.Dst, r.Metric}
		if prev, dup := want[k]; dup {
			if prev != r {
				failed = append(failed, kernel.RouteError{Op: "replace route", Route: r, Err: fmt.Errorf("conflicts with %s", prev)})
			}
			continue
		}
		want[k] = r
	}
	if hr := f.tunnel.HostRoute(); hr.IsValid() {
		if r, ok := want[routeKey{dst: hr}]; ok {
			delete(want, routeKey{dst: hr})
			failed = append(failed, kernel.RouteError{Op: "replace route", Route: r, Err: kernel.ErrTunnelPrefixRoute})
		}
	}
	keys := make([]routeKey, 0, len(want))
	for k := range want {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return want[keys[i]].String() < want[keys[j]].String() })
	for _, k := range keys {
		r := want[k]
		if old, ok := f.routes[k]; ok && old == r {
			continue
		}
		if f.refuse != nil {
			if err := f.refuse(r); err != nil {
				failed = append(failed, kernel.RouteError{Op: "replace route", Route: r, Err: err})
				continue
			}
		}
		f.routes[k] = r
		f.ops = append(f.ops, "replace route "+r.String())
	}
	for k, r := range f.routes {
		if _, ok := want[k]; !ok {
			delete(f.routes, k)
			f.ops = append(f.ops, "delete route "+r.String())
		}
	}
	if len(failed) == 0 {
		return nil
	}
	return &kernel.RouteErrors{Failed: failed}
}

// ListRoutes implements kernel.Dataplane.
func (f *Fake) ListRoutes() ([]kernel.Route, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]kernel.Route, 0, len(f.routes))
	for _, r := range f.routes {
		out = append(out, r)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].String() < out[j].String() })
	return out, nil
}

// AddForeignRoute adds a route dmvpnd does not own (another protocol); it
// appears in Render and is never touched by SetRoutes.
func (f *Fake) AddForeignRoute(line string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.foreign["route "+line] = true
}

// TunnelLayout renders the tunnel's address and the routes to exactly the
// tunnel prefix prefix as the kernel would show them (kerneltest.System's
// TunnelLayout): a prefix address comes with the kernel's connected route
// ("route P proto kernel src A"), a host address (HostAddress) with
// dmvpnd's ("route P proto 157 src A"); foreign routes to prefix are
// listed by their protocol.
func (f *Fake) TunnelLayout(prefix netip.Prefix) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	if t := f.tunnel; t != nil {
		a := t.DeviceAddress()
		out = append(out, "addr "+a.String())
		switch {
		case t.HostRoute() == prefix:
			out = append(out, fmt.Sprintf("route %s proto %d src %s", prefix, f.protocol, t.Address.Addr()))
		case a.Bits() < 32 && a.Masked() == prefix:
			out = append(out, fmt.Sprintf("route %s proto kernel src %s", prefix, a.Addr()))
		}
	}
	for l := range f.foreign {
		fields := strings.Fields(l) // route DST ... proto P ...
		if len(fields) < 2 || fields[1] != prefix.String() {
			continue
		}
		proto := "?"
		for i := 2; i+1 < len(fields); i++ {
			if fields[i] == "proto" {
				proto = fields[i+1]
			}
		}
		out = append(out, fmt.Sprintf("route %s proto %s", prefix, proto))
	}
	sort.Strings(out)
	return out
}

// Install implements kernel.HairpinTrigger.
func (f *Fake) Install(ifindex int) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.fail("Install"); err != nil {
		return err
	}
	if ifindex <= 0 {
		return fmt.Errorf("kerneltest: invalid ifindex %d", ifindex)
	}
	f.hairpin = ifindex
	f.ops = append(f.ops, fmt.Sprintf("install hairpin iif %d", ifindex))
	return nil
}

// Remove implements kernel.HairpinTrigger.
func (f *Fake) Remove() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.fail("Remove"); err != nil {
		return err
	}
	if f.hairpin != 0 {
		f.ops = append(f.ops, "remove hairpin")
	}
	f.hairpin = 0
	return nil
}

// WatchMisses implements kernel.MissWatcher; InjectMiss feeds it.
func (f *Fake) WatchMisses(ctx context.Context) (<-chan kernel.Miss, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.requireTunnel(); err != nil {
		return nil, err
	}
	return f.missWatchers.add(ctx, &f.mu), nil
}

// InjectMiss delivers a miss to every watcher as the kernel's RTM_GETNEIGH
// would. It reports how many watchers received it.
func (f *Fake) InjectMiss(m kernel.Miss) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.missWatchers.send(m)
}

// Hairpins implements kernel.HairpinSource; InjectHairpin feeds it.
func (f *Fake) Hairpins(ctx context.Context) (<-chan kernel.Hairpin, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.hairpinWatchers.add(ctx, &f.mu), nil
}

// InjectHairpin delivers a hairpin notification if the trigger is
// installed, as the kernel would; it reports how many watchers received it.
func (f *Fake) InjectHairpin(h kernel.Hairpin) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.hairpin == 0 {
		return 0
	}
	return f.hairpinWatchers.send(h)
}

// Lines renders the state as sorted text lines.
func (f *Fake) Lines() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var lines []string
	if t := f.tunnel; t != nil {
		local := "any"
		if t.Local.IsValid() {
			local = t.Local.String()
		}
		s := fmt.Sprintf("tunnel %s ifindex %d local %s", t.Name, f.ifindex, local)
		if t.Underlay != "" {
			s += " dev " + t.Underlay
		}
		if t.Key != 0 {
			s += fmt.Sprintf(" key %d", t.Key)
		}
		s += fmt.Sprintf(" ttl %d", t.TTL)
		if t.NoPMTUDisc {
			s += " nopmtudisc"
		}
		if t.MTU != 0 {
			s += fmt.Sprintf(" mtu %d", t.MTU)
		}
		s += " addr " + t.DeviceAddress().String()
		lines = append(lines, s)
		if hr := t.HostRoute(); hr.IsValid() {
			lines = append(lines, fmt.Sprintf("route %s dev %s proto %d scope link src %s", hr, t.Name, f.protocol, t.Address.Addr()))
		}
	}
	for _, n := range f.neigh {
		lines = append(lines, fmt.Sprintf("neigh %s lladdr %s %s", n.Addr, n.NBMA, n.State))
	}
	dev := ""
	if f.tunnel != nil {
		dev = f.tunnel.Name
	}
	for _, r := range f.routes {
		s := "route " + r.Dst.String()
		if r.Via.IsValid() {
			s += " via " + r.Via.String()
		}
		s += fmt.Sprintf(" dev %s proto %d", dev, f.protocol)
		if r.Metric != 0 {
			s += fmt.Sprintf(" metric %d", r.Metric)
		}
		lines = append(lines, s)
	}
	for l := range f.foreign {
		lines = append(lines, l)
	}
	if f.hairpin != 0 {
		lines = append(lines, fmt.Sprintf("hairpin table %s iif %d", kernel.DefaultHairpinTable, f.hairpin))
	}
	lines = append(lines, f.qosLines()...)
	sort.Strings(lines)
	return lines
}

// Render is Lines joined with newlines (with a trailing newline if any).
func (f *Fake) Render() string {
	l := f.Lines()
	if len(l) == 0 {
		return ""
	}
	return strings.Join(l, "\n") + "\n"
}
