package controller

import (
	"net/netip"
	"reflect"
	"slices"
	"strings"

	"go.uber.org/zap"

	"github.com/dmvpnd/dmvpnd/controller/config"
	"github.com/dmvpnd/dmvpnd/kernel"
	"github.com/dmvpnd/dmvpnd/nhrp/engine"
)

// Per-tunnel QoS (Cisco's Per-Tunnel QoS for DMVPN). The controller turns
// the peers' NHRP groups (engine cache) and the qos section into a desired
// state: the policies in use and one target per GRE destination; the
// kernel installs it (kernel.Kernel.SetQoS).

// The desired state is expressed in the kernel's QoS types (the kernel
// package owns them and documents the tree they become).
type (
	QoSClass       = kernel.QoSClass
	QoSPolicy      = kernel.QoSPolicy
	QoSTarget      = kernel.QoSTarget
	QoSTargetStats = kernel.QoSTargetStats
	QoSClassStats  = kernel.QoSClassStats
)

// QoS installs the desired per-tunnel QoS state. SetQoS takes the whole
// state each time and may be called again with the same state; QoSStats
// reads the installed targets' counters (show qos, metrics), off the loop.
type QoS interface {
	SetQoS(policies map[string]QoSPolicy, targets []QoSTarget) error
	QoSStats() ([]QoSTargetStats, error)
}

// qosEgressPolicy names an inline qos.egress policy: no qos.groups key
// contains a dot (the file's key separator), so it never collides.
const qosEgressPolicy = "qos.egress"

// qosUnknown is a peer announcing a group no policy exists for.
type qosUnknown struct {
	Proto netip.Addr
	Group string
}

// qosDesired is the per-tunnel QoS the configuration and the cache call
// for.
type qosDesired struct {
	Policies map[string]QoSPolicy
	Targets  []QoSTarget // sorted by Dst, one per Dst
	// Tunnels maps each target's Dst to its peer's tunnel address (for
	// show qos and the metrics).
	Tunnels map[netip.Addr]netip.Addr
	// Unknown lists the peers whose group has no policy (they get none);
	// Conflicts the peers sharing a GRE destination with an earlier one
	// whose policy differs (two spokes behind one NAT): the first, by
	// tunnel address, wins.
	Unknown   []qosUnknown
	Conflicts []netip.Addr
}

// desiredQoS computes the per-tunnel QoS state; a pure function of the
// configuration and the engine's cache (sorted by Proto, as Cache returns
// it):
//   - hub: every registered spoke whose group has a policy, toward its
//     GRE destination (its NBMA, or post-NAT address);
//   - spoke: every resolved peer (the far end of a shortcut) whose group
//     has a policy, and qos.egress toward each configured NHS.
//
// A group is matched against qos.groups without regard to case.
func desiredQoS(cfg *config.Config, cache []engine.CacheEntry) qosDesired {
	d := qosDesired{Policies: map[string]QoSPolicy{}, Tunnels: map[netip.Addr]netip.Addr{}}
	byDst := map[netip.Addr]string{}
	add := func(proto, dst netip.Addr, name string, p config.QoSPolicy) {
		if prev, ok := byDst[dst]; ok {
			if prev != name {
				d.Conflicts = append(d.Conflicts, proto)
			}
			return
		}
		byDst[dst] = name
		d.Tunnels[dst] = proto
		d.Policies[name] = qosPolicy(p)
		d.Targets = append(d.Targets, QoSTarget{Dst: dst, Policy: name})
	}
	if cfg.NHRP.Role == config.RoleSpoke {
		if p, ok := cfg.QoS.EgressPolicy(); ok {
			name := qosEgressPolicy
			if g := cfg.QoS.Egress.Group; g != "" {
				name, _ = qosGroupKey(cfg, g)
			}
			for _, n := range cfg.NHRP.NHS {
				add(n.Protocol.Addr, n.NBMA, name, p)
			}
		}
	}
	want := qosKind(cfg)
	for _, ce := range cache {
		if !qosCandidate(ce, want) {
			continue
		}
		name, ok := qosGroupKey(cfg, ce.Group)
		if !ok {
			d.Unknown = append(d.Unknown, qosUnknown{Proto: ce.Proto, Group: ce.Group})
			continue
		}
		add(ce.Proto, ce.NBMA, name, cfg.QoS.Groups[name])
	}
	slices.SortFunc(d.Targets, func(a, b QoSTarget) int { return a.Dst.Compare(b.Dst) })
	return d
}

// qosGroupKey returns the qos.groups key group matches: itself, or its
// lower-case form (the file's keys are case-insensitive).
func qosGroupKey(cfg *config.Config, group string) (string, bool) {
	if _, ok := cfg.QoS.Groups[group]; ok {
		return group, true
	}
	l := strings.ToLower(group)
	_, ok := cfg.QoS.Groups[l]
	return l, ok
}

// qosPolicy is p in the kernel's terms. The configuration's default class
// (the one without dscp) is the kernel's implicit one, which gets what the
// other classes leave and may borrow up to the policy's rate: it is not
// passed as a class (the kernel refuses a class without DSCP).
func qosPolicy(p config.QoSPolicy) QoSPolicy {
	out := QoSPolicy{Rate: uint64(p.Rate), Burst: uint32(p.Burst)}
	for _, c := range p.Classes {
		if len(c.DSCP) == 0 {
			continue
		}
		qc := QoSClass{Name: c.Name, Priority: c.Priority, Rate: uint64(c.Rate), Ceil: uint64(c.Ceil)}
		for _, d := range c.DSCP {
			qc.DSCP = append(qc.DSCP, uint8(d))
		}
		out.Classes = append(out.Classes, qc)
	}
	return out
}

