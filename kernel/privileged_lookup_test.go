package kernel

import (
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestPrivLookupRoute(t *testing.T) {
	fd, _, ul := singleNode(t)
	k := newKernel(t, fd)
	idx, err := k.EnsureTunnel(TunnelConfig{Name: "gre1", Key: 42, TTL: 64, Address: netip.MustParsePrefix("10.0.0.1/32")})
	if err != nil {
		t.Fatal(err)
	}
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
}
