package kernel

import (
	"encoding/binary"
	"net/netip"
	"slices"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
)

// Handle layout of the QoS tree on one egress device. The kernel's cost
// of adding an HTB class grows with the classes already on its qdisc
// (docs/linux.md, "Cost"), so no qdisc holds them all: the root holds one
// class per bucket, each bucket an HTB qdisc of its own holding the classes
// of its targets. A target's bucket is a hash of its destination, so adding
// or removing it touches its bucket alone. Everything else is derived from
// the target's slot (allocated lowest-free on the device, recovered from the
// class dump after a restart):
//
//	root qdisc          d:        (htb, default class 1: unmatched traffic)
//	unshaped class      d:1       leaf fq_codel 1:
//	bucket b            d:Q       Q = 0x100 + b, rate = ceil = unshaped
//	its qdisc           Q:        (htb, no default class)
//	target slot s       Q:B       B = 0x200 + 6*s, rate = ceil = policy rate
//	its leaf classes    Q:B+1 ... Q:B+n+1 (classes in order, then default)
//	leaf qdisc of Q:M   M:        (a slot's minors are unique on the
//	                               device, so they double as leaf majors)
//
// Filters: u32, prio 10, protocol ip; on d: one entry per target sends its
// packets to its bucket, on Q: its entries per DSCP send them to its
// classes:
//
//	on d:  ht 800:   one node: hash the last octet of the destination,
//	                 link 1:
//	       ht 1:     256 buckets; bucket b holds one node: hash the third
//	                 octet, link (0x100+b):
//	       ht 1XX:   256 buckets of entries "dst D/32 -> d:Q"
//	on Q:  ht 800:   one node: hash the last octet, link 1:
//	       ht 1:     256 buckets of entries "dst D/32 and DSCP x -> Q:leaf"
//	                 and "dst D/32 -> Q:default leaf"
//
// so a packet crosses two hash lookups and the entries of the targets that
// share its destination's last two octets at the root, then one lookup and
// the entries of its bucket's targets that share its last octet.
const (
	qosRootMajor    = 0xd
	qosRootHandle   = qosRootMajor << 16
	qosUnshaped     = qosRootHandle | 1
	qosBucketFirst  = 0x100
	qosBuckets      = 256
	qosSlotFirst    = qosBucketFirst + qosBuckets
	qosSlotWidth    = 6
	qosMaxMinor     = 0xfffe // ffff: is the ingress/clsact qdisc's major
	qosFilterPrio   = 10
	qosL1HT         = 0x001
	qosL2HTBase     = 0x100
	qosRootHT       = 0x800
	qosMaxNode      = 0xfff
	qosUnshapedRate = 1_000_000_000_000 // bit/s: never the bottleneck
	qosMTU          = 1600

	// QoSMaxTargets is the number of targets one egress device holds (the
	// last slot's classes must fit below minor 0xffff).
	QoSMaxTargets = (qosMaxMinor-qosSlotFirst-(qosSlotWidth-1))/qosSlotWidth + 1
)

// fq_codel leaves keep few flow buckets (64 per leaf: a few KiB each, so
// 10k targets fit in a small hub's memory) and a memory limit of a quarter
// second at the class ceiling, bounding what one flooded target can hold.
const (
	qosFqFlows    = 64
	qosFqLimit    = 1024 // packets
	qosFqMemMin   = 64 << 10
	qosFqMemMax   = 32 << 20
	qosHTBQuantum = 200_000 // HTB's own upper clamp
)

// htbClassSpec is one HTB class as the kernel reports it: rates in bytes/s,
// buffers in scheduler ticks.
type htbClassSpec struct {
	handle, parent  uint32
	rate, ceil      uint64
	buffer, cbuffer uint32
	quantum, prio   uint32
}

// fqSpec is one fq_codel leaf.
type fqSpec struct {
	handle, parent         uint32
	limit, flows, memLimit uint32
}

// qosEntry is one filter entry of a target: packets to the target with
// this DSCP (-1: any) go to classid.
type qosEntry struct {
	dscp    int
	classid uint32
}

// qosObjects is what one target puts in the kernel, in creation order.
type qosObjects struct {
	classes []htbClassSpec // the target's class first
	leaves  []fqSpec
	entries []qosEntry // DSCP entries by DSCP, the catch-all last
}

func (o qosObjects) equal(p qosObjects) bool {
	return slices.Equal(o.classes, p.classes) && slices.Equal(o.leaves, p.leaves) && slices.Equal(o.entries, p.entries)
}

func qosSlotBase(slot int) uint32 { return uint32(qosSlotFirst + qosSlotWidth*slot) }

// qosSlotOf maps a class minor to its slot and its offset in the slot
// (0: the target's class, 1..5: leaves); ok is false outside slots.
func qosSlotOf(minor uint32) (slot int, off int, ok bool) {
	if minor < qosSlotFirst || minor > qosMaxMinor {
		return 0, 0, false
	}
	return int(minor-qosSlotFirst) / qosSlotWidth, int(minor-qosSlotFirst) % qosSlotWidth, true
}

