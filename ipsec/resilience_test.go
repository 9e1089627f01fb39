package ipsec_test

import (
	"fmt"
	"net/netip"
	"testing"
	"testing/synctest"
	"time"

	"github.com/dmvpnd/dmvpnd/ipsec"
	"github.com/dmvpnd/dmvpnd/ipsec/vicitest"
)

// TestReconnectReload: charon goes away and comes back with nothing
// loaded; the Manager reconnects with backoff, reloads the key and every
// connection and initiates again.
func TestReconnectReload(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cfg := pskConfig("192.0.2.50")
		cfg.ReconnectMin = 100 * time.Millisecond
		cfg.ReconnectMax = 400 * time.Millisecond
		h := newHarness(t, cfg, []ipsec.Peer{plainHub, nattedPeer})
		h.waitCmd("initiate", isCmd("initiate", "ike", "dmvpn-peer-hub"))
		h.srv.Emit("ike-updown", vicitest.IKEUpdown(true, hubSA(1, true)))
		h.srv.Emit("child-updown", vicitest.ChildUpdown(true, hubSA(1, true, greChild(2, "INSTALLED"))))
		h.waitEvent("hub up", func(e ipsec.Event) bool { return e.Peer == "hub" && e.Status == ipsec.StatusUp })

		h.srv.Stop()
		ev := h.waitEvent("hub down", func(e ipsec.Event) bool { return e.Peer == "hub" && e.Status == ipsec.StatusDown })
		if ev.Reason != "charon connection lost" {
			t.Errorf("reason %q", ev.Reason)
		}
		if st := h.m.State(); st.Connected {
			t.Error("State says connected while charon is down")
		}
		// While charon is down, each retry doubles the delay up to the cap.
		for _, d := range []time.Duration{100, 200, 400, 400} {
			d *= time.Millisecond
			n := h.dials()
			h.after(d, fmt.Sprintf("reconnect attempt %v after the last", d), func() bool { return h.dials() > n })
		}
		// The next attempt has failed too and waits for the capped delay.
		h.startCharonAfter(400 * time.Millisecond)
		h.waitCmd("initiate after restart", isCmd("initiate", "ike", "dmvpn-peer-hub"))
		if n := h.count(isCmd("load-shared")); n != 1 {
			t.Errorf("%d load-shared after restart, want 1", n)
		}
		want := []string{"dmvpn-peer-172.16.0.2", "dmvpn-peer-hub", "dmvpn-responder"}
		if got := h.srv.Conns(); !equal(got, want) {
			t.Errorf("connections after restart %v, want %v", got, want)
		}
		synctest.Wait()
		if n := h.srv.Subscribers("child-updown"); n != 1 {
			t.Errorf("%d subscribers to child-updown after restart, want 1", n)
		}
		h.waitState("connected", func(s ipsec.State) bool { return s.Connected && s.Reconnects == 1 })
	})
}

func equal(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestPrunesOwnStaleConns: connections of an earlier dmvpnd run that are
// no longer wanted are unloaded; foreign connections are left alone.
func TestPrunesOwnStaleConns(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srvConns := []string{"dmvpn-peer-old", "roadwarrior", "dmvpn-peer-hub"}
		h := newHarness(t, pskConfig("192.0.2.50"), nil)
		h.srv.Handle("get-conns", func(*vicitest.Message) ([]*vicitest.Message, *vicitest.Message) {
			return nil, vicitest.NewMessage().Set("conns", srvConns)
		})
		if err := h.m.SetPeers([]ipsec.Peer{plainHub}); err != nil {
			t.Fatal(err)
		}
		h.waitCmd("initiate", isCmd("initiate"))
		h.restartCharon(time.Second, true) // so that the handler above answers get-conns
		h.waitCmd("unload of the stale conn", isCmd("unload-conn", "name", "dmvpn-peer-old"))
		h.waitCmd("initiate", isCmd("initiate"))
		for _, name := range []string{"roadwarrior", "dmvpn-peer-hub"} {
			if n := h.count(isCmd("unload-conn", "name", name)); n != 0 {
				t.Errorf("unloaded %s", name)
			}
		}
	})
}

