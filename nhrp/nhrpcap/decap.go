package nhrpcap

import (
	"encoding/binary"
	"net/netip"
	"time"

	"github.com/dmvpnd/dmvpnd/nhrp"
)

// Ethertypes and IP protocol numbers met on the way to NHRP.
const (
	etherTypeIPv4   = 0x0800
	etherTypeIPv6   = 0x86DD
	etherTypeVLAN   = 0x8100
	etherTypeQinQ   = 0x88A8
	etherTypeQinQv1 = 0x9100
	etherTypeNHRP   = 0x2001 // GRE protocol type of NHRP (RFC 2332 §3 / 1701)

	ipProtoGRE  = 47
	ipProtoNHRP = 54
)

// Encapsulation says how an NHRP packet was carried.
type Encapsulation uint8

// Encapsulations.
const (
	EncapGRE Encapsulation = iota + 1 // GRE, protocol type 0x2001
	EncapIP                           // directly over IP, protocol 54
)

func (e Encapsulation) String() string {
	switch e {
	case EncapGRE:
		return "gre"
	case EncapIP:
		return "ip"
	}
	return "unknown"
}

// Packet is an NHRP packet found in a frame, with what the outer layers
// said about it.
type Packet struct {
	Frame     int
	Timestamp time.Time
	// VLANs are the 802.1Q/802.1ad VLAN IDs, outermost first.
	VLANs []uint16
	// Src and Dst are the outer IP addresses (the NBMA addresses).
	Src, Dst netip.Addr
	Encap    Encapsulation
	// GREKey is the GRE key, when HasGREKey (RFC 2890).
	GREKey    uint32
	HasGREKey bool
	// NHRP is the NHRP packet: the IP or GRE payload, limited by the IP
	// length fields and by what was captured.
	NHRP []byte
	// Truncated is set when the capture or an IP fragment held less than
	// the IP header announced.
	Truncated bool
}

// Extract returns the NHRP packet carried in f. ok is false when the frame
// carries no NHRP (or its outer headers are too damaged to tell).
func Extract(f Frame) (p Packet, ok bool) {
	p.Frame, p.Timestamp = f.Number, f.Timestamp
	b := f.Data
	var etherType uint16
	switch f.LinkType {
	case LinkTypeEthernet:
		if len(b) < 14 {
			return p, false
		}
		etherType, b = binary.BigEndian.Uint16(b[12:]), b[14:]
		for etherType == etherTypeVLAN || etherType == etherTypeQinQ || etherType == etherTypeQinQv1 {
			if len(b) < 4 {
				return p, false
			}
			p.VLANs = append(p.VLANs, binary.BigEndian.Uint16(b)&0x0FFF)
			etherType, b = binary.BigEndian.Uint16(b[2:]), b[4:]
		}
	case LinkTypeLinuxSLL:
		// packet type(2) ARPHRD(2) addr len(2) addr(8) protocol(2)
		if len(b) < 16 {
			return p, false
		}
		etherType, b = binary.BigEndian.Uint16(b[14:]), b[16:]
	case LinkTypeLinuxSLL2:
		// protocol(2) reserved(2) ifindex(4) ARPHRD(2) packet type(1) addr len(1) addr(8)
		if len(b) < 20 {
			return p, false
		}
		etherType, b = binary.BigEndian.Uint16(b), b[20:]
	case LinkTypeNull:
		if len(b) < 4 {
			return p, false
		}
		// Host byte order address family: 2 = AF_INET; AF_INET6 varies (24, 28, 30, 10).
		af := binary.LittleEndian.Uint32(b)
		if af > 0xFFFF {
			af = binary.BigEndian.Uint32(b)
		}
		b = b[4:]
		etherType = etherTypeIPv6
		if af == 2 {
			etherType = etherTypeIPv4
		}
	case LinkTypeRaw, LinkTypeRawAlt12, LinkTypeRawAlt14, LinkTypeIPv4, LinkTypeIPv6:
		if len(b) < 1 {
			return p, false
		}
		etherType = etherTypeIPv4
		if b[0]>>4 == 6 {
			etherType = etherTypeIPv6
		}
	default:
		return p, false
	}
	switch etherType {
	case etherTypeNHRP:
		// NHRP straight on the link (as on an AF_PACKET capture of the
		// tunnel device in cooked mode).
		return p.withNHRP(EncapGRE, b)
	case etherTypeIPv4:
		return p.ipv4(b)
	case etherTypeIPv6:
		return p.ipv6(b)
	}
	return p, false
}

