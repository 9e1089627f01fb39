package kernel

import (
	"net"
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

func TestToNetlinkRoute(t *testing.T) {
	k := &Kernel{cfg: Config{RouteProtocol: 157, RouteTable: 100}}
	tests := []struct {
		name string
		r    Route
		want *netlink.Route
	}{
		{
			name: "via peer is onlink",
			r:    Route{Dst: netip.MustParsePrefix("192.168.2.0/24"), Via: netip.MustParseAddr("10.0.0.3"), Metric: 10},
			want: &netlink.Route{
				LinkIndex: 7, Dst: &net.IPNet{IP: net.IP{192, 168, 2, 0}, Mask: net.CIDRMask(24, 32)},
				Gw: net.IP{10, 0, 0, 3}, Flags: int(netlink.FLAG_ONLINK), Protocol: 157, Table: 100,
				Priority: 10, Type: unix.RTN_UNICAST, Family: unix.AF_INET, Scope: netlink.SCOPE_UNIVERSE,
			},
		},
		{
			name: "on-link host route, unmasked input",
			r:    Route{Dst: netip.MustParsePrefix("10.0.0.3/32")},
			want: &netlink.Route{
				LinkIndex: 7, Dst: &net.IPNet{IP: net.IP{10, 0, 0, 3}, Mask: net.CIDRMask(32, 32)},
				Protocol: 157, Table: 100, Type: unix.RTN_UNICAST, Family: unix.AF_INET, Scope: netlink.SCOPE_LINK,
			},
		},
		{
			name: "masked",
			r:    Route{Dst: netip.MustParsePrefix("192.168.2.77/24")},
			want: &netlink.Route{
				LinkIndex: 7, Dst: &net.IPNet{IP: net.IP{192, 168, 2, 0}, Mask: net.CIDRMask(24, 32)},
				Protocol: 157, Table: 100, Type: unix.RTN_UNICAST, Family: unix.AF_INET, Scope: netlink.SCOPE_LINK,
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if d := cmp.Diff(tt.want, k.toNetlinkRoute(tt.r, 7)); d != "" {
				t.Errorf("(-want +got):\n%s", d)
			}
		})
	}
}

func TestValidateRoute(t *testing.T) {
	bad := []Route{
		{},
		{Dst: netip.MustParsePrefix("fd00::/64")},
		{Dst: netip.MustParsePrefix("10.1.0.0/16"), Via: netip.MustParseAddr("fd00::1")},
		{Dst: netip.MustParsePrefix("10.1.0.0/16"), Metric: -1},
	}
	for _, r := range bad {
		if validateRoute(r) == nil {
			t.Errorf("validateRoute(%+v) = nil, want error", r)
		}
	}
	if err := validateRoute(Route{Dst: netip.MustParsePrefix("0.0.0.0/0"), Via: netip.MustParseAddr("10.0.0.1")}); err != nil {
		t.Errorf("default route rejected: %v", err)
	}
}

func TestSortRoutesAndString(t *testing.T) {
	rs := []Route{
		{Dst: netip.MustParsePrefix("192.168.2.0/24"), Metric: 20},
		{Dst: netip.MustParsePrefix("10.0.0.3/32")},
		{Dst: netip.MustParsePrefix("192.168.2.0/24"), Via: netip.MustParseAddr("10.0.0.3"), Metric: 10},
		{Dst: netip.MustParsePrefix("192.168.0.0/16")},
	}
	sortRoutes(rs)
	var got []string
	for _, r := range rs {
		got = append(got, r.String())
	}
	want := []string{
		"10.0.0.3/32",
		"192.168.0.0/16",
		"192.168.2.0/24 via 10.0.0.3 metric 10",
		"192.168.2.0/24 metric 20",
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("(-want +got):\n%s", d)
	}
}

func TestSetRoutesRequiresTunnel(t *testing.T) {
	k := &Kernel{}
	if err := k.SetRoutes(nil); err != ErrNoTunnel {
		t.Errorf("SetRoutes before EnsureTunnel = %v, want ErrNoTunnel", err)
	}
	if err := k.ReplaceNeighbor(netip.MustParseAddr("10.0.0.2"), netip.MustParseAddr("1.2.3.4"), false); err != ErrNoTunnel {
		t.Errorf("ReplaceNeighbor before EnsureTunnel = %v, want ErrNoTunnel", err)
	}
}

func TestNeighborFromNetlink(t *testing.T) {
	tests := []struct {
		name string
		in   netlink.Neigh
		want Neighbor
		ok   bool
	}{
		{"lladdr ip", netlink.Neigh{IP: net.IP{10, 0, 0, 2}, LLIPAddr: net.IP{198, 51, 100, 2}, State: unix.NUD_PERMANENT},
			Neighbor{Addr: netip.MustParseAddr("10.0.0.2"), NBMA: netip.MustParseAddr("198.51.100.2"), State: NeighPermanent}, true},
		{"incomplete", netlink.Neigh{IP: net.IP{10, 0, 0, 3}, State: unix.NUD_INCOMPLETE},
			Neighbor{Addr: netip.MustParseAddr("10.0.0.3"), State: NeighIncomplete}, true},
		{"4-byte hwaddr", netlink.Neigh{IP: net.IP{10, 0, 0, 4}, HardwareAddr: net.HardwareAddr{1, 2, 3, 4}, State: unix.NUD_STALE},
			Neighbor{Addr: netip.MustParseAddr("10.0.0.4"), NBMA: netip.MustParseAddr("1.2.3.4"), State: NeighStale}, true},
		{"ipv6", netlink.Neigh{IP: net.ParseIP("fe80::1")}, Neighbor{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := neighborFromNetlink(tt.in)
			if ok != tt.ok {
				t.Fatalf("ok = %v, want %v", ok, tt.ok)
			}
			if d := cmp.Diff(tt.want, got, cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); d != "" {
				t.Errorf("(-want +got):\n%s", d)
			}
		})
	}
}

// TestDesiredHostRoute: the tunnel prefix route of a host address looks
// like the kernel's connected route (main table whatever RouteTable is,
// scope link, the tunnel address as source, metric 0) with our protocol,
// and isHostRoute recognizes it by its key alone.
func TestDesiredHostRoute(t *testing.T) {
	k := &Kernel{cfg: Config{RouteProtocol: 157, RouteTable: 100}}
	cfg := TunnelConfig{Address: netip.MustParsePrefix("10.0.0.1/24"), HostAddress: true}
	want := &netlink.Route{
		LinkIndex: 7, Dst: &net.IPNet{IP: net.IP{10, 0, 0, 0}, Mask: net.CIDRMask(24, 32)}, Src: net.IP{10, 0, 0, 1},
		Protocol: 157, Table: unix.RT_TABLE_MAIN, Type: unix.RTN_UNICAST, Family: unix.AF_INET, Scope: netlink.SCOPE_LINK,
	}
	got := k.desiredHostRoute(cfg, 7)
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("(-want +got):\n%s", d)
	}
	dst := cfg.HostRoute()
	if !k.isHostRoute(*got, dst, 7) {
		t.Error("isHostRoute(desired) = false")
	}
	for name, mutate := range map[string]func(*netlink.Route){
		"other device":   func(r *netlink.Route) { r.LinkIndex = 8 },
		"other protocol": func(r *netlink.Route) { r.Protocol = unix.RTPROT_STATIC },
		"other table":    func(r *netlink.Route) { r.Table = 100 },
		"gateway":        func(r *netlink.Route) { r.Gw = net.IP{10, 0, 0, 3} },
		"metric":         func(r *netlink.Route) { r.Priority = 10 },
		"other prefix":   func(r *netlink.Route) { r.Dst = &net.IPNet{IP: net.IP{10, 0, 0, 0}, Mask: net.CIDRMask(25, 32)} },
	} {
		r := *k.desiredHostRoute(cfg, 7)
		mutate(&r)
		if k.isHostRoute(r, dst, 7) {
			t.Errorf("isHostRoute(%s) = true", name)
		}
	}
}
