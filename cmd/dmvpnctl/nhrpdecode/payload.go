package nhrpdecode

import (
	"encoding/hex"
	"fmt"

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
	h, ok := nhrp.ParseIPHeader(b)
	switch {
	case !ok:
		return ""
	case h.Version == 4:
		return fmt.Sprintf("ipv4 %s > %s proto %d length %d", h.Src, h.Dst, h.Protocol, h.Length)
	}
	return fmt.Sprintf("ipv6 %s > %s next-header %d payload-length %d", h.Src, h.Dst, h.Protocol, h.Length)
}
