package kernel

import (
	"fmt"
	"net/netip"
	"sync"
	"sync/atomic"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"go.uber.org/zap"
)

// DefaultRouteProtocol marks routes installed by dmvpnd. 157 is not assigned
// in linux/rtnetlink.h, in iproute2's rt_protos, or by FRR (which uses
// 186-199 and 11): name it in /etc/iproute2/rt_protos.d/dmvpnd.conf as
// "157 dmvpnd" for readable `ip route` output.
const DefaultRouteProtocol = 157

// DefaultRouteTable is the main routing table.
const DefaultRouteTable = 254

// Config configures a Kernel. The zero value works in the caller's network
// namespace with the defaults documented on each field.
type Config struct {
	// NetNS is an open network namespace file descriptor to operate in;
	// 0 means the namespace of the calling process.
	NetNS int
	// Logger defaults to zap.NewNop().
	Logger *zap.Logger
	// Sysctl defaults to ProcSysctl{NetNS: NetNS}.
	Sysctl SysctlWriter
	// RouteProtocol marks our routes; default DefaultRouteProtocol.
	RouteProtocol int
	// RouteTable is the table for our routes; default DefaultRouteTable.
	RouteTable int
	// MissRcvBuf is the receive buffer of the neighbor event socket; 0
	// means 1 MiB (capped by net.core.rmem_max). On overflow the watcher
	// resubscribes and resyncs.
	MissRcvBuf int
}

// Kernel programs one network namespace over netlink. It implements
// Dataplane and MissWatcher; methods are safe for concurrent use.
type Kernel struct {
	cfg Config
	log *zap.Logger
	nl  *netlink.Handle

	mu     sync.Mutex
	tunnel tunnelRef // set by EnsureTunnel

	// batchMu guards batch, the netlink batch socket for neighbour and
	// tc changes (opened on first use).
	batchMu sync.Mutex
	batch   *nlBatcher

	subscribe    neighSubscribeFunc // nil: k.neighSubscribe
	resubscribes atomic.Int64
	nchanges     neighChanges // what the miss watch heard (NeighborChanges)

	// routeWatch keeps the routes LookupRoute matches against while none
	// changes (routewatch.go).
	routeWatch routeWatch

	qosMu      sync.Mutex // serializes SetQoS and QoSStats
	qos        qosState
	qosNL      qosNL // nil: nl (a simulator in unit tests)
	qosChanges atomic.Int64
}

type tunnelRef struct {
	name    string
	ifindex int
	// hostRoute is the tunnel prefix routed by EnsureTunnel (HostAddress),
	// invalid otherwise: SetRoutes neither lists, prunes nor replaces it.
	hostRoute netip.Prefix
}

var (
	_ Dataplane   = (*Kernel)(nil)
	_ MissWatcher = (*Kernel)(nil)
	_ QoS         = (*Kernel)(nil)
)

// New opens a netlink handle in the configured namespace.
func New(cfg Config) (*Kernel, error) {
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	if cfg.Sysctl == nil {
		cfg.Sysctl = ProcSysctl{NetNS: cfg.NetNS}
	}
	if cfg.RouteProtocol == 0 {
		cfg.RouteProtocol = DefaultRouteProtocol
	}
	if cfg.RouteProtocol < 0 || cfg.RouteProtocol > 255 {
		return nil, fmt.Errorf("kernel: route protocol %d out of range 1-255", cfg.RouteProtocol)
	}
	if cfg.RouteTable == 0 {
		cfg.RouteTable = DefaultRouteTable
	}
	if cfg.MissRcvBuf == 0 {
		cfg.MissRcvBuf = defaultMissRcvBuf
	}
	var (
		h   *netlink.Handle
		err error
	)
	if cfg.NetNS > 0 {
		h, err = netlink.NewHandleAt(netns.NsHandle(cfg.NetNS))
	} else {
		h, err = netlink.NewHandle()
	}
	if err != nil {
		return nil, fmt.Errorf("kernel: open netlink handle: %w", err)
	}
	return &Kernel{cfg: cfg, log: cfg.Logger, nl: h}, nil
}

// Close releases the netlink handle and the batch socket. Kernel state is left in place so that a
// restarted daemon adopts it.
func (k *Kernel) Close() error {
	k.routeWatch.close()
	k.nl.Close()
	k.batchMu.Lock()
	defer k.batchMu.Unlock()
	if k.batch != nil {
		_ = k.batch.conn.close()
		k.batch = nil
	}
	return nil
}

// Resubscribes counts how often the miss watcher had to resubscribe.
func (k *Kernel) Resubscribes() int64 { return k.resubscribes.Load() }

func (k *Kernel) currentTunnel() (tunnelRef, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.tunnel.ifindex == 0 {
		return tunnelRef{}, ErrNoTunnel
	}
	return k.tunnel, nil
}
