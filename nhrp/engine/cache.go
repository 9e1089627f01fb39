package engine

import (
	"errors"
	"net/netip"
	"time"

	"go.uber.org/zap"
)

// BindingKind says where a cache entry came from.
type BindingKind uint8

// Binding kinds.
const (
	// KindRegistered: an NHS's entry for a client that registered.
	KindRegistered BindingKind = iota + 1
	// KindNHS: a client's entry for one of its servers.
	KindNHS
	// KindResolved: learnt from a Resolution Reply.
	KindResolved
	// KindRequester: learnt from a Resolution Request's source (S flag).
	KindRequester
	// KindNegative: a failed resolution, cached to stop request storms
	// (snapshots only).
	KindNegative
)

func (k BindingKind) String() string {
	switch k {
	case KindRegistered:
		return "registered"
	case KindNHS:
		return "nhs"
	case KindResolved:
		return "resolved"
	case KindRequester:
		return "requester"
	case KindNegative:
		return "negative"
	}
	return "unknown"
}

// Permanent reports whether entries of kind k are permanent: they live as
// long as the node's own configuration or a client's registration (NHSs,
// registered clients) and never age in the kernel, unlike entries learnt
// from resolutions, which the kernel may age and the engine re-learns on
// demand. It is the one definition the controller's neighbor programming
// and its status output share.
func (k BindingKind) Permanent() bool { return k == KindRegistered || k == KindNHS }

// Binding is a neighbor entry the controller programs: Proto -> NBMA,
// NBMA being the GRE destination. Claimed and Observed are the peer's
// announced and post-NAT NBMA addresses (Observed zero without NAT).
type Binding struct {
	Proto    netip.Addr
	NBMA     netip.Addr
	Claimed  netip.Addr
	Observed netip.Addr
	Kind     BindingKind
}

// peer is one cache entry, keyed by protocol address. The one-byte
// fields sit together at the end: a hub holds one peer per spoke, and
// scattered they padded it into a larger size class.
type peer struct {
	proto    netip.Addr
	claimed  netip.Addr // NBMA the peer announced
	observed netip.Addr // post-NAT NBMA, zero when equal to claimed
	nbma     netip.Addr // direct GRE destination; zero: no direct path
	group    string     // NHRP group the peer claims (Per-Tunnel QoS); "" none
	owner    ownerKey   // who created it (registrations: who may change it)
	expiry   timer      // fires pe (peer.fire); its deadline is when pe expires (see expires)
	bound    netip.Addr // lladdr programmed through the Binder
	since    int64      // when the entry came into the cache (addPeer), as Unix ns: see sinceTime

	// extra holds what only some entries need (peerExtra); nil until then.
	extra *peerExtra

	kind   BindingKind
	unique bool
	// Direct path state (client role). heard: NHRP arrived straight from
	// nbma, so a NAT in front of the peer has a mapping towards us (see
	// awaitsPeer).
	heard   bool
	path    pathState
	counted bool // counts against its owner's MaxCachePerSource
	// deferred: the Binder queued the write of bound (ErrBindDeferred);
	// bindRefused: the kernel then refused it (see CommitBindings).
	deferred    bool
	bindRefused bool
}

const maxResolversPerEntry = 256

// peerExtra is what only some cache entries need, behind one pointer so
// that the entries a hub holds for its registered spokes stay small: a
// resolved peer's direct path control, the shortcuts via it and when
// traffic last used it (client role), and the clients that resolved a
// registration (NHS role).
type peerExtra struct {
	pc        *pathCtl
	shortcuts map[netip.Prefix]*shortcut // non-nil for a resolved peer
	lastUsed  time.Time
	// expired: when the peer expired while shortcuts kept it (its expiry
	// timer then runs on); zero until then and again once refreshed.
	expired time.Time
	// resolvers: clients that resolved this registration (proto -> NBMA
	// the resolution came from), purged when it changes.
	resolvers map[netip.Addr]netip.Addr
}

// more returns pe's extra state, made on first use.
func (pe *peer) more() *peerExtra {
	if pe.extra == nil {
		pe.extra = &peerExtra{}
	}
	return pe.extra
}

// shortcuts are the shortcuts via pe, none unless it was resolved.
func (pe *peer) shortcuts() map[netip.Prefix]*shortcut {
	if pe.extra == nil {
		return nil
	}
	return pe.extra.shortcuts
}

// pathCtl is pe's direct path control, nil until its path is validated.
func (pe *peer) pathCtl() *pathCtl {
	if pe.extra == nil {
		return nil
	}
	return pe.extra.pc
}

