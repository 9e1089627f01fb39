package kernel

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"slices"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// The tunnel-source binding (docs/security.md, "Tunnel-source binding")
// extends the GRE guard's input chain on a hub: a GRE packet to the local
// NBMA address that carries IPv4 whose source lies in the tunnel prefix
// must come from the NBMA address that tunnel address is bound to (by a
// registration, a static mapping or a resolution: the engine's neighbour
// entries). For local address L, tunnel prefix P, key K (none: no key
// test, flags 0x0000 and the inner header at offset 4) the rules are:
//
//	set tunnel_src { type ipv4_addr . ipv4_addr; }
//	counter tunnel_src_unbound { }
//	chain input {
//	  ... (the cleartext rule)
//	  ip protocol gre ip daddr L @th,16,16 0x0800 @th,0,16 != 0x2000 counter name "tunnel_src_unbound" drop
//	  ip protocol gre ip daddr L @th,0,16 0x2000 @th,16,16 0x0800 @th,32,32 K
//	    @th,160,32 & mask(P) == P  ip saddr . @th,160,32 != @tunnel_src counter name "tunnel_src_unbound" drop
//	}
//
// The first rule refuses IPv4 over GRE whose flags differ from the
// tunnel's (a checksum or sequence number would move the inner header out
// of the second rule's sight; the tunnel device accepts both). Both run in
// the input hook, which sees each packet once reassembled
// (ip_local_deliver defragments before LOCAL_IN) and, for ESP, once more
// decrypted: xfrm4_transport_finish re-injects the inner packet through
// PREROUTING and it is delivered locally again, so "ip saddr" is the
// GRE source the SA proved (transport mode: the IKE peer; tunnel mode:
// the single inner address its selector allows). NHRP (GRE protocol
// 0x2001) and inner sources outside the tunnel prefix (LAN traffic) are
// not concerned.
const (
	// GuardCounterUnbound counts what the binding drops.
	GuardCounterUnbound = "tunnel_src_unbound"
	boundSet            = "tunnel_src"
	boundSetID          = 1

	greFlagKey   = 0x2000
	greProtoIPv4 = 0x0800
	greBaseLen   = 4
	greKeyLen    = 4
)

// SourceBinding configures the guard's tunnel-source binding.
type SourceBinding struct {
	// Prefix is the tunnel prefix (IPv4); the zero Prefix installs no
	// binding.
	Prefix netip.Prefix
	// Key is the tunnel's GRE key (0: the tunnel has none).
	Key uint32
}

// Enabled reports whether the binding is to be installed.
func (b SourceBinding) Enabled() bool { return b.Prefix.IsValid() }

func (b SourceBinding) validate() error {
	if b.Enabled() && !b.Prefix.Addr().Is4() {
		return fmt.Errorf("tunnel prefix %s is not IPv4", b.Prefix)
	}
	return nil
}

// greLayout is the exact flags-and-version word of the tunnel's GRE
// packets and the offset of the inner header from the GRE header.
func (b SourceBinding) greLayout() (flags uint16, inner uint32) {
	if b.Key != 0 {
		return greFlagKey, greBaseLen + greKeyLen
	}
	return 0, greBaseLen
}

// BoundSource allows GRE from NBMA to carry inner source Tunnel.
type BoundSource struct {
	NBMA, Tunnel netip.Addr
}

func (s BoundSource) String() string { return s.NBMA.String() + " . " + s.Tunnel.String() }

func (s BoundSource) key() ([]byte, error) {
	if !s.NBMA.Is4() || !s.Tunnel.Is4() {
		return nil, fmt.Errorf("bound source %s is not IPv4", s)
	}
	n, t := s.NBMA.As4(), s.Tunnel.As4()
	return append(n[:], t[:]...), nil
}

func boundSourceOf(key []byte) (BoundSource, bool) {
	if len(key) != 8 {
		return BoundSource{}, false
	}
	return BoundSource{NBMA: netip.AddrFrom4([4]byte(key[:4])), Tunnel: netip.AddrFrom4([4]byte(key[4:]))}, true
}

func boundSetOf(t *nftables.Table) *nftables.Set {
	return &nftables.Set{
		Table: t, ID: boundSetID, Name: boundSet,
		KeyType:       nftables.MustConcatSetType(nftables.TypeIPAddr, nftables.TypeIPAddr),
		Concatenation: true,
	}
}

func be16(v uint16) []byte { return binary.BigEndian.AppendUint16(nil, v) }

// greTo matches GRE to the local address (any GRE when local is invalid).
func greTo(local netip.Addr) []expr.Any { return greWith(local, 16) }

// greWith matches GRE with the local address at addrOff of the IPv4 header
// (16: destination, 12: source); any GRE when local is invalid.
func greWith(local netip.Addr, addrOff uint32) []expr.Any {
	e := []expr.Any{
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 9, Len: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.IPPROTO_GRE}},
	}
	if local.IsValid() {
		a := local.As4()
		e = append(e,
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: addrOff, Len: 4},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: a[:]})
	}
	return e
}

func th(off, n uint32) *expr.Payload {
	return &expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: off, Len: n}
}

func countDrop(counter string) []expr.Any {
	return []expr.Any{&expr.Objref{Type: objectCounter, Name: counter}, &expr.Verdict{Kind: expr.VerdictDrop}}
}

