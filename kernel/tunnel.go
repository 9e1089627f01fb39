package kernel

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"

	"github.com/vishvananda/netlink"
	"go.uber.org/zap"
	"golang.org/x/sys/unix"
)

// ownerAlias is written as IFLA_IFALIAS on tunnels dmvpnd creates, so that a
// later run knows which tunnels it may delete.
const ownerAlias = "dmvpnd"

// TunnelConfig is the desired mGRE tunnel.
type TunnelConfig struct {
	Name string
	// Local is the local NBMA address; invalid means wildcard (0.0.0.0).
	Local netip.Addr
	// Underlay is the device the outer packets leave from ("" for none).
	Underlay string
	// Key is the GRE key; 0 means no key.
	Key uint32
	// TTL of the outer header; 0 means inherit from the inner packet.
	TTL uint8
	// NoPMTUDisc clears DF on the outer header (requires TTL 0).
	NoPMTUDisc bool
	// MTU of the tunnel device; 0 leaves the kernel's choice.
	MTU int
	// Address is the tunnel address with the tunnel prefix length
	// (10.0.0.1/24); a /32 means no tunnel prefix.
	Address netip.Prefix
	// HostAddress programs Address as a host address (10.0.0.1/32) and the
	// tunnel prefix as a route through the tunnel in place of the kernel's
	// connected route (HostRoute): FRR nhrpd's layout, which FRR's ospfd
	// needs on a point-to-multipoint hub facing nhrpd spokes. Requires
	// a prefix shorter than /32.
	HostAddress bool
	// StrictAdopt makes EnsureTunnel fail instead of fixing an existing
	// tunnel whose parameters differ.
	StrictAdopt bool
}

// Validate checks the configuration without touching the kernel.
func (c TunnelConfig) Validate() error {
	var errs []string
	if c.Name == "" || len(c.Name) >= unix.IFNAMSIZ || strings.ContainsAny(c.Name, "/ \t\n") {
		errs = append(errs, fmt.Sprintf("invalid device name %q", c.Name))
	}
	if c.Local.IsValid() && !c.Local.Is4() {
		errs = append(errs, fmt.Sprintf("local %s is not IPv4", c.Local))
	}
	if c.Underlay != "" && len(c.Underlay) >= unix.IFNAMSIZ {
		errs = append(errs, fmt.Sprintf("invalid underlay device name %q", c.Underlay))
	}
	if c.NoPMTUDisc && c.TTL != 0 {
		errs = append(errs, "nopmtudisc requires ttl 0 (inherit)")
	}
	if c.MTU != 0 && (c.MTU < 68 || c.MTU > 65535) {
		errs = append(errs, fmt.Sprintf("mtu %d out of range 68-65535", c.MTU))
	}
	if !c.Address.IsValid() || !c.Address.Addr().Is4() {
		errs = append(errs, fmt.Sprintf("tunnel address %q is not an IPv4 prefix", c.Address))
	} else if c.HostAddress && c.Address.Bits() == 32 {
		errs = append(errs, fmt.Sprintf("host address needs a tunnel prefix shorter than /32, have %s", c.Address))
	}
	if len(errs) > 0 {
		return fmt.Errorf("kernel: tunnel %q: %s", c.Name, strings.Join(errs, "; "))
	}
	return nil
}

// DeviceAddress is the address programmed on the device: Address, or its
// host address (/32) with HostAddress.
func (c TunnelConfig) DeviceAddress() netip.Prefix {
	if c.HostAddress {
		return netip.PrefixFrom(c.Address.Addr(), 32)
	}
	return c.Address
}

// HostRoute is the tunnel prefix that HostAddress routes through the
// tunnel (dev NAME scope link src ADDRESS, metric 0, route protocol
// Config.RouteProtocol, main table: where the kernel puts a connected
// route); invalid without HostAddress.
func (c TunnelConfig) HostRoute() netip.Prefix {
	if !c.HostAddress {
		return netip.Prefix{}
	}
	return c.Address.Masked()
}

