package kernel

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"go.uber.org/zap"
	"golang.org/x/sys/unix"
)

// QoS changes travel in batches (the neighbour batch socket of
// neighbatch.go): one sendmsg carries up to 512 tc requests, each
// acknowledged on its own, and the kernel carries on after a refused one,
// so a target whose object is refused fails alone. An install of n targets
// costs about n*10/512 round trips instead of n*10.

// qosOp is one tc change: replace a qdisc or an HTB class, add a u32 node
// (exclusively: keys cannot change in place), or delete one of them. One
// of qdisc, class and filter is set.
type qosOp struct {
	del    bool
	qdisc  netlink.Qdisc // *netlink.Htb or *netlink.FqCodel
	class  *netlink.HtbClass
	filter *netlink.U32
	// existOK: EEXIST counts as done (shared hash tables and links, which
	// a target may find already there).
	existOK bool
}

var _ batchItem = qosOp{}

func (o qosOp) isDelete() bool { return o.del }

// describe names the change for an *OpError: "add class", "d:11 dev 3".
func (o qosOp) describe() (op, object string) {
	op = "add"
	if o.del {
		op = "delete"
	}
	switch {
	case o.qdisc != nil:
		a := o.qdisc.Attrs()
		return op + " qdisc", fmt.Sprintf("%s %s dev %d", o.qdisc.Type(), netlink.HandleStr(a.Handle), a.LinkIndex)
	case o.class != nil:
		return op + " class", fmt.Sprintf("%s dev %d", netlink.HandleStr(o.class.Handle), o.class.LinkIndex)
	case o.filter != nil:
		return op + " filter", fmt.Sprintf("%08x dev %d", o.filter.Handle, o.filter.LinkIndex)
	}
	return op, "nothing"
}

func (o qosOp) String() string {
	op, obj := o.describe()
	return op + " " + obj
}

// done reports whether the kernel's answer err means the change is in
// place: deleting a missing object, or adding a shared one that exists.
func (o qosOp) done(err error) bool {
	return err == nil || (o.del && isNotExist(err)) || (o.existOK && errors.Is(err, unix.EEXIST))
}

// appendMsg encodes the request the way vishvananda/netlink does for the
// same object (so that its dumps read back what was sent), without the
// HTB rate tables: a rate spec with a link layer set (ethernet) makes the
// kernel compute its own (htb_change_class reads TCA_HTB_RTAB only for
// TC_LINKLAYER_UNAWARE), which saves 2 KiB per class.
func (o qosOp) appendMsg(b []byte, seq uint32) ([]byte, error) {
	var typ, flags int
	switch {
	case o.qdisc != nil:
		typ, flags = unix.RTM_NEWQDISC, unix.NLM_F_CREATE|unix.NLM_F_REPLACE
		if o.del {
			typ, flags = unix.RTM_DELQDISC, 0
		}
	case o.class != nil:
		typ, flags = unix.RTM_NEWTCLASS, unix.NLM_F_CREATE|unix.NLM_F_REPLACE
		if o.del {
			typ, flags = unix.RTM_DELTCLASS, 0
		}
	case o.filter != nil:
		typ, flags = unix.RTM_NEWTFILTER, unix.NLM_F_CREATE|unix.NLM_F_EXCL
		if o.del {
			typ, flags = unix.RTM_DELTFILTER, 0
		}
	default:
		return b, errors.New("empty qos change")
	}
	req := nl.NewNetlinkRequest(typ, flags|unix.NLM_F_ACK)
	req.Seq = seq
	switch {
	case o.qdisc != nil:
		a := o.qdisc.Attrs()
		req.AddData(&nl.TcMsg{Family: nl.FAMILY_ALL, Ifindex: int32(a.LinkIndex), Handle: a.Handle, Parent: a.Parent})
		if !o.del {
			opts, err := qdiscOptions(o.qdisc)
			if err != nil {
				return b, err
			}
			req.AddData(nl.NewRtAttr(nl.TCA_KIND, nl.ZeroTerminated(o.qdisc.Type())))
			req.AddData(opts)
		}
	case o.class != nil:
		c := o.class
		req.AddData(&nl.TcMsg{Family: nl.FAMILY_ALL, Ifindex: int32(c.LinkIndex), Handle: c.Handle, Parent: c.Parent})
		if !o.del {
			req.AddData(nl.NewRtAttr(nl.TCA_KIND, nl.ZeroTerminated("htb")))
			req.AddData(htbClassOptions(c))
		}
	case o.filter != nil:
		f := o.filter
		req.AddData(&nl.TcMsg{
			Family: nl.FAMILY_ALL, Ifindex: int32(f.LinkIndex), Handle: f.Handle, Parent: f.Parent,
			Info: netlink.MakeHandle(f.Priority, nl.Swap16(f.Protocol)),
		})
		req.AddData(nl.NewRtAttr(nl.TCA_KIND, nl.ZeroTerminated("u32")))
		if !o.del {
			req.AddData(u32Options(f))
		}
	}
	return append(b, req.Serialize()...), nil
}

