package kernel

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// Multicast capture defaults. The NFLOG group differs from the hairpin
// trigger's (DefaultHairpinGroup): a group has one listener.
const (
	DefaultMulticastTable = "dmvpnd_mcast"
	DefaultMulticastGroup = 2
	// DefaultMulticastCopyLen is the number of packet bytes copied to
	// userspace: a whole packet of any tunnel MTU.
	DefaultMulticastCopyLen = 0xffff
)

// LinkLocalMulticast is always captured: the routing protocols' groups
// (OSPF 224.0.0.5/6, RIP 224.0.0.9, EIGRP 224.0.0.10, ...), never forwarded.
var LinkLocalMulticast = netip.MustParsePrefix("224.0.0.0/24")

var multicastSpace = netip.MustParsePrefix("224.0.0.0/4")

const multicastChain = "output"

// MulticastConfig configures the multicast capture: an nftables table of our
// own, family ip, whose output chain logs every locally originated packet
// that leaves the tunnel towards a captured group to NFLOG and drops it.
//
// The equivalent nft ruleset (tunnel ifindex 7, group 2, one extra group):
//
//	table ip dmvpnd_mcast {
//	  chain output {
//	    type filter hook output priority filter; policy accept;
//	    oif 7 ip daddr 224.0.0.0/24 log group 2 queue-threshold 1 drop
//	    oif 7 ip daddr 239.1.0.0/16 log group 2 queue-threshold 1 drop
//	  }
//	}
//
// The output hook sees each packet once, before ip_mc_output loops a copy
// back to local listeners (that copy passes postrouting, not output), so a
// packet is captured exactly once. Multicast forwarded by a multicast
// router is not captured.
type MulticastConfig struct {
	// NetNS is an open network namespace fd (0: current).
	NetNS int
	// Table name; default DefaultMulticastTable.
	Table string
	// Group is the NFLOG group; default DefaultMulticastGroup.
	Group uint16
	// Groups are captured besides LinkLocalMulticast; each must lie in
	// 224.0.0.0/4.
	Groups []netip.Prefix
}

func (c MulticastConfig) withDefaults() MulticastConfig {
	if c.Table == "" {
		c.Table = DefaultMulticastTable
	}
	if c.Group == 0 {
		c.Group = DefaultMulticastGroup
	}
	return c
}

// prefixes returns the captured groups: link-local first, then the
// configured ones masked, sorted, without duplicates or groups already
// covered by link-local.
func (c MulticastConfig) prefixes() ([]netip.Prefix, error) {
	out := []netip.Prefix{LinkLocalMulticast}
	var extra []netip.Prefix
	for _, p := range c.Groups {
		if !p.IsValid() || !p.Addr().Is4() || p.Bits() < multicastSpace.Bits() || !multicastSpace.Contains(p.Addr()) {
			return nil, fmt.Errorf("group %s is not an IPv4 multicast prefix (inside 224.0.0.0/4)", p)
		}
		p = p.Masked()
		if LinkLocalMulticast.Bits() <= p.Bits() && LinkLocalMulticast.Contains(p.Addr()) {
			continue
		}
		extra = append(extra, p)
	}
	slices.SortFunc(extra, func(a, b netip.Prefix) int {
		if c := a.Addr().Compare(b.Addr()); c != 0 {
			return c
		}
		return a.Bits() - b.Bits()
	})
	return append(out, slices.Compact(extra)...), nil
}

// multicastExprs is one rule: oif == tunnel, ip daddr in group, log to
// NFLOG (whole packet, delivered at once), drop.
func multicastExprs(group uint16, ifindex int, p netip.Prefix) ([]expr.Any, error) {
	if ifindex <= 0 {
		return nil, fmt.Errorf("invalid tunnel ifindex %d", ifindex)
	}
	if !p.Addr().Is4() {
		return nil, errors.New("group is not IPv4")
	}
	var mask [4]byte
	for i := range p.Bits() {
		mask[i/8] |= 0x80 >> (i % 8)
	}
	a := p.Masked().Addr().As4()
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyOIF, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binaryutil.NativeEndian.PutUint32(uint32(ifindex))},
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 16, Len: 4},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: mask[:], Xor: []byte{0, 0, 0, 0}},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: a[:]},
		&expr.Log{
			Key:        1<<unix.NFTA_LOG_GROUP | 1<<unix.NFTA_LOG_QTHRESHOLD,
			Group:      group,
			QThreshold: 1,
		},
		&expr.Verdict{Kind: expr.VerdictDrop},
	}, nil
}

// queueMulticastInstall appends the atomic replace of the capture table to
// cc's batch (add so that the delete cannot fail, delete, create).
func queueMulticastInstall(cc *nftables.Conn, c MulticastConfig, ifindex int) error {
	groups, err := c.prefixes()
	if err != nil {
		return err
	}
	t := &nftables.Table{Name: c.Table, Family: nftables.TableFamilyIPv4}
	cc.AddTable(t)
	cc.DelTable(t)
	cc.AddTable(t)
	policy := nftables.ChainPolicyAccept
	ch := cc.AddChain(&nftables.Chain{
		Name: multicastChain, Table: t, Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookOutput, Priority: nftables.ChainPriorityFilter, Policy: &policy,
	})
	for _, p := range groups {
		exprs, err := multicastExprs(c.Group, ifindex, p)
		if err != nil {
			return err
		}
		cc.AddRule(&nftables.Rule{Table: t, Chain: ch, Exprs: exprs})
	}
	return nil
}

// queueMulticastRemove appends an idempotent delete of the table.
func queueMulticastRemove(cc *nftables.Conn, c MulticastConfig) {
	t := &nftables.Table{Name: c.Table, Family: nftables.TableFamilyIPv4}
	cc.AddTable(t)
	cc.DelTable(t)
}
