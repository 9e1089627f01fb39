package nhrp

import "encoding/binary"

// decodeExtensions decodes the extensions in b[off:] (§5.3) into s (reused).
func decodeExtensions(s []Extension, b []byte, off, nbmaLen, protoLen int) ([]Extension, *ParseError) {
	for off < len(b) {
		if len(b)-off < extHeaderLen {
			return s, perr(ErrorInvalidExtension, off, ErrTruncated,
				"extension header truncated: %d of %d octets", len(b)-off, extHeaderLen)
		}
		tw := binary.BigEndian.Uint16(b[off:])
		n := int(binary.BigEndian.Uint16(b[off+2:]))
		if n > len(b)-off-extHeaderLen {
			return s, perr(ErrorInvalidExtension, off+2, ErrLength,
				"extension length %d overruns the packet by %d octets", n, n-(len(b)-off-extHeaderLen))
		}
		var e *Extension
		s, e = grow(s)
		e.Type = ExtensionType(tw & extensionTypeMask)
		e.Compulsory = tw&extensionCompulsory != 0
		e.Reserved = tw&extensionReserved != 0
		e.CIEs = e.CIEs[:0]
		e.Auth.Type = 0
		e.Auth.Data = e.Auth.Data[:0]
		e.Vendor.OUI = [3]byte{}
		e.Vendor.Data = e.Vendor.Data[:0]
		e.Raw = e.Raw[:0]
		e.Opaque = false
		start := off
		off += extHeaderLen
		v := b[off : off+n]
		off += n
		switch e.Type {
		case ExtensionEnd:
			if n != 0 {
				return s, perr(ErrorInvalidExtension, start+2, ErrExtension,
					"End extension with length %d", n)
			}
			if off != len(b) {
				return s, perr(ErrorInvalidExtension, off, ErrExtension,
					"%d octets after the End extension", len(b)-off)
			}
		case ExtensionResponderAddress, ExtensionForwardTransit, ExtensionReverseTransit:
			var err *ParseError
			if e.CIEs, err = decodeCIEs(e.CIEs, b[:off], start+extHeaderLen, nbmaLen, protoLen); err != nil {
				err.Code = ErrorInvalidExtension
				err.Reason = e.Type.String() + " extension: " + err.Reason
				return s, err
			}
		case ExtensionNATAddress:
			// Cisco's NAT Address extension is a list of CIEs; RFC 2735's
			// Device Capabilities (same type) is not: keep that raw.
			var err *ParseError
			if e.CIEs, err = decodeCIEs(e.CIEs, b[:off], start+extHeaderLen, nbmaLen, protoLen); err != nil {
				e.CIEs = e.CIEs[:0]
				e.Raw = append(e.Raw, v...)
				e.Opaque = true
			}
		case ExtensionAuthentication:
			if n < 4 {
				return s, perr(ErrorInvalidExtension, start+2, ErrExtension,
					"authentication extension length %d, want at least 4", n)
			}
			e.Auth.Type = binary.BigEndian.Uint32(v)
			e.Auth.Data = append(e.Auth.Data, v[4:]...)
		case ExtensionVendorPrivate:
			if n < 3 {
				return s, perr(ErrorInvalidExtension, start+2, ErrExtension,
					"vendor-private extension length %d, want at least 3", n)
			}
			e.Vendor.OUI = [3]byte(v[:3])
			e.Vendor.Data = append(e.Vendor.Data, v[3:]...)
		default:
			e.Raw = append(e.Raw, v...)
		}
	}
	return s, nil
}
