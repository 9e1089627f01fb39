package nhrp

import "net/netip"

// ClientPrefix returns the CIE's client protocol address with the CIE's
// effective prefix length, masked: the equivalence class a registration
// CIE stands for (§5.2.0.1). It is the zero Prefix when the CIE carries no
// client protocol address.
func (c *CIE) ClientPrefix() netip.Prefix {
	if !c.ClientProto.IsValid() {
		return netip.Prefix{}
	}
	return netip.PrefixFrom(c.ClientProto, c.EffectivePrefixLength(c.ClientProto.BitLen())).Masked()
}

// DestinationPrefix returns the destination protocol address with the
// CIE's effective prefix length, masked: in a Resolution Reply the prefix
// the responder's route covers (§5.2.2; FRR answers 192.168.1.1 with
// prefix length 24 for its 192.168.1.0/24 LAN). It is the zero Prefix when
// p has no destination protocol address.
func (p *Packet) DestinationPrefix(c *CIE) netip.Prefix {
	if !p.DstProto.IsValid() {
		return netip.Prefix{}
	}
	return netip.PrefixFrom(p.DstProto, c.EffectivePrefixLength(p.DstProto.BitLen())).Masked()
}
