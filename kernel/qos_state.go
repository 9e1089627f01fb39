package kernel

import (
	"net"
	"net/netip"
	"slices"
	"sort"

	"github.com/vishvananda/netlink"
)

// qosNL is what the QoS code asks of the kernel: dumps and route lookups
// (*netlink.Handle's), and batches of changes (qos_batch.go). A simulator
// stands in for it in unit tests.
type qosNL interface {
	QdiscList(link netlink.Link) ([]netlink.Qdisc, error)
	ClassList(link netlink.Link, parent uint32) ([]netlink.Class, error)
	FilterList(link netlink.Link, parent uint32) ([]netlink.Filter, error)
	RouteGet(dst net.IP) ([]netlink.Route, error)
	// ApplyQoS applies ops in order, carrying on after a refused one, and
	// returns the kernel's answer to each (nil: done).
	ApplyQoS(ops []qosOp) []error
}

// qosState is what SetQoS believes is installed: read from the kernel once
// (the first call after New, and again after any failed netlink change) and
// kept up to date by every change it makes.
type qosState struct {
	loaded  bool
	devs    map[int]*qosDev
	targets map[netip.Addr]*qosInstalled
}

// qosDev is our tree on one egress device.
type qosDev struct {
	ifindex int
	slots   map[int]netip.Addr         // slot -> its target
	lowFree int                        // every slot below is in use
	nodes   map[uint32]map[uint32]bool // bucket prefix -> node ids in use
	l2      map[uint32]bool            // second-level tables present (htid)
	skel    qosSkeleton
	// stale objects found in the dump that no target accounts for.
	staleFilters []uint32
	staleClasses []uint32 // leaves before their parents
}

// qosSkeleton records which fixed parts of a device's tree are in place.
type qosSkeleton struct {
	class, leaf, leafWrong, l1, rootLink bool
}

func (s qosSkeleton) complete() bool { return s.class && s.leaf && s.l1 && s.rootLink }

// qosInstalled is one target in the kernel.
type qosInstalled struct {
	dst     netip.Addr
	policy  string
	names   []string // leaf class names (from the policy); nil when adopted
	ifindex int
	slot    int
	objs    qosObjects
	nodes   []uint32 // node id of each entry in objs.entries
}

func newQoSDev(ifindex int) *qosDev {
	return &qosDev{ifindex: ifindex, slots: map[int]netip.Addr{}, nodes: map[uint32]map[uint32]bool{}, l2: map[uint32]bool{}}
}

// freeSlot returns the lowest free slot. Slots below d.lowFree are all in
// use, so installing n targets costs O(n), not O(n^2).
func (d *qosDev) freeSlot() (int, bool) {
	for s := d.lowFree; s < QoSMaxTargets; s++ {
		if _, used := d.slots[s]; !used {
			d.lowFree = s
			return s, true
		}
	}
	return 0, false
}

func (d *qosDev) releaseSlot(s int) {
	delete(d.slots, s)
	d.lowFree = min(d.lowFree, s)
}

// allocNodes returns n free node ids of bucket, ascending.
func (d *qosDev) allocNodes(bucket uint32, n int) ([]uint32, bool) {
	used := d.nodes[bucket]
	var out []uint32
	for id := uint32(1); id <= qosMaxNode && len(out) < n; id++ {
		if !used[id] {
			out = append(out, id)
		}
	}
	return out, len(out) == n
}

func (d *qosDev) markNodes(bucket uint32, ids []uint32, used bool) {
	m := d.nodes[bucket]
	if m == nil {
		m = map[uint32]bool{}
		d.nodes[bucket] = m
	}
	for _, id := range ids {
		if used {
			m[id] = true
		} else {
			delete(m, id)
		}
	}
}

// qosDump is one device's tree as dumped.
type qosDump struct {
	ifindex int
	classes []netlink.Class
	qdiscs  []netlink.Qdisc
	filters []netlink.Filter
}

