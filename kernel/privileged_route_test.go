package kernel

import (
	"errors"
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestPrivSetRoutesSkipsRefused: a next hop the kernel refuses (a
// broadcast or multicast gateway, the tunnel's own address) is reported per
// route; every other route is installed and stale ones are pruned anyway.
func TestPrivSetRoutesSkipsRefused(t *testing.T) {
	fd, _, _ := singleNode(t)
	k := newKernel(t, fd)
	if _, err := k.EnsureTunnel(TunnelConfig{Name: "gre1", Local: netip.MustParseAddr("172.16.9.1"), Key: 42, TTL: 64, Address: netip.MustParsePrefix("10.0.0.1/32")}); err != nil {
		t.Fatal(err)
	}
	p, a := netip.MustParsePrefix, netip.MustParseAddr
	stale := Route{Dst: p("192.168.9.0/24"), Via: a("10.0.0.9"), Metric: 20}
	if err := k.SetRoutes([]Route{stale}); err != nil {
		t.Fatal(err)
	}
	good1 := Route{Dst: p("192.168.2.0/24"), Via: a("10.0.0.2"), Metric: 20}
	bad := Route{Dst: p("192.168.3.0/24"), Via: a("255.255.255.255"), Metric: 20}
	good2 := Route{Dst: p("192.168.4.0/24"), Via: a("10.0.0.4"), Metric: 20}
	err := k.SetRoutes([]Route{good1, bad, good2})
	var re *RouteErrors
	if !errors.As(err, &re) {
		t.Fatalf("SetRoutes = %v, want *RouteErrors", err)
	}
	if len(re.Failed) != 1 || re.Failed[0].Route != bad || re.Failed[0].Op != "replace route" {
		t.Fatalf("failed = %+v, want only %s", re.Failed, bad)
	}
	got, err := k.ListRoutes()
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff([]Route{good1, good2}, got, cmp.Comparer(func(x, y netip.Prefix) bool { return x == y }), cmp.Comparer(func(x, y netip.Addr) bool { return x == y })); d != "" {
		t.Errorf("routes (-want +got):\n%s", d)
	}
}
