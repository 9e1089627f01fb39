package nhrp

// Type is the NHRP packet type (ar$op.type).
type Type uint8

// Packet types (ar$op.type).
const (
	// TypeResolutionRequest asks for the NBMA address of a protocol
	// address (RFC 2332 §5.2.1).
	TypeResolutionRequest Type = 1
	// TypeResolutionReply answers it with CIEs (§5.2.2).
	TypeResolutionReply Type = 2
	// TypeRegistrationRequest registers an NHC's addresses with its NHS
	// (§5.2.3).
	TypeRegistrationRequest Type = 3
	// TypeRegistrationReply acknowledges or refuses it per CIE (§5.2.4).
	TypeRegistrationReply Type = 4
	// TypePurgeRequest withdraws cached bindings (§5.2.5).
	TypePurgeRequest Type = 5
	// TypePurgeReply acknowledges a purge (§5.2.6).
	TypePurgeReply Type = 6
	// TypeErrorIndication reports an error in a received packet (§5.2.7).
	TypeErrorIndication Type = 7
	// TypeTrafficIndication is Cisco's redirect, sent by a hub to the
	// source of traffic it relays back into the tunnel
	// (draft-detienne-dmvpn-01 §4.2, not IANA-assigned).
	TypeTrafficIndication Type = 8
)

// Valid reports whether t is one of the eight known packet types.
func (t Type) Valid() bool { return t >= TypeResolutionRequest && t <= TypeTrafficIndication }

// HasCIEs reports whether packets of type t carry CIEs after the
// mandatory part (types 1-6); types 7 and 8 carry a payload instead.
func (t Type) HasCIEs() bool { return t >= TypeResolutionRequest && t <= TypePurgeReply }

// AddressFamily is ar$afn, the NBMA address family number.
type AddressFamily uint16

// NBMA address families used with IP.
const (
	AFNIPv4 AddressFamily = 1
	AFNIPv6 AddressFamily = 2
)

// ProtocolType is ar$pro.type, an Ethertype naming the protocol address
// family.
type ProtocolType uint16

// Protocol types used with IP.
const (
	ProtocolIPv4 ProtocolType = 0x0800
	ProtocolIPv6 ProtocolType = 0x86DD
)

// AddrType holds the type bits (bits 6 and 7) of an address type/length
// octet (ar$shtl, ar$sstl, cli addr t/l, cli saddr t/l). The length bits
// are derived from the address itself.
type AddrType uint8

// Address type bits (§5.1).
const (
	AddrTypeNSAP AddrType = 0x00
	AddrTypeE164 AddrType = 0x40
	addrTypeMask          = 0xC0
	addrLenMask           = 0x3F
)

// Flags is the mandatory part's flags field. The meaning of a bit depends
// on the packet type.
type Flags uint16

// Flag bits.
const (
	// Resolution Request/Reply (§5.2.1, §5.2.2).
	FlagResolutionRouter        Flags = 0x8000 // Q: requester is a router
	FlagResolutionAuthoritative Flags = 0x4000 // A: authoritative
	FlagResolutionStableDest    Flags = 0x2000 // D: destination is stable
	FlagResolutionUnique        Flags = 0x1000 // U: unique
	FlagResolutionStableSource  Flags = 0x0800 // S: source binding is stable
	// Registration Request/Reply (§5.2.3, §5.2.4).
	FlagRegistrationUnique Flags = 0x8000 // U: unique
	// Purge Request/Reply (§5.2.5, §5.2.6).
	FlagPurgeNoReply Flags = 0x8000 // N: no reply wanted
	// Cisco: the sender supports the NAT extension (types 1-6).
	FlagCiscoNAT Flags = 0x0002
)

// ExtensionType is the 14-bit type of an extension (§5.3).
type ExtensionType uint16

// Extension types.
const (
	ExtensionEnd              ExtensionType = 0 // §5.3.0
	ExtensionResponderAddress ExtensionType = 3 // §5.3.1
	ExtensionForwardTransit   ExtensionType = 4 // §5.3.2
	ExtensionReverseTransit   ExtensionType = 5 // §5.3.3
	ExtensionAuthentication   ExtensionType = 7 // §5.3.4
	ExtensionVendorPrivate    ExtensionType = 8 // §5.3.5
	ExtensionNATAddress       ExtensionType = 9 // Cisco; RFC 2735 uses 9 for Device Capabilities

	extensionCompulsory = 0x8000
	extensionReserved   = 0x4000
	extensionTypeMask   = 0x3FFF
)

// Known reports whether this package decodes extensions of type e into
// typed fields.
func (e ExtensionType) Known() bool {
	_, ok := extensionNames[e]
	return ok
}

// CarriesCIEs reports whether extensions of type e hold a list of CIEs.
func (e ExtensionType) CarriesCIEs() bool {
	switch e {
	case ExtensionResponderAddress, ExtensionForwardTransit, ExtensionReverseTransit, ExtensionNATAddress:
		return true
	}
	return false
}

// AuthCleartext is the authentication type Cisco and FRR use: the
// password follows in clear.
const AuthCleartext uint32 = 1

// CIECode is the code of a Client Information Entry (§5.2.2, §5.2.4).
type CIECode uint8

// CIE codes.
const (
	CIESuccess                 CIECode = 0
	CIEAdminProhibited         CIECode = 4
	CIEInsufficientResources   CIECode = 5
	CIENoBinding               CIECode = 12
	CIEBindingNotUnique        CIECode = 13
	CIEUniqueAlreadyRegistered CIECode = 14
)

// ErrorCode is an Error Indication code (§5.2.7; 16 and 17 from RFC 2735).
type ErrorCode uint16

// Error codes.
const (
	ErrorUnrecognizedExtension  ErrorCode = 1
	ErrorLoopDetected           ErrorCode = 3
	ErrorProtoAddrUnreachable   ErrorCode = 6
	ErrorProtocolError          ErrorCode = 7
	ErrorSDUSizeExceeded        ErrorCode = 8
	ErrorInvalidExtension       ErrorCode = 9
	ErrorInvalidResolutionReply ErrorCode = 10
	ErrorAuthenticationFailure  ErrorCode = 11
	ErrorHopCountExceeded       ErrorCode = 15
	ErrorVPNMismatch            ErrorCode = 16
	ErrorVPNUnsupported         ErrorCode = 17
)

// TrafficCode is the Traffic Indication code.
type TrafficCode uint16

// TrafficRedirect is the only Traffic Indication code in use.
const TrafficRedirect TrafficCode = 0
