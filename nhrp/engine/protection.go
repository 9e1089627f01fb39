package engine

import (
	"net/netip"
	"slices"

	"go.uber.org/zap"
)

// Protection is one established IPsec SA as the engine needs it: proof
// that GRE from and to NBMA is exchanged with the holder of Identity.
// The controller passes the whole set to SetProtections whenever it
// changes.
type Protection struct {
	// NBMA is the GRE address the SA carries: in transport mode the peer's
	// address; in tunnel mode behind NAT the SA's inner address, which is
	// the peer's claimed (private) NBMA.
	NBMA netip.Addr
	// Outer is the post-NAT address the SA comes from (tunnel mode behind
	// NAT); zero (or NBMA) otherwise.
	Outer netip.Addr
	// Inner, when valid and not NBMA, is the SA's inner address while NBMA
	// is a local alias for it: another SA (another post-NAT address)
	// already uses the inner address as its GRE address, and the kernel
	// steers GRE to and from this SA by the alias (docs/strongswan.md,
	// "Two spokes behind different NATs with the same private address").
	// The peer's claimed NBMA must then be Inner; the alias is only where
	// its GRE goes and never leaves this node in an NHRP packet.
	Inner netip.Addr
	// Identity is the peer's IKE identity. With Config.IPsec, a peer's
	// registrations are owned by its identity.
	Identity string
	// Bound optionally lists the tunnel addresses the identity may
	// register (for instance the IP SANs of its certificate); nil means no
	// binding, a non-nil empty slice binds the identity to no address (it
	// may register none). Protections of one identity contribute the union.
	Bound []netip.Addr
}

// proof is what the protection table knows about one NBMA address.
type proof struct {
	outer     netip.Addr // zero when not behind NAT
	inner     netip.Addr // zero unless the NBMA is an alias for it
	identity  string
	bound     []netip.Addr
	ambiguous bool // two SAs claim the NBMA: neither proves it
}

// SetProtections replaces the set of established SAs. With Config.IPsec
// the engine then takes NHRP only from an NBMA that exactly one SA proves
// (else drop_untrusted, or drop_ambiguous_sa when SAs of different
// identities or outer addresses claim it), sends only to such an NBMA
// (else drop_send_no_sa), and takes a peer's post-NAT address from its SA,
// never from an NHRP claim.
//
// Two SAs with the same NBMA and different identities or outer addresses
// prove nothing: after decryption the engine cannot tell which one a
// packet came through. This defeats a key holder that negotiates a
// tunnel-mode SA whose inner address is another spoke's NBMA: while the
// victim's own SA is up, the address is ambiguous and both are refused
// rather than the victim hijacked (docs/security.md).
//
// For every NBMA that becomes proven, the packets received from it before
// its SA was reported and held since (Config.IPsec, see HandlePacket) are
// handled first, in arrival order; those held from an NBMA that becomes
// ambiguous are dropped (drop_ambiguous_sa). Then (with or without
// Config.IPsec) what waited for the NBMA is sent at once instead of at its
// next backed-off retry:
//   - an unanswered Registration Request to the NHS at that NBMA is resent
//     and its backoff restarts; a server that refused us, or one we are
//     registered with, is left alone;
//   - the direct path to a resolved peer at that NBMA that is not
//     confirmed yet is probed now: a probe in flight (lost) is replaced, a
//     path that gave up (down) is retried.
//
// Each call sends at most one packet to each such NHS or peer, and an
// unchanged set sends nothing, so repeated calls cannot become a storm.
func (e *Engine) SetProtections(ps []Protection) {
	e.now = e.cfg.Clock.Now()
	next := make(map[netip.Addr]*proof, len(ps))
	for _, p := range ps {
		if !p.NBMA.IsValid() {
			continue
		}
		outer, inner := p.Outer, p.Inner
		if outer == p.NBMA {
			outer = netip.Addr{}
		}
		if inner == p.NBMA {
			inner = netip.Addr{}
		}
		if pr := next[p.NBMA]; pr != nil {
			if pr.identity != p.Identity || pr.outer != outer || pr.inner != inner {
				pr.ambiguous = true
			}
			pr.bound = appendBound(pr.bound, p.Bound)
			continue
		}
		next[p.NBMA] = &proof{outer: outer, inner: inner, identity: p.Identity, bound: appendBound(nil, p.Bound)}
	}
	var up, ambiguous []netip.Addr
	for a, pr := range next {
		if pr.ambiguous {
			if old := e.prot[a]; old == nil || !old.ambiguous {
				e.log.Warn("two IPsec SAs claim one NBMA address: neither proves it", zap.Stringer("nbma", a))
			}
			ambiguous = append(ambiguous, a)
			continue
		}
		if old := e.prot[a]; old == nil || old.ambiguous || old.identity != pr.identity || old.outer != pr.outer || old.inner != pr.inner {
			up = append(up, a)
		}
	}
	e.prot = next
	for _, a := range ambiguous {
		e.dropWaiting(a, DropAmbiguousSA)
	}
	slices.SortFunc(up, netip.Addr.Compare)
	for _, a := range up {
		e.releaseWaiting(a, next[a])
		e.resendTo(a)
	}
}