// qosState is what the controller last installed and which unknown
// groups it has reported.
type qosState struct {
	applied *qosDesired
	unknown map[qosUnknown]bool
	held    bool // held for adoption (logged once)
	// cands is reused by qosCache: a reconcile that finds no peer with a
	// group allocates nothing.
	cands []engine.CacheEntry
}

// qosKind is the kind of cache entry per-tunnel QoS applies to: registered
// spokes on a hub, resolved peers on a spoke.
func qosKind(cfg *config.Config) engine.BindingKind {
	if cfg.NHRP.Role == config.RoleHub {
		return engine.KindRegistered
	}
	return engine.KindResolved
}

// qosCandidate reports whether desiredQoS looks at the cache entry ce.
func qosCandidate(ce engine.CacheEntry, want engine.BindingKind) bool {
	return ce.Kind == want && ce.Group != "" && ce.NBMA.IsValid()
}

// qosCache is the part of the engine's cache desiredQoS reads, sorted by
// protocol address as Cache returns it: only the entries it looks at, so
// that a hub whose 10k spokes announce no group neither copies nor sorts
// its whole cache each time a peer comes or goes. Loop only.
func (c *Controller) qosCache() []engine.CacheEntry {
	want := qosKind(c.config())
	cands := c.qos.cands[:0]
	for ce := range c.eng.GroupPeers() {
		if qosCandidate(ce, want) {
			cands = append(cands, ce)
		}
	}
	// One entry per address (the cache is keyed by it).
	slices.SortFunc(cands, func(a, b engine.CacheEntry) int { return a.Proto.Compare(b.Proto) })
	c.qos.cands = cands
	return cands
}

// qosAdoptionPending counts the permanent neighbor entries (registrations,
// NHSs) a previous run left that the engine has not re-learnt yet (at least
// one while that state is not listed); the adoption drops them at the
// holding time (adopt.go), ending the wait.
func (c *Controller) qosAdoptionPending() int {
	if !c.adopt.listed {
		return 1 // the previous run's state is not known yet
	}
	n := 0
	for addr := range c.adopt.permanent {
		if ce, ok := c.eng.Entry(addr); !ok || !ce.Bound.IsValid() {
			n++
		}
	}
	return n
}

// reconcileQoS installs the desired per-tunnel QoS when it changed. Each
// peer announcing a group without a policy is counted and logged once (per
// address and group, until it stops announcing it). Without a QoS
// dependency nothing is installed, but unknown groups are still reported.
func (c *Controller) reconcileQoS() {
	if !c.dirty.qos || c.eng == nil {
		return
	}
	d := desiredQoS(c.config(), c.qosCache())
	seen := map[qosUnknown]bool{}
	for _, u := range d.Unknown {
		seen[u] = true
		if !c.qos.unknown[u] {
			c.stats.inc("qos_unknown_group")
			if c.deps.Metrics != nil {
				c.deps.Metrics.QoSUnknownGroups.Inc()
			}
			c.log.Info("NHRP group without a QoS policy: no shaping toward this peer",
				zap.Stringer("proto", u.Proto), zap.String("group", u.Group))
		}
	}
	c.qos.unknown = seen
	for _, p := range d.Conflicts {
		c.stats.inc("qos_target_conflicts")
		c.log.Warn("QoS: peer shares its GRE destination with another of a different policy; the other's applies",
			zap.Stringer("proto", p))
	}
	// Holding only matters when some policy is configured: without one the
	// desired state is empty whatever the spokes announce, and applying it
	// once removes what a previous run with QoS left.
	if q := c.config().QoS; (len(q.Groups) > 0 || !q.Egress.IsZero()) && c.deps.QoS != nil {
		if n := c.qosAdoptionPending(); n > 0 {
			// The kernel still shapes toward the spokes a previous run
			// had registered; a desired state without them (their groups
			// are not known again until they register) would tear that
			// down. Stays dirty: retried on the next event or backoff.
			if !c.qos.held {
				c.log.Info("per-tunnel QoS held until adopted registrations are re-learnt", zap.Int("pending", n))
			}
			c.qos.held = true
			return
		}
	}
	c.qos.held = false
	c.qosTunnels.Store(&d.Tunnels)
	if c.deps.QoS == nil || c.qos.applied != nil && reflect.DeepEqual(*c.qos.applied, d) {
		c.dirty.qos = false
		return
	}
	if err := c.deps.QoS.SetQoS(d.Policies, d.Targets); err != nil {
		c.stats.inc("reconcile_errors_qos")
		c.countReconcileError("qos")
		c.log.Warn("installing per-tunnel QoS", zap.Error(err))
		return // stays dirty: retried with backoff
	}
	c.qos.applied = &d
	c.dirty.qos = false
	if len(d.Targets) > 0 {
		c.log.Info("per-tunnel QoS installed", zap.Int("policies", len(d.Policies)), zap.Int("targets", len(d.Targets)))
	}
}
