// Package nhrp implements the Next Hop Resolution Protocol wire format of
// RFC 2332 ("NBMA Next Hop Resolution Protocol (NHRP)", J. Luciani et al.,
// April 1998), together with the extensions Cisco and FRRouting use for
// DMVPN (draft-detienne-dmvpn-01): the Traffic Indication packet (type 8),
// the cleartext form of the Authentication extension and the NAT Address
// extension (type 9).
//
// The codec is pure Go and performs no I/O. A Packet decodes from and
// encodes to the octets carried in GRE with protocol type 0x2001 (or
// directly over IP protocol 54). Decoding is total: every octet string
// yields either a Packet or a *ParseError carrying the RFC 2332 error code
// an NHS would answer with and the byte offset of the offending field
// (§5.2.7's Error Offset). Decoding into a reused Packet does not allocate
// once its slices have grown. Only IPv4 and IPv6 NBMA (ar$afn 1, 2) and
// protocol (0x0800, 0x86DD) addresses are supported.
//
// The codec keeps everything the wire carries that is needed to re-encode a
// decoded packet to identical octets: nonzero "unused" fields, the SNAP
// field, the type bits of the address type/length octets (E.164), the
// compulsory and reserved bits of each extension, whether an End extension
// was present, the extension order, and CIE prefix lengths 0, 0xFF and the
// address length as distinct values.
//
// # Where the sources differ
//
// docs/nhrp-wire.md describes the wire layout as dmvpnd uses it. It was
// checked against RFC 2332, draft-detienne-dmvpn-01, Wireshark's
// packet-nhrp.c (and tshark 4.0 as a judge) and real captures (FRR nhrpd
// 8.4.4, Cisco IOS, an NHRP trace from 2007; see interop.md). Where these
// differ, this package does the following:
//
//   - Traffic Indication destination protocol address: the draft (§4.2)
//     says it is the destination of the packet that triggered the
//     indication. FRR 8.4.4 and the 2007 trace both put the triggering
//     packet's source address there (the host behind the spoke being
//     redirected). The codec stores what is sent; receivers should take
//     the target from the embedded packet.
//   - Traffic Indication payload: no source fixes its length; dmvpnd
//     sends what NFLOG captured (128 octets by default). The 2007 trace carries 28 (IP and ICMP headers), FRR
//     carries the whole packet. Any length is accepted.
//   - Traffic Indications may carry extensions (the draft says so; the
//     2007 trace has forward and reverse transit, authentication, NAT and
//     End extensions). Wireshark does not display the traffic code.
//   - Prefix length 0 means 0xFF (RFC 2332 §5.2.0.1: "0x00 is thus
//     equivalent to 0xFF"); see CIE.EffectivePrefixLength.
//     The wire value is kept as sent.
//   - A bad checksum: RFC 2332 §5.2.7 lists "failed checksum" (and invalid
//     version or protocol type) under Protocol Error, code 7; ParseError
//     uses that code.
//   - Source NBMA address length 0: RFC 2332 §5.2.0.1 allows it ("no
//     storage is allocated"). DMVPN has no use for a packet without one,
//     so the codec rejects it (and any length other than the AFN's) with
//     Protocol Error; CIE client addresses may be absent.
//   - Authentication extension: Cisco and FRR send a 4-octet type (1 =
//     cleartext) and the password. RFC 2332 §5.3.4 lays out
//     reserved (2), SPI (2), source address, authentication data, and
//     Wireshark decodes by the RFC (showing the first four password octets
//     as a "source address"). Authentication keeps the first four octets
//     as one word and the rest raw, so both readings are recoverable.
//   - Resolution Request flag D: RFC 2332 §5.2.1 marks D "unused (clear on
//     transmit)" in requests; it is meaningful in replies only. FRR and
//     Cisco set A in requests (only authoritative answers wanted).
//   - Error Indications with extensions: RFC 2332 and Wireshark (expert
//     error, "not allowed per RFC2332 section 5.2.7") reject them. The
//     codec decodes them anyway, so that a receiver can report what it got;
//     NewErrorIndication adds none.
//   - RFC 2735 assigns extension type 9 to Device Capabilities (8 octets),
//     Cisco uses 9 for the NAT Address (a list of CIEs). A type-9 payload
//     that is not a list of CIEs is kept raw (Extension.Opaque).
//
// Section references in this package are to RFC 2332 unless stated
// otherwise.
package nhrp
