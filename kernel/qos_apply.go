package kernel

import (
	"cmp"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"

	"github.com/vishvananda/netlink"
	"go.uber.org/zap"
	"golang.org/x/sys/unix"
)

// qosLink names a device by index for the netlink list calls.
func qosLink(ifindex int) netlink.Link {
	return &netlink.Dummy{LinkAttrs: netlink.LinkAttrs{Index: ifindex}}
}

func (k *Kernel) qosHandle() qosNL {
	var nlh qosNL = qosLive{Handle: k.nl, k: k}
	if k.qosNL != nil {
		nlh = k.qosNL
	}
	return qosCounter{qosNL: nlh, k: k}
}

// qosDo applies one change on its own.
func qosDo(nlh qosNL, op qosOp) error {
	var b qosBatch
	b.add(netip.Addr{}, op)
	_, failed := b.run(nlh)
	return failed[netip.Addr{}]
}

// SetQoS makes the per-tunnel QoS trees match targets: each target's
// traffic (by outer destination) shaped by its policy on the egress device
// of the route to it. It is idempotent and changes only differences; the
// first call after New adopts what an earlier run installed (read back from
// the kernel) without rebuilding it, so a restart does not disturb traffic.
// A target whose policy changed is removed and installed again (its traffic
// is unshaped meanwhile). A device whose last target leaves gets its
// default qdisc back.
//
// One bad target does not block the others: it is skipped and reported in
// a *QoSErrors (with a QoSRefusal each); the rest is applied. Other errors
// (reading the kernel's state failed) mean nothing was changed.
func (k *Kernel) SetQoS(policies map[string]QoSPolicy, targets []QoSTarget) error {
	k.qosMu.Lock()
	defer k.qosMu.Unlock()
	nlh := k.qosHandle()
	if !k.qos.loaded {
		if err := k.loadQoS(nlh); err != nil {
			return err
		}
	}
	trees := map[string]qosTree{}
	treeErr := map[string]error{}
	for name, p := range policies {
		t, err := compilePolicy(p)
		if err != nil {
			treeErr[name] = err
			continue
		}
		trees[name] = t
	}

	var failed []QoSError
	refuse := func(t QoSTarget, r QoSRefusal, err error) {
		failed = append(failed, QoSError{Dst: t.Dst, Policy: t.Policy, Reason: r, Err: err})
	}
	want := map[netip.Addr]QoSTarget{}
	wantDev := map[int][]QoSTarget{}
	for _, t := range targets {
		if why := validQoSDst(t.Dst); why != "" {
			refuse(t, QoSInvalidTarget, errors.New(why))
			continue
		}
		if prev, dup := want[t.Dst]; dup {
			if prev.Policy != t.Policy {
				refuse(t, QoSInvalidTarget, fmt.Errorf("destination already has policy %q", prev.Policy))
			}
			continue
		}
		if _, ok := trees[t.Policy]; !ok {
			err := treeErr[t.Policy]
			if err == nil {
				err = fmt.Errorf("kernel: no qos policy %q", t.Policy)
			}
			refuse(t, QoSInvalidPolicy, err)
			continue
		}
		ifindex, err := k.qosEgress(nlh, t.Dst)
		if err != nil {
			refuse(t, QoSNoRoute, err)
			continue
		}
		want[t.Dst] = t
		wantDev[ifindex] = append(wantDev[ifindex], t)
	}

	devs := map[int]bool{}
	for i := range k.qos.devs {
		devs[i] = true
	}
	for i := range wantDev {
		devs[i] = true
	}
	order := make([]int, 0, len(devs))
	for i := range devs {
		order = append(order, i)
	}
	slices.Sort(order)
	for _, ifindex := range order {
		failed = append(failed, k.setQoSDev(nlh, ifindex, wantDev[ifindex], trees)...)
	}
	for _, f := range failed {
		if f.Reason == QoSKernel {
			// Our picture of the kernel may be wrong now: read it again.
			k.qos.loaded = false
			break
		}
	}
	return qosErrors(failed)
}

