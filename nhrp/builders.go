package nhrp

import (
	"net/netip"
	"slices"
)

// Hop counts: FRR sends registrations and traffic indications with hop
// count 1 (they go to a directly attached NHS) and everything else with 64.
const (
	DefaultHopCount  = 64
	DirectHopCount   = 1
	HostPrefixLength = 0xFF // CIE prefix length meaning "full address length" (§5.2.0.1)
)

// NewPacket returns a packet of type t with the mandatory addresses set,
// AFN and protocol type derived from them, version 1 and DefaultHopCount.
func NewPacket(t Type, srcNBMA, srcProto, dstProto netip.Addr) *Packet {
	p := &Packet{
		Type:     t,
		Version:  1,
		HopCount: DefaultHopCount,
		SrcNBMA:  srcNBMA,
		SrcProto: srcProto,
		DstProto: dstProto,
	}
	if srcNBMA.Is4() {
		p.AFN = AFNIPv4
	} else if srcNBMA.Is6() {
		p.AFN = AFNIPv6
	}
	if srcProto.Is4() {
		p.ProtocolType = ProtocolIPv4
	} else if srcProto.Is6() {
		p.ProtocolType = ProtocolIPv6
	}
	return p
}

// NewRegistrationRequest returns a Registration Request (§5.2.3) from an
// NHC to its NHS at nhsProto (or to its own protocol address when the NHS
// protocol address is not known yet) with one CIE registering the sender
// itself: prefix length 0xFF, the given holding time and MTU (0 = default),
// no client addresses (they are the source's). Flags: U when unique, plus
// the Cisco NAT flag. Extensions: Responder Address, Forward and Reverse
// Transit NHS Record (all empty), End.
func NewRegistrationRequest(srcNBMA, srcProto, nhsProto netip.Addr, requestID uint32, holding, mtu uint16, unique bool) *Packet {
	p := NewPacket(TypeRegistrationRequest, srcNBMA, srcProto, nhsProto)
	p.HopCount = DirectHopCount
	p.RequestID = requestID
	p.Flags = FlagCiscoNAT
	if unique {
		p.Flags |= FlagRegistrationUnique
	}
	p.CIEs = []CIE{{PrefixLength: HostPrefixLength, MTU: mtu, HoldingTime: holding}}
	p.SetStandardExtensions()
	return p
}

// NewResolutionRequest returns a Resolution Request (§5.2.1) for target,
// flags Q (router), S (stable source) and the Cisco NAT flag, and one CIE
// carrying the requester's holding time and MTU with host prefix length.
// Extensions: Responder Address, Forward and Reverse Transit NHS Record,
// End.
func NewResolutionRequest(srcNBMA, srcProto, target netip.Addr, requestID uint32, holding, mtu uint16) *Packet {
	p := NewPacket(TypeResolutionRequest, srcNBMA, srcProto, target)
	p.RequestID = requestID
	p.Flags = FlagResolutionRouter | FlagResolutionStableSource | FlagCiscoNAT
	p.CIEs = []CIE{{PrefixLength: HostPrefixLength, MTU: mtu, HoldingTime: holding}}
	p.SetStandardExtensions()
	return p
}

// NewPurgeRequest returns a Purge Request (§5.2.5) with one CIE per
// protocol address to purge (host prefix length), N set when noReply.
func NewPurgeRequest(srcNBMA, srcProto, dstProto netip.Addr, requestID uint32, noReply bool, purge ...netip.Addr) *Packet {
	p := NewPacket(TypePurgeRequest, srcNBMA, srcProto, dstProto)
	p.RequestID = requestID
	if noReply {
		p.Flags |= FlagPurgeNoReply
	}
	for _, a := range purge {
		p.CIEs = append(p.CIEs, CIE{PrefixLength: HostPrefixLength, ClientProto: a})
	}
	return p
}

// NewTrafficIndication returns a Traffic Indication (Cisco type 8,
// draft-detienne-dmvpn §4.2) with code redirect, destination protocol
// address dstProto and the leading octets of the data packet that
// triggered it.
func NewTrafficIndication(srcNBMA, srcProto, dstProto netip.Addr, data []byte) *Packet {
	p := NewPacket(TypeTrafficIndication, srcNBMA, srcProto, dstProto)
	p.HopCount = DirectHopCount
	p.TrafficCode = TrafficRedirect
	p.Payload = slices.Clone(data)
	return p
}

// NewErrorIndication returns an Error Indication (§5.2.7) carrying code,
// the offset of the offending field and the offending packet. srcProto and
// dstProto are the sender's and the offending packet's source protocol
// addresses. Error Indications carry no extensions.
func NewErrorIndication(srcNBMA, srcProto, dstProto netip.Addr, code ErrorCode, offset uint16, offending []byte) *Packet {
	p := NewPacket(TypeErrorIndication, srcNBMA, srcProto, dstProto)
	p.ErrorCode = code
	p.ErrorOffset = offset
	p.Payload = slices.Clone(offending)
	return p
}