// appendBound adds src to dst; a non-nil src (even empty: bound to no
// address) makes the result non-nil.
func appendBound(dst, src []netip.Addr) []netip.Addr {
	if src != nil && dst == nil {
		dst = make([]netip.Addr, 0, len(src))
	}
	for _, a := range src {
		if !slices.Contains(dst, a) {
			dst = append(dst, a)
		}
	}
	return dst
}

// proven returns the SA proof for nbma, or the reason there is none.
func (e *Engine) proven(nbma netip.Addr) (*proof, DropReason) {
	pr := e.prot[nbma]
	switch {
	case pr == nil:
		return nil, DropUntrusted
	case pr.ambiguous:
		return nil, DropAmbiguousSA
	}
	return pr, 0
}

// ownerAddr is the address that, with the identity, names the peer whose
// SA proves nbma (ownerKey): none when a certificate binding proves the
// identity (Bound: the identity alone is the peer, wherever it comes
// from); else the SA's post-NAT address behind NAT, or nbma itself.
func (pr *proof) ownerAddr(nbma netip.Addr) netip.Addr {
	switch {
	case pr.bound != nil:
		return netip.Addr{}
	case pr.outer.IsValid():
		return pr.outer
	}
	return nbma
}

// ownerProven reports whether an SA still proves the peer o names: one
// that is not ambiguous, of o's identity and owner address.
func (e *Engine) ownerProven(o ownerKey) bool {
	for nbma, pr := range e.prot {
		if !pr.ambiguous && pr.identity == o.identity && pr.ownerAddr(nbma) == o.addr {
			return true
		}
	}
	return false
}

// resendTo sends at once what waited for an SA with nbma.
func (e *Engine) resendTo(nbma netip.Addr) {
	for _, n := range e.nhss {
		if !n.wanted || n.pkt == nil || n.state == NHSUp || n.cfg.NBMA != nbma {
			continue
		}
		e.cancel(n.timer)
		n.backoff = e.cfg.RetryMin
		n.tries++
		e.write(n.pkt, n.cfg.NBMA)
		e.after(n.timer, n.backoff)
	}
	var peers []*peer
	for pe := range e.peers.all() {
		if pe.nbma == nbma && pe.kind == KindResolved && pe.pathCtl() != nil &&
			(pe.path == pathValidating || pe.path == pathDown) {
			peers = append(peers, pe)
		}
	}
	slices.SortFunc(peers, func(a, b *peer) int { return a.proto.Compare(b.proto) })
	for _, pe := range peers {
		c := pe.pathCtl()
		if pe.path == pathDown {
			e.cancel(c.t)
			e.pathTimer(pe)
			continue
		}
		if c.probe != nil {
			e.finishPending(c.probe)
			c.probe = nil
		}
		e.sendProbe(pe)
	}
}

// Proven reports whether NHRP may be exchanged with nbma: without
// Config.IPsec always, with it when exactly one SA proves the address.
func (e *Engine) Proven(nbma netip.Addr) bool {
	if !e.cfg.IPsec {
		return true
	}
	pr, _ := e.proven(nbma)
	return pr != nil
}
