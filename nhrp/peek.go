package nhrp

import "encoding/binary"

// PeekType returns the packet type (ar$op.type, §5.1) of the NHRP packet
// starting at b without decoding or validating it, for dispatch and
// metrics before a full decode. ok is false when b is shorter than the
// fixed header. The type is not checked against the known ones.
func PeekType(b []byte) (t Type, ok bool) {
	if len(b) < fixedHeaderLen {
		return 0, false
	}
	return Type(b[offType]), true
}

// PeekRequestID returns the Request ID (§5.2.0.1) of the request or reply
// starting at b without decoding it, for instance of the packet an Error
// Indication carries back (§5.2.7). ok is false when b is too short or its
// type has no Request ID (Error and Traffic Indications).
func PeekRequestID(b []byte) (id uint32, ok bool) {
	t, ok := PeekType(b)
	if !ok || len(b) < offRequestID+4 || t == TypeErrorIndication || t == TypeTrafficIndication {
		return 0, false
	}
	return binary.BigEndian.Uint32(b[offRequestID:]), true
}