// otherLayout is the configured address as a run with the other
// HostAddress setting programs it (invalid when both are the same /32):
// EnsureTunnel replaces it on any tunnel, adopted or created.
func (c TunnelConfig) otherLayout() netip.Prefix {
	other := c
	other.HostAddress = !c.HostAddress
	if other.DeviceAddress() == c.DeviceAddress() {
		return netip.Prefix{}
	}
	return other.DeviceAddress()
}

// tosInherit is "tos inherit": the outer header takes the inner packet's DS
// field (ECN is encapsulated per RFC 6040), so that per-tunnel QoS on the
// underlay can classify by DSCP. Cisco's GRE copies the ToS by default too.
const tosInherit = 1

// desiredGretun builds the netlink link for cfg. Local is always set (an
// unset Local makes the library treat the link as ip6gre) and PMtuDisc is
// always explicit (the library always sends it).
func desiredGretun(cfg TunnelConfig, underlayIndex int) *netlink.Gretun {
	local := net.IPv4zero.To4()
	if cfg.Local.IsValid() {
		local = net.IP(cfg.Local.AsSlice())
	}
	pmtu := uint8(1)
	if cfg.NoPMTUDisc {
		pmtu = 0
	}
	attrs := netlink.NewLinkAttrs() // TxQLen -1: do not send a queue length
	attrs.Name, attrs.MTU, attrs.Flags = cfg.Name, cfg.MTU, net.FlagUp
	g := &netlink.Gretun{
		LinkAttrs: attrs,
		Link:      uint32(underlayIndex),
		IKey:      cfg.Key,
		OKey:      cfg.Key,
		Local:     local,
		Ttl:       cfg.TTL,
		Tos:       tosInherit,
		PMtuDisc:  pmtu,
	}
	return g
}

// unfixable reports why an existing link cannot become the desired tunnel by
// modification (empty if it can).
func unfixable(l netlink.Link) string {
	g, ok := l.(*netlink.Gretun)
	if !ok || l.Type() != "gre" {
		return fmt.Sprintf("existing link is of type %q, not an ip_gre tunnel", l.Type())
	}
	if g.FlowBased {
		return "existing gre tunnel is flow based (external)"
	}
	if g.Remote != nil && !g.Remote.IsUnspecified() {
		return fmt.Sprintf("existing gre tunnel is point-to-point (remote %s)", g.Remote)
	}
	return ""
}

// tunnelDiff lists the parameters of have that differ from want.
func tunnelDiff(have *netlink.Gretun, want *netlink.Gretun) []string {
	var d []string
	ipOr0 := func(ip net.IP) string {
		if ip == nil {
			return "0.0.0.0"
		}
		return ip.String()
	}
	if ipOr0(have.Local) != ipOr0(want.Local) {
		d = append(d, fmt.Sprintf("local %s (have %s)", ipOr0(want.Local), ipOr0(have.Local)))
	}
	if have.Link != want.Link {
		d = append(d, fmt.Sprintf("underlay ifindex %d (have %d)", want.Link, have.Link))
	}
	if have.IKey != want.IKey || have.OKey != want.OKey {
		d = append(d, fmt.Sprintf("key %d (have ikey %d okey %d)", want.IKey, have.IKey, have.OKey))
	}
	if have.Ttl != want.Ttl {
		d = append(d, fmt.Sprintf("ttl %d (have %d)", want.Ttl, have.Ttl))
	}
	if have.PMtuDisc != want.PMtuDisc {
		d = append(d, fmt.Sprintf("pmtudisc %d (have %d)", want.PMtuDisc, have.PMtuDisc))
	}
	if have.Tos != want.Tos {
		d = append(d, fmt.Sprintf("tos %d (have %d)", want.Tos, have.Tos))
	}
	if want.MTU != 0 && have.MTU != want.MTU {
		d = append(d, fmt.Sprintf("mtu %d (have %d)", want.MTU, have.MTU))
	}
	return d
}

