package kernel

import (
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// TestPrivTunnelHostAddressNoGap watches the namespace's route events while
// EnsureTunnel switches the tunnel between a prefix address and a host
// address (TunnelConfig.HostAddress) and back, and while a restart adopts
// the host layout: at no event is the tunnel prefix without a route through
// the tunnel, and adoption sends nothing at all. Each stage ends with a
// marker route on the underlay, so the events of a stage are exactly those
// before its marker.
func TestPrivTunnelHostAddressNoGap(t *testing.T) {
	fd, h, ul := singleNode(t)
	plain := TunnelConfig{Name: "gre1", Local: netip.MustParseAddr("172.16.9.1"), Underlay: "ul0",
		Key: 42, TTL: 64, MTU: 1400, Address: netip.MustParsePrefix("10.0.0.1/24")}
	host := plain
	host.HostAddress = true
	prefix := plain.Address.Masked()

	if _, err := newKernel(t, fd).EnsureTunnel(plain); err != nil {
		t.Fatal(err)
	}
	link, err := h.LinkByName("gre1")
	if err != nil {
		t.Fatal(err)
	}
	ifindex := link.Attrs().Index

	updates := make(chan netlink.RouteUpdate, 256)
	done := make(chan struct{})
	t.Cleanup(func() { close(done) })
	ns := netns.NsHandle(fd)
	if err := netlink.RouteSubscribeWithOptions(updates, done, netlink.RouteSubscribeOptions{Namespace: &ns}); err != nil {
		t.Fatal(err)
	}
	// The routes to the tunnel prefix through the tunnel, by protocol and
	// source, as the events leave them.
	covering := map[string]bool{}
	key := func(r netlink.Route) string { return fmt.Sprintf("proto %d src %s", r.Protocol, r.Src) }
	rs, err := h.RouteListFiltered(unix.AF_INET, &netlink.Route{Table: unix.RT_TABLE_MAIN, Dst: ipNet(prefix)}, netlink.RT_FILTER_TABLE|netlink.RT_FILTER_DST)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rs {
		if r.LinkIndex == ifindex {
			covering[key(r)] = true
		}
	}
	if len(covering) == 0 {
		t.Fatalf("no route to %s through the tunnel with address %s", prefix, plain.Address)
	}

	marker := 0
	// stage runs f, then waits for its marker's event; it returns the
	// number of other route events, failing the test at any event that
	// leaves the tunnel prefix without a route through the tunnel.
	stage := func(name string, f func() error) int {
		t.Helper()
		if err := f(); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		marker++
		m := netip.PrefixFrom(netip.AddrFrom4([4]byte{192, 0, 2, byte(marker)}), 32)
		if err := h.RouteAdd(&netlink.Route{LinkIndex: ul.Attrs().Index, Dst: ipNet(m), Scope: netlink.SCOPE_LINK, Protocol: unix.RTPROT_STATIC}); err != nil {
			t.Fatal(err)
		}
		others := 0
		deadline := time.After(10 * time.Second)
		for {
			select {
			case u, ok := <-updates:
				if !ok {
					t.Fatalf("%s: the route subscription ended", name)
				}
				if p, ok := prefixFromIPNet(u.Dst); ok && p == m {
					return others
				}
				others++
				if p, ok := prefixFromIPNet(u.Dst); !ok || p != prefix || u.Table != unix.RT_TABLE_MAIN || u.LinkIndex != ifindex {
					continue
				}
				switch u.Type {
				case unix.RTM_NEWROUTE:
					covering[key(u.Route)] = true
				case unix.RTM_DELROUTE:
					delete(covering, key(u.Route))
				}
				if len(covering) == 0 {
					t.Errorf("%s: %s has no route through the tunnel after deleting the route %s", name, prefix, key(u.Route))
				}
			case <-deadline:
				t.Fatalf("%s: no event for the marker route %s within 10s", name, m)
			}
		}
	}

	ownKey := fmt.Sprintf("proto %d src %s", DefaultRouteProtocol, host.Address.Addr())
	kernelKey := fmt.Sprintf("proto %d src %s", unix.RTPROT_KERNEL, host.Address.Addr())
	want := func(stage string, keys ...string) {
		t.Helper()
		if len(covering) != len(keys) {
			t.Errorf("%s: routes to %s: %v, want %v", stage, prefix, covering, keys)
		}
		for _, k := range keys {
			if !covering[k] {
				t.Errorf("%s: routes to %s: %v, want %v", stage, prefix, covering, keys)
			}
		}
	}
	if n := stage("to the host address", func() error { _, err := newKernel(t, fd).EnsureTunnel(host); return err }); n == 0 {
		t.Error("to the host address: no route event")
	}
	want("host address", ownKey)
	if n := stage("adopt the host address", func() error { _, err := newKernel(t, fd).EnsureTunnel(host); return err }); n != 0 {
		t.Errorf("adopting the host address layout sent %d route events, want none", n)
	}
	stage("back to the prefix address", func() error { _, err := newKernel(t, fd).EnsureTunnel(plain); return err })
	want("prefix address", kernelKey)
	if n := stage("adopt the prefix address", func() error { _, err := newKernel(t, fd).EnsureTunnel(plain); return err }); n != 0 {
		t.Errorf("adopting the prefix address layout sent %d route events, want none", n)
	}
	stage("to the host address again", func() error { _, err := newKernel(t, fd).EnsureTunnel(host); return err })
	want("host address again", ownKey)
}
