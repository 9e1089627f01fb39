package kernel

import (
	"net"
	"net/netip"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/vishvananda/netlink"
)

func validTunnel() TunnelConfig {
	return TunnelConfig{
		Name:    "gre1",
		Local:   netip.MustParseAddr("198.51.100.1"),
		Key:     42,
		TTL:     64,
		MTU:     1400,
		Address: netip.MustParsePrefix("10.0.0.1/32"),
	}
}

// validateCase is one case of a Validate table: mutate a valid value,
// then Validate fails with an error containing wantErr ("": succeeds).
type validateCase[T any] struct {
	name    string
	mutate  func(*T)
	wantErr string
}

// testValidate runs the cases against the value valid returns; every error
// must also start with the package prefix.
func testValidate[T interface{ Validate() error }](t *testing.T, valid func() T, prefix string, cases []validateCase[T]) {
	t.Helper()
	for _, tt := range cases {
		t.Run(tt.name, func(t *testing.T) {
			v := valid()
			tt.mutate(&v)
			err := v.Validate()
			switch {
			case tt.wantErr == "" && err != nil:
				t.Errorf("Validate() = %v, want nil", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Errorf("Validate() = %v, want error containing %q", err, tt.wantErr)
			case err != nil && !strings.HasPrefix(err.Error(), prefix):
				t.Errorf("error %q lacks the package prefix", err)
			}
		})
	}
}

func TestTunnelConfigValidate(t *testing.T) {
	testValidate(t, validTunnel, "kernel: tunnel ", []validateCase[TunnelConfig]{
		{"valid", func(*TunnelConfig) {}, ""},
		{"wildcard local", func(c *TunnelConfig) { c.Local = netip.Addr{} }, ""},
		{"no name", func(c *TunnelConfig) { c.Name = "" }, `invalid device name ""`},
		{"long name", func(c *TunnelConfig) { c.Name = "a-very-long-name0" }, "invalid device name"},
		{"ipv6 local", func(c *TunnelConfig) { c.Local = netip.MustParseAddr("2001:db8::1") }, "local 2001:db8::1 is not IPv4"},
		{"nopmtudisc with ttl", func(c *TunnelConfig) { c.NoPMTUDisc = true }, "nopmtudisc requires ttl 0"},
		{"nopmtudisc inherit", func(c *TunnelConfig) { c.NoPMTUDisc = true; c.TTL = 0 }, ""},
		{"mtu", func(c *TunnelConfig) { c.MTU = 20 }, "mtu 20 out of range"},
		{"no address", func(c *TunnelConfig) { c.Address = netip.Prefix{} }, "not an IPv4 prefix"},
		{"v6 address", func(c *TunnelConfig) { c.Address = netip.MustParsePrefix("fd00::1/128") }, "not an IPv4 prefix"},
		{"host address", func(c *TunnelConfig) { c.Address = netip.MustParsePrefix("10.0.0.1/24"); c.HostAddress = true }, ""},
		{"host address of a /32", func(c *TunnelConfig) { c.HostAddress = true }, "host address needs a tunnel prefix shorter than /32, have 10.0.0.1/32"},
	})
}

// TestTunnelAddressLayout: the address on the device, the routed tunnel
// prefix, and the layout a run with the other setting leaves (which
// EnsureTunnel replaces).
func TestTunnelAddressLayout(t *testing.T) {
	pfx := netip.MustParsePrefix
	for _, tt := range []struct {
		addr                   string
		host                   bool
		device, route, replace netip.Prefix
	}{
		{"10.0.0.1/24", false, pfx("10.0.0.1/24"), netip.Prefix{}, pfx("10.0.0.1/32")},
		{"10.0.0.1/24", true, pfx("10.0.0.1/32"), pfx("10.0.0.0/24"), pfx("10.0.0.1/24")},
		{"10.9.200.77/16", true, pfx("10.9.200.77/32"), pfx("10.9.0.0/16"), pfx("10.9.200.77/16")},
		{"10.0.0.1/32", false, pfx("10.0.0.1/32"), netip.Prefix{}, netip.Prefix{}},
	} {
		c := TunnelConfig{Address: pfx(tt.addr), HostAddress: tt.host}
		got := []netip.Prefix{c.DeviceAddress(), c.HostRoute(), c.otherLayout()}
		if d := cmp.Diff([]netip.Prefix{tt.device, tt.route, tt.replace}, got, cmpPrefix); d != "" {
			t.Errorf("%s host %v: [device address, host route, other layout] (-want +got):\n%s", tt.addr, tt.host, d)
		}
	}
}

var cmpPrefix = cmp.Comparer(func(a, b netip.Prefix) bool { return a == b })

func TestDesiredGretun(t *testing.T) {
	c := validTunnel()
	g := desiredGretun(c, 3)
	if g.Type() != "gre" {
		t.Errorf("Type() = %q, want gre", g.Type())
	}
	attrs := netlink.NewLinkAttrs()
	attrs.Name, attrs.MTU, attrs.Flags = "gre1", 1400, net.FlagUp
	want := &netlink.Gretun{
		LinkAttrs: attrs,
		Link:      3, IKey: 42, OKey: 42,
		Local: net.IP{198, 51, 100, 1}, Ttl: 64, Tos: tosInherit, PMtuDisc: 1,
	}
	if d := cmp.Diff(want, g); d != "" {
		t.Errorf("desiredGretun (-want +got):\n%s", d)
	}
	// Wildcard local must still be an IPv4 address, or the library sends ip6gre.
	c.Local = netip.Addr{}
	c.NoPMTUDisc, c.TTL = true, 0
	g = desiredGretun(c, 0)
	if g.Type() != "gre" || !g.Local.Equal(net.IPv4zero) || g.PMtuDisc != 0 {
		t.Errorf("wildcard: type %q local %v pmtudisc %d", g.Type(), g.Local, g.PMtuDisc)
	}
}

func TestTunnelDiff(t *testing.T) {
	want := desiredGretun(validTunnel(), 3)
	have := func(mut func(g *netlink.Gretun)) *netlink.Gretun {
		g := *want
		g.Local = net.IP{198, 51, 100, 1}
		mut(&g)
		return &g
	}
	tests := []struct {
		name string
		have *netlink.Gretun
		want []string
	}{
		{"same", have(func(*netlink.Gretun) {}), nil},
		{"key and ttl", have(func(g *netlink.Gretun) { g.IKey, g.OKey, g.Ttl = 7, 7, 0 }),
			[]string{"key 42 (have ikey 7 okey 7)", "ttl 64 (have 0)"}},
		{"local nil", have(func(g *netlink.Gretun) { g.Local = nil }), []string{"local 198.51.100.1 (have 0.0.0.0)"}},
		{"underlay pmtu mtu", have(func(g *netlink.Gretun) { g.Link, g.PMtuDisc, g.MTU = 0, 0, 1476 }),
			[]string{"underlay ifindex 3 (have 0)", "pmtudisc 1 (have 0)", "mtu 1400 (have 1476)"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if d := cmp.Diff(tt.want, tunnelDiff(tt.have, want)); d != "" {
				t.Errorf("tunnelDiff (-want +got):\n%s", d)
			}
		})
	}
	// An unset desired MTU accepts whatever the kernel chose.
	c := validTunnel()
	c.MTU = 0
	if d := tunnelDiff(have(func(g *netlink.Gretun) { g.MTU = 1476 }), desiredGretun(c, 3)); len(d) != 0 {
		t.Errorf("mtu 0 should not be compared: %v", d)
	}
}

func TestUnfixable(t *testing.T) {
	tests := []struct {
		name string
		link netlink.Link
		want string
	}{
		{"mgre", &netlink.Gretun{Local: net.IPv4zero, Remote: net.IPv4zero}, ""},
		{"mgre nil remote", &netlink.Gretun{Local: net.IP{1, 2, 3, 4}}, ""},
		{"p2p", &netlink.Gretun{Local: net.IPv4zero, Remote: net.IP{192, 0, 2, 1}}, "point-to-point (remote 192.0.2.1)"},
		{"flow based", &netlink.Gretun{Local: net.IPv4zero, FlowBased: true}, "flow based"},
		{"dummy", &netlink.Dummy{}, `type "dummy", not an ip_gre tunnel`},
		{"ip6gre", &netlink.Gretun{}, `type "ip6gre"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := unfixable(tt.link)
			if (tt.want == "") != (got == "") || !strings.Contains(got, tt.want) {
				t.Errorf("unfixable() = %q, want %q", got, tt.want)
			}
		})
	}
}
