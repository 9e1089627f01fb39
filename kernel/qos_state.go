package kernel

import (
	"cmp"
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
	slots   map[int]netip.Addr             // slot -> its target
	lowFree int                            // every slot below is in use
	nodes   map[qosNodeKey]map[uint32]bool // hash bucket -> node ids in use
	l2      map[uint32]bool                // the root's second-level tables present (htid)
	buckets map[int]qosBucketState         // what is in place of each bucket
	skel    qosSkeleton
	// legacy: the root holds classes of the previous, single-level layout
	// (a target's classes right on the root); the tree is rebuilt.
	legacy bool
	// stale objects found in the dump that no target accounts for.
	staleFilters []qosFilterRef
	staleClasses []uint32 // leaves before their parents
}

// qosBucketState records which parts of a bucket are in place: its class
// on the root, its qdisc, its table 1: and the link to it.
type qosBucketState struct{ class, qdisc, filters bool }

func (s qosBucketState) complete() bool { return s.class && s.qdisc && s.filters }

// qosNodeKey names a hash bucket of u32 nodes: the qdisc the filter is on
// and the node handle's table and bucket.
type qosNodeKey struct{ parent, prefix uint32 }

// qosFilterRef names a u32 node.
type qosFilterRef struct{ parent, handle uint32 }

// qosSkeleton records which fixed parts of a device's tree are in place.
type qosSkeleton struct {
	class, leaf, leafWrong, l1, rootLink bool
}

func (s qosSkeleton) complete() bool { return s.class && s.leaf && s.l1 && s.rootLink }

// qosInstalled is one target in the kernel.
type qosInstalled struct {
	dst      netip.Addr
	policy   string
	names    []string // leaf class names (from the policy); nil when adopted
	ifindex  int
	slot     int
	objs     qosObjects
	nodes    []uint32 // node id of each entry in objs.entries (on its bucket's qdisc)
	rootNode uint32   // node id of its entry on the root
}

// bucketParent is the handle of the qdisc t's classes and entries are on.
func (t *qosInstalled) bucketParent() uint32 { return qosBucketMajor(qosBucketOf(t.dst)) << 16 }

