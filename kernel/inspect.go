package kernel

import (
	"errors"
	"net/netip"

	"golang.org/x/sys/unix"
)

// TunnelInfo describes the tunnel as the kernel reports it.
type TunnelInfo struct {
	Name      string
	Ifindex   int
	Up        bool
	NoARP     bool
	Owned     bool // created by dmvpnd (alias marker)
	Local     netip.Addr
	Underlay  int // ifindex, 0 none
	Key       uint32
	TTL       uint8
	PMTUDisc  bool
	MTU       int
	Addresses []netip.Prefix
}

// State is everything `dmvpnctl` shows about the kernel side.
type State struct {
	Tunnel       TunnelInfo
	Neighbors    []Neighbor
	Routes       []Route
	XfrmStates   []XfrmStateSummary
	XfrmPolicies []XfrmPolicySummary
}

// Inspect reads the named tunnel, its neighbors, our routes and the XFRM
// database. It changes nothing.
func (k *Kernel) Inspect(tunnel string) (State, error) {
	var st State
	ti, err := k.InspectTunnel(tunnel)
	if err != nil {
		return st, err
	}
	st.Tunnel = ti
	if st.Neighbors, err = k.listNeighbors(tunnelRef{name: ti.Name, ifindex: ti.Ifindex}); err != nil {
		return st, err
	}
	if st.Routes, err = k.ListRoutes(); err != nil {
		return st, err
	}
	if st.XfrmStates, err = k.XfrmStates(); err != nil {
		return st, err
	}
	if st.XfrmPolicies, err = k.XfrmPolicies(); err != nil {
		return st, err
	}
	return st, nil
}

// InspectTunnel reads the named tunnel.
func (k *Kernel) InspectTunnel(name string) (TunnelInfo, error) {
	link, err := k.nl.LinkByName(name)
	if err != nil {
		return TunnelInfo{}, opErr("read tunnel", "dev "+name, err)
	}
	g := readGretun(link)
	if g == nil {
		return TunnelInfo{}, opErr("read tunnel", "dev "+name, errors.New("not a gre tunnel: "+link.Type()))
	}
	a := link.Attrs()
	ti := TunnelInfo{
		Name:     a.Name,
		Ifindex:  a.Index,
		Up:       a.RawFlags&unix.IFF_UP != 0,
		NoARP:    a.RawFlags&unix.IFF_NOARP != 0,
		Owned:    a.Alias == ownerAlias,
		Local:    addrFromIP(g.Local),
		Underlay: int(g.Link),
		Key:      g.IKey,
		TTL:      g.Ttl,
		PMTUDisc: g.PMtuDisc != 0,
		MTU:      a.MTU,
	}
	addrs, err := k.nl.AddrList(link, unix.AF_INET)
	if err != nil {
		return TunnelInfo{}, opErr("list addresses on", "dev "+name, err)
	}
	for _, ad := range addrs {
		if p, ok := prefixFromIPNet(ad.IPNet); ok {
			ti.Addresses = append(ti.Addresses, p)
		}
	}
	return ti, nil
}