// EnsureTunnel creates the tunnel or adopts an existing one, then sets its
// address, clears NOARP, writes the neighbor-miss sysctls and brings it up.
func (k *Kernel) EnsureTunnel(cfg TunnelConfig) (int, error) {
	// Connected and host routes may have changed, on failure too.
	warmed := false
	defer func() {
		if !warmed {
			k.routeWatch.changed()
		}
	}()
	if err := cfg.Validate(); err != nil {
		return 0, err
	}
	underlay := 0
	if cfg.Underlay != "" {
		l, err := k.nl.LinkByName(cfg.Underlay)
		if err != nil {
			return 0, opErr("look up underlay", cfg.Underlay, err)
		}
		underlay = l.Attrs().Index
	}
	want := desiredGretun(cfg, underlay)
	obj := "dev " + cfg.Name

	link, err := k.nl.LinkByName(cfg.Name)
	var notFound netlink.LinkNotFoundError
	switch {
	case errors.As(err, &notFound):
		create := *want
		create.Alias = ownerAlias
		if err := k.nl.LinkAdd(&create); err != nil {
			if errors.Is(err, unix.EEXIST) {
				// The kernel refuses a second tunnel with the same local,
				// remote and key; with neither key nor local that is the
				// fallback gre0 every namespace gets.
				err = fmt.Errorf("%w (another gre tunnel already has local %s key %d: set a distinct key or local address)",
					err, net.IP(create.Local), cfg.Key)
			}
			return 0, opErr("create tunnel", obj, err)
		}
		k.log.Info("kernel: created tunnel", zap.String("dev", cfg.Name))
		if link, err = k.nl.LinkByName(cfg.Name); err != nil {
			return 0, opErr("read tunnel", obj, err)
		}
		if link.Attrs().Alias != ownerAlias {
			// Not every kernel applies IFLA_IFALIAS on creation.
			if err := k.nl.LinkSetAlias(link, ownerAlias); err != nil {
				return 0, opErr("mark tunnel", obj, err)
			}
			link.Attrs().Alias = ownerAlias
		}
	case err != nil:
		return 0, opErr("read tunnel", obj, err)
	default:
		if why := unfixable(link); why != "" {
			return 0, opErr("adopt tunnel", obj, errors.New(why+"; not modified, not deleted"))
		}
		if diff := tunnelDiff(readGretun(link), want); len(diff) > 0 {
			if cfg.StrictAdopt {
				return 0, opErr("adopt tunnel", obj, fmt.Errorf("parameters differ: want %s", strings.Join(diff, ", ")))
			}
			k.log.Warn("kernel: fixing adopted tunnel", zap.String("dev", cfg.Name), zap.Strings("diff", diff))
			if err := k.changeTunnel(want, link.Attrs().Index); err != nil {
				return 0, opErr("modify tunnel", obj, fmt.Errorf("%s: %w", strings.Join(diff, ", "), err))
			}
			if link, err = k.nl.LinkByName(cfg.Name); err != nil {
				return 0, opErr("read tunnel", obj, err)
			}
			if diff := tunnelDiff(readGretun(link), want); len(diff) > 0 {
				return 0, opErr("modify tunnel", obj, fmt.Errorf("kernel kept %s", strings.Join(diff, ", ")))
			}
		} else {
			k.log.Info("kernel: adopted tunnel", zap.String("dev", cfg.Name))
		}
	}
	if err := k.configureTunnel(link, cfg); err != nil {
		return 0, err
	}
	idx := link.Attrs().Index
	k.mu.Lock()
	k.tunnel = tunnelRef{name: cfg.Name, ifindex: idx, hostRoute: cfg.HostRoute()}
	k.mu.Unlock()
	// Start the route watch and list the routes now, so that the first
	// lookup (a hub's first hairpinned packet) does not pay for it.
	k.routeWatch.changed()
	if _, err := k.lookupRoutes(); err != nil {
		k.log.Debug("kernel: listing routes for lookups", zap.Error(err))
	}
	warmed = true
	return idx, nil
}

func (k *Kernel) configureTunnel(link netlink.Link, cfg TunnelConfig) error {
	obj := "dev " + cfg.Name
	if link.Attrs().RawFlags&unix.IFF_NOARP != 0 {
		if err := k.nl.LinkSetARPOn(link); err != nil {
			return opErr("clear NOARP on", obj, err)
		}
	}
	if cfg.MTU != 0 && link.Attrs().MTU != cfg.MTU {
		if err := k.nl.LinkSetMTU(link, cfg.MTU); err != nil {
			return opErr("set mtu on", obj, err)
		}
	}
	if err := applySysctls(k.cfg.Sysctl, tunnelSysctls(cfg.Name)); err != nil {
		return err
	}
	// Up before the address: the kernel adds a connected route, and
	// accepts the tunnel prefix route of a host address, only on an up
	// device.
	if link.Attrs().RawFlags&unix.IFF_UP == 0 {
		if err := k.nl.LinkSetUp(link); err != nil {
			return opErr("set up", obj, err)
		}
	}
	return k.ensureAddress(link, cfg)
}