func qdiscOptions(q netlink.Qdisc) (*nl.RtAttr, error) {
	opts := nl.NewRtAttr(nl.TCA_OPTIONS, nil)
	switch q := q.(type) {
	case *netlink.Htb:
		g := nl.TcHtbGlob{Version: q.Version, Rate2Quantum: q.Rate2Quantum, Defcls: q.Defcls, Debug: q.Debug, DirectPkts: q.DirectPkts}
		opts.AddRtAttr(nl.TCA_HTB_INIT, g.Serialize())
	case *netlink.FqCodel:
		opts.AddRtAttr(nl.TCA_FQ_CODEL_ECN, nl.Uint32Attr(q.ECN))
		for _, a := range []struct {
			typ int
			v   uint32
		}{{nl.TCA_FQ_CODEL_LIMIT, q.Limit}, {nl.TCA_FQ_CODEL_FLOWS, q.Flows}, {nl.TCA_FQ_CODEL_MEMORY_LIMIT, q.MemoryLimit}} {
			if a.v > 0 {
				opts.AddRtAttr(a.typ, nl.Uint32Attr(a.v))
			}
		}
	default:
		return nil, fmt.Errorf("qdisc type %s not batched", q.Type())
	}
	return opts, nil
}

func htbClassOptions(c *netlink.HtbClass) *nl.RtAttr {
	opts := nl.NewRtAttr(nl.TCA_OPTIONS, nil)
	// The 32-bit fields truncate as the library's do; rates of 2^32
	// bytes/s and more travel in the 64-bit attributes (docs/linux.md).
	p := nl.TcHtbCopt{
		Rate:    nl.TcRateSpec{Rate: uint32(c.Rate), Linklayer: nl.LINKLAYER_ETHERNET},
		Ceil:    nl.TcRateSpec{Rate: uint32(c.Ceil), Linklayer: nl.LINKLAYER_ETHERNET},
		Buffer:  c.Buffer,
		Cbuffer: c.Cbuffer,
		Quantum: c.Quantum,
		Level:   c.Level,
		Prio:    c.Prio,
	}
	opts.AddRtAttr(nl.TCA_HTB_PARMS, p.Serialize())
	if c.Rate >= 1<<32 {
		opts.AddRtAttr(nl.TCA_HTB_RATE64, nl.Uint64Attr(c.Rate))
	}
	if c.Ceil >= 1<<32 {
		opts.AddRtAttr(nl.TCA_HTB_CEIL64, nl.Uint64Attr(c.Ceil))
	}
	return opts
}

