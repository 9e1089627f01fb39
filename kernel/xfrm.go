package kernel

import (
	"fmt"
	"net/netip"
	"sort"
	"strings"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// XfrmStateSummary is an IPsec SA without key material, safe to print.
// (netlink.XfrmState's String method can panic on nil fields and would print
// keys: never format one directly.)
type XfrmStateSummary struct {
	Src, Dst  netip.Addr
	Proto     string // "esp", "ah", ...
	SPI       uint32
	Mode      string // "transport", "tunnel", ...
	Reqid     int
	Algorithm string // AEAD or cipher (+ "/" + auth) names, never keys
	Encap     string // "espinudp 4500:4500" for NAT-T, "" otherwise
	Bytes     uint64
	Packets   uint64
	Mark      string // "0x1/0xffffffff" or ""
}

// XfrmPolicySummary is an IPsec policy, safe to print.
type XfrmPolicySummary struct {
	Src, Dst  netip.Prefix
	Proto     int // IP protocol number, 0 any
	Dir       string
	Action    string
	Priority  int
	Index     int
	Mark      string
	Templates []XfrmTemplateSummary
}

// XfrmTemplateSummary is one template of a policy.
type XfrmTemplateSummary struct {
	Src, Dst netip.Addr
	Proto    string
	Mode     string
	Reqid    int
}

func summarizeXfrmState(s *netlink.XfrmState) XfrmStateSummary {
	out := XfrmStateSummary{
		Src:     addrFromIP(s.Src),
		Dst:     addrFromIP(s.Dst),
		Proto:   s.Proto.String(),
		SPI:     uint32(s.Spi),
		Mode:    s.Mode.String(),
		Reqid:   s.Reqid,
		Bytes:   s.Statistics.Bytes,
		Packets: s.Statistics.Packets,
	}
	switch {
	case s.Aead != nil:
		out.Algorithm = s.Aead.Name
	case s.Crypt != nil && s.Auth != nil:
		out.Algorithm = s.Crypt.Name + "/" + s.Auth.Name
	case s.Crypt != nil:
		out.Algorithm = s.Crypt.Name
	case s.Auth != nil:
		out.Algorithm = s.Auth.Name
	}
	if s.Encap != nil {
		out.Encap = fmt.Sprintf("%s %d:%d", s.Encap.Type.String(), s.Encap.SrcPort, s.Encap.DstPort)
	}
	if s.Mark != nil {
		out.Mark = fmt.Sprintf("0x%x/0x%x", s.Mark.Value, s.Mark.Mask)
	}
	return out
}

func summarizeXfrmPolicy(p *netlink.XfrmPolicy) XfrmPolicySummary {
	out := XfrmPolicySummary{
		Proto:    int(p.Proto),
		Dir:      strings.TrimPrefix(p.Dir.String(), "dir "),
		Priority: p.Priority,
		Index:    p.Index,
	}
	if p.Action == netlink.XFRM_POLICY_ALLOW {
		out.Action = "allow"
	} else {
		out.Action = "block"
	}
	if src, ok := prefixFromIPNet(p.Src); ok {
		out.Src = src
	}
	if dst, ok := prefixFromIPNet(p.Dst); ok {
		out.Dst = dst
	}
	if p.Mark != nil {
		out.Mark = fmt.Sprintf("0x%x/0x%x", p.Mark.Value, p.Mark.Mask)
	}
	for _, t := range p.Tmpls {
		out.Templates = append(out.Templates, XfrmTemplateSummary{
			Src:   addrFromIP(t.Src),
			Dst:   addrFromIP(t.Dst),
			Proto: t.Proto.String(),
			Mode:  t.Mode.String(),
			Reqid: t.Reqid,
		})
	}
	return out
}

// XfrmStates lists the IPsec SAs (IPv4 and IPv6) as summaries.
func (k *Kernel) XfrmStates() ([]XfrmStateSummary, error) {
	ss, err := k.nl.XfrmStateList(unix.AF_UNSPEC)
	if err != nil {
		return nil, opErr("list", "xfrm states", err)
	}
	out := make([]XfrmStateSummary, 0, len(ss))
	for i := range ss {
		out = append(out, summarizeXfrmState(&ss[i]))
	}
	sort.Slice(out, func(i, j int) bool {
		if c := out[i].Dst.Compare(out[j].Dst); c != 0 {
			return c < 0
		}
		return out[i].SPI < out[j].SPI
	})
	return out, nil
}

// XfrmPolicies lists the IPsec policies as summaries.
func (k *Kernel) XfrmPolicies() ([]XfrmPolicySummary, error) {
	ps, err := k.nl.XfrmPolicyList(unix.AF_UNSPEC)
	if err != nil {
		return nil, opErr("list", "xfrm policies", err)
	}
	out := make([]XfrmPolicySummary, 0, len(ps))
	for i := range ps {
		out = append(out, summarizeXfrmPolicy(&ps[i]))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Index < out[j].Index })
	return out, nil
}
