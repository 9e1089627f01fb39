package ipsec_test

import (
	"net/netip"
	"testing"
	"testing/synctest"
	"time"

	"github.com/dmvpnd/dmvpnd/ipsec"
	"github.com/dmvpnd/dmvpnd/ipsec/vicitest"
)

// TestAdoptsEarlierRunsConns: connections an earlier dmvpnd run left in
// charon (the shortcuts of a spoke that was restarted) are kept with their
// SAs while Config.AdoptGrace runs: one the desired set names again is
// taken over as it is, up at once, neither initiated nor terminated; one
// still unwanted when the grace ends is terminated and unloaded then, not
// before.
func TestAdoptsEarlierRunsConns(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const grace = 2 * time.Minute
		cfg := pskConfig("192.0.2.1")
		cfg.AdoptGrace = grace
		left := []string{"dmvpn-peer-spoke", "dmvpn-peer-old"}
		h := newHarnessWith(t, cfg, nil, func(s *vicitest.Server) {
			s.Handle("get-conns", func(*vicitest.Message) ([]*vicitest.Message, *vicitest.Message) {
				return nil, vicitest.NewMessage().Set("conns", append(s.Conns(), left...))
			})
			s.Handle("list-sas", func(*vicitest.Message) ([]*vicitest.Message, *vicitest.Message) {
				return []*vicitest.Message{
					vicitest.ListSA(hubSideSA("dmvpn-peer-spoke", "198.51.100.9", 1)),
					vicitest.ListSA(hubSideSA("dmvpn-peer-old", "198.51.100.8", 2)),
				}, nil
			})
		})
		h.waitState("connected", func(s ipsec.State) bool { return s.Connected })
		touched := func(conn string) int {
			return h.count(isCmd("unload-conn", "name", conn)) + h.count(isCmd("terminate", "ike", conn))
		}
		for _, conn := range left {
			if n := touched(conn); n != 0 {
				t.Errorf("%s terminated or unloaded at connect (%d commands); want it kept during the grace", conn, n)
			}
		}

		// The new run re-resolves the spoke's shortcut: its peer is wanted.
		spoke := ipsec.Peer{Name: "spoke", RemoteNBMA: netip.MustParseAddr("198.51.100.9"), Initiate: ipsec.InitiateTieBreak}
		if err := h.m.SetPeers([]ipsec.Peer{spoke}); err != nil {
			t.Fatal(err)
		}
		h.waitEvent("spoke up", func(e ipsec.Event) bool { return e.Peer == "spoke" && e.Status == ipsec.StatusUp })

		// The grace runs from the first connection, at the bubble's start.
		h.after(grace-time.Since(t0), "the unwanted adopted conn terminated or unloaded at the end of the grace",
			func() bool { return touched("dmvpn-peer-old") > 0 })
		h.waitCmd("terminate of the unwanted adopted conn", isCmd("terminate", "ike", "dmvpn-peer-old"))
		h.waitCmd("unload of the unwanted adopted conn", isCmd("unload-conn", "name", "dmvpn-peer-old"))
		if n := touched("dmvpn-peer-spoke"); n != 0 {
			t.Errorf("the wanted adopted conn was terminated or unloaded (%d commands)", n)
		}
		if n := h.count(isCmd("initiate")); n != 0 {
			t.Errorf("initiated %d times; the adopted SA was up", n)
		}
		if st := view(h.m.State(), "spoke"); st.Status != ipsec.StatusUp {
			t.Errorf("spoke after the grace: %+v; want up on the adopted SA", st)
		}
	})
}

// TestConnectPrunesWithoutGrace: without Config.AdoptGrace, connections an
// earlier run left are unloaded at connect, as before.
func TestConnectPrunesWithoutGrace(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarnessWith(t, pskConfig("192.0.2.1"), nil, func(s *vicitest.Server) {
			s.Handle("get-conns", func(*vicitest.Message) ([]*vicitest.Message, *vicitest.Message) {
				return nil, vicitest.NewMessage().Set("conns", append(s.Conns(), "dmvpn-peer-old"))
			})
		})
		h.waitCmd("unload of the stale conn", isCmd("unload-conn", "name", "dmvpn-peer-old"))
	})
}
