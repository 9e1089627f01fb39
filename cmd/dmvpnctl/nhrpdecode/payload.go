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

func ipSummary(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	switch b[0] >> 4 {
	case 4:
		if len(b) < 20 {
			return ""
		}
		src := netip.AddrFrom4([4]byte(b[12:16]))
		dst := netip.AddrFrom4([4]byte(b[16:20]))
		return fmt.Sprintf("ipv4 %s > %s proto %d length %d", src, dst, b[9], binary.BigEndian.Uint16(b[2:]))
	case 6:
		if len(b) < 40 {
			return ""
		}
		src := netip.AddrFrom16([16]byte(b[8:24]))
		dst := netip.AddrFrom16([16]byte(b[24:40]))
		return fmt.Sprintf("ipv6 %s > %s next-header %d payload-length %d", src, dst, b[6], binary.BigEndian.Uint16(b[4:]))
	}
	return ""
}
