package ipsec_test

import (
	"net/netip"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/dmvpnd/dmvpnd/ipsec"
	"github.com/dmvpnd/dmvpnd/ipsec/vicitest"
)

// TestRefusedPeerConn: charon refuses the connection of one peer. That
// peer alone is skipped, counted and logged once; the others are loaded,
// initiated and pruned as usual; the refused request is retried with the
// per-peer backoff, never on each SetPeers (each NHRP event), and is
// loaded once charon accepts it.
func TestRefusedPeerConn(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const errmsg = "invalid value for: remote_addrs"
		bad := ipsec.Peer{Name: "bad", RemoteNBMA: netip.MustParseAddr("192.0.2.9"), Initiate: ipsec.Respond}
		peers := []ipsec.Peer{plainHub, bad, nattedPeer}
		cfg := pskConfig("192.0.2.50")
		cfg.RetryMin, cfg.RetryMax = time.Second, 4*time.Second
		h := newHarnessWith(t, cfg, peers, func(s *vicitest.Server) { s.RefuseConn("dmvpn-peer-bad", errmsg) })
		loads := func() int { return h.count(isCmd("load-conn")) }
		badLoads := func() int {
			return h.count(func(c vicitest.Command) bool {
				return c.Name == "load-conn" && c.Message.Section("dmvpn-peer-bad") != nil
			})
		}
		badState := func(s ipsec.State) ipsec.PeerState {
			for _, p := range s.Peers {
				if p.Name == "bad" {
					return p
				}
			}
			t.Fatalf("peer bad missing from %+v", s.Peers)
			return ipsec.PeerState{}
		}
		waitFailures := func(n int) ipsec.State {
			t.Helper()
			return h.waitState("refusals in a row", func(s ipsec.State) bool {
				return len(s.Peers) > 0 && badState(s).LoadFailures == n
			})
		}

		h.waitCmd("the hub initiated", isCmd("initiate", "ike", "dmvpn-peer-hub"))
		st := waitFailures(1)
		want := []string{"dmvpn-peer-172.16.0.2", "dmvpn-peer-hub", "dmvpn-responder"}
		if got := h.srv.Conns(); !equal(got, want) {
			t.Errorf("connections %v, want %v", got, want)
		}
		if b := badState(st); b.Status != ipsec.StatusDown || !strings.Contains(b.Reason, errmsg) ||
			!b.LoadRetry.Equal(t0.Add(time.Second)) {
			t.Errorf("refused peer %+v, want down with charon's message, retry at t0+1s", b)
		}
		if st.LoadsRefused != 1 {
			t.Errorf("LoadsRefused %d, want 1", st.LoadsRefused)
		}

		// NHRP churn: SetPeers with the same set, and a peer pruned. Neither
		// retries the refused peer.
		for range 5 {
			gen := h.m.Generation()
			if err := h.m.SetPeers(peers); err != nil {
				t.Fatal(err)
			}
			h.settle(gen)
		}
		if err := h.m.SetPeers([]ipsec.Peer{plainHub, bad}); err != nil {
			t.Fatal(err)
		}
		h.waitCmd("the removed peer unloaded", isCmd("unload-conn", "name", "dmvpn-peer-172.16.0.2"))
		h.waitState("removed peer gone", func(s ipsec.State) bool { return len(s.Peers) == 2 })
		if n := badLoads(); n != 1 {
			t.Fatalf("refused peer sent %d times before its backoff expired, want 1", n)
		}

		// Backoff: retried at t0+1s, then 2s later (t0+3s), never in between.
		h.advance(time.Second)
		st = waitFailures(2)
		if b := badState(st); !b.LoadRetry.Equal(t0.Add(3 * time.Second)) {
			t.Errorf("second retry at %v, want t0+3s", b.LoadRetry.Sub(t0))
		}
		h.advance(time.Second)
		gen := h.m.Generation()
		if err := h.m.SetPeers([]ipsec.Peer{plainHub, bad}); err != nil {
			t.Fatal(err)
		}
		h.settle(gen)
		if n := badLoads(); n != 2 {
			t.Fatalf("refused peer sent %d times at t0+2s, want 2", n)
		}
		h.advance(time.Second)
		waitFailures(3)

		// Charon accepts it: loaded at the next retry (t0+3s+4s), the
		// episode ends, the count stays.
		h.srv.RefuseConn("dmvpn-peer-bad", "")
		before := loads()
		h.advance(4 * time.Second)
		st = waitFailures(0)
		if got, want := h.srv.Conns(), []string{"dmvpn-peer-bad", "dmvpn-peer-hub", "dmvpn-responder"}; !equal(got, want) {
			t.Errorf("connections %v, want %v", got, want)
		}
		if n := badLoads(); n != 4 {
			t.Errorf("refused peer sent %d times, want 4", n)
		}
		if loads() <= before {
			t.Error("no load-conn after charon accepted")
		}
		if st.LoadsRefused != 3 {
			t.Errorf("LoadsRefused %d, want 3", st.LoadsRefused)
		}
		if n := h.logs.FilterMessageSnippet("charon refused the peer's connection;").Len(); n != 1 {
			t.Errorf("refusal logged %d times at warning level, want once per episode", n)
		}
		if n := h.logs.FilterMessage("charon accepted the peer's connection").Len(); n != 1 {
			t.Errorf("recovery logged %d times, want 1", n)
		}
	})
}
