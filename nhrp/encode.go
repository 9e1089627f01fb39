package nhrp

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
)

// Marshal encodes p into a new buffer. It computes ar$pktsz, ar$extoff,
// the address length octets and the checksum.
func (p *Packet) Marshal() ([]byte, error) {
	return p.AppendMarshal(make([]byte, 0, p.Len()))
}

// AppendMarshal appends the encoding of p to b and returns the extended
// buffer. On error b is returned unchanged (its spare capacity may have
// been written).
func (p *Packet) AppendMarshal(b []byte) ([]byte, error) {
	start := len(b)
	out, err := p.appendMarshal(b)
	if err != nil {
		return b[:start], err
	}
	return out, nil
}

func (p *Packet) appendMarshal(b []byte) ([]byte, error) {
	start := len(b)
	if !p.Type.Valid() {
		return nil, fmt.Errorf("nhrp: marshal: unknown packet type %d", p.Type)
	}
	if p.HopCount == 0 {
		return nil, errors.New("nhrp: marshal: hop count 0")
	}
	version := p.Version
	if version == 0 {
		version = 1
	}
	afn, nbmaLen, err := p.nbmaFamily()
	if err != nil {
		return nil, err
	}
	pt, protoLen, err := p.protoFamily()
	if err != nil {
		return nil, err
	}
	if err := checkAddr("source NBMA address", p.SrcNBMA, nbmaLen, false); err != nil {
		return nil, err
	}
	if err := checkAddr("source protocol address", p.SrcProto, protoLen, false); err != nil {
		return nil, err
	}
	if err := checkAddr("destination protocol address", p.DstProto, protoLen, false); err != nil {
		return nil, err
	}
	if err := checkTL("source NBMA", p.SrcNBMAType, len(p.SrcNBMASubaddr), p.SrcNBMASubaddrType); err != nil {
		return nil, err
	}
	if p.Type.HasCIEs() {
		if len(p.Payload) != 0 {
			return nil, fmt.Errorf("nhrp: marshal: %s carries CIEs, not a payload", p.Type)
		}
	} else if len(p.CIEs) != 0 {
		return nil, fmt.Errorf("nhrp: marshal: %s carries a payload, not CIEs", p.Type)
	}

	// Fixed header; pktsz, checksum and extoff are filled in at the end.
	b = binary.BigEndian.AppendUint16(b, uint16(afn))
	b = binary.BigEndian.AppendUint16(b, uint16(pt))
	b = append(b, p.SNAP[:]...)
	b = append(b, p.HopCount, 0, 0, 0, 0, 0, 0, version, uint8(p.Type),
		uint8(p.SrcNBMAType)|uint8(nbmaLen), uint8(p.SrcNBMASubaddrType)|uint8(len(p.SrcNBMASubaddr)))

	// Mandatory part.
	b = append(b, uint8(protoLen), uint8(protoLen))
	switch p.Type {
	case TypeErrorIndication:
		b = binary.BigEndian.AppendUint16(b, p.Unused[0])
		b = binary.BigEndian.AppendUint16(b, uint16(p.ErrorCode))
		b = binary.BigEndian.AppendUint16(b, p.ErrorOffset)
	case TypeTrafficIndication:
		b = binary.BigEndian.AppendUint16(b, p.Unused[0])
		b = binary.BigEndian.AppendUint16(b, uint16(p.TrafficCode))
		b = binary.BigEndian.AppendUint16(b, p.Unused[1])
	default:
		b = binary.BigEndian.AppendUint16(b, uint16(p.Flags))
		b = binary.BigEndian.AppendUint32(b, p.RequestID)
	}
	b = appendAddr(b, p.SrcNBMA)
	b = append(b, p.SrcNBMASubaddr...)
	b = appendAddr(b, p.SrcProto)
	b = appendAddr(b, p.DstProto)
	for i := range p.CIEs {
		if b, err = p.CIEs[i].appendTo(b, nbmaLen, protoLen); err != nil {
			return nil, fmt.Errorf("nhrp: marshal: CIE %d: %w", i, err)
		}
	}
	b = append(b, p.Payload...)

	extoff := 0
	if len(p.Extensions) > 0 {
		extoff = len(b) - start
		for i := range p.Extensions {
			if p.Extensions[i].Type == ExtensionEnd && i != len(p.Extensions)-1 {
				return nil, fmt.Errorf("nhrp: marshal: End extension at %d of %d: it must be last", i, len(p.Extensions))
			}
			if b, err = p.Extensions[i].appendTo(b, nbmaLen, protoLen); err != nil {
				return nil, fmt.Errorf("nhrp: marshal: extension %d (%s): %w", i, p.Extensions[i].Type, err)
			}
		}
	}
	size := len(b) - start
	if size > maxPacketLength {
		return nil, fmt.Errorf("nhrp: marshal: packet of %d octets exceeds %d", size, maxPacketLength)
	}
	if extoff > maxPacketLength {
		return nil, fmt.Errorf("nhrp: marshal: extension offset %d exceeds %d", extoff, maxPacketLength)
	}
	pkt := b[start:]
	binary.BigEndian.PutUint16(pkt[offPktSz:], uint16(size))
	binary.BigEndian.PutUint16(pkt[offExtOff:], uint16(extoff))
	binary.BigEndian.PutUint16(pkt[offChecksum:], packetChecksum(pkt))
	return b, nil
}