// qosEgress is the device of the route to dst: an installed target keeps
// its device; a new one asks the kernel's FIB.
func (k *Kernel) qosEgress(nlh qosNL, dst netip.Addr) (int, error) {
	if t, ok := k.qos.targets[dst]; ok {
		return t.ifindex, nil
	}
	rs, err := nlh.RouteGet(net.IP(dst.AsSlice()))
	if err != nil {
		return 0, opErr("get route", dst.String(), err)
	}
	if len(rs) == 0 || rs[0].LinkIndex <= 0 {
		return 0, opErr("get route", dst.String(), errors.New("no route"))
	}
	if rs[0].Type == unix.RTN_LOCAL || rs[0].Type == unix.RTN_BROADCAST || rs[0].Type == unix.RTN_MULTICAST {
		return 0, opErr("get route", dst.String(), errors.New("not a unicast destination of another host"))
	}
	return rs[0].LinkIndex, nil
}

func (k *Kernel) setQoSDev(nlh qosNL, ifindex int, want []QoSTarget, trees map[string]qosTree) []QoSError {
	var failed []QoSError
	d := k.qos.devs[ifindex]
	if d != nil && d.legacy && len(want) > 0 {
		// The previous layout: rebuilt once, from nothing (deleting its
		// classes one by one would cost what installing them did).
		root := &netlink.Htb{QdiscAttrs: netlink.QdiscAttrs{LinkIndex: ifindex, Handle: qosRootHandle, Parent: netlink.HANDLE_ROOT}}
		if err := qosDo(nlh, qosOp{del: true, qdisc: root}); err != nil {
			for _, t := range want {
				failed = append(failed, QoSError{Dst: t.Dst, Policy: t.Policy, Reason: QoSKernel, Err: err})
			}
			return failed
		}
		delete(k.qos.devs, ifindex)
		d = nil
		k.log.Info("kernel: removed a qos tree of the previous layout, rebuilding it", zap.Int("ifindex", ifindex))
	}
	if len(want) == 0 {
		if d == nil {
			return nil
		}
		root := &netlink.Htb{QdiscAttrs: netlink.QdiscAttrs{LinkIndex: ifindex, Handle: qosRootHandle, Parent: netlink.HANDLE_ROOT}}
		if err := qosDo(nlh, qosOp{del: true, qdisc: root}); err != nil {
			for _, t := range k.qos.targets {
				if t.ifindex == ifindex {
					failed = append(failed, QoSError{Dst: t.dst, Policy: t.policy, Reason: QoSKernel, Err: err})
				}
			}
			return failed
		}
		for dst, t := range k.qos.targets {
			if t.ifindex == ifindex {
				delete(k.qos.targets, dst)
			}
		}
		delete(k.qos.devs, ifindex)
		k.log.Info("kernel: removed qos tree", zap.Int("ifindex", ifindex))
		return nil
	}
	if d == nil {
		var err error
		var why QoSRefusal
		if d, why, err = k.qosCreateRoot(nlh, ifindex); err != nil {
			for _, t := range want {
				failed = append(failed, QoSError{Dst: t.Dst, Policy: t.Policy, Reason: why, Err: err})
			}
			return failed
		}
		k.qos.devs[ifindex] = d
	}
	if !d.skel.complete() || d.driftedBuckets() {
		if err := installSkeleton(nlh, d); err != nil {
			for _, t := range want {
				failed = append(failed, QoSError{Dst: t.Dst, Policy: t.Policy, Reason: QoSKernel, Err: err})
			}
			return failed
		}
	}
	k.qosPruneStale(nlh, d)

	wanted := map[netip.Addr]QoSTarget{}
	for _, t := range want {
		wanted[t.Dst] = t
	}
	// Remove first (targets that left or changed), then add, so that freed
	// slots and node ids are reused. A target whose objects are what its
	// policy renders in its slot costs nothing.
	var installed, gone []*qosInstalled
	for _, t := range k.qos.targets {
		if t.ifindex == ifindex {
			installed = append(installed, t)
		}
	}
	slices.SortFunc(installed, func(a, b *qosInstalled) int { return a.dst.Compare(b.dst) })
	for _, t := range installed {
		w, ok := wanted[t.dst]
		if ok && t.objs.equal(targetObjects(qosBucketOf(t.dst), t.slot, trees[w.Policy])) {
			t.policy, t.names = w.Policy, leafNames(trees[w.Policy])
			delete(wanted, t.dst)
			continue
		}
		gone = append(gone, t)
	}
	for _, f := range k.qosRemoveTargets(nlh, d, gone) {
		failed = append(failed, f)
		delete(wanted, f.Dst)
	}
	var add []QoSTarget
	for _, t := range want {
		if _, ok := wanted[t.Dst]; ok {
			add = append(add, t)
		}
	}
	slices.SortFunc(add, func(a, b QoSTarget) int { return a.Dst.Compare(b.Dst) })
	addFailed := k.qosAddTargets(nlh, d, add, trees)
	failed = append(failed, addFailed...)
	if len(add) > 0 || len(gone) > 0 {
		k.log.Debug("kernel: qos device reconciled", zap.Int("ifindex", ifindex), zap.Int("added", len(add)-len(addFailed)),
			zap.Int("removed", len(gone)), zap.Int("targets", len(want)))
	}
	return failed
}