// account adds d to the per-owner counts of pe: registrations held
// (AddressesPerPeer) and other entries created (MaxCachePerSource).
func (e *Engine) account(pe *peer, d int) {
	switch {
	case pe.kind == KindRegistered:
		e.owned.add(pe.owner, d)
	case pe.counted:
		e.perSource.add(pe.owner, d)
	}
}

// ownerCounts counts something per owner. An owner without an identity
// (every owner without IPsec) is keyed by its address alone, an IPv4 one
// by its four bytes: a hub holds one count per spoke, in a map slot of 8 B
// instead of 48 (ownerKey and int). Counts are bounded by MaxCache. The
// zero value is empty.
type ownerCounts struct {
	byAddr4 map[[4]byte]int32    // IPv4 owners without an identity
	byAddr  map[netip.Addr]int32 // other owners without an identity
	byID    map[ownerKey]int32
}

func (c *ownerCounts) get(o ownerKey) int {
	switch {
	case o.identity != "":
		return int(c.byID[o])
	case o.addr.Is4():
		return int(c.byAddr4[o.addr.As4()])
	}
	return int(c.byAddr[o.addr])
}

// add adds d to the count of o, forgetting o at zero.
func (c *ownerCounts) add(o ownerKey, d int) {
	switch {
	case o.identity != "":
		c.byID = addCount(c.byID, o, int32(d))
	case o.addr.Is4():
		c.byAddr4 = addCount(c.byAddr4, o.addr.As4(), int32(d))
	default:
		c.byAddr = addCount(c.byAddr, o.addr, int32(d))
	}
}

func addCount[K comparable](m map[K]int32, k K, d int32) map[K]int32 {
	if m == nil {
		m = map[K]int32{}
	}
	if m[k] += d; m[k] <= 0 {
		delete(m, k)
	}
	return m
}

// fromNHS reports whether o names one of our configured NHSs (with IPsec
// an owner is an identity, never an NHS's address).
func (e *Engine) fromNHS(o ownerKey) bool {
	return !e.cfg.IPsec && e.isNHS(o.addr)
}

// isNHS reports whether nbma is a configured NHS's address.
func (e *Engine) isNHS(nbma netip.Addr) bool {
	for _, n := range e.nhss {
		if n.cfg.NBMA == nbma {
			return true
		}
	}
	return false
}

// addPeer inserts pe, binds it and reports it. It fails when the cache is
// full or the Binder refuses.
func (e *Engine) addPeer(pe *peer, reason string) bool {
	if e.peers.len() >= e.cfg.MaxCache {
		e.drop(DropCacheFull)
		return false
	}
	quota := pe.kind != KindRegistered && pe.kind != KindNHS && pe.owner != (ownerKey{}) && !e.fromNHS(pe.owner)
	if quota && e.perSource.get(pe.owner) >= e.cfg.MaxCachePerSource {
		e.drop(DropSourceQuota)
		return false
	}
	e.peers.set(pe)
	pe.since = e.now.UnixNano()
	if !e.rebind(pe) {
		e.peers.del(pe.proto)
		return false
	}
	pe.counted = quota
	e.account(pe, 1)
	if pe.nbma.IsValid() {
		e.emit(Event{Kind: EventPeerUp, Proto: pe.proto, NBMA: pe.nbma, Claimed: pe.claimed,
			Observed: pe.observed, Binding: pe.kind, Group: pe.group, Reason: reason})
	}
	return true
}

// setExpiry (re)arms the entry's expiry timer.
func (e *Engine) setExpiry(pe *peer, d time.Duration) {
	if pe.extra != nil {
		pe.extra.expired = time.Time{}
	}
	pe.expiry.run = pe
	e.schedule(&pe.expiry, e.now.Add(d))
}

// expires is when pe expires (expired, for a peer its shortcuts keep).
func (pe *peer) expires() time.Time {
	if pe.extra != nil && !pe.extra.expired.IsZero() {
		return pe.extra.expired
	}
	return pe.expiry.at
}

// sinceTime is when pe came into the cache, in the clock's location. It
// is only reported, so pe keeps the wall time alone (8 B, not a
// time.Time's 24), without the monotonic reading.
func (e *Engine) sinceTime(pe *peer) time.Time {
	return time.Unix(0, pe.since).In(e.now.Location())
}

// fire implements firer: pe's expiry.
func (pe *peer) fire(e *Engine) { e.peerExpired(pe) }

