package engine

import (
	"net/netip"

	"github.com/dmvpnd/dmvpnd/nhrp"
)

// natObserved returns the post-NAT NBMA address that p's Cisco NAT Address
// extension reports for proto, if any CIE names proto with an NBMA
// address.
func natObserved(p *nhrp.Packet, proto netip.Addr) netip.Addr {
	ext := p.Extension(nhrp.ExtensionNATAddress)
	if ext == nil || ext.Opaque {
		return netip.Addr{}
	}
	for i := range ext.CIEs {
		c := &ext.CIEs[i]
		if c.ClientProto == proto && c.ClientNBMA.IsValid() {
			return c.ClientNBMA
		}
	}
	return netip.Addr{}
}

// addNAT appends {observed, proto} to p's NAT extension unless a CIE for
// proto is present. The extension is created when missing.
func addNAT(p *nhrp.Packet, observed, proto netip.Addr) {
	if natObserved(p, proto).IsValid() {
		return
	}
	ext := p.Extension(nhrp.ExtensionNATAddress)
	if ext == nil || ext.Opaque {
		p.SetNATAddress()
		ext = p.Extension(nhrp.ExtensionNATAddress)
	}
	ext.CIEs = append(ext.CIEs, nhrp.CIE{PrefixLength: nhrp.HostPrefixLength, ClientNBMA: observed, ClientProto: proto})
}

// natted returns observed when it differs from claimed (the peer is behind
// NAT), else the zero address.
func natted(claimed, observed netip.Addr) netip.Addr {
	if observed.IsValid() && observed != claimed {
		return observed
	}
	return netip.Addr{}
}

// directNBMA chooses the GRE destination for a peer that announced claimed
// and was seen at observed (zero: not behind NAT), following the design in
// the package documentation:
//
//   - not behind NAT: claimed;
//   - behind the same public address as we are: claimed (private LAN);
//   - behind NAT while we are behind another NAT: none (stay on the hub);
//   - behind NAT, we are public: claimed with IPsec (the tunnel-mode SA
//     carries it to the NAT), observed without.
func (e *Engine) directNBMA(claimed, observed netip.Addr) netip.Addr {
	if !observed.IsValid() || observed == claimed {
		return claimed
	}
	if e.myPublic.IsValid() {
		if e.myPublic == observed {
			return claimed
		}
		return netip.Addr{}
	}
	if e.cfg.IPsec {
		return claimed
	}
	return observed
}