// ensureAddress programs the tunnel address (DeviceAddress) and, with
// HostAddress, the tunnel prefix route. Switching layouts never leaves the
// tunnel prefix without a route: the new address and route go in first,
// then the other layout's address (the configured address as a run with
// the other setting left it) and our route go. A tunnel we created
// carries only the configured address; on an adopted one other addresses
// and routes of other protocols stay.
func (k *Kernel) ensureAddress(link netlink.Link, cfg TunnelConfig) error {
	addrs, err := k.nl.AddrList(link, unix.AF_INET)
	if err != nil {
		return opErr("list addresses on", "dev "+cfg.Name, err)
	}
	owned := link.Attrs().Alias == ownerAlias
	want, other := cfg.DeviceAddress(), cfg.otherLayout()
	found := false
	var stale []netlink.Addr
	for _, a := range addrs {
		p, ok := prefixFromIPNet(a.IPNet)
		switch {
		case !ok:
		case p == want:
			found = true
		case p == other:
			stale = append(stale, a)
		case owned && a.Scope == unix.RT_SCOPE_UNIVERSE:
			if err := k.nl.AddrDel(link, &a); err != nil && !isNotExist(err) {
				return opErr("delete address", p.String()+" dev "+cfg.Name, err)
			}
		}
	}
	if !found {
		addr := &netlink.Addr{IPNet: ipNet(want)}
		if err := k.nl.AddrReplace(link, addr); err != nil {
			return opErr("add address", want.String()+" dev "+cfg.Name, err)
		}
	}
	if cfg.HostAddress {
		if err := k.ensureHostRoute(link.Attrs().Index, cfg); err != nil {
			return err
		}
	}
	for _, a := range stale {
		k.log.Info("kernel: replacing the tunnel address layout", zap.String("dev", cfg.Name),
			zap.Stringer("old", other), zap.Stringer("new", want))
		if err := k.nl.AddrDel(link, &a); err != nil && !isNotExist(err) {
			return opErr("delete address", other.String()+" dev "+cfg.Name, err)
		}
	}
	if !cfg.HostAddress {
		return k.removeHostRoutes(link.Attrs().Index, cfg)
	}
	return nil
}

// DeleteTunnel deletes the named tunnel if dmvpnd created it; a missing
// tunnel is not an error, a foreign one is ErrNotOwned.
func (k *Kernel) DeleteTunnel(name string) error {
	defer k.routeWatch.changed()
	link, err := k.nl.LinkByName(name)
	var notFound netlink.LinkNotFoundError
	if errors.As(err, &notFound) {
		return nil
	}
	if err != nil {
		return opErr("read tunnel", "dev "+name, err)
	}
	if link.Attrs().Alias != ownerAlias {
		return opErr("delete tunnel", "dev "+name, ErrNotOwned)
	}
	if err := k.nl.LinkDel(link); err != nil && !isNotExist(err) {
		return opErr("delete tunnel", "dev "+name, err)
	}
	k.mu.Lock()
	if k.tunnel.name == name {
		k.tunnel = tunnelRef{}
	}
	k.mu.Unlock()
	return nil
}

func ipNet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}

func prefixFromIPNet(n *net.IPNet) (netip.Prefix, bool) {
	if n == nil {
		return netip.Prefix{}, false
	}
	a, ok := netip.AddrFromSlice(n.IP)
	if !ok {
		return netip.Prefix{}, false
	}
	ones, _ := n.Mask.Size()
	return netip.PrefixFrom(a.Unmap(), ones), true
}

func addrFromIP(ip net.IP) netip.Addr {
	a, ok := netip.AddrFromSlice(ip)
	if !ok {
		return netip.Addr{}
	}
	return a.Unmap()
}
