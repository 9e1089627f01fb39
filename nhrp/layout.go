package nhrp

// Offsets within the fixed header (§5.1) and mandatory part (§5.2.0.1).
const (
	offAFN          = 0
	offProtoType    = 2
	offSNAP         = 4
	offHopCount     = 9
	offPktSz        = 10
	offChecksum     = 12
	offExtOff       = 14
	offVersion      = 16
	offType         = 17
	offSHTL         = 18
	offSSTL         = 19
	fixedHeaderLen  = 20
	offSrcProtoLen  = 20
	offDstProtoLen  = 21
	offFlags        = 22
	offRequestID    = 24
	offErrorCode    = 24
	offErrorOffset  = 26
	offTrafficCode  = 24
	offUnused2      = 26
	offMandAddrs    = 28
	cieHeaderLen    = 12
	extHeaderLen    = 4
	maxAddrLen      = 0x3F
	maxPacketLength = 0xFFFF
)