func newQoSDev(ifindex int) *qosDev {
	return &qosDev{ifindex: ifindex, slots: map[int]netip.Addr{}, nodes: map[qosNodeKey]map[uint32]bool{}, l2: map[uint32]bool{}, buckets: map[int]qosBucketState{}}
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
func (d *qosDev) allocNodes(bucket qosNodeKey, n int) ([]uint32, bool) {
	used := d.nodes[bucket]
	var out []uint32
	for id := uint32(1); id <= qosMaxNode && len(out) < n; id++ {
		if !used[id] {
			out = append(out, id)
		}
	}
	return out, len(out) == n
}

func (d *qosDev) markNodes(bucket qosNodeKey, ids []uint32, used bool) {
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

func (d *qosDev) markFilter(f qosFilterRef, used bool) {
	d.markNodes(qosNodeKey{f.parent, f.handle &^ qosMaxNode}, []uint32{f.handle & qosMaxNode}, used)
}

// rootKey and innerKey are the hash buckets of dst's entries.
func rootKey(dst netip.Addr) qosNodeKey { return qosNodeKey{qosRootHandle, qosBucket(dst)} }
func innerKey(dst netip.Addr) qosNodeKey {
	return qosNodeKey{qosBucketMajor(qosBucketOf(dst)) << 16, qosInnerBucket(dst)}
}

// qosDump is one device's tree as dumped: filters by the qdisc they are on
// (the root and each bucket qdisc).
type qosDump struct {
	ifindex int
	classes []netlink.Class
	qdiscs  []netlink.Qdisc
	filters map[uint32][]netlink.Filter
}

// bucketHandles are the handles of the bucket qdiscs in a device's qdisc
// dump, whose filters adoptDump needs.
func bucketHandles(qs []netlink.Qdisc) []uint32 {
	var out []uint32
	for _, q := range qs {
		a := q.Attrs()
		if b, ok := qosBucketOfMajor(a.Handle >> 16); ok && q.Type() == "htb" && a.Handle&0xffff == 0 && a.Parent == qosRootHandle|qosBucketMajor(b) {
			out = append(out, a.Handle)
		}
	}
	slices.Sort(out)
	return out
}

// adoptDump rebuilds a device's state and its targets from a dump. A
// target is installed when its entry on the root exists (install order
// puts it last) and leads to its bucket, and its entries on the bucket's
// qdisc all lead into one slot there, the catch-all last with the highest
// node id; everything else under our root is stale and removed by the next
// SetQoS. A root holding classes of the previous layout (targets' classes
// right on the root) is marked legacy and adopts nothing.
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
			parent = a.Handle & 0xffff0000 // HTB reports classes at its root with parent TC_H_ROOT
		}
		spec := htbClassSpec{
			handle: a.Handle, parent: parent, rate: h.Rate, ceil: h.Ceil,
			buffer: h.Buffer, cbuffer: h.Cbuffer, quantum: h.Quantum, prio: h.Prio,
		}
		if a.Handle>>16 == qosRootMajor && a.Handle != qosUnshaped {
			if _, bucket := qosBucketOfMajor(a.Handle & 0xffff); !bucket || parent != qosRootHandle {
				d.legacy = true
			}
		}
		classes[a.Handle] = spec
	}
	if d.legacy {
		return d, nil
	}
	leaves := map[uint32]fqSpec{} // by parent class
	for _, q := range dump.qdiscs {
		if f, ok := q.(*netlink.FqCodel); ok {
			a := f.Attrs()
			leaves[a.Parent] = fqSpec{handle: a.Handle, parent: a.Parent, limit: f.Limit, flows: f.Flows, memLimit: f.MemoryLimit}
		}
	}
	qdiscOK := map[uint32]bool{}
	for _, h := range bucketHandles(dump.qdiscs) {
		qdiscOK[h>>16] = true
	}
	type node struct {
		id uint32
		e  qosEntry
	}
	rootOf := map[netip.Addr]uint32{} // the root entry's node id
	byDst := map[netip.Addr][]node{}  // entries on the bucket's qdisc
	linked := map[uint32]bool{}       // qdiscs whose table 1: is linked from 800:
	stale := func(parent, h uint32) {
		f := qosFilterRef{parent, h}
		d.staleFilters = append(d.staleFilters, f)
		d.markFilter(f, true)
	}
	parents := make([]uint32, 0, len(dump.filters))
	for p := range dump.filters {
		parents = append(parents, p)
	}
	slices.Sort(parents)
	for _, parent := range parents {
		onRoot := parent == qosRootHandle
		for _, f := range dump.filters[parent] {
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
				linked[parent] = true
				continue
			case onRoot && u.Link != 0 && htid == qosL1HT:
				d.l2[u.Link>>20] = true
				continue
			}
			dst, e, ok := parseQoSEntry(u)
			switch {
			case !ok || htid == qosRootHT:
				if htid != qosRootHT && (!onRoot || htid != qosL1HT) {
					stale(parent, h)
				}
			case onRoot && h&^qosMaxNode == qosBucket(dst) && e.dscp < 0 && e.classid == qosRootHandle|qosBucketMajor(qosBucketOf(dst)) && rootOf[dst] == 0:
				rootOf[dst] = h & qosMaxNode
				d.markFilter(qosFilterRef{parent, h}, true)
			case !onRoot && h&^qosMaxNode == qosInnerBucket(dst) && parent == qosBucketMajor(qosBucketOf(dst))<<16:
				d.markFilter(qosFilterRef{parent, h}, true)
				byDst[dst] = append(byDst[dst], node{id: h & qosMaxNode, e: e})
			default:
				stale(parent, h)
			}
		}
	}
	d.skel.rootLink, d.skel.l1 = linked[qosRootHandle], linked[qosRootHandle]
	uc, ul := unshapedObjects()
	d.skel.class = classes[qosUnshaped] == uc
	have, ok := leaves[qosUnshaped]
	d.skel.leaf = ok && have == ul
	d.skel.leafWrong = ok && have != ul
	for b := range qosBuckets {
		m := qosBucketMajor(b)
		c, ok := classes[qosRootHandle|m]
		d.buckets[b] = qosBucketState{class: ok && c == bucketClass(b), qdisc: qdiscOK[m], filters: qdiscOK[m] && linked[m<<16]}
	}

	var targets []*qosInstalled
	claimed := map[uint32]bool{} // slot bases (with their bucket's major) of targets
	dsts := make([]netip.Addr, 0, len(byDst)+len(rootOf))
	for dst := range byDst {
		dsts = append(dsts, dst)
	}
	for dst := range rootOf {
		if _, ok := byDst[dst]; !ok {
			dsts = append(dsts, dst)
		}
	}
	slices.SortFunc(dsts, netip.Addr.Compare)
	for _, dst := range dsts {
		ns := byDst[dst]
		root, haveRoot := rootOf[dst]
		bucket := qosBucketOf(dst)
		major := qosBucketMajor(bucket)
		// A drifted bucket class is fixed in place (installSkeleton); its
		// targets stay.
		ok := haveRoot && len(ns) > 0 && d.buckets[bucket].qdisc && d.buckets[bucket].filters
		var slot int
		if ok {
			sort.Slice(ns, func(i, j int) bool { return ns[i].id < ns[j].id })
			slot, _, ok = qosSlotOf(ns[0].e.classid & 0xffff)
			for _, n := range ns {
				s, off, in := qosSlotOf(n.e.classid & 0xffff)
				ok = ok && in && s == slot && off > 0 && n.e.classid>>16 == major
				ok = ok && (n.e.dscp >= 0 || n == ns[len(ns)-1])
			}
			_, taken := d.slots[slot]
			ok = ok && ns[len(ns)-1].e.dscp == -1 && !taken
		}
		if !ok {
			if haveRoot {
				stale(qosRootHandle, qosBucket(dst)|root)
			}
			for _, n := range ns {
				stale(major<<16, qosInnerBucket(dst)|n.id)
			}
			continue
		}
		t := &qosInstalled{dst: dst, ifindex: dump.ifindex, slot: slot, rootNode: root}
		base := major<<16 | qosSlotBase(slot)
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
		claimed[base] = true
		targets = append(targets, t)
	}
	// Classes of bucket qdiscs in no claimed slot: leaves first, then their
	// parents.
	var staleClasses []uint32
	for h := range classes {
		if _, inBucket := qosBucketOfMajor(h >> 16); !inBucket {
			continue
		}
		slot, _, ok := qosSlotOf(h & 0xffff)
		if !ok || !claimed[h&0xffff0000|qosSlotBase(slot)] {
			staleClasses = append(staleClasses, h)
		}
	}
	slices.SortFunc(staleClasses, func(a, b uint32) int {
		_, oa, _ := qosSlotOf(a & 0xffff)
		_, ob, _ := qosSlotOf(b & 0xffff)
		if (oa == 0) != (ob == 0) {
			if oa == 0 {
				return 1
			}
			return -1
		}
		return cmp.Compare(a, b)
	})
	d.staleClasses = staleClasses
	return d, targets
}