// TestSetPeersRejectsInvalid: malformed desired state is an error and
// changes nothing.
func TestSetPeersRejectsInvalid(t *testing.T) {
	m, err := ipsec.New(pskConfig("192.0.2.50"))
	if err != nil {
		t.Fatal(err)
	}
	for name, peers := range map[string][]ipsec.Peer{
		"no address":     {{Name: "x"}},
		"ipv6":           {{RemoteNBMA: netip.MustParseAddr("2001:db8::1")}},
		"bad name":       {{Name: "a b", RemoteNBMA: netip.MustParseAddr("192.0.2.1")}},
		"duplicate":      {plainHub, plainHub},
		"self":           {{RemoteNBMA: netip.MustParseAddr("192.0.2.50")}},
		"bad initiation": {{RemoteNBMA: netip.MustParseAddr("192.0.2.1"), Initiate: 9}},
	} {
		if err := m.SetPeers(peers); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	for name, cfg := range map[string]ipsec.Config{
		"no local":   {Auth: ipsec.Auth{PSK: ipsec.NewSecret("x")}},
		"no psk":     {LocalNBMA: netip.MustParseAddr("192.0.2.50")},
		"x509 files": {LocalNBMA: netip.MustParseAddr("192.0.2.50"), Auth: ipsec.Auth{Method: ipsec.AuthX509}},
		"proposal":   {LocalNBMA: netip.MustParseAddr("192.0.2.50"), Auth: ipsec.Auth{PSK: ipsec.NewSecret("x")}, IKEProposals: []string{"a, b"}},
	} {
		if _, err := ipsec.New(cfg); err == nil {
			t.Errorf("config %s: accepted", name)
		}
	}
}

// TestPeerMoves: a peer whose NBMA address changes (a new NAT mapping)
// gets its old connection terminated and unloaded and a new one loaded.
func TestPeerMoves(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, pskConfig("192.0.2.50"), []ipsec.Peer{plainHub})
		h.waitCmd("initiate", isCmd("initiate", "ike", "dmvpn-peer-hub"))
		moved := plainHub
		moved.RemoteNBMA = netip.MustParseAddr("192.0.2.2")
		h.srv.ResetCommands()
		if err := h.m.SetPeers([]ipsec.Peer{moved}); err != nil {
			t.Fatal(err)
		}
		h.waitCmd("initiate to the new address", isCmd("initiate", "ike", "dmvpn-peer-hub"))
		var got []string
		for _, c := range h.srv.Commands() {
			got = append(got, c.Name)
		}
		want := []string{"terminate", "unload-conn", "load-conn", "initiate"}
		if !equal(got, want) {
			t.Errorf("commands %v, want %v", got, want)
		}
		if addrs := h.srv.Commands()[2].Message.Section("dmvpn-peer-hub").List("remote_addrs"); !equal(addrs, []string{"192.0.2.2"}) {
			t.Errorf("new remote_addrs %v", addrs)
		}
	})
}

// TestNATDetected: charon reports this node behind a NAT; the per-peer
// connections switch to tunnel mode with the own NBMA as inner selector and
// the SAs are brought up again.
func TestNATDetected(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, pskConfig("172.16.0.2"), []ipsec.Peer{plainHub})
		h.waitCmd("initiate", isCmd("initiate", "ike", "dmvpn-peer-hub"))
		h.srv.ResetCommands()
		sa := hubSA(1, true)
		sa.LocalHost, sa.LocalID, sa.NATLocal = "172.16.0.2", "172.16.0.2", true
		h.srv.Emit("ike-updown", vicitest.IKEUpdown(true, sa))
		h.waitCmd("re-initiate", isCmd("initiate", "ike", "dmvpn-peer-hub"))
		var got []string
		for _, c := range h.srv.Commands() {
			got = append(got, c.Name)
		}
		if want := []string{"load-conn", "terminate", "initiate"}; !equal(got, want) {
			t.Errorf("commands %v, want %v", got, want)
		}
		child := h.srv.Commands()[0].Message.Section("dmvpn-peer-hub").Section("children").Section("gre")
		if child.String("mode") != "tunnel" || !equal(child.List("local_ts"), []string{"172.16.0.2/32[gre]"}) ||
			!equal(child.List("remote_ts"), []string{"192.0.2.1/32[gre]"}) {
			t.Errorf("child after NAT detection:\n%s", child.Text())
		}
		st := h.waitState("tunnel", func(s ipsec.State) bool { return len(s.Peers) == 1 && s.Peers[0].Tunnel })
		if len(st.Peers[0].SAs) != 0 {
			t.Errorf("old SAs still listed: %+v", st.Peers[0].SAs)
		}
		// charon reports the terminated SA gone: that must not start another
		// attempt while the new one is in flight.
		gen := h.m.State().Generation
		h.srv.Emit("ike-updown", vicitest.IKEUpdown(false, sa))
		h.settle(gen)
		if n := h.count(isCmd("initiate")); n != 1 {
			t.Errorf("%d initiates after the old SA's down event, want 1", n)
		}
	})
}