func htbClass(handle, parent uint32, rateBits, ceilBits uint64, burst, cburst uint32, prio uint32) htbClassSpec {
	rate, ceil := rateBits/8, ceilBits/8
	return htbClassSpec{
		handle: handle, parent: parent,
		rate: rate, ceil: ceil,
		buffer:  netlink.Xmittime(rate, burst),
		cbuffer: netlink.Xmittime(ceil, cburst),
		quantum: uint32(min(max(rate/10, qosMTU), qosHTBQuantum)),
		prio:    prio,
	}
}

func leafBurst(bits uint64) uint32 { return uint32(max(bits/8/200, qosMTU)) } // 5 ms, >= one MTU

func fqLeaf(classid uint32, ceilBits uint64) fqSpec {
	return fqSpec{
		handle:   (classid & 0xffff) << 16,
		parent:   classid,
		limit:    qosFqLimit,
		flows:    qosFqFlows,
		memLimit: uint32(min(max(ceilBits/8/4, qosFqMemMin), qosFqMemMax)),
	}
}

// unshapedObjects is the class for traffic to no target.
func unshapedObjects() (htbClassSpec, fqSpec) {
	return rootClass(qosUnshaped), fqLeaf(qosUnshaped, qosUnshapedRate)
}

// rootClass is a class on the root: the unshaped class or a bucket's.
// They are never the bottleneck and share the device when it is full:
// prio 1 all, and a quantum of one packet, so that a bucket's voice waits
// at most one packet of each other busy bucket and of the unshaped
// traffic (a bucket's voice cannot go before the root's other classes:
// HTB's priority acts among the leaves of one qdisc).
func rootClass(handle uint32) htbClassSpec {
	c := htbClass(handle, qosRootHandle, qosUnshapedRate, qosUnshapedRate, 200_000, 200_000, 1)
	c.quantum = qosMTU
	return c
}

// qosBucketOf is the bucket of dst: Fibonacci hashing of the whole
// address (the top byte of the product with 2^32/phi), so that addresses
// alike in their last octets (branches on /30s, CPEs at .1) still spread
// over all buckets.
func qosBucketOf(dst netip.Addr) int { return int((addrWord(dst) * 0x9e3779b1) >> 24) }

// qosBucketMajor is the major of bucket b's qdisc, and the minor of its
// class on the root.
func qosBucketMajor(b int) uint32 { return uint32(qosBucketFirst + b) }

// qosBucketOfMajor is the bucket whose qdisc has major m; ok is false
// outside buckets.
func qosBucketOfMajor(m uint32) (int, bool) {
	return int(m) - qosBucketFirst, m >= qosBucketFirst && m < qosBucketFirst+qosBuckets
}

// bucketClass is bucket b's class on the root.
func bucketClass(b int) htbClassSpec { return rootClass(qosRootHandle | qosBucketMajor(b)) }

// bucketQdisc is bucket b's HTB qdisc. It has no default class: only the
// root's entries of its targets send packets to it, and each target has a
// catch-all entry; what matches none (a target half installed or removed)
// is sent unshaped (HTB's direct queue).
func bucketQdisc(ifindex, b int) *netlink.Htb {
	return netlink.NewHtb(netlink.QdiscAttrs{LinkIndex: ifindex, Handle: qosBucketMajor(b) << 16, Parent: qosRootHandle | qosBucketMajor(b)})
}

// targetObjects renders a compiled policy into slot of bucket b.
func targetObjects(b, slot int, t qosTree) qosObjects {
	major := qosBucketMajor(b) << 16
	base := major | qosSlotBase(slot)
	o := qosObjects{
		classes: []htbClassSpec{htbClass(base, major, t.rate, t.rate, t.burst, t.burst, 0)},
	}
	var catchAll qosEntry
	for i, l := range t.leaves {
		id := base + 1 + uint32(i)
		prio := uint32(1)
		if l.priority {
			prio = 0
		}
		o.classes = append(o.classes, htbClass(id, base, l.rate, l.ceil, leafBurst(l.rate), leafBurst(l.ceil), prio))
		o.leaves = append(o.leaves, fqLeaf(id, l.ceil))
		for _, d := range l.dscp {
			o.entries = append(o.entries, qosEntry{dscp: int(d), classid: id})
		}
		if len(l.dscp) == 0 {
			catchAll = qosEntry{dscp: -1, classid: id}
		}
	}
	sortEntries(o.entries)
	o.entries = append(o.entries, catchAll)
	return o
}

func sortEntries(es []qosEntry) {
	for i := 1; i < len(es); i++ { // insertion sort: at most 64 entries
		for j := i; j > 0 && es[j].dscp < es[j-1].dscp; j-- {
			es[j], es[j-1] = es[j-1], es[j]
		}
	}
}

// Filter layout.

func qosHTHandle(htid uint32) uint32 { return htid << 20 }

// qosL2HTID is the root's second-level table of dst (by its last octet).
func qosL2HTID(dst netip.Addr) uint32 { return qosL2HTBase + uint32(dst.As4()[3]) }

// qosBucket is the handle prefix (table and bucket) of dst's entry on the
// root.
func qosBucket(dst netip.Addr) uint32 {
	return qosHTHandle(qosL2HTID(dst)) | uint32(dst.As4()[2])<<12
}

