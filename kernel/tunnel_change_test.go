package kernel

import (
	"encoding/binary"
	"encoding/hex"
	"net"
	"net/netip"
	"strconv"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"
)

// TestGreChangeRequest checks the in-place change message: no IFLA_IFNAME
// (a rename, refused on an up device), and every GRE parameter present.
func TestGreChangeRequest(t *testing.T) {
	c := validTunnel()
	want := desiredGretun(c, 3)
	b := greChangeRequest(want, 12).Serialize()
	if len(b) < unix.NLMSG_HDRLEN+unix.SizeofIfInfomsg {
		t.Fatalf("short message %d", len(b))
	}
	if typ := binary.NativeEndian.Uint16(b[4:6]); typ != unix.RTM_NEWLINK {
		t.Errorf("type %d, want RTM_NEWLINK", typ)
	}
	if flags := binary.NativeEndian.Uint16(b[6:8]); flags&(unix.NLM_F_CREATE|unix.NLM_F_EXCL|unix.NLM_F_REPLACE) != 0 {
		t.Errorf("flags %#x: a change must not create or replace", flags)
	}
	ifi := nl.DeserializeIfInfomsg(b[unix.NLMSG_HDRLEN:])
	if ifi.Index != 12 {
		t.Errorf("ifindex %d, want 12", ifi.Index)
	}
	attrs, err := nl.ParseRouteAttr(b[unix.NLMSG_HDRLEN+unix.SizeofIfInfomsg:])
	if err != nil {
		t.Fatal(err)
	}
	top := map[uint16][]byte{}
	for _, a := range attrs {
		top[a.Attr.Type] = a.Value
	}
	if _, ok := top[unix.IFLA_IFNAME]; ok {
		t.Error("change request carries IFLA_IFNAME")
	}
	if got := binary.NativeEndian.Uint32(top[unix.IFLA_MTU]); got != 1400 {
		t.Errorf("mtu %d, want 1400", got)
	}
	info, err := nl.ParseRouteAttr(top[unix.IFLA_LINKINFO])
	if err != nil {
		t.Fatal(err)
	}
	var data []byte
	for _, a := range info {
		switch a.Attr.Type {
		case nl.IFLA_INFO_KIND:
			if string(a.Value) != "gre" {
				t.Errorf("kind %q", a.Value)
			}
		case nl.IFLA_INFO_DATA:
			data = a.Value
		}
	}
	gre, err := nl.ParseRouteAttr(data)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	names := map[uint16]string{
		nl.IFLA_GRE_LOCAL: "local", nl.IFLA_GRE_IFLAGS: "iflags", nl.IFLA_GRE_OFLAGS: "oflags",
		nl.IFLA_GRE_IKEY: "ikey", nl.IFLA_GRE_OKEY: "okey", nl.IFLA_GRE_LINK: "link",
		nl.IFLA_GRE_TTL: "ttl", nl.IFLA_GRE_TOS: "tos", nl.IFLA_GRE_PMTUDISC: "pmtudisc",
	}
	for _, a := range gre {
		n, ok := names[a.Attr.Type]
		if !ok {
			t.Errorf("unexpected GRE attribute %d", a.Attr.Type)
			continue
		}
		switch n {
		case "local":
			got[n] = net.IP(a.Value).String()
		case "iflags", "oflags":
			got[n] = hexBE(a.Value)
		case "ikey", "okey":
			got[n] = itoa(binary.BigEndian.Uint32(a.Value))
		case "link":
			got[n] = itoa(binary.NativeEndian.Uint32(a.Value))
		default:
			got[n] = itoa(uint32(a.Value[0]))
		}
	}
	wantAttrs := map[string]string{
		"local": "198.51.100.1", "iflags": "2000", "oflags": "2000", "ikey": "42", "okey": "42",
		"link": "3", "ttl": "64", "tos": "1", "pmtudisc": "1",
	}
	if d := cmp.Diff(wantAttrs, got); d != "" {
		t.Errorf("GRE attributes (-want +got):\n%s", d)
	}
	// No key, wildcard local: no key flag, local 0.0.0.0 (never omitted).
	c.Key, c.Local = 0, netip.Addr{}
	b = greChangeRequest(desiredGretun(c, 0), 12).Serialize()
	attrs, err = nl.ParseRouteAttr(b[unix.NLMSG_HDRLEN+unix.SizeofIfInfomsg:])
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range attrs {
		if a.Attr.Type != unix.IFLA_LINKINFO {
			continue
		}
		info, _ := nl.ParseRouteAttr(a.Value)
		for _, ia := range info {
			if ia.Attr.Type != nl.IFLA_INFO_DATA {
				continue
			}
			gre, _ := nl.ParseRouteAttr(ia.Value)
			for _, ga := range gre {
				switch ga.Attr.Type {
				case nl.IFLA_GRE_IFLAGS, nl.IFLA_GRE_OFLAGS:
					if hexBE(ga.Value) != "0000" {
						t.Errorf("keyless flags %x", ga.Value)
					}
				case nl.IFLA_GRE_LOCAL:
					if net.IP(ga.Value).String() != "0.0.0.0" {
						t.Errorf("wildcard local %v", net.IP(ga.Value))
					}
				}
			}
		}
	}
}

func hexBE(b []byte) string { return hex.EncodeToString(b) }

func itoa(v uint32) string { return strconv.FormatUint(uint64(v), 10) }

func TestReadGretunUnderlay(t *testing.T) {
	g := &netlink.Gretun{LinkAttrs: netlink.LinkAttrs{ParentIndex: 5}, Local: net.IPv4zero}
	if got := readGretun(g).Link; got != 5 {
		t.Errorf("underlay from IFLA_LINK = %d, want 5", got)
	}
	if readGretun(&netlink.Dummy{}) != nil {
		t.Error("dummy read as gre")
	}
}
