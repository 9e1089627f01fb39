package kernel

import (
	"encoding/binary"
	"net"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"
)

// greKeyFlag is GRE_KEY as the kernel expects it in IFLA_GRE_[IO]FLAGS
// (network byte order).
const greKeyFlag = 0x2000

// greChangeRequest builds an RTM_NEWLINK that changes an existing ip_gre
// tunnel in place. It carries no IFLA_IFNAME: the kernel treats a name in a
// change request as a rename and refuses it on an up device (EBUSY), which
// is what netlink.LinkModify would send. Every GRE parameter is sent, since
// the kernel resets omitted ones.
func greChangeRequest(g *netlink.Gretun, index int) *nl.NetlinkRequest {
	req := nl.NewNetlinkRequest(unix.RTM_NEWLINK, unix.NLM_F_ACK)
	msg := nl.NewIfInfomsg(unix.AF_UNSPEC)
	msg.Index = int32(index)
	req.AddData(msg)
	if g.MTU > 0 {
		req.AddData(nl.NewRtAttr(unix.IFLA_MTU, nl.Uint32Attr(uint32(g.MTU))))
	}
	info := nl.NewRtAttr(unix.IFLA_LINKINFO, nil)
	info.AddRtAttr(nl.IFLA_INFO_KIND, nl.NonZeroTerminated("gre"))
	data := info.AddRtAttr(nl.IFLA_INFO_DATA, nil)
	local := g.Local.To4()
	if local == nil {
		local = net.IPv4zero.To4()
	}
	data.AddRtAttr(nl.IFLA_GRE_LOCAL, []byte(local))
	var flags uint16
	if g.IKey != 0 {
		flags = greKeyFlag
	}
	be16 := func(v uint16) []byte { return binary.BigEndian.AppendUint16(nil, v) }
	be32 := func(v uint32) []byte { return binary.BigEndian.AppendUint32(nil, v) }
	data.AddRtAttr(nl.IFLA_GRE_IFLAGS, be16(flags))
	data.AddRtAttr(nl.IFLA_GRE_OFLAGS, be16(flags))
	data.AddRtAttr(nl.IFLA_GRE_IKEY, be32(g.IKey))
	data.AddRtAttr(nl.IFLA_GRE_OKEY, be32(g.OKey))
	data.AddRtAttr(nl.IFLA_GRE_LINK, nl.Uint32Attr(g.Link))
	data.AddRtAttr(nl.IFLA_GRE_TTL, nl.Uint8Attr(g.Ttl))
	data.AddRtAttr(nl.IFLA_GRE_TOS, nl.Uint8Attr(g.Tos))
	data.AddRtAttr(nl.IFLA_GRE_PMTUDISC, nl.Uint8Attr(g.PMtuDisc))
	req.AddData(info)
	return req
}

// changeTunnel applies want to the existing tunnel index in our namespace.
func (k *Kernel) changeTunnel(want *netlink.Gretun, index int) error {
	req := greChangeRequest(want, index)
	return inNetNS(k.cfg.NetNS, func() error {
		_, err := req.Execute(unix.NETLINK_ROUTE, 0)
		return err
	})
}

// readGretun normalizes a tunnel read from the kernel: the library does not
// decode IFLA_GRE_LINK, but the kernel also reports it as IFLA_LINK.
func readGretun(l netlink.Link) *netlink.Gretun {
	g, ok := l.(*netlink.Gretun)
	if !ok {
		return nil
	}
	if g.Link == 0 && g.ParentIndex > 0 {
		g.Link = uint32(g.ParentIndex)
	}
	return g
}
