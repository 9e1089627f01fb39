package kernel

// Per-tunnel QoS (issue 19): the kernel half.
//
// The controller computes, from the configured policies (qos.groups) and the
// NHRP group each peer announced, which peer gets which policy, and hands the
// whole desired state to SetQoS:
//
//	type QoSClass  struct { Name string; DSCP []uint8; Priority bool; Rate, Ceil uint64 }
//	type QoSPolicy struct { Rate uint64; Burst uint32; Classes []QoSClass }
//	type QoSTarget struct { Dst netip.Addr; Policy string }
//	func (k *Kernel) SetQoS(policies map[string]QoSPolicy, targets []QoSTarget) error
//
// Rates are bit/s, Burst is bytes. Dst is the peer's GRE destination on the
// wire (its NBMA address, or the post-NAT address the packets are sent to):
// the shaper sits on the underlay egress device of the route to Dst and
// classifies the outer header, so it works for plain GRE and for ESP alike.
// Traffic whose DSCP matches no class goes to the policy's default class;
// traffic to addresses that are no target goes to an unshaped class.
//
// The tree (docs/linux.md, "Per-tunnel QoS") on each egress device is
//
//	qdisc htb d: root default 1
//	  class d:1                 unshaped (1 Tbit/s), leaf fq_codel 1:
//	  class d:Q                 one per bucket (Q = 0x100 + a hash of the
//	                            destination), 1 Tbit/s, leaf:
//	    qdisc htb Q:
//	      class Q:B             one per target: rate = ceil = policy rate
//	        class Q:B+1 .. Q:B+n    the policy's classes, in order
//	        class Q:B+n+1           the policy's default class
//	          leaf fq_codel M: on every class Q:M
//
// with B = 0x200 + 6*slot, so that no HTB qdisc holds every class (the
// kernel's cost of adding a class grows with its qdisc's classes). u32
// filters on d:, hashed on the destination's last two octets, send a
// target's packets to its bucket; on Q:, hashed on the last octet, one
// entry per (target, DSCP) and a catch-all per target send them to its
// classes. qos_layout.go has the numbers.

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
)

// QoSClass is one class of a QoS policy. Packets whose outer DSCP is in DSCP
// go to it. A Priority class is served first (HTB priority 0) and capped at
// Rate (Ceil is ignored); any other class is guaranteed Rate and may borrow
// up to Ceil (0: the policy rate).
type QoSClass struct {
	Name     string
	DSCP     []uint8
	Priority bool
	Rate     uint64 // bit/s
	Ceil     uint64 // bit/s
}

// QoSPolicy is a shaper for one peer: all its traffic at most Rate (bit/s)
// with bursts of Burst bytes (0: 5 ms at Rate, at least 3200 bytes), split
// into Classes; traffic matching no class goes to a default class that
// gets what the classes leave (at least 1% of Rate) and may borrow up to
// Rate.
type QoSPolicy struct {
	Rate    uint64
	Burst   uint32
	Classes []QoSClass
}

// QoSTarget applies the named policy to the traffic towards Dst, the peer's
// GRE destination (outer destination address).
type QoSTarget struct {
	Dst    netip.Addr
	Policy string
}

// Limits of a QoS policy (handle space: 6 classes per target, see
// qos_layout.go).
const (
	// QoSMaxClasses is the number of classes a policy may have besides the
	// default class.
	QoSMaxClasses = qosSlotWidth - 2
	// QoSMinRate and QoSMaxRate bound every rate in a policy (bit/s).
	QoSMinRate = 8_000
	QoSMaxRate = 100_000_000_000
	// qosDefaultClassName names the class of unmatched DSCPs in stats.
	qosDefaultClassName = "default"
)

// Validate checks a policy without touching the kernel.
func (p QoSPolicy) Validate() error {
	_, err := compilePolicy(p)
	return err
}

// qosLeaf is one leaf class of a compiled policy.
type qosLeaf struct {
	name     string
	dscp     []uint8 // sorted; empty for the default class
	priority bool
	rate     uint64 // bit/s
	ceil     uint64 // bit/s
}