// bindExprs are the binding's two rules (see the comment above).
func bindExprs(local netip.Addr, b SourceBinding, setName string, setID uint32) [][]expr.Any {
	flags, inner := b.greLayout()
	layout := append(greTo(local),
		th(2, 2), &expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: be16(greProtoIPv4)},
		th(0, 2), &expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: be16(flags)})
	layout = append(layout, countDrop(GuardCounterUnbound)...)

	bound := append(greTo(local),
		th(0, 2), &expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: be16(flags)},
		th(2, 2), &expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: be16(greProtoIPv4)})
	if b.Key != 0 {
		bound = append(bound, th(4, 4), &expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binary.BigEndian.AppendUint32(nil, b.Key)})
	}
	p := b.Prefix.Masked()
	net4 := p.Addr().As4()
	src := inner + 12 // the inner IPv4 header's source address
	bound = append(bound, th(src, 4))
	if p.Bits() < 32 {
		mask := binary.BigEndian.AppendUint32(nil, ^uint32(0)<<(32-p.Bits())) // 0 for /0
		bound = append(bound, &expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: mask, Xor: []byte{0, 0, 0, 0}})
	}
	bound = append(bound,
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: net4[:]},
		// ip saddr . inner saddr into registers 1 and 9 (32-bit halves of reg 1).
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 12, Len: 4},
		&expr.Payload{DestRegister: 9, Base: expr.PayloadBaseTransportHeader, Offset: src, Len: 4},
		&expr.Lookup{SourceRegister: 1, SetName: setName, SetID: setID, Invert: true})
	bound = append(bound, countDrop(GuardCounterUnbound)...)
	return [][]expr.Any{layout, bound}
}

// diffBound returns what to add and delete to turn have into want, each
// sorted; duplicates in want count once.
func diffBound(have, want []BoundSource) (add, del []BoundSource) {
	h := map[BoundSource]bool{}
	for _, s := range have {
		h[s] = true
	}
	w := map[BoundSource]bool{}
	for _, s := range want {
		if !w[s] && !h[s] {
			add = append(add, s)
		}
		w[s] = true
	}
	for s := range h {
		if !w[s] {
			del = append(del, s)
		}
	}
	cmpBound := func(a, b BoundSource) int {
		if c := a.NBMA.Compare(b.NBMA); c != 0 {
			return c
		}
		return a.Tunnel.Compare(b.Tunnel)
	}
	slices.SortFunc(add, cmpBound)
	slices.SortFunc(del, cmpBound)
	return add, del
}

func boundElements(srcs []BoundSource) ([]nftables.SetElement, error) {
	out := make([]nftables.SetElement, 0, len(srcs))
	for _, s := range srcs {
		k, err := s.key()
		if err != nil {
			return nil, err
		}
		out = append(out, nftables.SetElement{Key: k})
	}
	return out, nil
}

// listBound reads the binding set's elements; ok is false when the table
// or the set does not exist.
func (g *GREGuard) listBound(cc *nftables.Conn) (s *nftables.Set, have []BoundSource, ok bool, err error) {
	s, err = cc.GetSetByName(g.table(), boundSet)
	if err != nil {
		return nil, nil, false, nil // no table or no set: nothing bound
	}
	elems, err := cc.GetSetElements(s)
	if err != nil {
		return nil, nil, false, err
	}
	for _, e := range elems {
		if b, ok := boundSourceOf(e.Key); ok {
			have = append(have, b)
		}
	}
	return s, have, true, nil
}

// BoundSources lists the binding set (sorted); nil when no binding is
// installed.
func (g *GREGuard) BoundSources() ([]BoundSource, error) {
	cc, err := g.conn()
	if err != nil {
		return nil, opErr("list bound tunnel sources", g.object(), err)
	}
	_, have, _, err := g.listBound(cc)
	if err != nil {
		return nil, opErr("list bound tunnel sources", g.object(), err)
	}
	add, _ := diffBound(nil, have)
	return add, nil
}

// SetBoundSources makes the binding set exactly want, adding and deleting
// only the difference in one batch: calling it again with the same want
// changes nothing. The difference is taken from what this guard last wrote;
// the set is read from the kernel first after Install, after a failure and
// after InvalidateBoundSources (the controller's periodic resync), so that
// a change made behind its back is repaired. The binding must be installed.
func (g *GREGuard) SetBoundSources(want []BoundSource) error {
	const op = "set bound tunnel sources"
	g.mu.Lock()
	defer g.mu.Unlock()
	err := g.setBound(want)
	if err != nil {
		g.bound = nil
		return opErr(op, g.object(), err)
	}
	return nil
}

func (g *GREGuard) setBound(want []BoundSource) error {
	cc, err := g.conn()
	if err != nil {
		return err
	}
	s, have := boundSetOf(g.table()), g.bound
	if have == nil {
		var ok bool
		if s, have, ok, err = g.listBound(cc); err != nil {
			return err
		} else if !ok {
			return fmt.Errorf("the tunnel-source binding is not installed")
		}
	}
	add, del := diffBound(have, want)
	ae, err := boundElements(add)
	if err != nil {
		return err
	}
	de, _ := boundElements(del) // from have: IPv4
	if len(de) > 0 {
		if err := cc.SetDeleteElements(s, de); err != nil {
			return err
		}
	}
	if len(ae) > 0 {
		if err := cc.SetAddElements(s, ae); err != nil {
			return err
		}
	}
	if len(ae)+len(de) > 0 {
		if err := cc.Flush(); err != nil {
			return err
		}
	}
	g.bound, _ = diffBound(nil, want)
	if g.bound == nil {
		g.bound = []BoundSource{}
	}
	return nil
}

// InvalidateBoundSources makes the next SetBoundSources read the set from
// the kernel instead of trusting what it last wrote.
func (g *GREGuard) InvalidateBoundSources() {
	g.mu.Lock()
	g.bound = nil
	g.mu.Unlock()
}