// adoptDump rebuilds a device's state and its targets from a dump. A
// target is installed when its catch-all entry exists (install order puts
// entries last, catch-all last of all), its entries all lead into one slot
// and the catch-all has the highest node id; everything else under our root
// is stale and removed by the next SetQoS.
func adoptDump(dump qosDump) (*qosDev, []*qosInstalled) {
	d := newQoSDev(dump.ifindex)
	classes := map[uint32]htbClassSpec{}
	for _, c := range dump.classes {
		h, ok := c.(*netlink.HtbClass)
		if !ok {
			continue
		}
		a := h.Attrs()
		parent := a.Parent
		if parent == netlink.HANDLE_ROOT {
			parent = qosRootHandle // HTB reports classes at its root with parent TC_H_ROOT
		}
		classes[a.Handle] = htbClassSpec{
			handle: a.Handle, parent: parent, rate: h.Rate, ceil: h.Ceil,
			buffer: h.Buffer, cbuffer: h.Cbuffer, quantum: h.Quantum, prio: h.Prio,
		}
	}
	leaves := map[uint32]fqSpec{} // by parent class
	for _, q := range dump.qdiscs {
		if f, ok := q.(*netlink.FqCodel); ok {
			a := f.Attrs()
			leaves[a.Parent] = fqSpec{handle: a.Handle, parent: a.Parent, limit: f.Limit, flows: f.Flows, memLimit: f.MemoryLimit}
		}
	}
	type node struct {
		id uint32
		e  qosEntry
	}
	byDst := map[netip.Addr][]node{}
	for _, f := range dump.filters {
		u, ok := f.(*netlink.U32)
		if !ok || u.Attrs().Priority != qosFilterPrio {
			continue
		}
		h := u.Attrs().Handle
		htid := h >> 20
		if h == 0 {
			// The u32 instance itself, which the kernel dumps without options
			// (the library drops it today): deleting handle 0 would delete
			// every node.
			continue
		}
		// The library drops hash tables from dumps (they carry no selector):
		// a table is known to exist when a link names it.
		switch {
		case u.Divisor != 0:
			continue
		case u.Link == qosHTHandle(qosL1HT) && htid == qosRootHT:
			d.skel.rootLink, d.skel.l1 = true, true
			continue
		case u.Link != 0 && htid == qosL1HT:
			d.l2[u.Link>>20] = true
			d.skel.l1 = true
			continue
		}
		dst, e, ok := parseQoSEntry(u)
		if !ok || h&^qosMaxNode != qosBucket(dst) {
			if htid != qosRootHT && htid != qosL1HT {
				d.staleFilters = append(d.staleFilters, h)
				d.markNodes(h&^qosMaxNode, []uint32{h & qosMaxNode}, true)
			}
			continue
		}
		d.markNodes(h&^qosMaxNode, []uint32{h & qosMaxNode}, true)
		byDst[dst] = append(byDst[dst], node{id: h & qosMaxNode, e: e})
	}
	uc, ul := unshapedObjects()
	d.skel.class = classes[qosUnshaped] == uc
	have, ok := leaves[qosUnshaped]
	d.skel.leaf = ok && have == ul
	d.skel.leafWrong = ok && have != ul

	var targets []*qosInstalled
	dsts := make([]netip.Addr, 0, len(byDst))
	for dst := range byDst {
		dsts = append(dsts, dst)
	}
	slices.SortFunc(dsts, netip.Addr.Compare)
	for _, dst := range dsts {
		ns := byDst[dst]
		sort.Slice(ns, func(i, j int) bool { return ns[i].id < ns[j].id })
		slot, _, ok := qosSlotOf(ns[0].e.classid & 0xffff)
		last := ns[len(ns)-1].e
		for _, n := range ns {
			s, off, in := qosSlotOf(n.e.classid & 0xffff)
			ok = ok && in && s == slot && off > 0 && n.e.classid>>16 == qosRootMajor
			ok = ok && (n.e.dscp >= 0 || n == ns[len(ns)-1])
		}
		_, taken := d.slots[slot]
		if !ok || last.dscp != -1 || taken {
			for _, n := range ns {
				d.staleFilters = append(d.staleFilters, qosBucket(dst)|n.id)
			}
			continue
		}
		t := &qosInstalled{dst: dst, ifindex: dump.ifindex, slot: slot}
		base := qosRootHandle | qosSlotBase(slot)
		for off := uint32(0); off < qosSlotWidth; off++ {
			c, ok := classes[base+off]
			if !ok {
				continue
			}
			t.objs.classes = append(t.objs.classes, c)
			if l, ok := leaves[base+off]; ok && off > 0 {
				t.objs.leaves = append(t.objs.leaves, l)
			}
		}
		for _, n := range ns {
			t.objs.entries = append(t.objs.entries, n.e)
			t.nodes = append(t.nodes, n.id)
		}
		d.slots[slot] = dst
		targets = append(targets, t)
	}
	// Classes in no claimed slot: leaves first, then their parents.
	var stale []uint32
	for h := range classes {
		slot, _, ok := qosSlotOf(h & 0xffff)
		if _, claimed := d.slots[slot]; ok && !claimed && h>>16 == qosRootMajor {
			stale = append(stale, h)
		}
	}
	slices.SortFunc(stale, func(a, b uint32) int {
		_, oa, _ := qosSlotOf(a & 0xffff)
		_, ob, _ := qosSlotOf(b & 0xffff)
		if (oa == 0) != (ob == 0) {
			if oa == 0 {
				return 1
			}
			return -1
		}
		return int(a) - int(b)
	})
	d.staleClasses = stale
	return d, targets
}
