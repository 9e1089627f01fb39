package ipsec_test

import (
	"context"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/dmvpnd/dmvpnd/ipsec"
	"github.com/dmvpnd/dmvpnd/ipsec/vicitest"
)

// detailedSA is an established SA as charon lists it, with its proposal,
// SPIs, times and traffic counters.
func detailedSA(bytesIn uint64) vicitest.SA {
	sa := hubSA(1, true)
	sa.Conn = "dmvpn-responder"
	sa.EncrAlg, sa.EncrKeySize, sa.PRFAlg, sa.DHGroup = "AES_GCM_16", 256, "PRF_HMAC_SHA2_256", "CURVE_25519"
	sa.Established, sa.RekeyTime = 3600, 10000
	c := greChild(2, "INSTALLED")
	c.SPIIn, c.SPIOut = "cb6b1d9e", "c5a0e1f2"
	c.MarkIn, c.MarkOut = 0x2a, 0xc0000001 // %unique marks as charon prints them: %.8x
	c.EncrAlg, c.EncrKeySize = "AES_GCM_16", 256
	c.BytesIn, c.BytesOut, c.PacketsIn, c.PacketsOut = bytesIn, 2048, bytesIn/128, 16
	c.InstallTime, c.RekeyTime, c.LifeTime = 600, 2400, 3000
	sa.Children = []vicitest.ChildSA{c}
	return sa
}

// TestSADetails: list-sas's proposal, SPIs, times and counters reach the
// State, times anchored at the Manager's clock; Refresh lists again at
// once, so counters move between the periodic resyncs.
func TestSADetails(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var bytesIn atomic.Uint64
		bytesIn.Store(1024)
		h := newHarnessWith(t, pskConfig("192.0.2.50"), nil, func(s *vicitest.Server) {
			s.Handle("list-sas", func(*vicitest.Message) ([]*vicitest.Message, *vicitest.Message) {
				return []*vicitest.Message{vicitest.ListSA(detailedSA(bytesIn.Load()))}, nil
			})
		})
		st := h.waitState("the listed SA", func(s ipsec.State) bool { return len(s.Unattributed) == 1 })
		got := st.Unattributed[0]
		want := ipsec.SAInfo{
			EncrAlg: "AES_GCM_16", EncrKeySize: 256, PRFAlg: "PRF_HMAC_SHA2_256", DHGroup: "CURVE_25519",
			Established: t0.Add(-time.Hour), RekeyAt: t0.Add(10000 * time.Second),
			Children: []ipsec.ChildInfo{{
				Name: "gre", UniqueID: "2", State: "INSTALLED", Mode: "TRANSPORT", Protocol: "ESP",
				LocalTS: []string{"192.0.2.50/32[gre]"}, RemoteTS: []string{"192.0.2.1/32[gre]"},
				SPIIn: "cb6b1d9e", SPIOut: "c5a0e1f2", ReqID: 2, MarkIn: 0x2a, MarkOut: 0xc0000001, EncrAlg: "AES_GCM_16", EncrKeySize: 256,
				BytesIn: 1024, BytesOut: 2048, PacketsIn: 8, PacketsOut: 16,
				Installed: t0.Add(-10 * time.Minute), RekeyAt: t0.Add(40 * time.Minute), Expires: t0.Add(50 * time.Minute),
			}},
		}
		ignore := cmpopts.IgnoreFields(ipsec.SAInfo{}, "Conn", "UniqueID", "State", "Initiator", "Local", "Remote", "LocalID", "RemoteID")
		if diff := cmp.Diff(want, got, ignore); diff != "" {
			t.Errorf("SA details (-want +got):\n%s", diff)
		}

		bytesIn.Store(4096)
		ctx, cancel := context.WithTimeout(context.Background(), waitFor)
		defer cancel()
		if err := h.m.Refresh(ctx); err != nil {
			t.Fatalf("Refresh: %v", err)
		}
		if got := h.m.State().Unattributed[0].Children[0].BytesIn; got != 4096 {
			t.Errorf("bytes in after Refresh = %d, want 4096", got)
		}

		h.srv.Stop()
		h.waitState("disconnected", func(s ipsec.State) bool { return !s.Connected })
		if err := h.m.Refresh(ctx); err != ipsec.ErrNotConnected {
			t.Errorf("Refresh without charon = %v, want ErrNotConnected", err)
		}
	})
}
