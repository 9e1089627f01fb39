package ipsec_test

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"testing/synctest"

	"github.com/google/go-cmp/cmp"

	"github.com/dmvpnd/dmvpnd/ipsec"
	"github.com/dmvpnd/dmvpnd/ipsec/vicitest"
)

// TestStateJSON: the snapshot dmvpnctl prints is plain data with readable
// enums and addresses.
func TestStateJSON(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, pskConfig("192.0.2.50"), []ipsec.Peer{plainHub})
		h.waitCmd("initiate", isCmd("initiate"))
		h.srv.Emit("child-updown", vicitest.ChildUpdown(true, hubSA(1, true, greChild(2, "INSTALLED"))))
		st := h.waitState("up", func(s ipsec.State) bool { return len(s.Peers) == 1 && s.Peers[0].Status == ipsec.StatusUp })
		b, err := json.Marshal(st)
		if err != nil {
			t.Fatal(err)
		}
		for _, want := range []string{`"Status":"up"`, `"Initiate":"initiate"`, `"Observed":"192.0.2.1:4500"`,
			`"RemoteNBMA":"192.0.2.1"`, `"Conn":"dmvpn-peer-hub"`} {
			if !strings.Contains(string(b), want) {
				t.Errorf("JSON lacks %s: %s", want, b)
			}
		}
	})
}

// TestResyncSeesEverySA: list-sas streams many SAs; none may be lost
// (govici's CallStreaming can drop the last ones, see link.listSAs).
func TestResyncSeesEverySA(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const n = 300
		var stream []*vicitest.Message
		for i := range n {
			stream = append(stream, vicitest.ListSA(vicitest.SA{
				Conn: "dmvpn-responder", UniqueID: uint32(i + 1), State: "ESTABLISHED",
				LocalHost: "192.0.2.50", LocalPort: 500, RemoteHost: fmt.Sprintf("10.1.%d.%d", i/200, i%200+1), RemotePort: 500,
				Children: []vicitest.ChildSA{{Name: "gre", UniqueID: uint32(i + 1000), State: "INSTALLED", Mode: "TRANSPORT"}},
			}))
		}
		stream = append(stream, vicitest.ListSA(vicitest.SA{Conn: "someone-else", UniqueID: 9999, State: "ESTABLISHED"}))
		for round := range 5 {
			h := newHarnessWith(t, pskConfig("192.0.2.50"), nil, func(s *vicitest.Server) {
				s.Handle("list-sas", func(*vicitest.Message) ([]*vicitest.Message, *vicitest.Message) { return stream, nil })
			})
			st := h.waitState("connected", func(s ipsec.State) bool { return s.Connected })
			if len(st.Unattributed) != n {
				t.Fatalf("round %d: %d SAs after resync, want %d", round, len(st.Unattributed), n)
			}
			if !protects(st, "10.1.1.100") {
				t.Errorf("round %d: 10.1.1.100 not protected", round)
			}
		}
	})
}

// protects reports whether st's SAs prove addr as an NBMA address.
func protects(st ipsec.State, addr string) bool {
	a := netip.MustParseAddr(addr)
	for _, p := range st.Protections() {
		if p.NBMA == a {
			return true
		}
	}
	return false
}

// TestProtections: what the SAs prove comes from the SAs alone: transport
// mode proves the IKE peer's address, tunnel mode the single inner host
// (with the IKE peer's address as outer); an SA being terminated, an IKE
// SA not established, a child not installed, and a tunnel child with
// several or wide selectors prove nothing; a wanted peer's status and
// claimed address add nothing.
func TestProtections(t *testing.T) {
	ap := netip.MustParseAddrPort
	child := func(mode string, ts ...string) ipsec.ChildInfo {
		return ipsec.ChildInfo{Name: "gre", State: "INSTALLED", Mode: mode, RemoteTS: ts}
	}
	st := ipsec.State{
		Peers: []ipsec.PeerState{
			{Name: "hub", RemoteNBMA: netip.MustParseAddr("192.0.2.1"), Status: ipsec.StatusUp,
				SAs: []ipsec.SAInfo{{State: "ESTABLISHED", Remote: ap("192.0.2.1:500"), RemoteID: "hub",
					Children: []ipsec.ChildInfo{child("TRANSPORT", "192.0.2.1/32[gre]"), child("TRANSPORT", "192.0.2.1/32[gre]")}}}},
			// Wanted with a claimed address and reported up, but no SA: nothing.
			{Name: "claimed", RemoteNBMA: netip.MustParseAddr("198.51.100.9"), ClaimedNBMA: netip.MustParseAddr("10.9.9.9"), Status: ipsec.StatusUp},
		},
		Unattributed: []ipsec.SAInfo{
			{State: "ESTABLISHED", Remote: ap("198.51.100.7:4500"), RemoteID: "spoke-a", NATRemote: true,
				Children: []ipsec.ChildInfo{child("TUNNEL", "172.16.0.2/32[gre]")}},
			{State: "ESTABLISHED", Remote: ap("198.51.100.8:4500"), RemoteID: "wide",
				Children: []ipsec.ChildInfo{child("TUNNEL", "172.16.0.0/24[gre]")}},
			{State: "ESTABLISHED", Remote: ap("198.51.100.10:4500"), RemoteID: "two",
				Children: []ipsec.ChildInfo{child("TUNNEL", "172.16.0.5/32[gre]", "172.16.0.6/32[gre]")}},
			{State: "ESTABLISHED", Remote: ap("203.0.113.1:500"), RemoteID: "dying", Terminating: true,
				Children: []ipsec.ChildInfo{child("TRANSPORT")}},
			{State: "CONNECTING", Remote: ap("203.0.113.2:500"), RemoteID: "early",
				Children: []ipsec.ChildInfo{child("TRANSPORT")}},
			{State: "ESTABLISHED", Remote: ap("203.0.113.3:500"), RemoteID: "rekeying",
				Children: []ipsec.ChildInfo{{Name: "gre", State: "REKEYING", Mode: "TRANSPORT"}}},
		},
	}
	want := []ipsec.Protection{
		{NBMA: netip.MustParseAddr("172.16.0.2"), Outer: netip.MustParseAddr("198.51.100.7"), Identity: "spoke-a"},
		{NBMA: netip.MustParseAddr("192.0.2.1"), Identity: "hub"},
	}
	if d := cmp.Diff(want, st.Protections(), cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); d != "" {
		t.Errorf("Protections (-want +got):\n%s", d)
	}
}
