package kernel

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// DefaultNATSteerTable is the nftables table of the NAT steering. It is a
// table of its own beside the guard's: the guard's table is replaced
// wholesale on Install, the steering's with every SA change.
const DefaultNATSteerTable = "dmvpnd_natsteer"

// NATSteer is one tunnel-mode SA with a peer behind NAT whose policies
// carry XFRM marks (ipsec.Config.MarkNAT): the kernel steers GRE into it
// by mark, since several such SAs may share one inner address.
type NATSteer struct {
	// GRE is the address the tunnel sends this peer's GRE to (its neighbour
	// entries' lladdr): Inner, or an alias from NATSteerConfig.AliasPrefix
	// when another SA already uses Inner.
	GRE netip.Addr
	// Inner is the SA's inner (remote) address, the peer's private NBMA.
	Inner netip.Addr
	// Outer is the SA's remote endpoint, the NAT's public address.
	Outer netip.Addr
	// MarkIn is the mark the inbound SA sets on decrypted packets (and
	// its inbound policy's); MarkOut the outbound policy's mark.
	MarkIn, MarkOut uint32
	// ReqID is the CHILD_SA's reqid (the alias policy's template).
	ReqID uint32
}

func (s NATSteer) aliased() bool { return s.GRE != s.Inner }

// NATSteerConfig configures the steering.
type NATSteerConfig struct {
	// NetNS is an open network namespace fd (0: current).
	NetNS int
	// Table name; default DefaultNATSteerTable.
	Table string
	// AliasPrefix holds the aliases; inbound XFRM policies whose source
	// lies in it are the steering's own (removed when not wanted).
	AliasPrefix netip.Prefix
}

// NATSteering steers GRE to and from NAT tunnel-mode SAs by their marks
// (docs/strongswan.md, "Two spokes behind different NATs with the same
// private address"). For local address L the table is:
//
//	table ip dmvpnd_natsteer {
//	  map out_mark  { type ipv4_addr : mark; }        # GRE -> MarkOut
//	  map out_daddr { type ipv4_addr : ipv4_addr; }   # GRE -> Inner
//	  map in_saddr  { type mark . ipv4_addr : ipv4_addr; } # MarkIn . Inner -> alias
//	  chain out {
//	    type route hook output priority mangle; policy accept;
//	    ip protocol gre ip saddr L meta mark set ip daddr map @out_mark ip daddr set ip daddr map @out_daddr
//	  }
//	  chain pre {
//	    type filter hook prerouting priority raw; policy accept;
//	    ip protocol gre ip daddr L ip saddr set meta mark . ip saddr map @in_saddr
//	  }
//	}
//
// Changing the mark (and destination) in a route chain makes the kernel
// route the packet again, with an XFRM lookup under the new mark, so it
// takes its SA. A destination without an entry keeps no mark, matches no
// marked policy, and the GRE guard drops it. Inbound, an aliased SA's
// decrypted GRE gets its alias as source before conntrack and the GRE
// receive path; for the local-delivery policy check to pass, every alias
// also has an inbound policy (src alias, dst L, proto gre, mark MarkIn,
// template: tunnel from Outer to L with ReqID).
type NATSteering struct {
	cfg NATSteerConfig
}

// NewNATSteering returns the steering; nothing is installed until Set.
func NewNATSteering(cfg NATSteerConfig) *NATSteering {
	if cfg.Table == "" {
		cfg.Table = DefaultNATSteerTable
	}
	return &NATSteering{cfg: cfg}
}

func (n *NATSteering) object() string { return "table ip " + n.cfg.Table }

// Set replaces the steering with want for local address L: the table in
// one netlink batch, then the alias policies (added or updated, and the
// steering's own that are no longer wanted removed). Idempotent. Of
// several entries with one GRE address the first gives the outbound mark.
func (n *NATSteering) Set(local netip.Addr, want []NATSteer) error {
	if !local.Is4() {
		return opErr("set NAT steering", n.object(), fmt.Errorf("local address %s is not IPv4", local))
	}
	for _, s := range want {
		if !s.GRE.Is4() || !s.Inner.Is4() || !s.Outer.Is4() {
			return opErr("set NAT steering", n.object(), fmt.Errorf("%+v: addresses must be IPv4", s))
		}
		if s.aliased() && !n.cfg.AliasPrefix.Contains(s.GRE) {
			return opErr("set NAT steering", n.object(), fmt.Errorf("alias %s outside %s", s.GRE, n.cfg.AliasPrefix))
		}
	}
	if err := n.setTable(local, want); err != nil {
		return opErr("set NAT steering", n.object(), err)
	}
	return opErr("set NAT steering policies", n.object(), n.setPolicies(local, want))
}

