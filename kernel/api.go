package kernel

import (
	"context"
	"net/netip"
	"time"
)

// Dataplane is the desired-state API the controller programs. Every method
// is idempotent; Delete of a missing object is not an error.
type Dataplane interface {
	// EnsureTunnel creates or adopts the mGRE tunnel and returns its ifindex.
	// Neighbor and route methods act on the tunnel of the last successful call.
	EnsureTunnel(cfg TunnelConfig) (int, error)
	// ReplaceNeighbor maps tunnelAddr to nbma on the tunnel. permanent entries
	// never age (hub/NHS entries); others are written REACHABLE.
	ReplaceNeighbor(tunnelAddr, nbma netip.Addr, permanent bool) error
	// DeleteNeighbor removes the entry; a missing entry is not an error.
	DeleteNeighbor(tunnelAddr netip.Addr) error
	// ListNeighbors returns the tunnel's IPv4 neighbor entries.
	ListNeighbors() ([]Neighbor, error)
	// SetRoutes makes the routes owned by dmvpnd (its protocol number, its
	// table) equal desired: missing or different ones are replaced, extra
	// ones of our own are deleted, foreign routes are never touched. A route
	// that is invalid or that the kernel refuses is skipped and reported in
	// a *RouteErrors; the rest is applied all the same.
	SetRoutes(desired []Route) error
	// ListRoutes returns the routes dmvpnd owns.
	ListRoutes() ([]Route, error)
}

// QoS is the per-tunnel QoS desired-state API (qos.go).
type QoS interface {
	// SetQoS makes the installed shapers equal targets; a refused target is
	// reported in a *QoSErrors and the rest applied.
	SetQoS(policies map[string]QoSPolicy, targets []QoSTarget) error
	// QoSStats returns every installed target's counters.
	QoSStats() ([]QoSTargetStats, error)
}

// MissWatcher delivers neighbor misses on the tunnel.
type MissWatcher interface {
	// WatchMisses runs until ctx is done, then closes the channel.
	WatchMisses(ctx context.Context) (<-chan Miss, error)
}

// PacketConn is the NHRP packet socket as the nhrp package sees it: packets
// to and from NBMA addresses.
type PacketConn interface {
	ReadFrom(b []byte) (int, netip.Addr, error)
	WriteTo(b []byte, nbma netip.Addr) (int, error)
	Close() error
}

// HairpinSource delivers hub hairpin notifications (packets forwarded from the
// tunnel back into the tunnel).
type HairpinSource interface {
	// Hairpins runs until ctx is done, then closes the channel.
	Hairpins(ctx context.Context) (<-chan Hairpin, error)
}

// Miss is a neighbor miss reported by the kernel: the tunnel address for which
// traffic is waiting (INCOMPLETE) or whose entry aged while still in use
// (PROBE).
type Miss struct {
	Addr  netip.Addr
	State NeighState
}

// Hairpin is one packet seen entering and leaving the tunnel on a hub.
type Hairpin struct {
	InIfindex int
	// Packet is the start of the IPv4 packet (up to the snap length).
	Packet []byte
	// Stamp is the kernel's receive timestamp of the packet when it has
	// one (packet timestamping is on, e.g. while a capture runs), Read
	// when the trigger took it off the NFLOG socket: the latency from the
	// hairpinned packet to the traffic indication, in parts.
	Stamp, Read time.Time
}

// Neighbor is one neighbor entry on the tunnel.
type Neighbor struct {
	Addr  netip.Addr
	NBMA  netip.Addr // invalid for entries without lladdr (INCOMPLETE, FAILED)
	State NeighState
}

// Permanent reports whether the entry never ages.
func (n Neighbor) Permanent() bool { return n.State&NeighPermanent != 0 }

// Route is one route through the tunnel owned by dmvpnd.
type Route struct {
	Dst netip.Prefix
	// Via is the next hop's tunnel address; invalid means on-link.
	Via    netip.Addr
	Metric int
}

// key identifies a route in a table as the kernel does (dst, priority).
type routeKey struct {
	dst    netip.Prefix
	metric int
}

func (r Route) key() routeKey { return routeKey{dst: r.Dst.Masked(), metric: r.Metric} }
