package kernel

import (
	"errors"
	"net/netip"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// DeviceIPv4 returns the first global IPv4 address of a device, for an
// underlay whose address is assigned dynamically (tunnel.underlay_device
// without tunnel.local_nbma).
func (k *Kernel) DeviceIPv4(name string) (netip.Addr, error) {
	link, err := k.nl.LinkByName(name)
	if err != nil {
		return netip.Addr{}, opErr("find device", name, err)
	}
	addrs, err := k.nl.AddrList(link, unix.AF_INET)
	if err != nil {
		return netip.Addr{}, opErr("list addresses", name, err)
	}
	for _, a := range addrs {
		if a.Scope != int(netlink.SCOPE_UNIVERSE) {
			continue
		}
		if ip, ok := netip.AddrFromSlice(a.IP); ok {
			return ip.Unmap(), nil
		}
	}
	return netip.Addr{}, opErr("find IPv4 address", name, errors.New("the device has no global IPv4 address"))
}
