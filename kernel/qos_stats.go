package kernel

import (
	"fmt"
	"net/netip"
	"slices"

	"github.com/vishvananda/netlink"
)

// QoSClassStats are one class's counters (`dmvpnctl show qos`).
type QoSClassStats struct {
	// Name is the policy's class name, "default" for unmatched DSCPs, or
	// "class N" for a tree adopted from an earlier run before SetQoS named
	// it.
	Name    string
	Rate    uint64 // guaranteed bit/s
	Ceil    uint64 // bit/s
	Bytes   uint64 // sent
	Packets uint64 // sent
	// Drops counts packets the class's queue dropped (fq_codel: overflow
	// and AQM drops).
	Drops uint64
	// Overlimits counts the times the class was throttled by its rate.
	Overlimits uint64
	Backlog    uint64 // bytes queued now
	Qlen       uint64 // packets queued now
}

// QoSTargetStats are one target's counters: the shaper (the target's
// class) and each leaf class.
type QoSTargetStats struct {
	Dst     netip.Addr
	Policy  string
	Ifindex int
	Shaper  QoSClassStats
	Classes []QoSClassStats
}

// QoSStats dumps the counters of every installed target, sorted by
// destination. It reads each egress device's classes and qdiscs once.
func (k *Kernel) QoSStats() ([]QoSTargetStats, error) {
	k.qosMu.Lock()
	defer k.qosMu.Unlock()
	nlh := k.qosHandle()
	if !k.qos.loaded {
		if err := k.loadQoS(nlh); err != nil {
			return nil, err
		}
	}
	var out []QoSTargetStats
	devs := make([]int, 0, len(k.qos.devs))
	for i := range k.qos.devs {
		devs = append(devs, i)
	}
	slices.Sort(devs)
	for _, ifindex := range devs {
		link := qosLink(ifindex)
		cs, err := nlh.ClassList(link, 0)
		if err != nil {
			return nil, opErr("list classes", fmt.Sprintf("dev %d", ifindex), err)
		}
		qs, err := nlh.QdiscList(link)
		if err != nil {
			return nil, opErr("list qdiscs", fmt.Sprintf("dev %d", ifindex), err)
		}
		classes := map[uint32]netlink.Class{}
		for _, c := range cs {
			classes[c.Attrs().Handle] = c
		}
		leafDrops := map[uint32]uint64{}
		for _, q := range qs {
			if s := q.Attrs().Statistics; s != nil && s.Queue != nil {
				leafDrops[q.Attrs().Parent] = uint64(s.Queue.Drops)
			}
		}
		for _, t := range k.qos.targets {
			if t.ifindex != ifindex {
				continue
			}
			ts := QoSTargetStats{Dst: t.dst, Policy: t.policy, Ifindex: ifindex}
			for i, spec := range t.objs.classes {
				cs := classStats(classes[spec.handle], spec)
				if i == 0 {
					cs.Name = "shaper"
					ts.Shaper = cs
					continue
				}
				cs.Name = fmt.Sprintf("class %d", i)
				if i-1 < len(t.names) {
					cs.Name = t.names[i-1]
				}
				cs.Drops = leafDrops[spec.handle]
				ts.Classes = append(ts.Classes, cs)
			}
			out = append(out, ts)
		}
	}
	slices.SortFunc(out, func(a, b QoSTargetStats) int { return a.Dst.Compare(b.Dst) })
	return out, nil
}

func classStats(c netlink.Class, spec htbClassSpec) QoSClassStats {
	s := QoSClassStats{Rate: spec.rate * 8, Ceil: spec.ceil * 8}
	if c == nil || c.Attrs().Statistics == nil {
		return s
	}
	st := c.Attrs().Statistics
	if st.Basic != nil {
		s.Bytes, s.Packets = st.Basic.Bytes, uint64(st.Basic.Packets)
	}
	if st.Queue != nil {
		s.Drops, s.Overlimits = uint64(st.Queue.Drops), uint64(st.Queue.Overlimits)
		s.Backlog, s.Qlen = uint64(st.Queue.Backlog), uint64(st.Queue.Qlen)
	}
	return s
}
