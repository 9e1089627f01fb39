package engine

import (
	"net/netip"
	"time"
)

// Clock is the engine's only source of time. The controller passes a
// wall clock; tests pass a fake stepped by hand.
type Clock interface {
	Now() time.Time
}

// Conn sends NHRP packets. nbma is the GRE outer destination: the address
// the kernel puts in the outer header (sll_addr of an AF_PACKET socket on
// the tunnel device). WriteTo must not retain b after it returns.
type Conn interface {
	WriteTo(b []byte, nbma netip.Addr) error
}

// Route is the answer of a route lookup.
type Route struct {
	// Prefix is the matched route.
	Prefix netip.Prefix
	// ViaTunnel is true when the route leaves through this engine's
	// tunnel (it points back into the DMVPN cloud).
	ViaTunnel bool
	// NextHop is the tunnel (protocol) address of the next hop for a
	// route via the tunnel; zero when the destination is on-link.
	NextHop netip.Addr
}

// Router looks up the route covering dst in the node's routing table. It is
// used for the egress prefix length of resolution replies, for the Phase 3
// ingress check and for the hub's forwarding of resolution requests.
type Router interface {
	Lookup(dst netip.Addr) (Route, bool)
}

// Binder programs the kernel neighbor entry (protocol address -> GRE
// destination) for a binding. Bind is called synchronously before a
// registration is answered; an error (kernel refused, table full) turns
// the registration into CIE code 5 (insufficient resources). A Binder that
// writes many entries in one kernel transaction returns ErrBindDeferred
// instead and reports the outcome later through Engine.CommitBindings; the
// replies depending on the entry wait until then. Bind with an existing
// Proto replaces the entry. Unbind of a missing entry is not an
// error.
type Binder interface {
	Bind(b Binding) error
	Unbind(b Binding)
}