// Len returns the encoded length of p (valid when p marshals without error).
func (p *Packet) Len() int {
	n := offMandAddrs + addrLen(p.SrcNBMA) + len(p.SrcNBMASubaddr) + addrLen(p.SrcProto) + addrLen(p.DstProto)
	for i := range p.CIEs {
		n += p.CIEs[i].len()
	}
	n += len(p.Payload)
	for i := range p.Extensions {
		n += p.Extensions[i].len()
	}
	return n
}

func (p *Packet) nbmaFamily() (AddressFamily, int, error) {
	afn := p.AFN
	if afn == 0 {
		switch {
		case p.SrcNBMA.Is4():
			afn = AFNIPv4
		case p.SrcNBMA.Is6():
			afn = AFNIPv6
		default:
			return 0, 0, errors.New("nhrp: marshal: no AFN and no source NBMA address")
		}
	}
	n, ok := addrLenFor(uint16(afn), AFNIPv4, AFNIPv6)
	if !ok {
		return 0, 0, fmt.Errorf("nhrp: marshal: unsupported NBMA address family %d", afn)
	}
	return afn, n, nil
}

func (p *Packet) protoFamily() (ProtocolType, int, error) {
	pt := p.ProtocolType
	if pt == 0 {
		switch {
		case p.SrcProto.Is4():
			pt = ProtocolIPv4
		case p.SrcProto.Is6():
			pt = ProtocolIPv6
		default:
			return 0, 0, errors.New("nhrp: marshal: no protocol type and no source protocol address")
		}
	}
	n, ok := addrLenFor(uint16(pt), ProtocolIPv4, ProtocolIPv6)
	if !ok {
		return 0, 0, fmt.Errorf("nhrp: marshal: unsupported protocol type 0x%04x", uint16(pt))
	}
	return pt, n, nil
}

// checkAddr checks that a is of the wanted length in octets (or absent,
// if optional).
func checkAddr(what string, a netip.Addr, want int, optional bool) error {
	if !a.IsValid() {
		if optional {
			return nil
		}
		return fmt.Errorf("nhrp: marshal: %s missing", what)
	}
	if got := a.BitLen() / 8; got != want {
		return fmt.Errorf("nhrp: marshal: %s %s is %d octets, want %d", what, a, got, want)
	}
	return nil
}

// checkTL checks address type bits and a subaddress length.
func checkTL(what string, t AddrType, subLen int, st AddrType) error {
	if t&^addrTypeMask != 0 || st&^addrTypeMask != 0 {
		return fmt.Errorf("nhrp: marshal: %s address type bits 0x%02x/0x%02x outside 0xc0", what, uint8(t), uint8(st))
	}
	if subLen > maxAddrLen {
		return fmt.Errorf("nhrp: marshal: %s subaddress of %d octets exceeds %d", what, subLen, maxAddrLen)
	}
	return nil
}

