package nhrpcaptest

// Checksum returns the Internet checksum of b (RFC 1071): the ones'
// complement of the ones'-complement sum of b as big-endian 16-bit words,
// an odd trailing octet padded with zero. It is written independently of
// package nhrp's, so that tests can use it as an oracle.
func Checksum(b []byte) uint16 {
	var sum uint32
	for i := 0; i+1 < len(b); i += 2 {
		sum += uint32(b[i])<<8 | uint32(b[i+1])
	}
	if len(b)%2 == 1 {
		sum += uint32(b[len(b)-1]) << 8
	}
	for sum > 0xFFFF {
		sum = sum>>16 + sum&0xFFFF
	}
	return ^uint16(sum)
}

// SetNHRPChecksum writes ar$chksum (octets 12 and 13) of the NHRP packet b
// (RFC 2332 §5.1: the checksum of the whole packet with the field taken as
// zero). A b too short to hold the field is left alone.
func SetNHRPChecksum(b []byte) {
	if len(b) < 14 {
		return
	}
	b[12], b[13] = 0, 0
	c := Checksum(b)
	b[12], b[13] = byte(c>>8), byte(c)
}