func mark32(v uint32) []byte { return binary.NativeEndian.AppendUint32(nil, v) } // meta mark: host order

func ip4(a netip.Addr) []byte { b := a.As4(); return b[:] }

func (n *NATSteering) setTable(local netip.Addr, want []NATSteer) error {
	cc, err := nftConn(n.cfg.NetNS)
	if err != nil {
		return err
	}
	t := &nftables.Table{Name: n.cfg.Table, Family: nftables.TableFamilyIPv4}
	cc.AddTable(t)
	cc.DelTable(t)
	cc.AddTable(t)
	outMark := &nftables.Set{Table: t, Name: "out_mark", ID: 1, KeyType: nftables.TypeIPAddr, DataType: nftables.TypeMark, IsMap: true}
	outDaddr := &nftables.Set{Table: t, Name: "out_daddr", ID: 2, KeyType: nftables.TypeIPAddr, DataType: nftables.TypeIPAddr, IsMap: true}
	inSaddr := &nftables.Set{Table: t, Name: "in_saddr", ID: 3, KeyType: nftables.MustConcatSetType(nftables.TypeMark, nftables.TypeIPAddr),
		Concatenation: true, DataType: nftables.TypeIPAddr, IsMap: true}
	var om, od, is []nftables.SetElement
	outSeen, inSeen := map[netip.Addr]bool{}, map[[2]uint32]bool{}
	for _, s := range want {
		// Several entries for one peer (a CHILD_SA and its replacement):
		// the first's outbound mark, every inbound one.
		if !outSeen[s.GRE] {
			outSeen[s.GRE] = true
			om = append(om, nftables.SetElement{Key: ip4(s.GRE), Val: mark32(s.MarkOut)})
			od = append(od, nftables.SetElement{Key: ip4(s.GRE), Val: ip4(s.Inner)})
		}
		k := [2]uint32{s.MarkIn, binary.BigEndian.Uint32(ip4(s.Inner))}
		if s.aliased() && !inSeen[k] {
			inSeen[k] = true
			is = append(is, nftables.SetElement{Key: append(mark32(s.MarkIn), ip4(s.Inner)...), Val: ip4(s.GRE)})
		}
	}
	for _, set := range []struct {
		s  *nftables.Set
		el []nftables.SetElement
	}{{outMark, om}, {outDaddr, od}, {inSaddr, is}} {
		if err := cc.AddSet(set.s, set.el); err != nil {
			return err
		}
	}
	accept := nftables.ChainPolicyAccept
	out := cc.AddChain(&nftables.Chain{Name: "out", Table: t, Type: nftables.ChainTypeRoute,
		Hooknum: nftables.ChainHookOutput, Priority: nftables.ChainPriorityMangle, Policy: &accept})
	pre := cc.AddChain(&nftables.Chain{Name: "pre", Table: t, Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookPrerouting, Priority: nftables.ChainPriorityRaw, Policy: &accept})
	gre := func(addrOff uint32) []expr.Any {
		return []expr.Any{
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 9, Len: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.IPPROTO_GRE}},
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: addrOff, Len: 4},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: ip4(local)},
		}
	}
	daddr := &expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 16, Len: 4}
	write := func(off uint32) *expr.Payload {
		return &expr.Payload{OperationType: expr.PayloadWrite, SourceRegister: 1, Base: expr.PayloadBaseNetworkHeader,
			Offset: off, Len: 4, CsumType: expr.CsumTypeInet, CsumOffset: 10}
	}
	cc.AddRule(&nftables.Rule{Table: t, Chain: out, Exprs: append(gre(12),
		daddr,
		&expr.Lookup{SourceRegister: 1, DestRegister: 1, IsDestRegSet: true, SetName: outMark.Name, SetID: outMark.ID},
		&expr.Meta{Key: expr.MetaKeyMARK, SourceRegister: true, Register: 1},
		daddr,
		&expr.Lookup{SourceRegister: 1, DestRegister: 1, IsDestRegSet: true, SetName: outDaddr.Name, SetID: outDaddr.ID},
		write(16),
	)})
	cc.AddRule(&nftables.Rule{Table: t, Chain: pre, Exprs: append(gre(16),
		// meta mark . ip saddr into registers 1 and 9 (32-bit halves of reg 1).
		&expr.Meta{Key: expr.MetaKeyMARK, Register: 1},
		&expr.Payload{DestRegister: 9, Base: expr.PayloadBaseNetworkHeader, Offset: 12, Len: 4},
		&expr.Lookup{SourceRegister: 1, DestRegister: 1, IsDestRegSet: true, SetName: inSaddr.Name, SetID: inSaddr.ID},
		write(12),
	)})
	return cc.Flush()
}

