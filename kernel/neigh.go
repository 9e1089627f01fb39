package kernel

import (
	"fmt"
	"net"
	"net/netip"
	"sort"
	"sync/atomic"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

func neighObject(addr, nbma netip.Addr, dev string) string {
	if nbma.IsValid() {
		return fmt.Sprintf("%s lladdr %s dev %s", addr, nbma, dev)
	}
	return fmt.Sprintf("%s dev %s", addr, dev)
}

// neighState picks the state written for an entry: PERMANENT never ages;
// REACHABLE ages to STALE and, when traffic still uses the entry, to PROBE,
// which (app_solicit=1, ucast_solicit=0) makes the kernel ask userspace again:
// the controller's signal that the entry is in use.
func neighState(permanent bool) NeighState {
	if permanent {
		return NeighPermanent
	}
	return NeighReachable
}

// ReplaceNeighbor implements Dataplane. A kernel refusal for lack of room
// satisfies errors.Is(err, ErrResourceExhausted).
func (k *Kernel) ReplaceNeighbor(tunnelAddr, nbma netip.Addr, permanent bool) error {
	t, err := k.currentTunnel()
	if err != nil {
		return err
	}
	obj := neighObject(tunnelAddr, nbma, t.name)
	if !tunnelAddr.Is4() || !nbma.Is4() {
		return opErr("replace neighbor", obj, fmt.Errorf("both addresses must be IPv4"))
	}
	n := &netlink.Neigh{
		LinkIndex: t.ifindex,
		Family:    unix.AF_INET,
		State:     int(neighState(permanent)),
		IP:        net.IP(tunnelAddr.AsSlice()),
		LLIPAddr:  net.IP(nbma.AsSlice()),
	}
	return opErr("replace neighbor", obj, k.nl.NeighSet(n))
}

// DeleteNeighbor implements Dataplane.
func (k *Kernel) DeleteNeighbor(tunnelAddr netip.Addr) error {
	t, err := k.currentTunnel()
	if err != nil {
		return err
	}
	obj := neighObject(tunnelAddr, netip.Addr{}, t.name)
	if !tunnelAddr.Is4() {
		return opErr("delete neighbor", obj, fmt.Errorf("address must be IPv4"))
	}
	n := &netlink.Neigh{LinkIndex: t.ifindex, Family: unix.AF_INET, IP: net.IP(tunnelAddr.AsSlice())}
	if err := k.nl.NeighDel(n); err != nil && !isNotExist(err) {
		return opErr("delete neighbor", obj, err)
	}
	return nil
}

// ListNeighbors implements Dataplane; entries are sorted by address.
func (k *Kernel) ListNeighbors() ([]Neighbor, error) {
	t, err := k.currentTunnel()
	if err != nil {
		return nil, err
	}
	return k.listNeighbors(t)
}

func (k *Kernel) listNeighbors(t tunnelRef) ([]Neighbor, error) {
	ns, err := k.nl.NeighList(t.ifindex, unix.AF_INET)
	if err != nil {
		return nil, opErr("list neighbors", "dev "+t.name, err)
	}
	out := make([]Neighbor, 0, len(ns))
	for _, n := range ns {
		nb, ok := neighborFromNetlink(n)
		if !ok {
			continue
		}
		out = append(out, nb)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Addr.Less(out[j].Addr) })
	return out, nil
}

func neighborFromNetlink(n netlink.Neigh) (Neighbor, bool) {
	addr := addrFromIP(n.IP)
	if !addr.Is4() {
		return Neighbor{}, false
	}
	nb := Neighbor{Addr: addr, State: NeighState(n.State)}
	switch {
	case len(n.LLIPAddr) == 4:
		nb.NBMA = addrFromIP(n.LLIPAddr)
	case len(n.HardwareAddr) == 4:
		nb.NBMA = netip.AddrFrom4([4]byte(n.HardwareAddr))
	}
	return nb, true
}

// NeighborChangeCounter is implemented by a dataplane that hears the
// kernel's neighbor notifications (the miss watch, WatchMisses): the
// periodic resync skips its dump of the table while nothing on the
// tunnel changed since the last dump that found it as wanted.
type NeighborChangeCounter interface {
	// NeighborChanges returns a generation that moves whenever the kernel
	// reports a change to one of the tunnel's neighbor entries that the
	// dataplane's batch writes (ApplyNeighbors) did not make, or when
	// such a report may have been lost (the watch restarted); ok is false
	// while no watch runs: then nothing can be concluded from it.
	NeighborChanges() (gen uint64, ok bool)
}

var _ NeighborChangeCounter = (*Kernel)(nil)

// neighChanges is the generation behind NeighborChanges, moved by the
// miss watch's goroutine and read by the controller's.
type neighChanges struct {
	gen      atomic.Uint64
	watching atomic.Bool
}

// watch marks the watch running (a fresh subscription: what happened
// before it is unknown) or stopped.
func (n *neighChanges) watch(on bool) {
	n.gen.Add(1)
	n.watching.Store(on)
}

// note counts a notification about an entry of the tunnel ifindex
// (RTM_NEWNEIGH, RTM_DELNEIGH): every change the watch hears, which is
// every change but those of the batch socket (neighSubscribe).
func (n *neighChanges) note(u netlink.NeighUpdate, ifindex int) {
	if u.Neigh.LinkIndex == ifindex && (u.Type == unix.RTM_NEWNEIGH || u.Type == unix.RTM_DELNEIGH) {
		n.gen.Add(1)
	}
}

// NeighborChanges implements NeighborChangeCounter.
func (k *Kernel) NeighborChanges() (uint64, bool) {
	// Read watching first: a watch that stops after it moves gen.
	on := k.nchanges.watching.Load()
	return k.nchanges.gen.Load(), on
}
