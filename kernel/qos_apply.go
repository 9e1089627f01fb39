package kernel

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"reflect"
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
	var nlh qosNL = k.nl
	if k.qosNL != nil {
		nlh = k.qosNL
	}
	return qosCounter{qosNL: nlh, k: k}
}

// qosCounter counts and logs (debug) every mutating netlink call, so that
// tests can assert that adoption makes none.
type qosCounter struct {
	qosNL
	k *Kernel
}

func (c qosCounter) count(op string, ifindex int, handle uint32, err error) error {
	c.k.qosChanges.Add(1)
	c.k.log.Debug("kernel: qos change", zap.String("op", op), zap.Int("ifindex", ifindex),
		zap.String("handle", netlink.HandleStr(handle)), zap.Error(err))
	return err
}

func (c qosCounter) QdiscReplace(q netlink.Qdisc) error {
	return c.count("replace qdisc "+q.Type(), q.Attrs().LinkIndex, q.Attrs().Handle, c.qosNL.QdiscReplace(q))
}

func (c qosCounter) QdiscDel(q netlink.Qdisc) error {
	return c.count("delete qdisc", q.Attrs().LinkIndex, q.Attrs().Handle, c.qosNL.QdiscDel(q))
}

func (c qosCounter) ClassReplace(cl netlink.Class) error {
	return c.count("replace class", cl.Attrs().LinkIndex, cl.Attrs().Handle, c.qosNL.ClassReplace(cl))
}

func (c qosCounter) ClassDel(cl netlink.Class) error {
	return c.count("delete class", cl.Attrs().LinkIndex, cl.Attrs().Handle, c.qosNL.ClassDel(cl))
}

func (c qosCounter) FilterAdd(f netlink.Filter) error {
	return c.count("add filter", f.Attrs().LinkIndex, f.Attrs().Handle, c.qosNL.FilterAdd(f))
}