func (e *Engine) peerExpired(pe *peer) {
	if e.peers.get(pe.proto) != pe {
		return
	}
	if len(pe.shortcuts()) > 0 {
		// Shortcuts keep a resolved peer alive; they expire on their own.
		if pe.extra.expired.IsZero() {
			pe.extra.expired = pe.expiry.at
		}
		e.schedule(&pe.expiry, e.now.Add(e.cfg.HoldingTime))
		return
	}
	e.removePeer(pe, "expired")
}

// removePeer deletes pe with its shortcuts, unbinds it, purges the clients
// that resolved it and reports it.
func (e *Engine) removePeer(pe *peer, reason string) {
	if e.peers.get(pe.proto) != pe {
		return
	}
	e.peers.del(pe.proto)
	e.account(pe, -1)
	e.cancel(&pe.expiry)
	e.stopPath(pe)
	for _, sc := range pe.shortcuts() {
		e.removeShortcut(sc, reason)
	}
	if pe.bound.IsValid() {
		e.unbind(pe)
	}
	if pe.nbma.IsValid() {
		e.emit(Event{Kind: EventPeerDown, Proto: pe.proto, NBMA: pe.nbma, Claimed: pe.claimed,
			Observed: pe.observed, Binding: pe.kind, Group: pe.group, Reason: reason})
	}
	if pe.extra != nil && len(pe.extra.resolvers) > 0 {
		e.purgeResolvers(pe)
	}
}

func (pe *peer) binding(lladdr netip.Addr) Binding {
	return Binding{Proto: pe.proto, NBMA: lladdr, Claimed: pe.claimed, Observed: pe.observed, Kind: pe.kind}
}

// lladdr is the GRE destination the kernel neighbor entry for pe should
// carry: the direct address once it is usable, the primary NHS (relay via
// the hub) for a resolved peer whose direct path is not proven, nothing for
// an entry only learnt from a request.
func (e *Engine) lladdr(pe *peer) netip.Addr {
	switch pe.kind {
	case KindRegistered, KindNHS:
		return pe.nbma
	case KindResolved:
		if pe.path == pathUp || e.adoptedDirect(pe) {
			return pe.nbma
		}
		if n := e.primaryNHS(); n != nil {
			return n.cfg.NBMA
		}
	}
	return netip.Addr{}
}

// rebind brings the programmed neighbor entry of pe in line with lladdr.
// It returns false when the Binder refused.
func (e *Engine) rebind(pe *peer) bool {
	want := e.lladdr(pe)
	if want == pe.bound {
		return true
	}
	if !want.IsValid() {
		e.unbind(pe)
		return true
	}
	b := pe.binding(want)
	if e.cfg.Binder != nil {
		if err := e.cfg.Binder.Bind(b); errors.Is(err, ErrBindDeferred) {
			e.deferBind(pe)
		} else if err != nil {
			e.counters.inc(cBindErrors)
			e.log.Warn("binder refused neighbor entry", zap.Stringer("proto", pe.proto),
				zap.Stringer("nbma", want), zap.Error(err))
			return false
		}
	}
	pe.bound = want
	e.emit(Event{Kind: EventBindingAdded, Proto: pe.proto, NBMA: want, Claimed: pe.claimed,
		Observed: pe.observed, Binding: pe.kind})
	return true
}

func (e *Engine) unbind(pe *peer) {
	if !pe.bound.IsValid() {
		return
	}
	b := pe.binding(pe.bound)
	if e.cfg.Binder != nil {
		e.cfg.Binder.Unbind(b)
	}
	pe.bound = netip.Addr{}
	e.emit(Event{Kind: EventBindingRemoved, Proto: pe.proto, NBMA: b.NBMA, Claimed: pe.claimed,
		Observed: pe.observed, Binding: pe.kind})
}

// negEntry is a negative cache entry: resolution of addr failed.
type negEntry struct {
	addr    netip.Addr
	reason  string
	expires time.Time
	t       *timer
}

func (e *Engine) addNegative(addr netip.Addr, reason string) {
	if n, ok := e.negative[addr]; ok {
		n.reason = reason
		n.expires = e.now.Add(e.cfg.NegativeTTL)
		e.schedule(n.t, n.expires)
		return
	}
	if len(e.negative) >= e.cfg.MaxCache {
		e.drop(DropCacheFull)
		return
	}
	n := &negEntry{addr: addr, reason: reason, expires: e.now.Add(e.cfg.NegativeTTL)}
	n.t = newTimer(func() { delete(e.negative, addr) })
	e.negative[addr] = n
	e.schedule(n.t, n.expires)
}

func (e *Engine) removeNegative(addr netip.Addr) {
	if n, ok := e.negative[addr]; ok {
		e.cancel(n.t)
		delete(e.negative, addr)
	}
}
