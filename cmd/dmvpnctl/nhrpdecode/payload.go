package nhrpdecode

import (
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"net/netip"

	"github.com/dmvpnd/dmvpnd/nhrp"
)

// payloadText summarises the packet carried by a Traffic Indication (a data
// packet: its IP header) or an Error Indication (the offending NHRP
// packet), then gives the octet count and a hex dump.
func payloadText(t nhrp.Type, b []byte) string {
	s := fmt.Sprintf("%d octets", len(b))
	if sum := payloadSummary(t, b); sum != "" {
		s = sum + ", " + s
	}
	return s + " " + hex.EncodeToString(b)
}

func payloadSummary(t nhrp.Type, b []byte) string {
	if t == nhrp.TypeErrorIndication {
		p, err := nhrp.Parse(b)
		if err != nil {
			return ""
		}
		s := "nhrp " + p.Type.String()
		if p.Type.HasCIEs() {
			s += fmt.Sprintf(" id=%d", p.RequestID)
		}
		return s + fmt.Sprintf(" src-nbma=%s src-proto=%s dst-proto=%s", addrOr(p.SrcNBMA), addrOr(p.SrcProto), addrOr(p.DstProto))
	}
	return ipSummary(b)
}

// ipHeader says where ipSummary finds the fields of one IP version's
// header, and what it calls them.
type ipHeader struct {
	name      string
	src       int // offset of the source address; the destination follows
	addrLen   int
	proto     int // offset of the protocol (IPv4) or next header (IPv6)
	protoName string
	length    int // offset of the 16-bit total (IPv4) or payload (IPv6) length
	lenName   string
}

var ipHeaders = map[byte]ipHeader{
	4: {name: "ipv4", src: 12, addrLen: 4, proto: 9, protoName: "proto", length: 2, lenName: "length"},
	6: {name: "ipv6", src: 8, addrLen: 16, proto: 6, protoName: "next-header", length: 4, lenName: "payload-length"},
}

func ipSummary(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	h, ok := ipHeaders[b[0]>>4]
	end := h.src + 2*h.addrLen
	if !ok || len(b) < end {
		return ""
	}
	src, _ := netip.AddrFromSlice(b[h.src : h.src+h.addrLen])
	dst, _ := netip.AddrFromSlice(b[h.src+h.addrLen : end])
	return fmt.Sprintf("%s %s > %s %s %d %s %d", h.name, src, dst, h.protoName, b[h.proto], h.lenName, binary.BigEndian.Uint16(b[h.length:]))
}
