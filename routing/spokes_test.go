package routing

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
	api "github.com/osrg/gobgp/v3/api"
	"go.uber.org/zap"
)

// fakePolicyServer records the calls spokeImports makes, as text.
type fakePolicyServer struct {
	peers []*api.Peer
	calls []string
}

func (f *fakePolicyServer) ListPeer(_ context.Context, _ *api.ListPeerRequest, fn func(*api.Peer)) error {
	for _, p := range f.peers {
		fn(p)
	}
	return nil
}

func (f *fakePolicyServer) AddDefinedSet(_ context.Context, r *api.AddDefinedSetRequest) error {
	f.calls = append(f.calls, fmt.Sprintf("add set %s %v", r.DefinedSet.Name, r.DefinedSet.List))
	return nil
}

func (f *fakePolicyServer) DeleteDefinedSet(_ context.Context, r *api.DeleteDefinedSetRequest) error {
	f.calls = append(f.calls, "delete set "+r.DefinedSet.Name)
	return nil
}

func (f *fakePolicyServer) AddPolicy(_ context.Context, r *api.AddPolicyRequest) error {
	for _, st := range r.Policy.Statements {
		c := st.Conditions
		f.calls = append(f.calls, fmt.Sprintf("add %s/%s: prefix %s neighbor %s next hop %v -> %s",
			r.Policy.Name, st.Name, c.PrefixSet.Name, c.NeighborSet.Name, c.NextHopInList, st.Actions.RouteAction))
	}
	return nil
}

func (f *fakePolicyServer) DeletePolicy(_ context.Context, r *api.DeletePolicyRequest) error {
	var names []string
	for _, st := range r.Policy.Statements {
		names = append(names, st.Name)
	}
	f.calls = append(f.calls, fmt.Sprintf("remove from %s %v all=%v", r.Policy.Name, names, r.All))
	return nil
}

func (f *fakePolicyServer) DeleteStatement(_ context.Context, r *api.DeleteStatementRequest) error {
	f.calls = append(f.calls, "delete statement "+r.Statement.Name)
	return nil
}

func (f *fakePolicyServer) ResetPeer(_ context.Context, r *api.ResetPeerRequest) error {
	f.calls = append(f.calls, fmt.Sprintf("soft reset in %s", r.Address))
	return nil
}

func dynPeer(a, group string) *api.Peer {
	return &api.Peer{Conf: &api.PeerConf{NeighborAddress: a, PeerGroup: group}, State: &api.PeerState{NeighborAddress: a}}
}

// TestSpokeImportsReconcile: a statement per Accept range is added for each
// neighbor of the spokes' peer group (not for static peers), with the
// spoke's own address as the only accepted next hop, followed by a soft
// reset in; a neighbor GoBGP no longer has loses its statements, which are
// deleted (GoBGP would keep them defined), and its set.
func TestSpokeImportsReconcile(t *testing.T) {
	c := Config{Role: RoleHub, Hub: HubConfig{PeerGroup: DefaultPeerGroup}, Import: ImportConfig{Accept: []PrefixRange{
		{Prefix: pfx("10.0.0.0/8"), LE: 24}, {Prefix: pfx("192.168.0.0/16"), LE: 24},
	}}}
	si := newSpokeImports(c, zap.NewNop())
	f := &fakePolicyServer{peers: []*api.Peer{dynPeer("10.0.0.12", DefaultPeerGroup), dynPeer("10.0.0.2", "")}}
	ctx := t.Context()
	if err := si.reconcile(ctx, f); err != nil {
		t.Fatal(err)
	}
	add := slices.DeleteFunc(slices.Clone(f.calls), func(s string) bool { return s[:6] == "remove" || s[:6] == "delete" })
	want := []string{
		"add set dmvpn-spoke-10.0.0.12 [10.0.0.12/32]",
		"add dmvpn-import/accept-0-from-10.0.0.12: prefix dmvpn-accept-0 neighbor dmvpn-spoke-10.0.0.12 next hop [10.0.0.12/32] -> ACCEPT",
		"add dmvpn-import/accept-1-from-10.0.0.12: prefix dmvpn-accept-1 neighbor dmvpn-spoke-10.0.0.12 next hop [10.0.0.12/32] -> ACCEPT",
		"soft reset in 10.0.0.12",
	}
	if diff := cmp.Diff(want, add); diff != "" {
		t.Errorf("add (-want +got):\n%s", diff)
	}
	// Idempotent: nothing to do.
	f.calls = nil
	if err := si.reconcile(ctx, f); err != nil || len(f.calls) != 0 {
		t.Errorf("second reconcile: %v, calls %v", err, f.calls)
	}
	f.peers = f.peers[1:]
	if err := si.reconcile(ctx, f); err != nil {
		t.Fatal(err)
	}
	want = []string{
		"remove from dmvpn-import [accept-0-from-10.0.0.12 accept-1-from-10.0.0.12] all=false",
		"delete statement accept-0-from-10.0.0.12",
		"delete statement accept-1-from-10.0.0.12",
		"delete set dmvpn-spoke-10.0.0.12",
	}
	if diff := cmp.Diff(want, f.calls); diff != "" {
		t.Errorf("remove (-want +got):\n%s", diff)
	}
}

func TestImportReason(t *testing.T) {
	spoke, other := netip.MustParseAddr("10.0.0.12"), netip.MustParseAddr("10.0.0.13")
	g := guard{tunnel: pfx("10.0.0.0/24"), spokes: pfx("10.0.0.0/24")}
	accept := []PrefixRange{{Prefix: pfx("192.168.0.0/16"), LE: 24}}
	tests := []struct {
		p       string
		nh      netip.Addr
		fromHub bool
		want    string
	}{
		{"192.168.3.0/24", other, false, RejectForeignNextHop},
		{"192.168.3.0/24", other, true, RejectNotAccepted}, // a hub may pass on another spoke's next hop
		{"192.168.3.0/25", other, false, RejectNotAccepted},
		{"192.168.3.0/24", netip.MustParseAddr("10.0.0.255"), false, RejectNextHop},
	}
	for _, tt := range tests {
		if got := g.importReason(pfx(tt.p), tt.nh, spoke, tt.fromHub, accept); got != tt.want {
			t.Errorf("importReason(%s via %s, hub %v) = %q, want %q", tt.p, tt.nh, tt.fromHub, got, tt.want)
		}
	}
	if got := g.reason(pfx("192.168.3.0/24"), other, spoke, false); got != RejectForeignNextHop {
		t.Errorf("FIB reason for a spoke's foreign next hop: %q", got)
	}
	if got := g.reason(pfx("192.168.3.0/24"), spoke, spoke, false); got != "" {
		t.Errorf("FIB reason for a spoke's own next hop: %q", got)
	}
}