// Remove deletes the table and the alias policies; missing ones are not an
// error.
func (n *NATSteering) Remove() error {
	cc, err := nftConn(n.cfg.NetNS)
	if err != nil {
		return opErr("remove NAT steering", n.object(), err)
	}
	t := &nftables.Table{Name: n.cfg.Table, Family: nftables.TableFamilyIPv4}
	cc.AddTable(t)
	cc.DelTable(t)
	if err := cc.Flush(); err != nil {
		return opErr("remove NAT steering", n.object(), err)
	}
	return opErr("remove NAT steering policies", n.object(), n.setPolicies(netip.Addr{}, nil))
}

func (n *NATSteering) handle() (*netlink.Handle, error) {
	if n.cfg.NetNS > 0 {
		return netlink.NewHandleAt(netns.NsHandle(n.cfg.NetNS))
	}
	return netlink.NewHandle()
}

// aliasPolicy is the inbound policy that lets an aliased SA's rewritten GRE
// pass the local-delivery policy check.
func aliasPolicy(local netip.Addr, s NATSteer) *netlink.XfrmPolicy {
	return &netlink.XfrmPolicy{
		Src: ipNet(netip.PrefixFrom(s.GRE, 32)), Dst: ipNet(netip.PrefixFrom(local, 32)), Proto: unix.IPPROTO_GRE, Dir: netlink.XFRM_DIR_IN,
		Mark: &netlink.XfrmMark{Value: s.MarkIn, Mask: ^uint32(0)},
		Tmpls: []netlink.XfrmPolicyTmpl{{Src: net.IP(s.Outer.AsSlice()), Dst: net.IP(local.AsSlice()),
			Proto: netlink.XFRM_PROTO_ESP, Mode: netlink.XFRM_MODE_TUNNEL, Reqid: int(s.ReqID)}},
	}
}

// setPolicies installs the alias policies of want and deletes the inbound
// policies with a source in AliasPrefix that want does not hold.
func (n *NATSteering) setPolicies(local netip.Addr, want []NATSteer) error {
	if !n.cfg.AliasPrefix.IsValid() {
		return nil
	}
	h, err := n.handle()
	if err != nil {
		return err
	}
	defer h.Close()
	type key struct {
		src  netip.Addr
		mark uint32
	}
	wanted := map[key]bool{}
	for _, s := range want {
		if !s.aliased() {
			continue
		}
		wanted[key{s.GRE, s.MarkIn}] = true
		if err := h.XfrmPolicyUpdate(aliasPolicy(local, s)); err != nil {
			return fmt.Errorf("alias policy %s mark %#x: %w", s.GRE, s.MarkIn, err)
		}
	}
	have, err := h.XfrmPolicyList(unix.AF_INET)
	if err != nil {
		return err
	}
	for i := range have {
		p := &have[i]
		if p.Dir != netlink.XFRM_DIR_IN || p.Src == nil || p.Proto != unix.IPPROTO_GRE {
			continue
		}
		src, ok := netip.AddrFromSlice(p.Src.IP.To4())
		if ones, _ := p.Src.Mask.Size(); !ok || ones != 32 || !n.cfg.AliasPrefix.Contains(src) {
			continue
		}
		var m uint32
		if p.Mark != nil {
			m = p.Mark.Value
		}
		if wanted[key{src, m}] {
			continue
		}
		if err := h.XfrmPolicyDel(p); err != nil && !errors.Is(err, unix.ENOENT) {
			return fmt.Errorf("remove alias policy %s: %w", src, err)
		}
	}
	return nil
}