func (c qosCounter) FilterDel(f netlink.Filter) error {
	return c.count("delete filter", f.Attrs().LinkIndex, f.Attrs().Handle, c.qosNL.FilterDel(f))
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
	if len(want) == 0 {
		if d == nil {
			return nil
		}
		root := &netlink.Htb{QdiscAttrs: netlink.QdiscAttrs{LinkIndex: ifindex, Handle: qosRootHandle, Parent: netlink.HANDLE_ROOT}}
		if err := nlh.QdiscDel(root); err != nil && !isNotExist(err) {
			for _, t := range k.qos.targets {
				if t.ifindex == ifindex {
					failed = append(failed, QoSError{Dst: t.dst, Policy: t.policy, Reason: QoSKernel, Err: opErr("delete qdisc", fmt.Sprintf("root dev %d", ifindex), err)})
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
	if !d.skel.complete() {
		if err := k.qosSkeleton(nlh, d); err != nil {
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
	// slots and node ids are reused.
	var add []QoSTarget
	var installed []*qosInstalled
	for _, t := range k.qos.targets {
		if t.ifindex == ifindex {
			installed = append(installed, t)
		}
	}
	slices.SortFunc(installed, func(a, b *qosInstalled) int { return a.dst.Compare(b.dst) })
	for _, t := range installed {
		w, ok := wanted[t.dst]
		if ok && reflect.DeepEqual(t.objs, targetObjects(t.slot, trees[w.Policy])) {
			t.policy, t.names = w.Policy, leafNames(trees[w.Policy])
			delete(wanted, t.dst)
			continue
		}
		if err := k.qosRemoveTarget(nlh, d, t); err != nil {
			failed = append(failed, QoSError{Dst: t.dst, Policy: t.policy, Reason: QoSKernel, Err: err})
			delete(wanted, t.dst)
		}
	}
	for _, t := range want {
		if _, ok := wanted[t.Dst]; ok {
			add = append(add, t)
		}
	}
	slices.SortFunc(add, func(a, b QoSTarget) int { return a.Dst.Compare(b.Dst) })
	added := 0
	for _, t := range add {
		reason, err := k.qosAddTarget(nlh, d, t, trees[t.Policy])
		if err != nil {
			failed = append(failed, QoSError{Dst: t.Dst, Policy: t.Policy, Reason: reason, Err: err})
			continue
		}
		added++
	}
	if added > 0 || len(installed) > 0 {
		k.log.Debug("kernel: qos device reconciled", zap.Int("ifindex", ifindex), zap.Int("added", added), zap.Int("targets", len(want)))
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
	if err := nlh.QdiscReplace(root); err != nil {
		return nil, QoSKernel, opErr("add qdisc", "htb "+obj, err)
	}
	k.log.Info("kernel: installed qos root qdisc", zap.Int("ifindex", ifindex))
	return newQoSDev(ifindex), "", nil
}

// qosSkeleton installs what is missing of the unshaped class and the two
// hash levels' roots.
func (k *Kernel) qosSkeleton(nlh qosNL, d *qosDev) error {
	c, l := unshapedObjects()
	if d.skel.leafWrong {
		// fq_codel cannot change its flow count in place.
		q := &netlink.FqCodel{QdiscAttrs: netlink.QdiscAttrs{LinkIndex: d.ifindex, Handle: l.handle, Parent: l.parent}}
		if err := nlh.QdiscDel(q); err != nil && !isNotExist(err) {
			return opErr("delete qdisc", fmt.Sprintf("%s dev %d", netlink.HandleStr(l.handle), d.ifindex), err)
		}
		d.skel.leafWrong = false
	}
	if !d.skel.class || !d.skel.leaf {
		if d.skel.leaf {
			l = fqSpec{}
		}
		if err := k.qosAddClass(nlh, d.ifindex, c, l); err != nil {
			return err
		}
		d.skel.class, d.skel.leaf = true, true
	}
	for _, step := range []struct {
		done *bool
		f    *netlink.U32
	}{{&d.skel.l1, qosHashTable(d.ifindex, qosL1HT)}, {&d.skel.rootLink, qosRootLink(d.ifindex)}} {
		if *step.done {
			continue
		}
		if err := nlh.FilterAdd(step.f); err != nil && !errors.Is(err, unix.EEXIST) {
			return opErr("add filter", fmt.Sprintf("%s dev %d", netlink.HandleStr(step.f.Handle), d.ifindex), err)
		}
		*step.done = true
	}
	return nil
}

func (k *Kernel) qosAddClass(nlh qosNL, ifindex int, c htbClassSpec, l fqSpec) error {
	hc := &netlink.HtbClass{
		ClassAttrs: netlink.ClassAttrs{LinkIndex: ifindex, Handle: c.handle, Parent: c.parent},
		Rate:       c.rate, Ceil: c.ceil, Buffer: c.buffer, Cbuffer: c.cbuffer, Quantum: c.quantum, Prio: c.prio,
	}
	if err := nlh.ClassReplace(hc); err != nil {
		return opErr("add class", fmt.Sprintf("%s dev %d", netlink.HandleStr(c.handle), ifindex), err)
	}
	if l.handle == 0 {
		return nil
	}
	fq := &netlink.FqCodel{
		QdiscAttrs: netlink.QdiscAttrs{LinkIndex: ifindex, Handle: l.handle, Parent: l.parent},
		Limit:      l.limit, Flows: l.flows, MemoryLimit: l.memLimit, ECN: 1,
	}
	if err := nlh.QdiscReplace(fq); err != nil {
		return opErr("add qdisc", fmt.Sprintf("fq_codel %s dev %d", netlink.HandleStr(l.handle), ifindex), err)
	}
	return nil
}

func (k *Kernel) qosAddTarget(nlh qosNL, d *qosDev, t QoSTarget, tree qosTree) (QoSRefusal, error) {
	slot, ok := d.freeSlot()
	if !ok {
		return QoSNoRoom, fmt.Errorf("kernel: %d qos targets on dev %d already", QoSMaxTargets, d.ifindex)
	}
	objs := targetObjects(slot, tree)
	bucket := qosBucket(t.Dst)
	nodes, ok := d.allocNodes(bucket, len(objs.entries))
	if !ok {
		return QoSNoRoom, fmt.Errorf("kernel: no room for %d filters in the bucket of %s", len(objs.entries), t.Dst)
	}
	inst := &qosInstalled{dst: t.Dst, policy: t.Policy, names: leafNames(tree), ifindex: d.ifindex, slot: slot, objs: objs, nodes: nodes}
	// Claim now, so that a failure below is cleaned up by removal.
	d.slots[slot] = t.Dst
	d.markNodes(bucket, nodes, true)
	k.qos.targets[t.Dst] = inst
	err := k.qosInstall(nlh, d, inst)
	if err != nil {
		if rerr := k.qosRemoveTarget(nlh, d, inst); rerr != nil {
			k.log.Warn("kernel: cleaning up a failed qos target", zap.Stringer("dst", t.Dst), zap.Error(rerr))
		}
		return QoSKernel, err
	}
	return "", nil
}

func (k *Kernel) qosInstall(nlh qosNL, d *qosDev, inst *qosInstalled) error {
	for i, c := range inst.objs.classes {
		var l fqSpec
		if i > 0 {
			l = inst.objs.leaves[i-1]
		}
		if err := k.qosAddClass(nlh, d.ifindex, c, l); err != nil {
			return err
		}
	}
	if l2 := qosL2HTID(inst.dst); !d.l2[l2] {
		for _, f := range []*netlink.U32{qosHashTable(d.ifindex, l2), qosL1Link(d.ifindex, l2)} {
			if err := nlh.FilterAdd(f); err != nil && !errors.Is(err, unix.EEXIST) {
				return opErr("add filter", fmt.Sprintf("%s dev %d", netlink.HandleStr(f.Handle), d.ifindex), err)
			}
		}
		d.l2[l2] = true
	}
	for i, e := range inst.objs.entries {
		f := qosEntryFilter(d.ifindex, inst.dst, inst.nodes[i], e)
		if err := nlh.FilterAdd(f); err != nil {
			return opErr("add filter", fmt.Sprintf("%s dst %s dev %d", netlink.HandleStr(f.Handle), inst.dst, d.ifindex), err)
		}
	}
	return nil
}

// qosRemoveTarget deletes a target's entries, then its leaf classes (their
// fq_codel goes with them), then its class. Missing objects are fine.
func (k *Kernel) qosRemoveTarget(nlh qosNL, d *qosDev, t *qosInstalled) error {
	bucket := qosBucket(t.dst)
	for i := len(t.nodes) - 1; i >= 0; i-- { // catch-all first: no window where DSCP entries are gone but it stays
		f := &netlink.U32{FilterAttrs: qosFilterAttrs(d.ifindex, bucket|t.nodes[i])}
		if err := nlh.FilterDel(f); err != nil && !isNotExist(err) {
			return opErr("delete filter", fmt.Sprintf("%s dst %s dev %d", netlink.HandleStr(f.Handle), t.dst, d.ifindex), err)
		}
	}
	d.markNodes(bucket, t.nodes, false)
	t.nodes = nil
	for i := len(t.objs.classes) - 1; i >= 0; i-- {
		c := t.objs.classes[i]
		hc := &netlink.HtbClass{ClassAttrs: netlink.ClassAttrs{LinkIndex: d.ifindex, Handle: c.handle, Parent: c.parent}}
		if err := nlh.ClassDel(hc); err != nil && !isNotExist(err) {
			return opErr("delete class", fmt.Sprintf("%s dev %d", netlink.HandleStr(c.handle), d.ifindex), err)
		}
	}
	d.releaseSlot(t.slot)
	delete(k.qos.targets, t.dst)
	return nil
}

func (k *Kernel) qosPruneStale(nlh qosNL, d *qosDev) {
	for _, h := range d.staleFilters {
		f := &netlink.U32{FilterAttrs: qosFilterAttrs(d.ifindex, h)}
		if err := nlh.FilterDel(f); err != nil && !isNotExist(err) {
			k.log.Warn("kernel: deleting a stale qos filter", zap.String("handle", netlink.HandleStr(h)), zap.Error(err))
			continue
		}
		d.markNodes(h&^qosMaxNode, []uint32{h & qosMaxNode}, false)
	}
	d.staleFilters = nil
	for _, h := range d.staleClasses {
		hc := &netlink.HtbClass{ClassAttrs: netlink.ClassAttrs{LinkIndex: d.ifindex, Handle: h}}
		if err := nlh.ClassDel(hc); err != nil && !isNotExist(err) {
			k.log.Warn("kernel: deleting a stale qos class", zap.String("handle", netlink.HandleStr(h)), zap.Error(err))
		}
	}
	d.staleClasses = nil
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
		fs, err := nlh.FilterList(link, qosRootHandle)
		if err != nil {
			return opErr("list filters", fmt.Sprintf("dev %d", ifindex), err)
		}
		d, ts := adoptDump(qosDump{ifindex: ifindex, classes: cs, qdiscs: byDev[ifindex], filters: fs})
		st.devs[ifindex] = d
		for _, t := range ts {
			st.targets[t.dst] = t
		}
		k.log.Info("kernel: adopted qos tree", zap.Int("ifindex", ifindex), zap.Int("targets", len(ts)),
			zap.Int("stale_filters", len(d.staleFilters)), zap.Int("stale_classes", len(d.staleClasses)))
	}
	st.loaded = true
	k.qos = st
	return nil
}
