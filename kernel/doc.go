// Package kernel is dmvpnd's only contact with the Linux network stack.
//
// It takes desired state from the controller and makes the kernel match it,
// idempotently, and reports what the kernel tells it:
//
//   - an ip_gre multipoint tunnel (no remote; the outer destination comes from
//     the neighbor entry's 4-byte lladdr), created or adopted (EnsureTunnel),
//     its address with the tunnel prefix or, with TunnelConfig.HostAddress,
//     as a /32 beside a tunnel prefix route of ours (tunnel_host.go; a
//     switch either way keeps the prefix routed);
//   - neighbor entries tunnel address -> NBMA address (ReplaceNeighbor,
//     DeleteNeighbor, ListNeighbors): dynamic entries are written REACHABLE so
//     that the kernel asks again (RTM_GETNEIGH, state PROBE) while traffic
//     still uses them; hub entries are PERMANENT;
//   - neighbor misses (WatchMisses): RTM_GETNEIGH for INCOMPLETE and PROBE
//     entries, made possible by app_solicit=1, ucast_solicit=0,
//     mcast_solicit=0 on the tunnel;
//   - routes marked with a dedicated route protocol number (SetRoutes) so that
//     a restart removes only what dmvpnd created;
//   - the NHRP packet socket (ListenNHRP): AF_PACKET, SOCK_DGRAM, protocol
//     0x2001, whose link-layer address is the 4-byte NBMA address;
//   - the hub hairpin trigger (HairpinTrap: Install, Remove, Hairpins): an
//     nftables table of our own, replaced and removed in one netlink batch,
//     logging tunnel-to-tunnel forwarded packets to NFLOG with a per-flow
//     rate limit (dynamic set keyed on saddr . daddr), delivered at once
//     (queue threshold 1);
//   - multicast replication (MulticastTrap, MulticastConn): multicast that
//     this node sends into the tunnel to 224.0.0.0/24 (and configured
//     groups) is logged whole to its own NFLOG group and dropped in an
//     output chain of its own table (the sender sees EPERM; ospfd logs the
//     failed sendmsg and carries on), and userspace sends one copy per peer
//     through an AF_PACKET socket on the tunnel with protocol ETH_P_IP and
//     the peer's NBMA address as link-layer destination, so the kernel adds
//     GRE and the peer's xfrm policy encrypts it exactly like NHRP. Copies
//     go out with sendmmsg (1024 per call, no allocation per copy). A
//     captured UDP packet's checksum is completed first: the tunnel offers
//     checksum offload, so the logged packet may carry only the
//     pseudo-header sum;
//   - neighbor table sizing for large hubs (SizeNeighborTable) and typed
//     refusals (errors.Is(err, ErrResourceExhausted));
//   - the cleartext GRE guard (GREGuard) that drops GRE no IPsec SA
//     protects, with its drop counters;
//   - per-tunnel QoS (SetQoS, QoSStats; qos.go): an HTB shaper per peer on
//     the underlay egress device, classes by outer DSCP (the tunnel sets
//     "tos inherit"), u32 filters hashed on the peer's GRE destination,
//     installed in netlink batches (the neighbour batch socket; a refused
//     object fails only its peer), adopted without change after a restart.
//
// Every kernel error is an *OpError naming the operation and the object:
// "kernel: replace neighbor 10.0.0.2 lladdr 198.51.100.2 dev gre1: ...".
// Config.NetNS lets one process drive another network namespace (the
// privileged tests create their own).
//
// docs/linux.md describes the kernel facts this package relies on and
// docs/pitfalls.md the netlink and nftables quirks it works around. kernel/kerneltest holds an in-memory fake of the
// interfaces declared in api.go.
package kernel
