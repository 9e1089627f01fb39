package engine

import "encoding/binary"

// lenient rewrites, into a scratch buffer, received packets that are
// harmlessly non-conformant in ways the codec rejects:
//
//   - FRR nhrpd (up to 8.x) sends Error Indications with hop count 0; the
//     codec refuses hop count 0 on every packet. An Error Indication is
//     never forwarded by hop count, so it is read as hop count 1.
//
// The checksum is adjusted only when the original one was valid, so a
// corrupted packet stays corrupted. b itself is never modified.
func (e *Engine) lenient(b []byte) []byte {
	const offHop, offChecksum, offType, typeErrorIndication = 9, 12, 17, 7
	if len(b) < 20 || b[offHop] != 0 || b[offType] != typeErrorIndication || checksum(b) != 0 {
		return b
	}
	e.fixbuf = append(e.fixbuf[:0], b...)
	f := e.fixbuf
	f[offHop] = 1
	binary.BigEndian.PutUint16(f[offChecksum:], 0)
	binary.BigEndian.PutUint16(f[offChecksum:], checksum(f))
	return f
}

// checksum returns the ones'-complement sum over b folded and inverted: 0
// for a packet whose ar$chksum is correct (RFC 1071).
func checksum(b []byte) uint16 {
	var sum uint32
	for i := 0; i+1 < len(b); i += 2 {
		sum += uint32(b[i])<<8 | uint32(b[i+1])
	}
	if len(b)%2 == 1 {
		sum += uint32(b[len(b)-1]) << 8
	}
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	return ^uint16(sum)
}
