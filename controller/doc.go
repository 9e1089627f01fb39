// Package controller wires dmvpnd's parts together: the NHRP engine
// (nhrp/engine), the kernel dataplane (kernel), IPsec through strongSwan
// (ipsec) and BGP (routing).
//
// The loop owns the engine and the desired state: one owner, run by two
// goroutines that hold its lock in turn (loop.go). The loop goroutine
// takes everything but NHRP packets through channels: neighbor misses, hub
// hairpin notifications, IPsec events, BGP best paths, timers and control
// API requests. The packet reader hands the engine the batches it reads
// from the tunnel's packet socket itself, under the same lock, rather than
// waking the loop goroutine per batch (a thread wake-up per packet when
// spokes refresh one at a time). The loop derives the
// desired state (neighbors, routes, IPsec peers) from the engine's events and
// reconciles each outside system level-triggered: the whole desired set is
// pushed, errors are retried with capped backoff, and a periodic full resync
// repairs whatever changed behind dmvpnd's back.
//
// NHRP packets reach the engine in batches (up to 128, all that the socket
// had queued, read with recvmmsg). The engine handles the batch while the
// registrations' neighbor writes are queued (engine.ErrBindDeferred); then
// the queue is written in one netlink transaction, the engine learns each
// entry's outcome (CommitBindings) and answers the registrations that
// waited, code 5 for a refused entry, and everything the batch produced is
// sent with one sendmmsg (batchio.go). The periodic resync dumps the
// neighbor table once and writes only the permanent entries that differ,
// and skips the dump while the kernel reported no change to the tunnel's
// entries since the last one found them as wanted (resync.go).
//
// A packet can reach the engine before the IPsec event of the SA that
// carried it (charon installs the SA, the peer sends at once, the reader
// does not wait for the loop goroutine): the engine holds it until
// SetProtections proves its NBMA, at most 2 s (nhrp/engine, "Trust").
// Before every packet the loop hands the engine the IPsec manager's
// current snapshot when it changed (syncProtections), so a held packet is
// released by the SA's event or by the next packet from anyone, whichever
// comes first.
//
// Flows:
//   - NHRP peer wanted (registration, NHS, resolved peer) -> IPsec peer
//     wanted -> SA initiated (where this side initiates);
//   - neighbor miss -> resolution; hub hairpin -> traffic indication;
//   - shortcut usable -> shortcut route; shortcut down -> route removed;
//   - BGP best paths -> routes (merged with shortcuts; shortcuts win by
//     being more specific or by a lower metric);
//   - registration lost / peer down -> its state is withdrawn.
//
// # Multicast replication
//
// With nhrp.multicast selecting targets, the kernel's capture (a table of
// its own, NFLOG group 2) hands every multicast packet this node sends
// into the tunnel to a replicator goroutine, which sends one GRE copy per
// target through kernel.MulticastConn. The targets are derived on the loop
// from the engine's own snapshots, never from a second view of the peers:
// registered spokes (dynamic) and NHSs (nhs) at their binding's GRE
// destination (the neighbor entry's NBMA, the claimed address of a NATed
// spoke behind a tunnel-mode SA), plus static NBMAs; with IPsec only the
// NBMAs engine.Proven vouches for. Engine events, protection changes and the
// periodic resync mark the set dirty; it is recomputed at most every
// 500 ms and published to the replicator as an immutable slice, which the
// replicator picks up at its next packet (keeping each remaining peer's
// token bucket and counters). A send may wait for socket buffer space, so
// it never runs on the loop. Each peer has a token bucket (nhrp.multicast
// rate and burst); counters appear in dmvpnctl show counters
// (multicast_*, per peer multicast_copies_to_NBMA) and as
// dmvpnd_multicast_packets_total{result}.
//
// # Neighbor entries in use
//
// Resolved peers' entries are written REACHABLE. While traffic uses one, the
// kernel ages it to PROBE and asks userspace (a miss); without an answer it
// marks the entry FAILED a second later and drops the flow. Every miss for
// an entry the engine has bound is therefore answered by writing the entry
// again (same address: a no-op for the flow) and reported to the engine as
// "in use", which keeps the shortcut refreshed (FRR's nhrpd does the same).
//
// # Restart: adopting the kernel state
//
// dmvpnd leaves the kernel state in place when it stops, even on kill -9,
// and a new run adopts it so that established traffic keeps flowing:
//
//   - the tunnel is adopted by EnsureTunnel (same ifindex; fixed in place
//     if its parameters differ, never re-created);
//   - before the first route push the controller lists the routes of its
//     own protocol and the tunnel's neighbor entries (adopt.go). Nothing
//     is pushed until this listing succeeds;
//   - adopted routes stay in the desired set until their owner re-learns
//     them: a shortcut route (metric shortcutMetric) until the engine
//     reports the same shortcut up (the route is then the engine's, and
//     unchanged, so the kernel sees no operation); a BGP route until BGP
//     delivers the same destination and metric;
//   - as soon as an NHS is up, each adopted shortcut's prefix is resolved
//     again. Its adopted neighbor entry was handed to the engine
//     (engine.Adopt): when the resolution names the same peer at the same
//     NBMA address, the entry stays on that direct address while the path
//     is probed, instead of being pointed at the hub until the probe is
//     answered. Only a failed probe moves it to the hub, as for any path;
//   - while the engine does not know an adopted entry yet, kernel misses
//     for it are answered by writing it again (so it does not fail) and are
//     not passed to the engine (which would resolve the address, or cache
//     it as unresolvable before registration);
//   - what is not re-learnt is removed, bounded in time: an adopted
//     shortcut as soon as the engine reports its path down or its
//     resolution fails, every other adopted route and dynamic entry after
//     adoptGrace (2 minutes), permanent entries (NHS, registrations) that
//     the engine has not bound after the holding time (by then every live
//     client has registered again). Only our own routes (protocol number)
//     and entries on our tunnel are ever touched;
//   - kernel Replace operations are idempotent and identical routes are
//     not rewritten, so re-learning what is already correct produces no
//     change in the kernel: no delete, no re-add;
//   - with IPsec, charon's SAs are adopted too (charon runs on while
//     dmvpnd restarts): when the IPsec manager first connects, the dmvpn-
//     connections of peers the new run does not want yet (the shortcuts'
//     peers; the set holds at most the NHSs then) are kept with their SAs
//     for adoptGrace (ipsec.Config.AdoptGrace). A shortcut re-resolved
//     within it makes its peer wanted again: the manager takes the
//     connection over with its SA as it is (no initiation, no rekey), so
//     the ESP flow never stops. Connections still unwanted when the grace
//     ends are terminated and unloaded.
//
// The lab test e2e TestRestartKeepsShortcut kills dmvpnd with SIGKILL on a
// spoke whose shortcut carries a ping and checks that no packet is lost and
// that `ip monitor` sees neither the route nor the entry change; its ipsec
// subtest also checks that the ESP SAs (SPIs) are the same after the
// restart.
//
// Limits: if dmvpnd stays down longer than the kernel's probe interval
// (about 1 s) exactly when an in-use entry reaches PROBE, the kernel fails
// the entry before the new run can answer; traffic resumes once the new
// run has re-resolved the peer. An SA that rekeys or is deleted by the
// peer while dmvpnd is down is seen by the new run in charon's SA listing
// at connect, not as an event.
package controller
