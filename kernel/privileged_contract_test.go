package kernel_test

import (
	"fmt"
	"net"
	"net/netip"
	"slices"
	"testing"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/dmvpnd/dmvpnd/kernel"
	"github.com/dmvpnd/dmvpnd/kernel/kerneltest"
)

// TestContractKernel runs the dataplane contract (kerneltest.RunContract)
// against the real kernel, each subtest in its own namespace with an
// underlay ul0 172.16.9.1/24; kerneltest's TestContractFake runs the same
// suite against the fake. Privileged: in the lab, DMVPND_PRIV_RUN=TestContract.
func TestContractKernel(t *testing.T) {
	kerneltest.RunContract(t, func(t *testing.T) kerneltest.System {
		fd, h, _ := kernel.SingleNodeForTest(t)
		ipnet := func(p netip.Prefix) *net.IPNet {
			return &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), 32)}
		}
		return kerneltest.System{
			Open: func(t *testing.T) kerneltest.ContractDataplane { return kernel.NewKernelForTest(t, fd) },
			Tunnel: kernel.TunnelConfig{Name: "gre1", Local: netip.MustParseAddr("172.16.9.1"), Underlay: "ul0",
				Key: 42, TTL: 64, MTU: 1400, Address: netip.MustParsePrefix("10.0.0.1/32")},
			AddForeignRoute: func(t *testing.T, dst netip.Prefix) {
				l, err := h.LinkByName("gre1")
				if err != nil {
					t.Fatal(err)
				}
				r := &netlink.Route{LinkIndex: l.Attrs().Index, Dst: ipnet(dst), Scope: netlink.SCOPE_LINK,
					Protocol: unix.RTPROT_STATIC}
				if err := h.RouteAppend(r); err != nil {
					t.Fatalf("add foreign route %s: %v", dst, err)
				}
			},
			HasForeignRoute: func(t *testing.T, dst netip.Prefix) bool {
				rs, err := h.RouteListFiltered(unix.AF_INET, &netlink.Route{Dst: ipnet(dst)}, netlink.RT_FILTER_DST)
				if err != nil {
					t.Fatal(err)
				}
				for _, r := range rs {
					if r.Protocol == unix.RTPROT_STATIC {
						return true
					}
				}
				return false
			},
			TunnelLayout: func(t *testing.T, prefix netip.Prefix) []string {
				l, err := h.LinkByName("gre1")
				if err != nil {
					t.Fatal(err)
				}
				addrs, err := h.AddrList(l, unix.AF_INET)
				if err != nil {
					t.Fatal(err)
				}
				var out []string
				for _, a := range addrs {
					out = append(out, "addr "+a.IPNet.String())
				}
				rs, err := h.RouteListFiltered(unix.AF_INET, &netlink.Route{Table: unix.RT_TABLE_MAIN, Dst: ipnet(prefix)},
					netlink.RT_FILTER_TABLE|netlink.RT_FILTER_DST)
				if err != nil {
					t.Fatal(err)
				}
				for _, r := range rs {
					if r.LinkIndex != l.Attrs().Index {
						continue
					}
					s := fmt.Sprintf("route %s proto %d", prefix, r.Protocol)
					switch r.Protocol {
					case unix.RTPROT_KERNEL:
						s = fmt.Sprintf("route %s proto kernel", prefix)
					case unix.RTPROT_STATIC:
						s = fmt.Sprintf("route %s proto static", prefix)
					}
					if r.Src != nil {
						s += " src " + r.Src.String()
					}
					out = append(out, s)
				}
				slices.Sort(out)
				return out
			},
		}
	})
}