func leafNames(t qosTree) []string {
	out := make([]string, len(t.leaves))
	for i, l := range t.leaves {
		out[i] = l.name
	}
	return out
}

// qosCreateRoot puts our root qdisc on a device that has the kernel's
// default one (handle 0: noqueue, pfifo_fast, fq_codel, mq); any other root
// qdisc is an administrator's and is left alone.
func (k *Kernel) qosCreateRoot(nlh qosNL, ifindex int) (*qosDev, QoSRefusal, error) {
	obj := fmt.Sprintf("root dev %d", ifindex)
	qs, err := nlh.QdiscList(qosLink(ifindex))
	if err != nil {
		return nil, QoSKernel, opErr("list qdiscs", obj, err)
	}
	for _, q := range qs {
		a := q.Attrs()
		if a.LinkIndex == ifindex && a.Parent == netlink.HANDLE_ROOT && a.Handle != 0 {
			return nil, QoSForeignQdisc, opErr("install qos", obj, fmt.Errorf("%w: root qdisc %s %s", ErrNotOwned, q.Type(), netlink.HandleStr(a.Handle)))
		}
	}
	root := netlink.NewHtb(netlink.QdiscAttrs{LinkIndex: ifindex, Handle: qosRootHandle, Parent: netlink.HANDLE_ROOT})
	root.Defcls = qosUnshaped & 0xffff
	if err := qosDo(nlh, qosOp{qdisc: root}); err != nil {
		return nil, QoSKernel, err
	}
	k.log.Info("kernel: installed qos root qdisc", zap.Int("ifindex", ifindex))
	return newQoSDev(ifindex), "", nil
}

// driftedBuckets reports whether a bucket's qdisc is in place under a
// class that is not what we would make.
func (d *qosDev) driftedBuckets() bool {
	for _, s := range d.buckets {
		if s.qdisc && !s.class {
			return true
		}
	}
	return false
}

// installSkeleton installs what is missing of the unshaped class and the two
// hash levels' roots, and puts drifted bucket classes right, in one batch;
// the first failure is returned.
func installSkeleton(nlh qosNL, d *qosDev) error {
	c, l := unshapedObjects()
	var b qosBatch
	var drifted []int
	for bk, s := range d.buckets {
		if s.qdisc && !s.class {
			drifted = append(drifted, bk)
		}
	}
	slices.Sort(drifted)
	for _, bk := range drifted {
		b.add(netip.Addr{}, classOps(d.ifindex, bucketClass(bk), fqSpec{})...)
	}
	if d.skel.leafWrong {
		// fq_codel cannot change its flow count in place.
		b.add(netip.Addr{}, qosOp{del: true, qdisc: &netlink.FqCodel{QdiscAttrs: netlink.QdiscAttrs{LinkIndex: d.ifindex, Handle: l.handle, Parent: l.parent}}})
	}
	if !d.skel.class || !d.skel.leaf {
		if d.skel.leaf {
			l = fqSpec{}
		}
		b.add(netip.Addr{}, classOps(d.ifindex, c, l)...)
	}
	if !d.skel.l1 {
		b.add(netip.Addr{}, qosOp{filter: qosHashTable(d.ifindex, qosRootHandle, qosL1HT), existOK: true})
	}
	if !d.skel.rootLink {
		b.add(netip.Addr{}, qosOp{filter: qosRootLink(d.ifindex, qosRootHandle), existOK: true})
	}
	if _, failed := b.run(nlh); failed[netip.Addr{}] != nil {
		return failed[netip.Addr{}]
	}
	d.skel = qosSkeleton{class: true, leaf: true, l1: true, rootLink: true}
	for _, bk := range drifted {
		s := d.buckets[bk]
		s.class = true
		d.buckets[bk] = s
	}
	return nil
}

