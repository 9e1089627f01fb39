package nhrp

import (
	"net/netip"
	"time"
)

// Packet is one NHRP message: the fixed header (§5.1), the mandatory part
// (§5.2.0.1 and, for Error and Traffic Indications, §5.2.7 and
// draft-detienne-dmvpn §4.2), its Client Information Entries and its
// extensions (§5.3).
//
// The zero value is not a valid packet; use one of the New... constructors
// or fill in at least Type, HopCount, SrcNBMA, SrcProto and DstProto.
// Marshal derives ar$afn and ar$pro.type from SrcNBMA and SrcProto when AFN
// or ProtocolType is zero, and uses version 1 when Version is zero.
//
// Fields ar$pktsz, ar$chksum, ar$extoff and the address length octets are
// not stored: Marshal computes them and Unmarshal verifies them.
type Packet struct {
	// Fixed header (§5.1).

	// AFN is ar$afn, the NBMA address family (1 IPv4, 2 IPv6).
	AFN AddressFamily
	// ProtocolType is ar$pro.type, the protocol address type
	// (0x0800 IPv4, 0x86DD IPv6).
	ProtocolType ProtocolType
	// SNAP is ar$pro.snap; zero for IP.
	SNAP [5]byte
	// HopCount is ar$hopcnt. A packet with hop count 0 is rejected on
	// decode (error code 15) and refused on encode.
	HopCount uint8
	// Version is ar$op.version; only 1 is defined.
	Version uint8
	// Type is ar$op.type.
	Type Type
	// SrcNBMAType and SrcNBMASubaddrType are the type bits (bits 6 and 7)
	// of ar$shtl and ar$sstl; the length bits come from SrcNBMA and
	// SrcNBMASubaddr. Zero (NSAP format) for IP.
	SrcNBMAType        AddrType
	SrcNBMASubaddrType AddrType

	// Mandatory part (§5.2.0.1).

	// Flags and RequestID apply to types 1-6. Error and Traffic
	// Indications carry other fields in their place (see below).
	Flags     Flags
	RequestID uint32
	// SrcNBMA is the source NBMA address; SrcNBMASubaddr its subaddress
	// (empty for IP).
	SrcNBMA        netip.Addr
	SrcNBMASubaddr []byte
	// SrcProto and DstProto are the source and destination protocol
	// addresses.
	SrcProto netip.Addr
	DstProto netip.Addr
	// CIEs are the Client Information Entries of types 1-6.
	CIEs []CIE

	// ErrorCode and ErrorOffset are the Error Indication (type 7) fields
	// (§5.2.7): the error and the byte offset, from the start of the
	// fixed header of the offending packet, of the field that caused it.
	ErrorCode   ErrorCode
	ErrorOffset uint16
	// TrafficCode is the Traffic Indication (type 8) code; 0 = redirect.
	TrafficCode TrafficCode
	// Unused holds the mandatory-part words that RFC 2332 and the DMVPN
	// draft mark unused, kept for exact re-encoding: for an Error
	// Indication Unused[0] is the word in place of the flags; for a
	// Traffic Indication Unused[0] is the word in place of the flags and
	// Unused[1] the word after the traffic code. Zero on sensible input.
	Unused [2]uint16
	// Payload is, for an Error Indication, the packet that caused the
	// error (as much of it as was sent) and, for a Traffic Indication,
	// the leading bytes of the data packet that triggered it.
	Payload []byte

	// Extensions are the extensions in wire order. An End extension that
	// was present on the wire is kept as the last element; Marshal writes
	// exactly the elements given (NewXxx constructors append End).
	Extensions []Extension
}

// CIE is a Client Information Entry (§5.2.0.1).
type CIE struct {
	// Code is the CIE code: success or why the request failed.
	Code CIECode
	// PrefixLength is the wire value, kept as sent (0, 0xFF and the
	// address length all occur in practice); see EffectivePrefixLength.
	PrefixLength uint8
	// Unused is the 16-bit unused field, kept for exact re-encoding.
	Unused uint16
	// MTU is the maximum transmission unit for the client, 0 = default.
	MTU uint16
	// HoldingTime is the holding time in seconds.
	HoldingTime uint16
	// ClientNBMAType and ClientNBMASubaddrType are the type bits of the
	// cli addr t/l and cli saddr t/l octets (zero for IP).
	ClientNBMAType        AddrType
	ClientNBMASubaddrType AddrType
	// Preference is the CIE preference value.
	Preference uint8
	// ClientNBMA, ClientNBMASubaddr and ClientProto are the client's
	// addresses. Any of them may be absent (invalid Addr / empty slice),
	// encoded with length 0.
	ClientNBMA        netip.Addr
	ClientNBMASubaddr []byte
	ClientProto       netip.Addr
}

// Holding returns the holding time as a duration.
func (c *CIE) Holding() time.Duration { return time.Duration(c.HoldingTime) * time.Second }

// EffectivePrefixLength returns the prefix length the CIE stands for, for a
// protocol address of addrBits bits. RFC 2332 §5.2.0.1: a Prefix Length of
// 0 "MUST be ignored and no equivalence information is assumed (note that
// 0x00 is thus equivalent to 0xFF)", so 0, 0xFF and any value larger than
// addrBits all mean a host entry of addrBits.
func (c *CIE) EffectivePrefixLength(addrBits int) int {
	if c.PrefixLength == 0 || int(c.PrefixLength) > addrBits {
		return addrBits
	}
	return int(c.PrefixLength)
}

// Extension is one NHRP extension (§5.3). Which payload field is used
// depends on Type:
//
//   - ExtensionEnd: none (length 0).
//   - ExtensionResponderAddress, ExtensionForwardTransit,
//     ExtensionReverseTransit, ExtensionNATAddress: CIEs.
//   - ExtensionAuthentication: Auth.
//   - ExtensionVendorPrivate: Vendor.
//   - any other type: Raw.
//
// When Opaque is set, Raw is written verbatim whatever the type. Unmarshal
// sets Opaque for a type-9 extension whose payload is not a list of CIEs
// (RFC 2735 assigns type 9 to the 8-octet Device Capabilities extension).
type Extension struct {
	// Type is the 14-bit extension type.
	Type ExtensionType
	// Compulsory is bit 15 of the type word: a receiver that does not
	// understand the extension must reject the packet (§5.3).
	Compulsory bool
	// Reserved is bit 14 of the type word, zero on sensible input, kept
	// for exact re-encoding.
	Reserved bool

	CIEs   []CIE
	Auth   Authentication
	Vendor VendorPrivate
	Raw    []byte
	Opaque bool
}

// Authentication is the payload of the Authentication extension (§5.3.4).
//
// Cisco IOS and FRR send a 4-octet type (AuthCleartext = 1) followed by
// the password, unpadded. In RFC 2332's layout the same four octets are a
// reserved word and the SPI, and Data starts with the source address and
// continues with the authentication data.
type Authentication struct {
	Type uint32
	Data []byte
}

// VendorPrivate is the payload of the Vendor-Private extension (§5.3.5).
type VendorPrivate struct {
	OUI  [3]byte
	Data []byte
}
