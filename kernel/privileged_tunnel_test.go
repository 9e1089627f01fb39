package kernel

import (
	"errors"
	"net"
	"net/netip"
	"strings"
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

var cmpAddrs = []cmp.Option{
	cmp.Comparer(func(a, b netip.Addr) bool { return a == b }),
	cmp.Comparer(func(a, b netip.Prefix) bool { return a == b }),
}

// singleNode is one namespace with an up dummy underlay ul0 172.16.9.1/24.
func singleNode(t *testing.T) (int, *netlink.Handle, netlink.Link) {
	t.Helper()
	requireGRE(t)
	fd := newNetNS(t)
	h := nsHandle(t, fd)
	if err := h.LinkAdd(&netlink.Dummy{LinkAttrs: netlink.LinkAttrs{Name: "ul0"}}); err != nil {
		t.Fatal(err)
	}
	ul, err := h.LinkByName("ul0")
	if err != nil {
		t.Fatal(err)
	}
	addLinkAddr(t, h, ul, "172.16.9.1/24")
	if err := h.LinkSetUp(ul); err != nil {
		t.Fatal(err)
	}
	return fd, h, ul
}

// tunnelNode is a singleNode with a Kernel that has made its tunnel gre1
// (key 42, ttl 64, 10.0.0.1/32, no local address).
type tunnelNode struct {
	h   *netlink.Handle
	ul  netlink.Link
	k   *Kernel
	idx int // gre1's ifindex
}

func singleTunnel(t *testing.T) tunnelNode {
	t.Helper()
	fd, h, ul := singleNode(t)
	k := newKernel(t, fd)
	idx, err := k.EnsureTunnel(TunnelConfig{Name: "gre1", Key: 42, TTL: 64, Address: netip.MustParsePrefix("10.0.0.1/32")})
	if err != nil {
		t.Fatal(err)
	}
	return tunnelNode{h: h, ul: ul, k: k, idx: idx}
}

func TestPrivTunnelCreateAdoptFix(t *testing.T) {
	fd, h, ul := singleNode(t)
	cfg := TunnelConfig{
		Name: "gre1", Local: netip.MustParseAddr("172.16.9.1"), Underlay: "ul0",
		Key: 42, TTL: 64, MTU: 1400, Address: netip.MustParsePrefix("10.0.0.1/32"),
	}
	k := newKernel(t, fd)
	idx, err := k.EnsureTunnel(cfg)
	if err != nil {
		t.Fatal(err)
	}
	want := tunnelInfo{
		Name: "gre1", Ifindex: idx, Up: true, NoARP: false, Owned: true,
		Local: cfg.Local, Underlay: ul.Attrs().Index, Key: 42, TTL: 64, TOS: tosInherit, PMTUDisc: true, MTU: 1400,
		Addresses: []netip.Prefix{cfg.Address},
	}
	check := func(stage string) {
		t.Helper()
		got, err := k.inspectTunnel("gre1")
		if err != nil {
			t.Fatal(err)
		}
		if d := cmp.Diff(want, got, cmpAddrs...); d != "" {
			t.Errorf("%s: tunnel (-want +got):\n%s", stage, d)
		}
		for _, s := range tunnelSysctls("gre1") {
			v, err := sysctlIn(fd).ReadSysctl(s.Key)
			if err != nil || v != s.Value {
				t.Errorf("%s: sysctl %s = %q (%v), want %q", stage, s.Key, v, err, s.Value)
			}
		}
	}
	check("created")

	// A second instance adopts it unchanged.
	k2 := newKernel(t, fd)
	if idx2, err := k2.EnsureTunnel(cfg); err != nil || idx2 != idx {
		t.Fatalf("adopt: ifindex %d (%v), want %d", idx2, err, idx)
	}
	check("adopted")

	// Someone changes it behind our back.
	link, err := h.LinkByName("gre1")
	if err != nil {
		t.Fatal(err)
	}
	// (The library's LinkModify sends the name, a rename the kernel refuses
	// on an up device: take it down like an administrator would.)
	attrs := netlink.NewLinkAttrs()
	attrs.Name, attrs.Index, attrs.MTU = "gre1", idx, 1300
	drift := &netlink.Gretun{
		LinkAttrs: attrs,
		Local:     net.IP{172, 16, 9, 1}, IKey: 7, OKey: 7, Ttl: 10, PMtuDisc: 1, Link: uint32(ul.Attrs().Index),
	}
	if err := h.LinkSetDown(link); err != nil {
		t.Fatal(err)
	}
	if err := h.LinkModify(drift); err != nil {
		t.Fatal(err)
	}
	if err := h.LinkSetARPOff(link); err != nil {
		t.Fatal(err)
	}
	if err := h.AddrDel(link, &netlink.Addr{IPNet: &net.IPNet{IP: net.IP{10, 0, 0, 1}, Mask: net.CIDRMask(32, 32)}}); err != nil {
		t.Fatal(err)
	}
	if err := sysctlIn(fd).WriteSysctl("net/ipv4/neigh/gre1/app_solicit", "0"); err != nil {
		t.Fatal(err)
	}

	strict := cfg
	strict.StrictAdopt = true
	_, err = k2.EnsureTunnel(strict)
	if err == nil || !strings.Contains(err.Error(), "kernel: adopt tunnel dev gre1: parameters differ") ||
		!strings.Contains(err.Error(), "key 42 (have ikey 7 okey 7)") {
		t.Errorf("strict adopt of a drifted tunnel: err = %v", err)
	}

	if idx2, err := k2.EnsureTunnel(cfg); err != nil || idx2 != idx {
		t.Fatalf("fix: ifindex %d (%v), want %d", idx2, err, idx)
	}
	check("fixed")

	// Links we cannot turn into our tunnel are reported, never replaced.
	if err := h.LinkAdd(&netlink.Dummy{LinkAttrs: netlink.LinkAttrs{Name: "gre2"}}); err != nil {
		t.Fatal(err)
	}
	p2p := &netlink.Gretun{LinkAttrs: netlink.LinkAttrs{Name: "gre3"}, Local: net.IP{172, 16, 9, 1}, Remote: net.IP{172, 16, 9, 7}, PMtuDisc: 1, Ttl: 64}
	if err := h.LinkAdd(p2p); err != nil {
		t.Fatal(err)
	}
	for name, why := range map[string]string{"gre2": "not an ip_gre tunnel", "gre3": "point-to-point"} {
		c := cfg
		c.Name = name
		c.Key = 43
		_, err := k2.EnsureTunnel(c)
		if err == nil || !strings.Contains(err.Error(), "kernel: adopt tunnel dev "+name) || !strings.Contains(err.Error(), why) {
			t.Errorf("adopt %s: err = %v, want %q", name, err, why)
		}
		if _, err := h.LinkByName(name); err != nil {
			t.Errorf("%s was removed: %v", name, err)
		}
	}

	// Deletion only of what we created.
	foreign := &netlink.Gretun{LinkAttrs: netlink.LinkAttrs{Name: "gre4"}, Local: net.IPv4zero, IKey: 99, OKey: 99, PMtuDisc: 1}
	if err := h.LinkAdd(foreign); err != nil {
		t.Fatal(err)
	}
	if err := k2.DeleteTunnel("gre4"); !errors.Is(err, ErrNotOwned) {
		t.Errorf("DeleteTunnel(foreign) = %v, want ErrNotOwned", err)
	}
	if _, err := h.LinkByName("gre4"); err != nil {
		t.Errorf("foreign gre4 was removed: %v", err)
	}
	if err := k2.DeleteTunnel("gre1"); err != nil {
		t.Fatal(err)
	}
	if _, err := h.LinkByName("gre1"); err == nil {
		t.Error("gre1 still exists after DeleteTunnel")
	}
	if err := k2.DeleteTunnel("gre1"); err != nil {
		t.Errorf("DeleteTunnel of a missing tunnel = %v", err)
	}
}

func TestPrivNeighborReplaceDelete(t *testing.T) {
	n := singleTunnel(t)
	h, k := n.h, n.k
	a := netip.MustParseAddr
	steps := []struct {
		name string
		do   func() error
		want string
	}{
		{"dynamic", func() error { return k.ReplaceNeighbor(a("10.0.0.2"), a("198.51.100.2"), false) },
			"10.0.0.2 lladdr 198.51.100.2 REACHABLE\n"},
		{"permanent", func() error { return k.ReplaceNeighbor(a("10.0.0.254"), a("203.0.113.254"), true) },
			"10.0.0.2 lladdr 198.51.100.2 REACHABLE\n10.0.0.254 lladdr 203.0.113.254 PERMANENT\n"},
		{"replace lladdr and state", func() error { return k.ReplaceNeighbor(a("10.0.0.2"), a("198.51.100.22"), true) },
			"10.0.0.2 lladdr 198.51.100.22 PERMANENT\n10.0.0.254 lladdr 203.0.113.254 PERMANENT\n"},
		{"permanent to dynamic", func() error { return k.ReplaceNeighbor(a("10.0.0.254"), a("203.0.113.254"), false) },
			"10.0.0.2 lladdr 198.51.100.22 PERMANENT\n10.0.0.254 lladdr 203.0.113.254 REACHABLE\n"},
		{"delete", func() error { return k.DeleteNeighbor(a("10.0.0.2")) },
			"10.0.0.254 lladdr 203.0.113.254 REACHABLE\n"},
		{"delete missing", func() error { return k.DeleteNeighbor(a("10.0.0.2")) },
			"10.0.0.254 lladdr 203.0.113.254 REACHABLE\n"},
	}
	for _, s := range steps {
		if err := s.do(); err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		got, err := k.ListNeighbors()
		if err != nil {
			t.Fatal(err)
		}
		if d := cmp.Diff(s.want, fmtNeighbors(got)); d != "" {
			t.Errorf("%s: neighbors (-want +got):\n%s", s.name, d)
		}
	}
	// A netlink error names the operation and the object.
	link, err := h.LinkByName("gre1")
	if err != nil {
		t.Fatal(err)
	}
	if err := h.LinkDel(link); err != nil {
		t.Fatal(err)
	}
	err = k.ReplaceNeighbor(a("10.0.0.9"), a("198.51.100.9"), false)
	const prefix = "kernel: replace neighbor 10.0.0.9 lladdr 198.51.100.9 dev gre1: "
	if err == nil || !strings.HasPrefix(err.Error(), prefix) || !errors.Is(err, syscall.ENODEV) {
		t.Errorf("replace on a deleted tunnel: err = %v, want %q + ENODEV", err, prefix)
	}
}

func TestPrivRoutesPruneOnlyOwn(t *testing.T) {
	n := singleTunnel(t)
	h, k, idx := n.h, n.k, n.idx
	pfx := netip.MustParsePrefix
	a := netip.MustParseAddr
	// Foreign routes: another protocol on the tunnel, and our protocol number
	// in another table (not ours: our routes are proto AND table).
	foreign := []*netlink.Route{
		{LinkIndex: idx, Dst: &net.IPNet{IP: net.IP{10, 50, 0, 0}, Mask: net.CIDRMask(16, 32)}, Protocol: 4, Scope: netlink.SCOPE_LINK},
		{LinkIndex: idx, Dst: &net.IPNet{IP: net.IP{192, 168, 3, 0}, Mask: net.CIDRMask(24, 32)}, Protocol: DefaultRouteProtocol, Table: 100, Scope: netlink.SCOPE_LINK},
	}
	for _, r := range foreign {
		if err := h.RouteAdd(r); err != nil {
			t.Fatal(err)
		}
	}
	first := []Route{
		{Dst: pfx("10.0.0.0/24")},
		{Dst: pfx("192.168.2.0/24"), Via: a("10.0.0.3")},
		{Dst: pfx("192.168.4.0/24"), Via: a("10.0.0.4"), Metric: 20},
	}
	if err := k.SetRoutes(first); err != nil {
		t.Fatal(err)
	}
	got, err := k.ListRoutes()
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(first, got, cmpAddrs...); d != "" {
		t.Errorf("after first SetRoutes (-want +got):\n%s", d)
	}
	second := []Route{
		{Dst: pfx("10.0.0.0/24")},
		{Dst: pfx("192.168.2.0/24"), Via: a("10.0.0.5")}, // next hop changed
	}
	if err := k.SetRoutes(second); err != nil {
		t.Fatal(err)
	}
	got, err = k.ListRoutes()
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(second, got, cmpAddrs...); d != "" {
		t.Errorf("after prune (-want +got):\n%s", d)
	}
	all, err := h.RouteListFiltered(netlink.FAMILY_V4, &netlink.Route{Table: unix.RT_TABLE_UNSPEC}, netlink.RT_FILTER_TABLE)
	if err != nil {
		t.Fatal(err)
	}
	found := map[string]bool{}
	for _, r := range all {
		if r.Dst != nil {
			found[r.Dst.String()] = true
		}
	}
	for _, want := range []string{"10.50.0.0/16", "192.168.3.0/24"} {
		if !found[want] {
			t.Errorf("foreign route %s was removed", want)
		}
	}
	if err := k.SetRoutes(nil); err != nil {
		t.Fatal(err)
	}
	if got, _ := k.ListRoutes(); len(got) != 0 {
		t.Errorf("SetRoutes(nil) left %v", got)
	}
}

// TestPrivTunnelFixWhileUp changes the tunnel with iproute2 while it is up
// (as an administrator would) and checks that adoption fixes it in place
// without taking it down: routes through it survive.
func TestPrivTunnelFixWhileUp(t *testing.T) {
	fd, _, _ := singleNode(t)
	cfg := TunnelConfig{Name: "gre1", Local: netip.MustParseAddr("172.16.9.1"), Key: 42, TTL: 64, Address: netip.MustParsePrefix("10.0.0.1/32")}
	k := newKernel(t, fd)
	idx, err := k.EnsureTunnel(cfg)
	if err != nil {
		t.Fatal(err)
	}
	routes := []Route{{Dst: netip.MustParsePrefix("192.168.2.0/24"), Via: netip.MustParseAddr("10.0.0.3")}}
	if err := k.SetRoutes(routes); err != nil {
		t.Fatal(err)
	}
	ipIn(t, fd, "tunnel", "change", "gre1", "mode", "gre", "key", "9", "ttl", "10", "local", "172.16.9.1")
	ti, err := k.inspectTunnel("gre1")
	if err != nil || ti.Key != 9 || !ti.Up {
		t.Fatalf("drift not applied: %+v %v", ti, err)
	}
	if idx2, err := k.EnsureTunnel(cfg); err != nil || idx2 != idx {
		t.Fatalf("fix while up: ifindex %d (%v), want %d", idx2, err, idx)
	}
	ti, err = k.inspectTunnel("gre1")
	if err != nil || ti.Key != 42 || ti.TTL != 64 || !ti.Up {
		t.Errorf("after fix: %+v %v", ti, err)
	}
	got, err := k.ListRoutes()
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(routes, got, cmpAddrs...); d != "" {
		t.Errorf("routes through the tunnel after the fix (-want +got):\n%s", d)
	}
}

// TestPrivTunnelCollision: a tunnel whose local/key pair is taken (here by
// the fallback gre0: no key, wildcard local) fails with a readable error.
func TestPrivTunnelCollision(t *testing.T) {
	fd, h, _ := singleNode(t)
	if _, err := h.LinkByName("gre0"); err != nil {
		t.Skipf("no fallback gre0 in new namespaces here: %v", err)
	}
	k := newKernel(t, fd)
	_, err := k.EnsureTunnel(TunnelConfig{Name: "gre1", TTL: 64, Address: netip.MustParsePrefix("10.0.0.1/32")})
	if err == nil || !errors.Is(err, syscall.EEXIST) ||
		!strings.Contains(err.Error(), "kernel: create tunnel dev gre1: file exists (another gre tunnel already has local 0.0.0.0 key 0") {
		t.Errorf("err = %v", err)
	}
}