// classOps installs an HTB class and, unless l is zero, its fq_codel leaf.
func classOps(ifindex int, c htbClassSpec, l fqSpec) []qosOp {
	ops := []qosOp{{class: &netlink.HtbClass{
		ClassAttrs: netlink.ClassAttrs{LinkIndex: ifindex, Handle: c.handle, Parent: c.parent},
		Rate:       c.rate, Ceil: c.ceil, Buffer: c.buffer, Cbuffer: c.cbuffer, Quantum: c.quantum, Prio: c.prio,
	}}}
	if l.handle != 0 {
		ops = append(ops, qosOp{qdisc: &netlink.FqCodel{
			QdiscAttrs: netlink.QdiscAttrs{LinkIndex: ifindex, Handle: l.handle, Parent: l.parent},
			Limit:      l.limit, Flows: l.flows, MemoryLimit: l.memLimit, ECN: 1,
		}})
	}
	return ops
}

// bucketOps install what is missing of bucket b: its class on the root,
// its HTB qdisc (added only where there is none: HTB cannot change a
// qdisc in place) and the root of its filters.
func bucketOps(ifindex, b int, have qosBucketState) []qosOp {
	parent := qosBucketMajor(b) << 16
	var ops []qosOp
	if !have.class {
		ops = append(ops, classOps(ifindex, bucketClass(b), fqSpec{})...)
	}
	if !have.qdisc {
		ops = append(ops, qosOp{qdisc: bucketQdisc(ifindex, b)})
	}
	if !have.filters {
		ops = append(ops, qosOp{filter: qosHashTable(ifindex, parent, qosL1HT), existOK: true}, qosOp{filter: qosRootLink(ifindex, parent), existOK: true})
	}
	return ops
}

// installOps are a target's changes in install order: its class, each
// leaf class with its fq_codel, its entries on its bucket's qdisc (the
// catch-all last), then its entry on the root, which sends it packets.
func installOps(ifindex int, t *qosInstalled) []qosOp {
	var ops []qosOp
	for i, c := range t.objs.classes {
		var l fqSpec
		if i > 0 {
			l = t.objs.leaves[i-1]
		}
		ops = append(ops, classOps(ifindex, c, l)...)
	}
	for i, e := range t.objs.entries {
		ops = append(ops, qosOp{filter: qosEntryFilter(ifindex, t.dst, t.nodes[i], e)})
	}
	return append(ops, qosOp{filter: qosRootEntry(ifindex, t.dst, t.rootNode)})
}

// removeOps delete a target's entry on the root, its entries (the
// catch-all first), then its classes, leaves before the target's class (a
// leaf's fq_codel goes with it: HTB refuses to delete a class that filters
// or children use).
func removeOps(ifindex int, t *qosInstalled) []qosOp {
	var ops []qosOp
	if t.rootNode != 0 { // 0: the kernel had a node there that is not ours
		ops = append(ops, qosOp{del: true, filter: &netlink.U32{FilterAttrs: qosFilterAttrs(ifindex, qosRootHandle, qosBucket(t.dst)|t.rootNode)}})
	}
	parent, bucket := t.bucketParent(), qosInnerBucket(t.dst)
	for i := len(t.nodes) - 1; i >= 0; i-- {
		ops = append(ops, qosOp{del: true, filter: &netlink.U32{FilterAttrs: qosFilterAttrs(ifindex, parent, bucket|t.nodes[i])}})
	}
	for i := len(t.objs.classes) - 1; i >= 0; i-- {
		c := t.objs.classes[i]
		ops = append(ops, qosOp{del: true, class: &netlink.HtbClass{ClassAttrs: netlink.ClassAttrs{LinkIndex: ifindex, Handle: c.handle, Parent: c.parent}}})
	}
	return ops
}

