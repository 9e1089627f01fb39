// Package engine is dmvpnd's NHRP protocol engine (RFC 2332 with the
// Cisco/FRR DMVPN extensions of draft-detienne-dmvpn-01): the NHC (spoke)
// and NHS (hub) roles, Phase 1/2/3 resolution, purge, error indications,
// the Cisco NAT extension, cleartext authentication and the trust model
// that decides whose claims it believes. It decides what to
// register, answer, forward and cache, and tells the controller which
// peers, neighbor entries and shortcut routes exist. It uses package nhrp
// for the wire format and contains no OS code (a test checks its
// dependency closure).
//
// # Concurrency and time
//
// The engine is not internally concurrent and starts no goroutines. The
// controller owns one goroutine per tunnel and serializes every call:
//
//	HandlePacket(from, b)        an NHRP packet from the tunnel
//	SetProtections(ps)           the whole set of established IPsec SAs
//	NeighborMiss(dst)            the kernel wants (or still uses) dst's lladdr
//	Hairpin(pkt)                 hub: a packet hairpinned on the tunnel (NFLOG)
//	Resolve(dst), Deregister()   operator / shutdown actions
//	Tick()                       when NextDeadline() has passed
//
// Time comes only from Config.Clock. Timers are kept in one heap, so
// NextDeadline is O(1) and every schedule O(log n); tests drive a fake
// clock (package nhrpsim) and never sleep.
//
// # Outputs
//
// Packets leave through Config.Conn (WriteTo with the GRE outer
// destination). Neighbor entries are programmed synchronously through
// Config.Binder: a registration is answered with CIE code 5 when the
// Binder refuses it. A Binder may defer the write (ErrBindDeferred) so
// that the controller writes a whole batch of packets' entries at once:
// the Registration Replies that depend on a deferred entry are held and
// sent by CommitBindings, code 5 for an entry the kernel refused.
// Everything else is reported as Events through the
// Config.Events callback, called synchronously on the caller's goroutine
// (it must not call back into the engine): peer up/down with claimed and
// observed NBMA addresses, binding added/removed, shortcut state changes
// and NHS state changes. Cache, NHSs, Shortcuts and Counters return plain
// snapshots for dmvpnctl. Route lookups go through Config.Router; unlike a
// (prefix, viaTunnel) pair it also returns the next hop, which the NHS
// needs to forward a resolution to the spoke behind a prefix.
//
// # Shortcuts (Phase 3) and the direct path
//
// A Traffic Indication makes the spoke check that it is the ingress (the
// embedded packet's source is not reached through the tunnel) and resolve
// the destination. The reply's prefix is widened to be never shorter than
// the local route that points back into the tunnel. The shortcut then goes
// through these states, reported as EventShortcut:
//
//	validating  resolved; a probe (a Resolution Request for the peer's own
//	            address sent straight to its NBMA address) is outstanding
//	up          the probe was answered: the path works both ways; the
//	            controller installs "prefix via peer" only now
//	down        ProbeTries probes in a row went unanswered (keepalive every
//	            KeepaliveInterval): traffic falls back to the hub path within
//	            seconds; retried after PathRetryMin doubling to PathRetryMax
//	hub-only    no direct path can exist (both ends behind different NATs)
//	removed     expired unused, purged, or the peer went away
//
// A direct request from the peer while the path is down triggers an
// immediate retry. While the direct path is not up, the peer's neighbor
// entry points at the hub, so Phase 2 traffic to the peer's tunnel address
// is relayed instead of lost. A shortcut is refreshed at 2/3 of its holding
// time if the peer was used since the last refresh (NeighborMiss for the
// peer's tunnel address, or a Traffic Indication for a covered
// destination), and removed at expiry otherwise (idle).
//
// # Replies travel the reverse path
//
// The egress answers to the node it got the request from; transit NHSs
// pass the reply back towards the requester (Reverse Transit record) and
// remember who resolved which registration, to purge them when it changes.
// The direct path is then proven by the requester's own probe. This keeps
// the NATed side the initiator of the direct exchange (a public node can
// not open a NAT mapping or IKE SA towards a NATed one).
//
// # NAT
//
// A client puts a Cisco NAT Address extension naming its NHS in each
// registration; an NHS that sees the packet come from another address than
// the claimed source NBMA adds a CIE {observed address, client protocol
// address} to the reply, from which the client learns its public address.
// The NHS keeps claimed and observed addresses in each binding and adds
// the observed address to resolutions it forwards (for the requester) and
// answers or relays (for the target).
//
// Several spokes behind one public address, design chosen (verified in the
// lab; docs/strongswan.md, "Spokes behind NAT"): IPsec in tunnel mode whose
// inner selectors are each spoke's claimed, private NBMA address. The GRE packets are then
// addressed to the claimed address, the tunnel-mode SA carries them to the
// NAT's public address and NAT-T port of that spoke, and two spokes behind
// one NAT have distinct SAs and distinct neighbor entries. Consequences
// for the engine (Config.IPsec):
//
//   - A binding's GRE destination (Binding.NBMA, the kernel neighbor
//     lladdr) is the address the packet came from: with IPsec that is the
//     claimed address (the inner source after decryption), and the
//     post-NAT address is the Outer of the Protection proving it, never an
//     NHRP claim.
//   - A public node addresses a NATed peer by its claimed address; the
//     controller builds the per-peer IPsec connection from the event's
//     Claimed (inner selector, identity) and Observed (remote address).
//   - Two spokes behind the same public address talk over their claimed
//     private addresses directly.
//   - Across two different NATs no direct path can be opened in either
//     direction: the shortcut stays hub-only.
//   - A public node never probes a NATed peer first (with or without
//     IPsec): its shortcut waits, reported down, until the peer's own
//     packet arrives directly, then probes at once. An unsolicited GRE
//     packet to a Linux masquerading router even leaves a conntrack entry
//     that blocks the mapping the NATed peer opens next (lab: 70 s to a
//     direct path instead of one exchange).
//
// Two spokes behind different NATs with the same private NBMA, with
// IPsec: both SAs carry that inner address. The controller hands the
// engine the first as usual and the second with an alias as NBMA (a local
// address the kernel maps to that SA) and Protection.Inner = the private
// address. The alias is the binding's GRE destination and where the
// engine's packets to that peer go; the claim check compares the claimed
// NBMA with Inner; what the engine tells others (resolution replies, the
// NAT extension) carries the claimed and post-NAT addresses, never the
// alias. A peer behind NAT is owned by its identity and its SA's post-NAT
// address, so the two cannot deregister, replace or purge each other even
// when a group PSK gives them one identity; a registration passes to the
// same identity at a new post-NAT address once no SA proves the old one
// (TestSamePrivateNBMABehindTwoNATsIPsec, TestNATOwnerMovesWhenItsSAIsGone).
//
// Without IPsec a NATed peer is addressed by its observed address, which
// works for one spoke per public address only (GRE has no ports): the
// second spoke behind one public address is the same peer and is refused
// over AddressesPerPeer.
//
// # Compatibility
//
// Received packets are taken leniently: prefix length 32 (or 0) for host
// entries, any hop count on registrations, client addresses omitted from
// CIEs (the source's are used), a NAT extension on requests, FRR's
// non-RFC codes (any non-zero CIE code is a refusal; Error Indications are
// matched by the embedded request whatever their code). Packets sent use
// the RFC values: 0xFF for host prefixes, CIE codes 4, 5, 12, 14 and Error
// codes 1, 3, 11, 15.
//
// Cleartext authentication (Config.AuthPassword) is added to every packet
// and required on every packet received, Error Indications included; a
// mismatch is dropped, counted and answered with Error Indication code 11
// (which a peer with another password cannot authenticate either). The
// password is never logged.
//
// # Trust: who may claim what
//
// docs/security.md states the attackers and what each may achieve; this
// is what the engine enforces.
//
// Protection is one level-triggered input: SetProtections gets every
// established SA as {NBMA, Outer, Identity, Bound}. An NBMA is proven when
// exactly one SA claims it; two SAs with different identities or outer
// addresses for one NBMA prove nothing (after decryption the engine cannot
// tell which one a packet came through), which defeats a key holder that
// negotiates a tunnel-mode SA whose inner address is another spoke's
// NBMA. With Config.IPsec the engine takes NHRP only from a proven NBMA
// (drop_untrusted, drop_ambiguous_sa) and sends only to one
// (drop_send_no_sa); what waited is sent when the NBMA becomes proven. A
// NAT's public address is never proven by a tunnel-mode SA behind it.
//
// An SA can carry NHRP before its event reaches SetProtections (charon
// installs it, the peer sends at once, the packet is read before the
// event), so a packet from an NBMA no SA proves is held rather than
// dropped (rx_held_for_sa): a copy, for at most 2 s, at most 4 per NBMA
// and 256 (256 KiB) in all. When SetProtections proves its NBMA, the
// NBMA's held packets are handled in arrival order (rx_released_by_sa),
// before what is resent to it; at their deadline (run by Tick), or over a
// cap, they are dropped as drop_untrusted. An ambiguous NBMA's packets are
// never held, and held ones are dropped as drop_ambiguous_sa when their
// NBMA becomes ambiguous. The hold admits nothing the engine would not
// take anyway: it cannot tell decrypted NHRP from cleartext (the kernel
// guard does), and takes both from a proven NBMA.
//
// A peer is, with IPsec, its IKE identity and the address its SA comes
// from (post-NAT behind NAT), or the identity alone when a certificate
// binding proves it (Protection.Bound); without IPsec its source NBMA
// (post-NAT). With IPsec every NBMA a registration claims (source and CIE
// client NBMA) must be the one its SA proves (CIE code 4,
// drop_claim_mismatch, an EventRefused with both addresses); nothing about
// the existing binding changes. A registered tunnel address is owned by
// the peer that registered it: only that peer refreshes, replaces or
// removes it (code 14, drop_owned_by_another_peer), until it expires or
// the operator clears it (ClearRegistration). One exception without IPsec,
// where nothing proves an NBMA anyway: a no-unique registration may be
// replaced from another NBMA (a spoke with a dynamic address, RFC 2332
// 5.2.1 and Cisco's "no ip nhrp registration unique"). A peer
// holds at most AddressesPerPeer addresses (a registration over the cap is
// refused as a whole), never the NHS's own, another configured NHS's, or
// the TunnelPrefix's network and broadcast address, only those its
// Protection.Bound lists when set, and for at most MaxHolding.
//
// Resolution: request ids come from a ChaCha8 generator seeded from
// crypto/rand. A reply, Error Indication or Purge Reply is taken only from
// the NBMA the request went to (drop_wrong_responder). A reply answered
// directly by a shortcut's peer may name only that peer, with the NBMA it
// is known by, and a prefix within the shortcut the request went through.
// A transit NHS relays a positive reply from a client only if the reply's
// client is registered here from that NBMA with the NBMA it claims, and
// its prefix lies within this NHS's route towards that client
// (drop_not_registered, drop_claim_mismatch, drop_prefix_too_wide).
// Purge Requests remove a registration only for its owner, and resolved
// entries, shortcuts and negative entries only for a configured NHS or the
// entry's own peer. Traffic Indications are taken only from a configured
// NHS (drop_not_nhs).
//
// Two spokes behind different NATs with the same private NBMA: without
// IPsec they are distinct peers (distinct source NBMAs) and neither can
// refresh, deregister or purge the other's registration. With IPsec their
// SAs have the same inner address and different outer ones, so that NBMA
// is ambiguous and neither is taken: a GRE destination must identify one
// SA, which needs distinct inner addresses (an IPsec-side decision).
//
// # Limits
//
// The cache (MaxCache, and MaxCachePerSource for entries a non-NHS source
// creates), registrations per peer (AddressesPerPeer), outstanding
// requests (MaxPending), hub flows (MaxFlows) and per-source token buckets
// (SourceRate, SourceBurst, MaxSources) are bounded. Rates count CIEs, not
// packets: a 256-CIE registration costs 256 tokens. The source table is
// kept in least-recently-used order; a new source at a full table recycles
// the least recently used bucket if it has refilled, else shares one
// overflow bucket, in O(1) (BenchmarkLimiterNewSourceFullTable). A
// bucket that has refilled is freed (two per lookup, all on Tick), so a
// hub holds buckets only for the sources still refilling, not one per
// spoke (BenchmarkHubFootprint10k). Every drop and refusal increments the counter of one DropReason ("drop_" +
// its name). Per-packet work is O(log n) in the number of registrations
// (map lookups and one heap operation); BenchmarkHubPerPacket shows it
// flat from 1,000 to 10,000 spokes.
package engine