func addrLen(a netip.Addr) int {
	if !a.IsValid() {
		return 0
	}
	return a.BitLen() / 8
}

func appendAddr(b []byte, a netip.Addr) []byte {
	switch {
	case a.Is4():
		v := a.As4()
		return append(b, v[:]...)
	case a.Is6():
		v := a.As16()
		return append(b, v[:]...)
	}
	return b
}

func (c *CIE) len() int {
	return cieHeaderLen + addrLen(c.ClientNBMA) + len(c.ClientNBMASubaddr) + addrLen(c.ClientProto)
}

func (c *CIE) appendTo(b []byte, nbmaLen, protoLen int) ([]byte, error) {
	if err := checkAddr("client NBMA address", c.ClientNBMA, nbmaLen, true); err != nil {
		return nil, err
	}
	if err := checkAddr("client protocol address", c.ClientProto, protoLen, true); err != nil {
		return nil, err
	}
	if err := checkTL("client NBMA", c.ClientNBMAType, len(c.ClientNBMASubaddr), c.ClientNBMASubaddrType); err != nil {
		return nil, err
	}
	b = append(b, uint8(c.Code), c.PrefixLength)
	b = binary.BigEndian.AppendUint16(b, c.Unused)
	b = binary.BigEndian.AppendUint16(b, c.MTU)
	b = binary.BigEndian.AppendUint16(b, c.HoldingTime)
	b = append(b,
		uint8(c.ClientNBMAType)|uint8(addrLen(c.ClientNBMA)),
		uint8(c.ClientNBMASubaddrType)|uint8(len(c.ClientNBMASubaddr)),
		uint8(addrLen(c.ClientProto)),
		c.Preference)
	b = appendAddr(b, c.ClientNBMA)
	b = append(b, c.ClientNBMASubaddr...)
	return appendAddr(b, c.ClientProto), nil
}

// raw reports whether e is encoded from Raw.
func (e *Extension) raw() bool { return e.Opaque || !e.Type.Known() }

func (e *Extension) valueLen() int {
	switch {
	case e.raw():
		return len(e.Raw)
	case e.Type.CarriesCIEs():
		n := 0
		for i := range e.CIEs {
			n += e.CIEs[i].len()
		}
		return n
	case e.Type == ExtensionAuthentication:
		return 4 + len(e.Auth.Data)
	case e.Type == ExtensionVendorPrivate:
		return 3 + len(e.Vendor.Data)
	}
	return 0
}

func (e *Extension) len() int { return extHeaderLen + e.valueLen() }

func (e *Extension) appendTo(b []byte, nbmaLen, protoLen int) ([]byte, error) {
	if e.Type&^extensionTypeMask != 0 {
		return nil, fmt.Errorf("type %d exceeds 14 bits", e.Type)
	}
	n := e.valueLen()
	if e.Type == ExtensionEnd && n != 0 {
		return nil, fmt.Errorf("value of %d octets in an End extension", n)
	}
	if n > maxPacketLength {
		return nil, fmt.Errorf("length %d exceeds %d", n, maxPacketLength)
	}
	tw := uint16(e.Type)
	if e.Compulsory {
		tw |= extensionCompulsory
	}
	if e.Reserved {
		tw |= extensionReserved
	}
	b = binary.BigEndian.AppendUint16(b, tw)
	b = binary.BigEndian.AppendUint16(b, uint16(n))
	switch {
	case e.raw():
		b = append(b, e.Raw...)
	case e.Type.CarriesCIEs():
		var err error
		for i := range e.CIEs {
			if b, err = e.CIEs[i].appendTo(b, nbmaLen, protoLen); err != nil {
				return nil, fmt.Errorf("CIE %d: %w", i, err)
			}
		}
	case e.Type == ExtensionAuthentication:
		b = binary.BigEndian.AppendUint32(b, e.Auth.Type)
		b = append(b, e.Auth.Data...)
	case e.Type == ExtensionVendorPrivate:
		b = append(b, e.Vendor.OUI[:]...)
		b = append(b, e.Vendor.Data...)
	}
	return b, nil
}
