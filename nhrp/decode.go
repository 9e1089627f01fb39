package nhrp

import (
	"encoding/binary"
	"net/netip"
)

// Parse decodes the NHRP packet in b into a new Packet. The Packet does not
// alias b. Errors are of type *ParseError.
func Parse(b []byte) (*Packet, error) {
	p := new(Packet)
	if err := p.Unmarshal(b); err != nil {
		return nil, err
	}
	return p, nil
}

// Unmarshal decodes the NHRP packet b, which must be exactly ar$pktsz
// octets long, into p, overwriting every field. p's slices are reused, so
// decoding into the same Packet allocates nothing once they have grown;
// the result does not alias b. On error p holds a partial decode and the
// error is a *ParseError.
func (p *Packet) Unmarshal(b []byte) error { return p.UnmarshalOptions(b, DecodeOptions{}) }

// DecodeOptions relax the decoder for deviations of deployed peers that are
// harmless to a receiver. The zero value decodes strictly (Unmarshal).
type DecodeOptions struct {
	// ZeroHopErrorIndication accepts an Error Indication with hop count 0,
	// as FRR nhrpd up to 8.x sends them (RFC 2332 §5.1 makes 0 an error on
	// every packet). An Error Indication is never forwarded by hop count,
	// so a receiver loses nothing; HopCount keeps the wire value 0.
	ZeroHopErrorIndication bool
}