// SetStandardExtensions replaces p's extensions with empty compulsory
// Responder Address, Forward Transit and Reverse Transit NHS Record
// extensions and End, the set FRR and Cisco put in requests.
func (p *Packet) SetStandardExtensions() {
	p.Extensions = append(p.Extensions[:0],
		Extension{Type: ExtensionResponderAddress, Compulsory: true},
		Extension{Type: ExtensionForwardTransit, Compulsory: true},
		Extension{Type: ExtensionReverseTransit, Compulsory: true},
		Extension{Type: ExtensionEnd, Compulsory: true},
	)
}

// Extension returns the first extension of type t, or nil.
func (p *Packet) Extension(t ExtensionType) *Extension {
	for i := range p.Extensions {
		if p.Extensions[i].Type == t {
			return &p.Extensions[i]
		}
	}
	return nil
}

// AddExtension appends e before a trailing End extension (appending End
// too when p had no extensions) and returns a pointer to the stored copy.
func (p *Packet) AddExtension(e Extension) *Extension {
	n := len(p.Extensions)
	switch {
	case n == 0:
		p.Extensions = append(p.Extensions, e, Extension{Type: ExtensionEnd, Compulsory: true})
		return &p.Extensions[0]
	case p.Extensions[n-1].Type == ExtensionEnd:
		p.Extensions = slices.Insert(p.Extensions, n-1, e)
		return &p.Extensions[n-1]
	}
	p.Extensions = append(p.Extensions, e)
	return &p.Extensions[n]
}

// SetNATAddress sets the CIEs of p's Cisco NAT Address extension (type 9,
// non-compulsory), adding the extension if absent.
func (p *Packet) SetNATAddress(cies ...CIE) {
	e := p.Extension(ExtensionNATAddress)
	if e == nil {
		e = p.AddExtension(Extension{Type: ExtensionNATAddress})
	}
	e.Opaque, e.Raw = false, nil
	e.CIEs = slices.Clone(cies)
}

// SetCleartextAuth sets the Authentication extension (compulsory) to
// Cisco's cleartext form carrying password, adding it if absent. Cisco
// accepts at most 8 octets of password.
func (p *Packet) SetCleartextAuth(password []byte) {
	e := p.Extension(ExtensionAuthentication)
	if e == nil {
		e = p.AddExtension(Extension{Type: ExtensionAuthentication, Compulsory: true})
	}
	e.Auth = Authentication{Type: AuthCleartext, Data: slices.Clone(password)}
}

// CleartextPassword returns the password of a cleartext Authentication
// extension.
func (e *Extension) CleartextPassword() ([]byte, bool) {
	if e == nil || e.Type != ExtensionAuthentication || e.Opaque || e.Auth.Type != AuthCleartext {
		return nil, false
	}
	return e.Auth.Data, true
}

// UnrecognizedCompulsory returns the first compulsory extension whose type
// this package does not know, as a *ParseError with code 1 (unrecognized
// extension) and its offset, for an NHS that must answer with an Error
// Indication (§5.3); nil when there is none. Transit NHSs pass such
// extensions on instead.
func (p *Packet) UnrecognizedCompulsory() *ParseError {
	// The offset is needed only for an error: a hub asks this of every
	// request, and Len walks the whole packet.
	bad := false
	for i := range p.Extensions {
		bad = bad || p.Extensions[i].Compulsory && !p.Extensions[i].Type.Known()
	}
	if !bad {
		return nil
	}
	off := p.Len()
	for i := range p.Extensions {
		off -= p.Extensions[i].len()
	}
	for i := range p.Extensions {
		e := &p.Extensions[i]
		if e.Compulsory && !e.Type.Known() {
			return perr(ErrorUnrecognizedExtension, off, ErrExtension,
				"unrecognized compulsory extension type %d", e.Type)
		}
		off += e.len()
	}
	return nil
}

// Clone returns a deep copy of p, sharing no memory with it.
func (p *Packet) Clone() *Packet {
	q := *p
	q.SrcNBMASubaddr = slices.Clone(p.SrcNBMASubaddr)
	q.CIEs = cloneCIEs(p.CIEs)
	q.Payload = slices.Clone(p.Payload)
	if p.Extensions != nil {
		q.Extensions = make([]Extension, len(p.Extensions))
		for i, e := range p.Extensions {
			e.CIEs = cloneCIEs(e.CIEs)
			e.Auth.Data = slices.Clone(e.Auth.Data)
			e.Vendor.Data = slices.Clone(e.Vendor.Data)
			e.Raw = slices.Clone(e.Raw)
			q.Extensions[i] = e
		}
	}
	return &q
}

func cloneCIEs(s []CIE) []CIE {
	if s == nil {
		return nil
	}
	out := make([]CIE, len(s))
	for i, c := range s {
		c.ClientNBMASubaddr = slices.Clone(c.ClientNBMASubaddr)
		out[i] = c
	}
	return out
}