// qosAddTargets installs targets in one batch (their shared hash tables
// first). A target that gets no slot or node ids is refused before
// anything is sent; one whose change the kernel refuses is removed again
// and reported, and the others stay installed.
func (k *Kernel) qosAddTargets(nlh qosNL, d *qosDev, add []QoSTarget, trees map[string]qosTree) []QoSError {
	var failed []QoSError
	var b qosBatch
	var insts []*qosInstalled
	// Shared objects: the root's second-level tables and the buckets, by
	// the index of their first op and their number of ops.
	type shared struct{ first, n int }
	tables := map[uint32]shared{}
	buckets := map[int]shared{}
	for _, t := range add {
		tree := trees[t.Policy]
		slot, ok := d.freeSlot()
		if !ok {
			failed = append(failed, QoSError{Dst: t.Dst, Policy: t.Policy, Reason: QoSNoRoom, Err: fmt.Errorf("kernel: %d qos targets on dev %d already", QoSMaxTargets, d.ifindex)})
			continue
		}
		bucket := qosBucketOf(t.Dst)
		objs := targetObjects(bucket, slot, tree)
		nodes, ok := d.allocNodes(innerKey(t.Dst), len(objs.entries))
		root, rootOK := d.allocNodes(rootKey(t.Dst), 1)
		if !ok || !rootOK {
			failed = append(failed, QoSError{Dst: t.Dst, Policy: t.Policy, Reason: QoSNoRoom, Err: fmt.Errorf("kernel: no room for the filters of %s in its hash buckets", t.Dst)})
			continue
		}
		inst := &qosInstalled{dst: t.Dst, policy: t.Policy, names: leafNames(tree), ifindex: d.ifindex, slot: slot, objs: objs, nodes: nodes, rootNode: root[0]}
		// Claim now, so that a failure is cleaned up by removal.
		d.slots[slot] = t.Dst
		d.markNodes(innerKey(t.Dst), nodes, true)
		d.markNodes(rootKey(t.Dst), root, true)
		k.qos.targets[t.Dst] = inst
		insts = append(insts, inst)
		if l2 := qosL2HTID(t.Dst); !d.l2[l2] {
			if _, queued := tables[l2]; !queued {
				tables[l2] = shared{len(b.ops), 2}
				b.add(netip.Addr{}, qosOp{filter: qosHashTable(d.ifindex, qosRootHandle, l2), existOK: true}, qosOp{filter: qosL1Link(d.ifindex, l2), existOK: true})
			}
		}
		if !d.buckets[bucket].complete() {
			if _, queued := buckets[bucket]; !queued {
				ops := bucketOps(d.ifindex, bucket, d.buckets[bucket])
				buckets[bucket] = shared{len(b.ops), len(ops)}
				b.add(netip.Addr{}, ops...)
			}
		}
		b.add(t.Dst, installOps(d.ifindex, inst)...)
	}
	opErrs, errs := b.run(nlh)
	sharedErr := func(s shared) error {
		if opErrs == nil {
			return nil
		}
		return cmp.Or(opErrs[s.first : s.first+s.n]...)
	}
	tableErr := map[uint32]error{}
	for l2, s := range tables {
		if err := sharedErr(s); err != nil {
			tableErr[l2] = err
			continue
		}
		d.l2[l2] = true
	}
	bucketErr := map[int]error{}
	for bk, s := range buckets {
		if err := sharedErr(s); err != nil {
			bucketErr[bk] = err
			continue
		}
		d.buckets[bk] = qosBucketState{class: true, qdisc: true, filters: true}
	}
	// A node the kernel already had (EEXIST) is not ours to delete: it
	// stays marked in use, and the next dump finds it stale.
	foreign := map[qosFilterRef]bool{}
	for i, op := range b.ops {
		if op.filter != nil && !op.del && b.owners[i].IsValid() && errors.Is(opErrs[i], unix.EEXIST) {
			foreign[qosFilterRef{op.filter.Parent, op.filter.Handle}] = true
		}
	}
	var undo []*qosInstalled
	for _, in := range insts {
		if len(foreign) > 0 {
			parent, bucket := in.bucketParent(), qosInnerBucket(in.dst)
			in.nodes = slices.DeleteFunc(in.nodes, func(n uint32) bool { return foreign[qosFilterRef{parent, bucket | n}] })
			if foreign[qosFilterRef{qosRootHandle, qosBucket(in.dst) | in.rootNode}] {
				in.rootNode = 0 // not ours: removal leaves it alone
			}
		}
		err := cmp.Or(tableErr[qosL2HTID(in.dst)], bucketErr[qosBucketOf(in.dst)], errs[in.dst])
		if err != nil {
			failed = append(failed, QoSError{Dst: in.dst, Policy: in.policy, Reason: QoSKernel, Err: err})
			undo = append(undo, in)
		}
	}
	for _, f := range k.qosRemoveTargets(nlh, d, undo) {
		k.log.Warn("kernel: cleaning up a failed qos target", zap.Stringer("dst", f.Dst), zap.Error(f.Err))
	}
	return failed
}

