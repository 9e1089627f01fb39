package ipsectest

import (
	"net/netip"
	"testing"
	"time"

	"github.com/dmvpnd/dmvpnd/ipsec"
	"github.com/google/go-cmp/cmp"
)

func TestFake(t *testing.T) {
	f := NewFake(func() time.Time { return time.Unix(0, 0) })
	hub := ipsec.Peer{Name: "hub", RemoteNBMA: netip.MustParseAddr("192.0.2.1"), Initiate: ipsec.Initiate}
	nat := ipsec.Peer{RemoteNBMA: netip.MustParseAddr("198.51.100.7"), ClaimedNBMA: netip.MustParseAddr("172.16.0.2")}
	if err := f.SetPeers([]ipsec.Peer{nat, hub}); err != nil {
		t.Fatal(err)
	}
	want := "172.16.0.2 remote 198.51.100.7 claimed 172.16.0.2 respond\nhub remote 192.0.2.1 claimed invalid IP initiate\n"
	if diff := cmp.Diff(want, f.Text()); diff != "" {
		t.Errorf("Text (-want +got):\n%s", diff)
	}
	obs := netip.MustParseAddrPort("198.51.100.7:4500")
	if !f.SetStatus("172.16.0.2", ipsec.StatusUp, obs, "") {
		t.Fatal("SetStatus of a wanted peer failed")
	}
	if f.SetStatus("nobody", ipsec.StatusUp, obs, "") {
		t.Error("SetStatus of an unknown peer succeeded")
	}
	ev := <-f.Events()
	if ev.Peer != "172.16.0.2" || ev.Status != ipsec.StatusUp || ev.Observed != obs {
		t.Errorf("event %+v", ev)
	}
	wantProt := []ipsec.Protection{{NBMA: netip.MustParseAddr("172.16.0.2"), Outer: obs.Addr(), Identity: "172.16.0.2"}}
	if d := cmp.Diff(wantProt, f.State().Protections(), cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); d != "" {
		t.Errorf("Protections (-want +got):\n%s", d)
	}
	if err := f.SetPeers([]ipsec.Peer{hub}); err != nil {
		t.Fatal(err)
	}
	if st := f.State(); len(st.Peers) != 1 || st.Peers[0].Name != "hub" || f.Calls() != 2 {
		t.Errorf("after removal: %+v, %d calls", st, f.Calls())
	}
}
