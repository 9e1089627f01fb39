package nhrp

// sum16 adds b, as big-endian 16-bit words with an odd trailing octet
// padded with zero, to the running ones'-complement sum (RFC 1071).
func sum16(sum uint32, b []byte) uint32 {
	n := len(b) &^ 1
	for i := 0; i < n; i += 2 {
		sum += uint32(b[i])<<8 | uint32(b[i+1])
	}
	if len(b)&1 == 1 {
		sum += uint32(b[len(b)-1]) << 8
	}
	return sum
}

func fold(sum uint32) uint16 {
	for sum > 0xFFFF {
		sum = sum>>16 + sum&0xFFFF
	}
	return ^uint16(sum)
}

// packetChecksum returns ar$chksum for the NHRP packet b (§5.1): the IP
// checksum over the whole packet with the checksum field taken as zero.
func packetChecksum(b []byte) uint16 {
	return fold(sum16(sum16(0, b[:offChecksum]), b[offChecksum+2:]))
}
