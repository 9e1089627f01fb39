package nhrpdecode

import (
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"strings"

	"github.com/dmvpnd/dmvpnd/nhrp"
)

// Options controls rendering.
type Options struct {
	// ShowSecrets prints authentication passwords instead of their length.
	ShowSecrets bool
}

// RenderText writes recs in a readable, line-oriented form: one header
// line per packet, then its fields indented.
func RenderText(w io.Writer, recs []Record, opt Options) error {
	tw := &textWriter{w: w}
	for i := range recs {
		if i > 0 {
			tw.line("")
		}
		tw.record(&recs[i], opt)
	}
	return tw.err
}

type textWriter struct {
	w   io.Writer
	err error
}

func (t *textWriter) line(format string, args ...any) {
	if t.err != nil {
		return
	}
	_, t.err = fmt.Fprintf(t.w, format+"\n", args...)
}

func (t *textWriter) record(r *Record, opt Options) {
	var where []string
	if len(r.VLANs) > 0 {
		where = append(where, "vlan "+joinUints(r.VLANs, "."))
	}
	where = append(where, fmt.Sprintf("%s > %s", addrOr(r.Src), addrOr(r.Dst)))
	switch {
	case r.HasGREKey:
		where = append(where, fmt.Sprintf("gre key %d", r.GREKey))
	default:
		where = append(where, r.Encap.String())
	}
	where = append(where, fmt.Sprintf("%d octets", r.Length))
	if r.Truncated {
		where = append(where, "capture truncated")
	}
	t.line("frame %d %s %s", r.Frame, r.Time.UTC().Format(timeFormat), strings.Join(where, ", "))
	if r.Err != nil {
		var pe *nhrp.ParseError
		if errors.As(r.Err, &pe) {
			t.line("  malformed: %s at offset %d (would answer %s, code %d)", pe.Reason, pe.Offset, pe.Code, pe.Code)
		} else {
			t.line("  malformed: %v", r.Err)
		}
		return
	}
	p := r.Packet
	head := fmt.Sprintf("  %s", p.Type)
	if p.Type.HasCIEs() {
		head += fmt.Sprintf(" id=%d", p.RequestID)
	}
	head += fmt.Sprintf(" hop-count=%d", p.HopCount)
	if p.Type.HasCIEs() {
		head += " flags=" + flagText(p)
	}
	t.line("%s", head)
	hdr := fmt.Sprintf("  afn=%s protocol=%s", afnText(p.AFN), protoText(p.ProtocolType))
	if p.SNAP != ([5]byte{}) {
		hdr += " snap=" + hex.EncodeToString(p.SNAP[:])
	}
	if p.Version != 1 {
		hdr += fmt.Sprintf(" version=%d", p.Version)
	}
	t.line("%s", hdr)
	src := "  src-nbma=" + addrOr(p.SrcNBMA) + addrTypeText(p.SrcNBMAType)
	if len(p.SrcNBMASubaddr) > 0 || p.SrcNBMASubaddrType != 0 {
		src += " src-nbma-subaddr=" + hex.EncodeToString(p.SrcNBMASubaddr) + addrTypeText(p.SrcNBMASubaddrType)
	}
	src += " src-proto=" + addrOr(p.SrcProto) + " dst-proto=" + addrOr(p.DstProto)
	t.line("%s", src)
	switch p.Type {
	case nhrp.TypeErrorIndication:
		t.line("  error-code=%s (%d) error-offset=%d%s", p.ErrorCode, p.ErrorCode, p.ErrorOffset, unusedText(p.Unused[:1]))
		t.line("  offending packet: %s", payloadText(p.Type, p.Payload))
	case nhrp.TypeTrafficIndication:
		code := fmt.Sprintf("%d", p.TrafficCode)
		if p.TrafficCode == nhrp.TrafficRedirect {
			code = "redirect (0)"
		}
		t.line("  traffic-code=%s%s", code, unusedText(p.Unused[:]))
		t.line("  packet: %s", payloadText(p.Type, p.Payload))
	}
	for i := range p.CIEs {
		extra := ""
		if p.Type == nhrp.TypeResolutionReply && p.CIEs[i].Code == nhrp.CIESuccess {
			extra = " covers=" + p.DestinationPrefix(&p.CIEs[i]).String()
		}
		t.line("  cie %d: %s%s", i+1, cieText(&p.CIEs[i]), extra)
	}
	for i := range p.Extensions {
		t.extension(&p.Extensions[i], opt)
	}
}