// UnmarshalOptions is Unmarshal with the relaxations in o.
func (p *Packet) UnmarshalOptions(b []byte, o DecodeOptions) error {
	if len(b) < fixedHeaderLen {
		return perr(ErrorProtocolError, len(b), ErrTruncated,
			"fixed header truncated: %d of %d octets", len(b), fixedHeaderLen)
	}
	pktsz := int(binary.BigEndian.Uint16(b[offPktSz:]))
	switch {
	case pktsz > len(b):
		return perr(ErrorProtocolError, offPktSz, ErrTruncated,
			"packet size %d exceeds the %d octets received", pktsz, len(b))
	case pktsz < len(b):
		return perr(ErrorProtocolError, offPktSz, ErrLength,
			"packet size %d but %d octets received", pktsz, len(b))
	}
	if want, got := packetChecksum(b), binary.BigEndian.Uint16(b[offChecksum:]); want != got {
		return perr(ErrorProtocolError, offChecksum, ErrChecksum,
			"checksum 0x%04x, computed 0x%04x", got, want)
	}
	p.AFN = AddressFamily(binary.BigEndian.Uint16(b[offAFN:]))
	nbmaLen, ok := addrLenFor(uint16(p.AFN), AFNIPv4, AFNIPv6)
	if !ok {
		return perr(ErrorProtocolError, offAFN, ErrUnsupported,
			"unsupported NBMA address family %d", p.AFN)
	}
	p.ProtocolType = ProtocolType(binary.BigEndian.Uint16(b[offProtoType:]))
	protoLen, ok := addrLenFor(uint16(p.ProtocolType), ProtocolIPv4, ProtocolIPv6)
	if !ok {
		return perr(ErrorProtocolError, offProtoType, ErrUnsupported,
			"unsupported protocol type 0x%04x", uint16(p.ProtocolType))
	}
	copy(p.SNAP[:], b[offSNAP:offSNAP+5])
	p.HopCount = b[offHopCount]
	p.Version = b[offVersion]
	p.Type = Type(b[offType])
	if p.Version != 1 {
		return perr(ErrorProtocolError, offVersion, ErrUnsupported,
			"unsupported version %d", p.Version)
	}
	if !p.Type.Valid() {
		return perr(ErrorProtocolError, offType, ErrUnsupported,
			"unknown packet type %d", p.Type)
	}
	if p.HopCount == 0 && !(o.ZeroHopErrorIndication && p.Type == TypeErrorIndication) {
		return perr(ErrorHopCountExceeded, offHopCount, ErrHopCount, "hop count 0")
	}
	shtl, sstl := b[offSHTL], b[offSSTL]
	p.SrcNBMAType = AddrType(shtl & addrTypeMask)
	p.SrcNBMASubaddrType = AddrType(sstl & addrTypeMask)
	if int(shtl&addrLenMask) != nbmaLen {
		return perr(ErrorProtocolError, offSHTL, ErrAddress,
			"source NBMA address length %d, want %d for address family %d", shtl&addrLenMask, nbmaLen, p.AFN)
	}

	// Mandatory part, common to all types (§5.2.0.1, §5.2.7).
	if len(b) < offMandAddrs {
		return perr(ErrorProtocolError, fixedHeaderLen, ErrTruncated,
			"mandatory part truncated: %d of %d fixed octets", len(b)-fixedHeaderLen, offMandAddrs-fixedHeaderLen)
	}
	srcProtoLen, dstProtoLen := int(b[offSrcProtoLen]), int(b[offDstProtoLen])
	if srcProtoLen != protoLen {
		return perr(ErrorProtocolError, offSrcProtoLen, ErrAddress,
			"source protocol address length %d, want %d for protocol type 0x%04x", srcProtoLen, protoLen, uint16(p.ProtocolType))
	}
	if dstProtoLen != protoLen {
		return perr(ErrorProtocolError, offDstProtoLen, ErrAddress,
			"destination protocol address length %d, want %d for protocol type 0x%04x", dstProtoLen, protoLen, uint16(p.ProtocolType))
	}
	w1 := binary.BigEndian.Uint16(b[offFlags:])
	w2 := binary.BigEndian.Uint16(b[offRequestID:])
	w3 := binary.BigEndian.Uint16(b[offRequestID+2:])
	p.Flags, p.RequestID = 0, 0
	p.ErrorCode, p.ErrorOffset, p.TrafficCode, p.Unused = 0, 0, 0, [2]uint16{}
	switch p.Type {
	case TypeErrorIndication:
		p.Unused[0], p.ErrorCode, p.ErrorOffset = w1, ErrorCode(w2), w3
	case TypeTrafficIndication:
		p.Unused[0], p.TrafficCode, p.Unused[1] = w1, TrafficCode(w2), w3
	default:
		p.Flags, p.RequestID = Flags(w1), uint32(w2)<<16|uint32(w3)
	}
	off := offMandAddrs
	addrsLen := int(shtl&addrLenMask) + int(sstl&addrLenMask) + srcProtoLen + dstProtoLen
	if len(b)-off < addrsLen {
		return perr(ErrorProtocolError, off, ErrTruncated,
			"mandatory part addresses truncated: %d of %d octets", len(b)-off, addrsLen)
	}
	p.SrcNBMA, off = addrAt(b, off, nbmaLen)
	n := int(sstl & addrLenMask)
	p.SrcNBMASubaddr = append(p.SrcNBMASubaddr[:0], b[off:off+n]...)
	off += n
	p.SrcProto, off = addrAt(b, off, protoLen)
	p.DstProto, off = addrAt(b, off, protoLen)

	// Body: CIEs or payload, up to the extensions.
	end := len(b)
	extoff := int(binary.BigEndian.Uint16(b[offExtOff:]))
	if extoff != 0 {
		switch {
		case extoff > len(b):
			return perr(ErrorProtocolError, offExtOff, ErrTruncated,
				"extension offset %d past the end of the %d-octet packet", extoff, len(b))
		case extoff == len(b):
			return perr(ErrorInvalidExtension, offExtOff, ErrExtension,
				"extension offset %d at the end of the packet: extensions without End", extoff)
		case extoff < off:
			return perr(ErrorProtocolError, offExtOff, ErrLength,
				"extension offset %d inside the mandatory part (ends at %d)", extoff, off)
		}
		end = extoff
	}
	p.CIEs = p.CIEs[:0]
	p.Payload = p.Payload[:0]
	if p.Type.HasCIEs() {
		var err *ParseError
		if p.CIEs, err = decodeCIEs(p.CIEs, b[:end], off, nbmaLen, protoLen); err != nil {
			return err
		}
	} else {
		p.Payload = append(p.Payload, b[off:end]...)
	}
	p.Extensions = p.Extensions[:0]
	if extoff == 0 {
		return nil
	}
	var err *ParseError
	if p.Extensions, err = decodeExtensions(p.Extensions, b, extoff, nbmaLen, protoLen); err != nil {
		return err
	}
	return nil
}

