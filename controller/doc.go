// Package controller wires dmvpnd's parts together: the NHRP engine
// (nhrp/engine), the kernel dataplane (kernel), IPsec through strongSwan
// (ipsec) and BGP (routing).
//
// One goroutine, the loop, owns the engine and the desired state. Everything
// else talks to it through channels: NHRP packets read from the tunnel's
// packet socket, neighbor misses, hub hairpin notifications, IPsec events,
// BGP best paths, timers and control API requests. The loop derives the
// desired state (neighbors, routes, IPsec peers) from the engine's events and
// reconciles each outside system level-triggered: the whole desired set is
// pushed, errors are retried with capped backoff, and a periodic full resync
// repairs whatever changed behind dmvpnd's back.
//
// Flows:
//   - NHRP peer wanted (registration, NHS, resolved peer) -> IPsec peer
//     wanted -> SA initiated (where this side initiates);
//   - neighbor miss -> resolution; hub hairpin -> traffic indication;
//   - shortcut usable -> shortcut route; shortcut down -> route removed;
//   - BGP best paths -> routes (merged with shortcuts; shortcuts win by
//     being more specific or by a lower metric);
//   - registration lost / peer down -> its state is withdrawn.
package controller