// u32Options encodes a node: selector (masks, values and hmask in network
// byte order on the wire), class, divisor, hash bucket and link.
func u32Options(f *netlink.U32) *nl.RtAttr {
	opts := nl.NewRtAttr(nl.TCA_OPTIONS, nil)
	sel := nl.TcU32Sel{Nkeys: 1, Flags: nl.TC_U32_TERMINAL, Keys: []nl.TcU32Key{{}}} // match all
	if f.Sel != nil {
		sel = *f.Sel
		sel.Keys = make([]nl.TcU32Key, len(f.Sel.Keys))
		for i, k := range f.Sel.Keys {
			k.Mask, k.Val = wire32(k.Mask), wire32(k.Val)
			sel.Keys[i] = k
		}
		sel.Hmask = wire32(sel.Hmask)
		sel.Offmask = wire16(sel.Offmask)
	}
	sel.Nkeys = uint8(len(sel.Keys))
	opts.AddRtAttr(nl.TCA_U32_SEL, sel.Serialize())
	for _, a := range []struct {
		typ int
		v   uint32
	}{{nl.TCA_U32_CLASSID, f.ClassId}, {nl.TCA_U32_DIVISOR, f.Divisor}, {nl.TCA_U32_HASH, f.Hash}, {nl.TCA_U32_LINK, f.Link}} {
		if a.v != 0 {
			opts.AddRtAttr(a.typ, nl.Uint32Attr(a.v))
		}
	}
	return opts
}

// wire32 is the host-order value whose in-memory bytes are v in network
// byte order.
func wire32(v uint32) uint32 {
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], v)
	return binary.NativeEndian.Uint32(b[:])
}

func wire16(v uint16) uint16 {
	var b [2]byte
	binary.BigEndian.PutUint16(b[:], v)
	return binary.NativeEndian.Uint16(b[:])
}

// ApplyQoS sends ops through the batch socket, in order, and returns one
// error per op (nil: done, see qosOp.done for what else is).
func (l qosLive) ApplyQoS(ops []qosOp) []error {
	errs := make([]error, len(ops))
	applyItems(l.k, ops, errs)
	return errs
}

// qosLive is the kernel: the library's handle for dumps and route lookups,
// the batch socket for changes.
type qosLive struct {
	*netlink.Handle
	k *Kernel
}

// qosBatch is a list of changes, each owned by a target (the invalid Addr
// for a device's shared objects).
type qosBatch struct {
	ops    []qosOp
	owners []netip.Addr
}

func (b *qosBatch) add(owner netip.Addr, ops ...qosOp) {
	for _, o := range ops {
		b.ops = append(b.ops, o)
		b.owners = append(b.owners, owner)
	}
}

// run applies the batch and returns each op's error (nil: done, see
// qosOp.done) and the first error of each owner.
func (b *qosBatch) run(nlh qosNL) (errs []error, byOwner map[netip.Addr]error) {
	byOwner = map[netip.Addr]error{}
	if len(b.ops) == 0 {
		return nil, byOwner
	}
	errs = nlh.ApplyQoS(b.ops)
	for i, op := range b.ops {
		if op.done(errs[i]) {
			errs[i] = nil
			continue
		}
		verb, obj := op.describe()
		errs[i] = opErr(verb, obj, errs[i])
		if _, seen := byOwner[b.owners[i]]; !seen {
			byOwner[b.owners[i]] = errs[i]
		}
	}
	return errs, byOwner
}

// qosCounter counts and logs (debug) every change, so that tests can
// assert that adoption makes none.
type qosCounter struct {
	qosNL
	k *Kernel
}

func (c qosCounter) ApplyQoS(ops []qosOp) []error {
	errs := c.qosNL.ApplyQoS(ops)
	c.k.qosChanges.Add(int64(len(ops)))
	if c.k.log.Core().Enabled(zap.DebugLevel) {
		for i, o := range ops {
			c.k.log.Debug("kernel: qos change", zap.Stringer("op", o), zap.Error(errs[i]))
		}
	}
	return errs
}
