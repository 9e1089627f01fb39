package controller

import (
	"context"
	"net/netip"

	"go.uber.org/zap"

	"github.com/dmvpnd/dmvpnd/controller/metrics"
	"github.com/dmvpnd/dmvpnd/ipsec"
	"github.com/dmvpnd/dmvpnd/kernel"
	"github.com/dmvpnd/dmvpnd/nhrp/engine"
	"github.com/dmvpnd/dmvpnd/routing"
)

// Hairpins is the hub's redirect trigger (kernel.HairpinTrap).
type Hairpins interface {
	Install(ifindex int) error
	Remove() error
	Hairpins(ctx context.Context) (<-chan kernel.Hairpin, error)
}

// RouteLookup answers the engine's route lookups from the kernel's table.
type RouteLookup interface {
	LookupRoute(dst netip.Addr) (kernel.RouteMatch, bool, error)
}

// IPsec is the strongSwan side (ipsec.Manager).
type IPsec interface {
	ipsec.Protector
	Run(ctx context.Context) error
}

// BGP is the embedded speaker (routing.Speaker).
type BGP interface {
	Start(ctx context.Context) error
	Stop(ctx context.Context) error
	// StopGraceful stops so that neighbors keep our routes as stale
	// until we are back (bgp.graceful_restart); Stop withdraws them.
	StopGraceful(ctx context.Context) error
	SetPrefixes(ctx context.Context, desired []netip.Prefix) error
	// Reconfigure applies a reload's configuration (routing.Speaker:
	// neighbors, import policy, limits, password, originated prefixes);
	// unchanged sessions stay up.
	Reconfigure(ctx context.Context, cfg routing.Config) error
	Summary(ctx context.Context) ([]routing.NeighborSummary, error)
	// SetRegistered replaces the tunnel addresses registered here (it
	// must not block); SetProtected the NBMA addresses learnt from NHRP,
	// which no BGP route may cover.
	SetRegistered(addrs []netip.Addr)
	SetProtected(ctx context.Context, nbmas []netip.Prefix) error
}

// Deps are the outside systems the controller drives. Tests pass fakes
// (kernel/kerneltest, ipsec/ipsectest, ...); cmd/dmvpnd passes the real ones.
type Deps struct {
	Dataplane kernel.Dataplane
	Misses    kernel.MissWatcher
	Lookup    RouteLookup
	// Listen opens the NHRP packet socket on the tunnel.
	Listen func(ifindex int) (kernel.PacketConn, error)
	// Hairpins is the hub's redirect trigger (installed while
	// nhrp.redirect is on); nil on spokes.
	Hairpins Hairpins
	// Multicast captures multicast sent into the tunnel and ListenMulticast
	// opens the socket its copies leave through; both nil when
	// nhrp.multicast selects no target.
	Multicast       MulticastCapture
	ListenMulticast func(ifindex int) (MulticastSender, error)
	// IPsec is nil when protection is off.
	IPsec IPsec
	// QoS installs per-tunnel QoS (qos.go); nil installs none.
	QoS QoS
	// Guard drops GRE that no SA protects while IPsec is on; a run without
	// IPsec removes it. Nil skips both.
	Guard Guard
	// NATSteer steers GRE into the marked SAs of peers behind NAT while
	// IPsec is on; a run without IPsec removes it. Nil skips both.
	NATSteer NATSteer
	// NewBGP builds the BGP speaker from cfg (what the configuration
	// derives, computed once by the controller) with the controller as its
	// FIB sink; nil when BGP is off.
	NewBGP func(cfg routing.Config, sink routing.RouteSink) (BGP, error)
	// DeviceAddr reads an underlay device's IPv4 address when the config
	// names a device instead of a local NBMA address; nil when unknown.
	DeviceAddr func(name string) (netip.Addr, error)
	// SizeNeighborTable sizes the kernel's neighbor table for this many
	// peers (hubs); nil skips it. Failure is logged, not fatal: the table
	// is global and its sysctls exist only in the initial namespace.
	SizeNeighborTable func(peers int) error
	// Clock is the engine's clock (engine.Clock); the loop's timers use the
	// time package, which testing/synctest fakes.
	Clock   engine.Clock
	Log     *zap.Logger
	Metrics *metrics.Metrics
	// Version is the running build's version string, reported by Status.
	Version string
}