// addrLenFor returns the address length for a family or protocol type.
func addrLenFor[T ~uint16](v uint16, v4, v6 T) (int, bool) {
	switch T(v) {
	case v4:
		return 4, true
	case v6:
		return 16, true
	}
	return 0, false
}

// addrAt returns the n-octet address at b[off:] (n is 0, 4 or 16; the
// caller has checked the bounds) and the offset after it.
func addrAt(b []byte, off, n int) (netip.Addr, int) {
	switch n {
	case 4:
		return netip.AddrFrom4([4]byte(b[off : off+4])), off + 4
	case 16:
		return netip.AddrFrom16([16]byte(b[off : off+16])), off + 16
	}
	return netip.Addr{}, off + n
}

// decodeCIEs decodes the CIEs in b[off:] into s (reused).
func decodeCIEs(s []CIE, b []byte, off, nbmaLen, protoLen int) ([]CIE, *ParseError) {
	for off < len(b) {
		var c *CIE
		s, c = grow(s)
		var err *ParseError
		if off, err = c.decode(b, off, nbmaLen, protoLen); err != nil {
			return s, err
		}
	}
	return s, nil
}

// grow extends s by one element and returns it. When s has room the
// element is the one a previous decode left there, so that its slices are
// reused: the caller resets every field.
func grow[T any](s []T) ([]T, *T) {
	if len(s) < cap(s) {
		s = s[:len(s)+1]
	} else {
		var zero T
		s = append(s, zero)
	}
	return s, &s[len(s)-1]
}

// decode decodes the CIE at b[off:] (§5.2.0.1) into c and returns the
// offset after it. Client addresses may be absent (length 0) or of the
// packet's NBMA / protocol address length.
func (c *CIE) decode(b []byte, off, nbmaLen, protoLen int) (int, *ParseError) {
	if len(b)-off < cieHeaderLen {
		return off, perr(ErrorProtocolError, off, ErrTruncated,
			"CIE truncated: %d of %d header octets", len(b)-off, cieHeaderLen)
	}
	h := b[off : off+cieHeaderLen]
	c.Code = CIECode(h[0])
	c.PrefixLength = h[1]
	c.Unused = binary.BigEndian.Uint16(h[2:])
	c.MTU = binary.BigEndian.Uint16(h[4:])
	c.HoldingTime = binary.BigEndian.Uint16(h[6:])
	c.ClientNBMAType = AddrType(h[8] & addrTypeMask)
	c.ClientNBMASubaddrType = AddrType(h[9] & addrTypeMask)
	c.Preference = h[11]
	nl, sl, pl := int(h[8]&addrLenMask), int(h[9]&addrLenMask), int(h[10])
	if nl != 0 && nl != nbmaLen {
		return off, perr(ErrorProtocolError, off+8, ErrAddress,
			"CIE client NBMA address length %d, want 0 or %d", nl, nbmaLen)
	}
	if pl != 0 && pl != protoLen {
		return off, perr(ErrorProtocolError, off+10, ErrAddress,
			"CIE client protocol address length %d, want 0 or %d", pl, protoLen)
	}
	start := off
	off += cieHeaderLen
	if len(b)-off < nl+sl+pl {
		return off, perr(ErrorProtocolError, start, ErrTruncated,
			"CIE addresses truncated: %d of %d octets", len(b)-off, nl+sl+pl)
	}
	c.ClientNBMA, off = addrAt(b, off, nl)
	c.ClientNBMASubaddr = append(c.ClientNBMASubaddr[:0], b[off:off+sl]...)
	off += sl
	c.ClientProto, off = addrAt(b, off, pl)
	return off, nil
}
