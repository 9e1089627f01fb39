package kernel

import (
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

func TestPrivLookupRoute(t *testing.T) {
	n := singleTunnel(t)
	h, ul, k, idx := n.h, n.ul, n.k, n.idx
	a, p := netip.MustParseAddr, netip.MustParsePrefix
	if err := k.SetRoutes([]Route{
		{Dst: p("192.168.0.0/16"), Via: a("10.0.0.2")},
		{Dst: p("192.168.2.0/24"), Via: a("10.0.0.3")},
	}); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		dst  string
		want RouteMatch
		ok   bool
	}{
		{"192.168.2.5", RouteMatch{Prefix: p("192.168.2.0/24"), Ifindex: idx, Gateway: a("10.0.0.3")}, true},
		{"192.168.7.1", RouteMatch{Prefix: p("192.168.0.0/16"), Ifindex: idx, Gateway: a("10.0.0.2")}, true},
		{"172.16.9.5", RouteMatch{Prefix: p("172.16.9.0/24"), Ifindex: ul.Attrs().Index}, true},
		{"8.8.8.8", RouteMatch{}, false},
	}
	for _, tt := range tests {
		got, ok, err := k.LookupRoute(a(tt.dst))
		if err != nil {
			t.Fatal(err)
		}
		if ok != tt.ok {
			t.Errorf("LookupRoute(%s) ok = %v, want %v", tt.dst, ok, tt.ok)
		}
		if d := cmp.Diff(tt.want, got, cmpAddrs...); d != "" {
			t.Errorf("LookupRoute(%s) (-want +got):\n%s", tt.dst, d)
		}
	}

	// The routes are kept between lookups: a change of dmvpnd's own is
	// seen by the next lookup at once, one made behind its back once its
	// notification has been read.
	if err := k.SetRoutes([]Route{
		{Dst: p("192.168.0.0/16"), Via: a("10.0.0.2")},
		{Dst: p("192.168.2.128/25"), Via: a("10.0.0.4")},
	}); err != nil {
		t.Fatal(err)
	}
	want := RouteMatch{Prefix: p("192.168.2.128/25"), Ifindex: idx, Gateway: a("10.0.0.4")}
	if got, ok, err := k.LookupRoute(a("192.168.2.200")); err != nil || !ok || cmp.Diff(want, got, cmpAddrs...) != "" {
		t.Errorf("after SetRoutes: LookupRoute(192.168.2.200) = %+v, %v, %v; want %+v", got, ok, err, want)
	}
	if got, ok, err := k.LookupRoute(a("192.168.2.5")); err != nil || !ok || got.Prefix != p("192.168.0.0/16") {
		t.Errorf("after SetRoutes: LookupRoute(192.168.2.5) = %+v, %v, %v; want 192.168.0.0/16 (the /24 is gone)", got, ok, err)
	}
	// A push that changes nothing (every resync's) keeps the listed
	// routes: the next lookup does not dump them again.
	if _, _, err := k.LookupRoute(a("192.168.2.200")); err != nil {
		t.Fatal(err)
	}
	if err := k.SetRoutes([]Route{
		{Dst: p("192.168.0.0/16"), Via: a("10.0.0.2")},
		{Dst: p("192.168.2.128/25"), Via: a("10.0.0.4")},
	}); err != nil {
		t.Fatal(err)
	}
	k.routeWatch.mu.Lock()
	kept := k.routeWatch.valid && k.routeWatch.validGen == k.routeWatch.gen
	k.routeWatch.mu.Unlock()
	if !kept {
		t.Error("a SetRoutes that changed nothing dropped the routes kept for lookups")
	}
	ext := &netlink.Route{LinkIndex: ul.Attrs().Index, Scope: unix.RT_SCOPE_LINK,
		Dst: &net.IPNet{IP: net.IPv4(172, 31, 5, 0).To4(), Mask: net.CIDRMask(24, 32)}}
	if err := h.RouteAdd(ext); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		got, ok, err := k.LookupRoute(a("172.31.5.9"))
		if err != nil {
			t.Fatal(err)
		}
		if ok && got.Prefix == p("172.31.5.0/24") && got.Ifindex == ul.Attrs().Index {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("a route added behind the kernel's back not seen within 5 s: LookupRoute(172.31.5.9) = %+v, %v", got, ok)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := h.RouteDel(ext); err != nil {
		t.Fatal(err)
	}
	deadline = time.Now().Add(5 * time.Second)
	for {
		_, ok, err := k.LookupRoute(a("172.31.5.9"))
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("a route deleted behind the kernel's back still matched after 5 s")
		}
		time.Sleep(10 * time.Millisecond)
	}
}