// qosInnerBucket is the handle prefix of dst's entries on its bucket's
// qdisc (table 1:, by the last octet).
func qosInnerBucket(dst netip.Addr) uint32 {
	return qosHTHandle(qosL1HT) | uint32(dst.As4()[3])<<12
}

func addrWord(a netip.Addr) uint32 { b := a.As4(); return binary.BigEndian.Uint32(b[:]) }

const (
	ipDstOff   = 16
	dscpMask   = 0x00fc0000 // the DS field's upper six bits in the first word
	dscpShift  = 18
	lastOctet  = 0x000000ff
	thirdOctet = 0x0000ff00
)

// qosHashLink is a match-all node on parent that hashes the destination
// with hmask and continues in table link.
func qosHashLink(ifindex int, parent, handle, hmask, link uint32) *netlink.U32 {
	return &netlink.U32{
		FilterAttrs: qosFilterAttrs(ifindex, parent, handle),
		Hash:        handle &^ qosMaxNode,
		Sel: &nl.TcU32Sel{
			Keys: []nl.TcU32Key{{Off: ipDstOff}},
			Hoff: ipDstOff, Hmask: hmask,
		},
		Link: qosHTHandle(link),
	}
}

// qosRootLink is the node in the root table of parent (our root qdisc or
// a bucket's) that hashes by the last octet into table 1:; qosL1Link(l2)
// the node in a bucket of the root's table 1: that hashes by the third
// octet.
func qosRootLink(ifindex int, parent uint32) *netlink.U32 {
	return qosHashLink(ifindex, parent, qosHTHandle(qosRootHT)|1, lastOctet, qosL1HT)
}

func qosL1Link(ifindex int, l2 uint32) *netlink.U32 {
	return qosHashLink(ifindex, qosRootHandle, qosHTHandle(qosL1HT)|(l2-qosL2HTBase)<<12|1, thirdOctet, l2)
}

func qosHashTable(ifindex int, parent, htid uint32) *netlink.U32 {
	return &netlink.U32{FilterAttrs: qosFilterAttrs(ifindex, parent, qosHTHandle(htid)), Divisor: 256}
}

// qosEntryFilter is entry e of the target dst on its bucket's qdisc, node
// node of its hash bucket there.
func qosEntryFilter(ifindex int, dst netip.Addr, node uint32, e qosEntry) *netlink.U32 {
	parent := qosBucketMajor(qosBucketOf(dst)) << 16
	return qosMatch(ifindex, parent, qosInnerBucket(dst), node, dst, e)
}

// qosRootEntry is the node on the root that sends dst's packets to its
// bucket.
func qosRootEntry(ifindex int, dst netip.Addr, node uint32) *netlink.U32 {
	e := qosEntry{dscp: -1, classid: qosRootHandle | qosBucketMajor(qosBucketOf(dst))}
	return qosMatch(ifindex, qosRootHandle, qosBucket(dst), node, dst, e)
}

func qosMatch(ifindex int, parent, bucket, node uint32, dst netip.Addr, e qosEntry) *netlink.U32 {
	keys := []nl.TcU32Key{{Mask: 0xffffffff, Val: addrWord(dst), Off: ipDstOff}}
	if e.dscp >= 0 {
		keys = append(keys, nl.TcU32Key{Mask: dscpMask, Val: uint32(e.dscp) << dscpShift, Off: 0})
	}
	return &netlink.U32{
		FilterAttrs: qosFilterAttrs(ifindex, parent, bucket|node),
		Sel:         &nl.TcU32Sel{Flags: nl.TC_U32_TERMINAL, Keys: keys},
		ClassId:     e.classid,
		Hash:        bucket,
	}
}

func qosFilterAttrs(ifindex int, parent, handle uint32) netlink.FilterAttrs {
	return netlink.FilterAttrs{
		LinkIndex: ifindex,
		Parent:    parent,
		Handle:    handle,
		Priority:  qosFilterPrio,
		Protocol:  0x0800, // ETH_P_IP
	}
}

// parseQoSEntry reads back an entry node: ok is false for nodes that are
// not entries (hash links, tables, foreign shapes).
func parseQoSEntry(f *netlink.U32) (dst netip.Addr, e qosEntry, ok bool) {
	if f.Sel == nil || f.Divisor != 0 || f.Link != 0 || f.ClassId == 0 {
		return netip.Addr{}, qosEntry{}, false
	}
	e = qosEntry{dscp: -1, classid: f.ClassId}
	for _, k := range f.Sel.Keys {
		switch {
		case k.Off == ipDstOff && k.Mask == 0xffffffff && k.OffMask == 0:
			var b [4]byte
			binary.BigEndian.PutUint32(b[:], k.Val)
			dst = netip.AddrFrom4(b)
		case k.Off == 0 && k.Mask == dscpMask && k.OffMask == 0:
			e.dscp = int(k.Val >> dscpShift)
		default:
			return netip.Addr{}, qosEntry{}, false
		}
	}
	return dst, e, dst.IsValid()
}