func (p Packet) ipv4(b []byte) (Packet, bool) {
	h, ok := nhrp.ParseIPHeader(b)
	if !ok || h.Version != 4 || len(b) < h.Len || h.Length < h.Len {
		return p, false
	}
	if h.FragOffset != 0 {
		return p, false // not the first fragment
	}
	p.Src, p.Dst = h.Src, h.Dst
	payload := b[h.Len:]
	want := h.Length - h.Len
	if len(payload) > want {
		payload = payload[:want] // link-layer padding
	} else if len(payload) < want {
		p.Truncated = true
	}
	if h.MoreFragments {
		p.Truncated = true
	}
	return p.transport(h.Protocol, payload)
}

func (p Packet) ipv6(b []byte) (Packet, bool) {
	h, ok := nhrp.ParseIPHeader(b)
	if !ok || h.Version != 6 {
		return p, false
	}
	p.Src, p.Dst = h.Src, h.Dst
	next := h.Protocol
	payload := b[h.Len:]
	if len(payload) > h.Length {
		payload = payload[:h.Length]
	} else if len(payload) < h.Length {
		p.Truncated = true
	}
	// Skip extension headers (RFC 8200 §4).
	for {
		switch next {
		case 0, 43, 60: // hop-by-hop, routing, destination options
			if len(payload) < 8 {
				return p, false
			}
			n := (int(payload[1]) + 1) * 8
			if len(payload) < n {
				return p, false
			}
			next, payload = payload[0], payload[n:]
			continue
		case 44: // fragment
			if len(payload) < 8 {
				return p, false
			}
			fo := binary.BigEndian.Uint16(payload[2:])
			if fo&0xFFF8 != 0 {
				return p, false // not the first fragment
			}
			if fo&1 != 0 {
				p.Truncated = true
			}
			next, payload = payload[0], payload[8:]
			continue
		}
		return p.transport(next, payload)
	}
}

func (p Packet) transport(proto uint8, b []byte) (Packet, bool) {
	switch proto {
	case ipProtoNHRP:
		return p.withNHRP(EncapIP, b)
	case ipProtoGRE:
		return p.gre(b)
	}
	return p, false
}

// gre parses a GRE header (RFC 2784 with RFC 2890 key and sequence; the
// RFC 1701 routing field is skipped as well).
func (p Packet) gre(b []byte) (Packet, bool) {
	if len(b) < 4 {
		return p, false
	}
	flags := binary.BigEndian.Uint16(b)
	if flags&0x7 != 0 { // version: only 0 carries NHRP
		return p, false
	}
	if binary.BigEndian.Uint16(b[2:]) != etherTypeNHRP {
		return p, false
	}
	off := 4
	if flags&0xC000 != 0 { // checksum or routing present: checksum + offset
		off += 4
	}
	if flags&0x2000 != 0 { // key
		if len(b) < off+4 {
			return p, false
		}
		p.GREKey, p.HasGREKey = binary.BigEndian.Uint32(b[off:]), true
		off += 4
	}
	if flags&0x1000 != 0 { // sequence number
		off += 4
	}
	if flags&0x4000 != 0 { // routing (RFC 1701): SREs until a null one
		for {
			if len(b) < off+4 {
				return p, false
			}
			sreLen := int(b[off+3])
			if binary.BigEndian.Uint16(b[off:]) == 0 && sreLen == 0 {
				off += 4
				break
			}
			off += 4 + sreLen
		}
	}
	if len(b) < off {
		return p, false
	}
	return p.withNHRP(EncapGRE, b[off:])
}

// withNHRP returns p with the NHRP packet b found in encapsulation e.
func (p Packet) withNHRP(e Encapsulation, b []byte) (Packet, bool) {
	p.Encap, p.NHRP = e, b
	return p, true
}