// qosTree is a validated policy with defaults filled in: leaves are the
// policy's classes in order, then the default class.
type qosTree struct {
	rate   uint64 // bit/s
	burst  uint32 // bytes
	leaves []qosLeaf
}

func compilePolicy(p QoSPolicy) (qosTree, error) {
	var errs []string
	bad := func(format string, a ...any) { errs = append(errs, fmt.Sprintf(format, a...)) }
	if p.Rate < QoSMinRate || p.Rate > QoSMaxRate {
		bad("rate %d bit/s out of range %d-%d", p.Rate, QoSMinRate, uint64(QoSMaxRate))
	}
	if p.Burst != 0 && (p.Burst < 1600 || p.Burst > 64<<20) {
		bad("burst %d bytes out of range 1600-%d", p.Burst, 64<<20)
	}
	if len(p.Classes) > QoSMaxClasses {
		bad("%d classes, at most %d", len(p.Classes), QoSMaxClasses)
	}
	t := qosTree{rate: p.Rate, burst: p.Burst}
	if t.burst == 0 {
		t.burst = uint32(max(p.Rate/8/200, 3200))
	}
	names := map[string]bool{}
	owner := map[uint8]string{}
	var sum uint64
	for i, c := range p.Classes {
		label := fmt.Sprintf("class %d %q", i+1, c.Name)
		switch {
		case c.Name == "" || len(c.Name) > 32 || strings.ContainsFunc(c.Name, func(r rune) bool { return r <= ' ' || r > '~' }):
			bad("%s: name must be 1-32 printable characters", label)
		case c.Name == qosDefaultClassName:
			bad("%s: name %q is reserved", label, qosDefaultClassName)
		case names[c.Name]:
			bad("%s: duplicate name", label)
		}
		names[c.Name] = true
		if len(c.DSCP) == 0 {
			bad("%s: no DSCP value", label)
		}
		dscp := slices.Clone(c.DSCP)
		slices.Sort(dscp)
		dscp = slices.Compact(dscp)
		for _, d := range dscp {
			if d > 63 {
				bad("%s: DSCP %d out of range 0-63", label, d)
				continue
			}
			if o, taken := owner[d]; taken {
				bad("%s: DSCP %d already in %s", label, d, o)
				continue
			}
			owner[d] = label
		}
		leaf := qosLeaf{name: c.Name, dscp: dscp, priority: c.Priority, rate: c.Rate, ceil: c.Ceil}
		if c.Rate < QoSMinRate || c.Rate > p.Rate {
			bad("%s: rate %d bit/s out of range %d-%d (the policy rate)", label, c.Rate, QoSMinRate, p.Rate)
		}
		switch {
		case c.Priority:
			leaf.ceil = c.Rate
		case c.Ceil == 0:
			leaf.ceil = p.Rate
		case c.Ceil < c.Rate || c.Ceil > p.Rate:
			bad("%s: ceil %d bit/s out of range %d-%d", label, c.Ceil, c.Rate, p.Rate)
		}
		sum += c.Rate
		t.leaves = append(t.leaves, leaf)
	}
	if sum > p.Rate {
		bad("classes guarantee %d bit/s, more than the policy rate %d", sum, p.Rate)
	}
	if len(errs) > 0 {
		return qosTree{}, fmt.Errorf("kernel: qos policy: %s", strings.Join(errs, "; "))
	}
	def := qosLeaf{name: qosDefaultClassName, rate: max(p.Rate/100, p.Rate-sum), ceil: p.Rate}
	t.leaves = append(t.leaves, def)
	return t, nil
}

// validQoSDst reports why dst cannot be a QoS target ("" if it can).
func validQoSDst(dst netip.Addr) string {
	switch {
	case !dst.IsValid() || !dst.Is4():
		return fmt.Sprintf("destination %q is not an IPv4 address", dst)
	case dst.IsUnspecified(), dst.IsLoopback(), dst.IsMulticast(), dst == netip.AddrFrom4([4]byte{255, 255, 255, 255}):
		return fmt.Sprintf("destination %s is not a unicast address", dst)
	}
	return ""
}