// qosRemoveTargets deletes targets in one batch; a target the kernel
// would not let go is reported and kept in the state (the next SetQoS
// reads the kernel again).
func (k *Kernel) qosRemoveTargets(nlh qosNL, d *qosDev, ts []*qosInstalled) []QoSError {
	var b qosBatch
	for _, t := range ts {
		b.add(t.dst, removeOps(d.ifindex, t)...)
	}
	_, errs := b.run(nlh)
	var failed []QoSError
	for _, t := range ts {
		if err := errs[t.dst]; err != nil {
			failed = append(failed, QoSError{Dst: t.dst, Policy: t.policy, Reason: QoSKernel, Err: err})
			continue
		}
		d.markNodes(innerKey(t.dst), t.nodes, false)
		if t.rootNode != 0 {
			d.markNodes(rootKey(t.dst), []uint32{t.rootNode}, false)
		}
		d.releaseSlot(t.slot)
		delete(k.qos.targets, t.dst)
	}
	return failed
}

// qosPruneStale deletes what the dump found under our root that no target
// accounts for, in one batch; what the kernel keeps is logged and tried
// again after the next dump.
func (k *Kernel) qosPruneStale(nlh qosNL, d *qosDev) {
	if len(d.staleFilters) == 0 && len(d.staleClasses) == 0 {
		return
	}
	var b qosBatch
	for _, f := range d.staleFilters {
		b.add(netip.Addr{}, qosOp{del: true, filter: &netlink.U32{FilterAttrs: qosFilterAttrs(d.ifindex, f.parent, f.handle)}})
	}
	for _, h := range d.staleClasses {
		b.add(netip.Addr{}, qosOp{del: true, class: &netlink.HtbClass{ClassAttrs: netlink.ClassAttrs{LinkIndex: d.ifindex, Handle: h}}})
	}
	errs, _ := b.run(nlh)
	for i, op := range b.ops {
		switch {
		case errs[i] != nil:
			k.log.Warn("kernel: deleting a stale qos object", zap.Error(errs[i]))
		case op.filter != nil:
			d.markFilter(qosFilterRef{op.filter.Parent, op.filter.Handle}, false)
		}
	}
	d.staleFilters, d.staleClasses = nil, nil
}

// loadQoS reads every device that carries our root qdisc.
func (k *Kernel) loadQoS(nlh qosNL) error {
	qs, err := nlh.QdiscList(nil)
	if err != nil {
		return opErr("list qdiscs", "", err)
	}
	st := qosState{devs: map[int]*qosDev{}, targets: map[netip.Addr]*qosInstalled{}}
	byDev := map[int][]netlink.Qdisc{}
	var ours []int
	for _, q := range qs {
		a := q.Attrs()
		byDev[a.LinkIndex] = append(byDev[a.LinkIndex], q)
		if a.Parent == netlink.HANDLE_ROOT && a.Handle == qosRootHandle && q.Type() == "htb" {
			ours = append(ours, a.LinkIndex)
		}
	}
	slices.Sort(ours)
	for _, ifindex := range ours {
		link := qosLink(ifindex)
		cs, err := nlh.ClassList(link, 0)
		if err != nil {
			return opErr("list classes", fmt.Sprintf("dev %d", ifindex), err)
		}
		filters := map[uint32][]netlink.Filter{}
		for _, parent := range append([]uint32{qosRootHandle}, bucketHandles(byDev[ifindex])...) {
			fs, err := nlh.FilterList(link, parent)
			if err != nil {
				return opErr("list filters", fmt.Sprintf("%s dev %d", netlink.HandleStr(parent), ifindex), err)
			}
			filters[parent] = fs
		}
		d, ts := adoptDump(qosDump{ifindex: ifindex, classes: cs, qdiscs: byDev[ifindex], filters: filters})
		st.devs[ifindex] = d
		for _, t := range ts {
			st.targets[t.dst] = t
		}
		k.log.Info("kernel: adopted qos tree", zap.Int("ifindex", ifindex), zap.Int("targets", len(ts)), zap.Bool("previous_layout", d.legacy),
			zap.Int("stale_filters", len(d.staleFilters)), zap.Int("stale_classes", len(d.staleClasses)))
	}
	st.loaded = true
	k.qos = st
	return nil
}