func (t *textWriter) extension(e *nhrp.Extension, opt Options) {
	name := "extension " + e.Type.String()
	if e.Compulsory {
		name += " (compulsory)"
	}
	if e.Reserved {
		name += " (reserved bit set)"
	}
	switch {
	case e.Opaque || !e.Type.Known():
		t.line("  %s: %d octets %s", name, len(e.Raw), hex.EncodeToString(e.Raw))
	case e.Type.CarriesCIEs():
		if len(e.CIEs) == 0 {
			t.line("  %s: empty", name)
			return
		}
		t.line("  %s:", name)
		for i := range e.CIEs {
			t.line("    cie %d: %s", i+1, cieText(&e.CIEs[i]))
		}
	case e.Type == nhrp.ExtensionAuthentication:
		if e.Auth.Type == nhrp.AuthCleartext {
			pw := fmt.Sprintf("<%d octets hidden>", len(e.Auth.Data))
			if opt.ShowSecrets {
				pw = fmt.Sprintf("%q", e.Auth.Data)
			}
			t.line("  %s: cleartext password %s", name, pw)
			return
		}
		t.line("  %s: type 0x%08x, %d octets of data", name, e.Auth.Type, len(e.Auth.Data))
	case e.Type == nhrp.ExtensionVendorPrivate:
		t.line("  %s: oui %s data %s", name, hex.EncodeToString(e.Vendor.OUI[:]), hex.EncodeToString(e.Vendor.Data))
	default:
		t.line("  %s", name)
	}
}

func cieText(c *nhrp.CIE) string {
	var b strings.Builder
	fmt.Fprintf(&b, "code=%s prefix-length=%d mtu=%d holding-time=%d", c.Code, c.PrefixLength, c.MTU, c.HoldingTime)
	fmt.Fprintf(&b, " client-nbma=%s%s", addrOr(c.ClientNBMA), addrTypeText(c.ClientNBMAType))
	if len(c.ClientNBMASubaddr) > 0 || c.ClientNBMASubaddrType != 0 {
		fmt.Fprintf(&b, " client-nbma-subaddr=%s%s", hex.EncodeToString(c.ClientNBMASubaddr), addrTypeText(c.ClientNBMASubaddrType))
	}
	fmt.Fprintf(&b, " client-proto=%s preference=%d", addrOr(c.ClientProto), c.Preference)
	if c.Unused != 0 {
		fmt.Fprintf(&b, " unused=0x%04x", c.Unused)
	}
	return b.String()
}

func flagText(p *nhrp.Packet) string {
	names := p.Flags.Names(p.Type)
	if len(names) == 0 {
		return "none"
	}
	return fmt.Sprintf("%s (0x%04x)", strings.Join(names, ","), uint16(p.Flags))
}

func unusedText(u []uint16) string {
	var s string
	for i, v := range u {
		if v != 0 {
			s += fmt.Sprintf(" unused%d=0x%04x", i+1, v)
		}
	}
	return s
}

func addrOr(a netip.Addr) string {
	if !a.IsValid() {
		return "-"
	}
	return a.String()
}

// The names of the header's numbers; a number without one is printed in
// the format its function gives.
var (
	addrTypeNames = map[nhrp.AddrType]string{nhrp.AddrTypeNSAP: "", nhrp.AddrTypeE164: "(e164)"}
	afnNames      = map[nhrp.AddressFamily]string{nhrp.AFNIPv4: "ipv4", nhrp.AFNIPv6: "ipv6"}
	protoNames    = map[nhrp.ProtocolType]string{nhrp.ProtocolIPv4: "ipv4", nhrp.ProtocolIPv6: "ipv6"}
)

func addrTypeText(t nhrp.AddrType) string  { return named(addrTypeNames, t, "(type 0x%02x)") }
func afnText(a nhrp.AddressFamily) string  { return named(afnNames, a, "%d") }
func protoText(p nhrp.ProtocolType) string { return named(protoNames, p, "0x%04x") }

// named returns v's name in names, or v printed with format.
func named[T comparable](names map[T]string, v T, format string) string {
	if n, ok := names[v]; ok {
		return n
	}
	return fmt.Sprintf(format, v)
}

func joinUints(v []uint16, sep string) string {
	s := make([]string, len(v))
	for i, x := range v {
		s[i] = fmt.Sprintf("%d", x)
	}
	return strings.Join(s, sep)
}
