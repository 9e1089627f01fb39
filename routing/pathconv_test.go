package routing

import (
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
	api "github.com/osrg/gobgp/v3/api"
	"google.golang.org/protobuf/types/known/anypb"
)

func anyOf(t *testing.T, m any) *anypb.Any {
	t.Helper()
	var a *anypb.Any
	var err error
	switch v := m.(type) {
	case *api.IPAddressPrefix:
		a, err = anypb.New(v)
	case *api.NextHopAttribute:
		a, err = anypb.New(v)
	case *api.MpReachNLRIAttribute:
		a, err = anypb.New(v)
	case *api.OriginAttribute:
		a, err = anypb.New(v)
	default:
		t.Fatalf("anyOf: %T", m)
	}
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func TestPathUpdate(t *testing.T) {
	v4 := &api.Family{Afi: api.Family_AFI_IP, Safi: api.Family_SAFI_UNICAST}
	nlri := func(p string, l uint32) *anypb.Any { return anyOf(t, &api.IPAddressPrefix{Prefix: p, PrefixLen: l}) }
	origin := anyOf(t, &api.OriginAttribute{})
	tests := []struct {
		name    string
		path    *api.Path
		want    PathUpdate
		wantErr bool
		other   bool
	}{
		{
			name: "next hop attribute",
			path: &api.Path{Family: v4, Nlri: nlri("192.168.2.0", 24), Pattrs: []*anypb.Any{origin, anyOf(t, &api.NextHopAttribute{NextHop: "10.0.0.12"})}},
			want: PathUpdate{Prefix: netip.MustParsePrefix("192.168.2.0/24"), NextHop: netip.MustParseAddr("10.0.0.12")},
		},
		{
			name: "mp reach next hop",
			path: &api.Path{Family: v4, Nlri: nlri("0.0.0.0", 0), Pattrs: []*anypb.Any{anyOf(t, &api.MpReachNLRIAttribute{NextHops: []string{"::ffff:10.0.0.1"}})}},
			want: PathUpdate{Prefix: netip.MustParsePrefix("0.0.0.0/0"), NextHop: netip.MustParseAddr("10.0.0.1")},
		},
		{
			name: "withdraw needs no next hop",
			path: &api.Path{Family: v4, Nlri: nlri("192.168.2.0", 24), IsWithdraw: true},
			want: PathUpdate{Prefix: netip.MustParsePrefix("192.168.2.0/24"), Withdraw: true},
		},
		{name: "no nlri", path: &api.Path{Family: v4}, wantErr: true},
		{name: "nil path", path: nil, wantErr: true},
		{name: "other family", path: &api.Path{Family: &api.Family{Afi: api.Family_AFI_IP6, Safi: api.Family_SAFI_UNICAST}, Nlri: nlri("2001:db8::", 32)}, other: true},
		{name: "bad prefix length", path: &api.Path{Family: v4, Nlri: nlri("192.168.2.0", 33), IsWithdraw: true}, wantErr: true},
		{name: "bad prefix", path: &api.Path{Family: v4, Nlri: nlri("192.168.2", 24), IsWithdraw: true}, wantErr: true},
		{name: "wrong nlri type", path: &api.Path{Family: v4, Nlri: origin, IsWithdraw: true}, wantErr: true},
		{name: "no next hop", path: &api.Path{Family: v4, Nlri: nlri("192.168.2.0", 24), Pattrs: []*anypb.Any{origin}}, wantErr: true},
		{name: "bad next hop", path: &api.Path{Family: v4, Nlri: nlri("192.168.2.0", 24), Pattrs: []*anypb.Any{anyOf(t, &api.NextHopAttribute{NextHop: "x"})}}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := pathUpdate(tt.path)
			switch {
			case tt.other:
				if err != errNotIPv4Unicast {
					t.Fatalf("err = %v, want errNotIPv4Unicast", err)
				}
				return
			case tt.wantErr:
				if err == nil || err == errNotIPv4Unicast {
					t.Fatalf("err = %v, want a conversion error", err)
				}
				return
			case err != nil:
				t.Fatalf("pathUpdate: %v", err)
			}
			if diff := cmp.Diff(tt.want, got, cmp.Comparer(func(a, b netip.Addr) bool { return a == b }), cmp.Comparer(func(a, b netip.Prefix) bool { return a == b })); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}
