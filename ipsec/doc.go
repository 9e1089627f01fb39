// Package ipsec protects GRE between NBMA addresses with IPsec through a
// stock (unpatched) strongSwan charon, driven over VICI with
// github.com/strongswan/govici.
//
// # Desired state
//
// The controller calls [Manager.SetPeers] with the whole set of peers it
// wants protected; the call is idempotent. [Manager.Run] keeps charon in
// line with that set:
//
//   - one responder connection "dmvpn-responder" (remote_addrs %any) accepts
//     any authenticated peer: child "gre" in transport mode with
//     local_ts = remote_ts = dynamic[gre]; with Config.NATInnerPrefixes also a
//     tunnel-mode child "gre-nat" for initiators behind NAT;
//   - one connection per peer, "dmvpn-peer-<name>", with remote_addrs = the
//     peer's NBMA address, IKEv2, child "gre". Plain peers use transport mode
//     and dynamic[gre] selectors. When either end is behind NAT the child is
//     tunnel mode with inner selectors LocalNBMA/32[gre] and the peer's
//     claimed NBMA/32[gre], and the remote IKE identity is bound to the peer
//     (transport mode cannot tell two spokes behind one NAT address apart:
//     docs/strongswan.md, "Spokes behind NAT");
//   - removed peers are terminated, then unloaded. Only connections whose
//     name starts with "dmvpn-" are ever touched, so a restarted dmvpnd
//     prunes what an earlier run left and nothing else. With
//     Config.AdoptGrace the first connection of a Run adopts them instead:
//     they keep their SAs until the desired set names them (the peer then
//     goes on with the SA it has: no initiation, no rekey) or the grace
//     ends unwanted (then they are terminated and unloaded).
//
// Stock strongSwan cannot initiate to an arbitrary address through a
// template, hence one connection per peer.
//
// A node learns that it is behind NAT from Config.BehindNAT or, failing
// that, from charon's NAT detection (nat-local on an IKE_SA): the Manager
// then reloads its per-peer connections in tunnel mode and restarts their
// SAs. The observed remote endpoint of each SA (post-NAT address and
// port) is reported so that the controller can program the post-NAT NBMA;
// several spokes behind one NAT address each keep their own SA, told
// apart by their inner (claimed) address.
//
// # Proposals
//
// Configurable (Config.IKEProposals, Config.ESPProposals). The defaults are
// AES-256 with DH groups of at least 128-bit strength, most preferred first:
// IKE aes256gcm16-prfsha384-ecp384, aes256gcm16-prfsha256-curve25519,
// aes256-sha384-modp3072; ESP aes256gcm16 with ecp384, curve25519 or
// modp3072 for PFS on rekeying. Only the defaults charon implements
// (get-algorithms) are offered: Debian's charon without
// libstrongswan-standard-plugins has neither GCM for IKE nor ECP groups,
// and then offers aes256-sha384-modp3072 for IKE and aes256gcm16-modp3072
// for ESP (ESP ciphers are the kernel's). Two nodes with different plugin
// sets still share the last proposal.
//
// # Authentication
//
// PSK: one group key loaded with load-shared (no owners, so it matches any
// identity); identities default to the NBMA addresses. The key is a
// [Secret], which redacts itself in every printer, JSON, text and zap. It
// is the project's one secret type: controller/config decodes the PSK, the
// NHRP authentication password and BGP passwords into it.
// X.509: certificate, key and CA are read from files named in the config
// and passed to charon as blobs (load-cert, load-key, and cacerts in the
// remote auth round), so a peer must present a certificate issued by that
// CA; for peers behind NAT the remote identity is additionally pinned to
// the claimed NBMA address (a certificate IP SAN).
//
// # Who initiates, and duplicate SAs
//
// [Peer.Initiate] says who brings the SA up. Respond only loads the
// connection. Initiate initiates at once (a spoke to its hub, a node
// behind NAT to anyone). InitiateTieBreak is for spoke-to-spoke shortcuts,
// where both spokes receive a traffic indication at the same moment: the
// end with the lower NBMA address initiates at once, the higher one only
// loads the connection and waits Config.FallbackDelay for an SA to appear
// before initiating itself (so a peer that never initiates still gets an
// SA). A node behind NAT always initiates; nobody initiates towards a peer
// behind NAT (its NAT would drop IKE_SA_INIT).
//
// If both ends still initiate (the fallback fired while the first attempt
// was in flight), two IKE_SAs exist. Only one end acts, so the two can
// never delete different SAs and leave none: the end with the higher NBMA
// address terminates the IKE_SAs it initiated itself. Likewise, when a
// peer retried while its slow first attempt still completed here, the
// responder keeps the newest IKE_SA (the peer's latest attempt, the one it
// holds) and terminates the others; the initiating end leaves that choice
// to the responder. Every connection also sets unique = replace, so that
// charon itself replaces an old IKE_SA when the same peer authenticates
// again (after a reboot or a charon restart); with Config.MarkNAT the
// responder connection sets unique = never instead (two spokes behind
// different NATs may assert one identity) and duplicates from one address
// are left to the rule above. Exactly one IKE_SA and one
// CHILD_SA remain; the lab tests check this against real charons.
//
// # Identity binding for peers behind NAT
//
// The responder's "gre-nat" child accepts inner addresses from
// Config.NATInnerPrefixes, which alone would let any key holder claim
// another spoke's address. The Manager terminates every such SA at once
// unless its inner address is bound to the IKE identity: the identity is
// that IP address, or a wanted peer with that claimed address expects that
// identity. Per-peer connections bind by configuration (remote id and
// remote_ts = claimed/32). With a group PSK an identity is only asserted,
// not proven (every key holder can claim any identity); the binding is
// real with X.509 certificates that carry the NBMA address as an IP SAN.
// With Config.CertifiedIdentities the identity is bound to something else
// by the caller (dmvpnd: the tunnel address, checked by the NHRP engine),
// so any inner address from NATInnerPrefixes is accepted; in every mode an
// inner address stays with the first peer (identity and post-NAT address)
// whose SA carries it, and a newer SA of another peer for it is terminated,
// unless Config.MarkNAT gives every NAT child XFRM marks of its own: then
// both stay and the caller tells them apart by their marks (ChildInfo and
// Protection carry MarkIn, MarkOut and ReqID; docs/strongswan.md, "Two
// spokes behind different NATs with the same private address").
//
// # Events, state and resilience
//
// The Manager subscribes to ike-updown, child-updown, ike-rekey and
// child-rekey on a dedicated VICI session (govici drops events when the
// buffer is full, so a periodic list-sas resync repairs any gap). Per peer
// it derives down / connecting / up, the reason of the last loss, and the
// observed remote endpoint (post-NAT address and port, NAT detected) of
// the established SA; changes are sent on [Manager.Events], and
// [Manager.State] returns a plain snapshot for dmvpnctl.
//
// When the socket drops or charon restarts, Run reconnects with capped
// exponential backoff, reloads credentials and connections and
// re-initiates wanted peers. A peer that had an established SA when charon
// was lost is initiated to once even if this end only responds to it: its
// charon still holds its IKE_SA and, while ESP flows through the kernel's
// leftover SAs, would not negotiate again until its next rekey or a DPD
// timeout (not towards a peer behind NAT; not retried). When an SA dies while its peer is wanted, the
// initiating end re-initiates at once, then with capped backoff; an
// attempt that yields no SA within Config.ConnectTimeout is terminated and
// retried (charon raises no event for a failed IKE_SA_INIT).
//
// charon's configuration can also change under a live session: strongSwan's
// `swanctl --load-all` (strongswan.service runs it at start and reload)
// unloads every connection, shared key and private key that its
// swanctl.conf does not name, dmvpnd's included. So after every
// (re)connection and every Config.VerifyInterval (30 s) the Manager lists
// charon's connections (list-conns, compared by addresses, version,
// authentication classes, children, modes and traffic selectors), shared
// keys (get-shared), private keys (get-keys) and certificates
// (list-certs), and reloads what is missing or different. Each repair is
// logged at warning and counted in State.RepairedConns and
// State.RepairedCreds (verify.go). The value of a shared key cannot be read
// back, so a key replaced under dmvpnd's id goes unnoticed.
//
// The controller should treat NHRP from a peer as trusted only while
// [State.Protected] reports an established SA for it (the kernel's
// policies already drop most unprotected GRE).
//
// strongSwan-specific names (commands, events, plugins including kdf,
// which 5.9.8 needs for IKEv2 key derivation, and paths) are kept in
// charon.go; StrongswanConf renders the strongswan.conf of a charon
// dedicated to dmvpnd (explicit plugin list, no bypass-lan, no routes): the
// one the package ships, and the tests' and the lab's. Time is the time
// package's (the tests run the Manager in testing/synctest bubbles, against
// a fake charon over in-memory pipes: Config.Dial), logs go to an injected
// zap logger.
package ipsec
