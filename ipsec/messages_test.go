package ipsec_test

import (
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"testing/synctest"
	"time"

	"github.com/dmvpnd/dmvpnd/e2e/golden"
	"github.com/dmvpnd/dmvpnd/ipsec"
	"github.com/dmvpnd/dmvpnd/ipsec/ipsectest"
	"github.com/dmvpnd/dmvpnd/ipsec/vicitest"
	"github.com/google/go-cmp/cmp"
)

var (
	plainHub   = ipsec.Peer{Name: "hub", RemoteNBMA: netip.MustParseAddr("192.0.2.1"), Initiate: ipsec.Initiate}
	lowerSpoke = ipsec.Peer{RemoteNBMA: netip.MustParseAddr("192.0.2.20"), Initiate: ipsec.InitiateTieBreak}
	nattedPeer = ipsec.Peer{RemoteNBMA: netip.MustParseAddr("198.51.100.7"), ClaimedNBMA: netip.MustParseAddr("172.16.0.2")}
	higherPeer = ipsec.Peer{RemoteNBMA: netip.MustParseAddr("192.0.2.99"), Initiate: ipsec.InitiateTieBreak}
)

// TestMessagesPSK checks the exact requests for loading, initiating and
// removing peers with PSK authentication against a golden file.
func TestMessagesPSK(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cfg := pskConfig("192.0.2.50")
		cfg.NATInnerPrefixes = []netip.Prefix{netip.MustParsePrefix("172.16.0.0/12")}
		h := newHarness(t, cfg, []ipsec.Peer{plainHub, lowerSpoke, nattedPeer, higherPeer})
		// Initiate for the hub; the tie-break peer .20 is lower than us (.50),
		// so we wait; .99 is higher, so we initiate at once.
		h.waitCmd("initiate to the hub", isCmd("initiate", "ike", "dmvpn-peer-hub"))
		h.waitReconciled()
		got := "## connect and load\n" + renderCommands(h.srv.Commands())

		h.srv.ResetCommands()
		if err := h.m.SetPeers([]ipsec.Peer{plainHub, higherPeer}); err != nil {
			t.Fatal(err)
		}
		h.waitCmd("unload of the NATed peer", isCmd("unload-conn", "name", "dmvpn-peer-172.16.0.2"))
		h.waitCmd("unload of the lower spoke", isCmd("unload-conn", "name", "dmvpn-peer-192.0.2.20"))
		got += "## remove two peers\n" + renderCommands(h.srv.Commands())
		golden.File(t, "psk.golden", got)

		if diff := h.srv.Conns(); len(diff) != 3 {
			t.Errorf("loaded connections = %v, want responder, hub and 192.0.2.99", diff)
		}
	})
}

// TestMessagesX509 checks the credential and connection requests for
// certificate authentication (fixture PKI under testdata/x509).
func TestMessagesX509(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir := filepath.Join("testdata", "x509")
		if *golden.Update {
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			p := ipsectest.NewPKI(t, "dmvpn test CA")
			p.WriteFiles(t, dir, "spoke-50", netip.MustParseAddr("192.0.2.50"))
		}
		cfg := ipsec.Config{
			LocalNBMA: netip.MustParseAddr("192.0.2.50"),
			Auth: ipsec.Auth{Method: ipsec.AuthX509, CAFile: filepath.Join(dir, "ca.pem"),
				CertFile: filepath.Join(dir, "cert.pem"), KeyFile: filepath.Join(dir, "key.pem")},
			IKEProposals: []string{"aes256-sha256-modp3072"},
			ESPProposals: []string{"aes256gcm16"},
		}
		h := newHarness(t, cfg, []ipsec.Peer{plainHub, nattedPeer})
		h.waitCmd("initiate to hub", isCmd("initiate", "ike", "dmvpn-peer-hub"))
		h.waitReconciled()
		golden.File(t, "x509.golden", renderCommands(h.srv.Commands()))

		// Certified identities (dmvpnd's bind_tunnel_address): the local
		// identity is set, and every peer, the NATed one too, may present any
		// identity the CA certified.
		cfg.LocalID = "10.0.0.50"
		cfg.CertifiedIdentities = true
		h = newHarness(t, cfg, []ipsec.Peer{plainHub, nattedPeer})
		h.waitCmd("initiate to hub", isCmd("initiate", "ike", "dmvpn-peer-hub"))
		h.waitReconciled()
		golden.File(t, "x509-certified.golden", renderCommands(h.srv.Commands()))
	})
}

// TestProposalDefaultsFollowCharon: with only base plugins (no GCM for IKE,
// no ECP) the defaults fall back to the modp3072 suites.
func TestProposalDefaultsFollowCharon(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, pskConfig("192.0.2.50"), nil)
		h.srv.Handle("get-algorithms", func(*vicitest.Message) ([]*vicitest.Message, *vicitest.Message) {
			return nil, vicitest.NewMessage().
				Set("encryption", vicitest.NewMessage().Set("AES_CBC", "aes")).
				Set("integrity", vicitest.NewMessage().Set("HMAC_SHA2_384_192", "hmac")).
				Set("prf", vicitest.NewMessage().Set("PRF_HMAC_SHA2_384", "hmac")).
				Set("dh", vicitest.NewMessage().Set("MODP_3072", "gmp"))
		})
		// The handler is installed after the first connect: force a reconnect.
		h.waitCmd("responder", isCmd("load-conn"))
		h.restartCharon(time.Second, true)
		c := h.waitCmd("responder after reconnect", isCmd("load-conn"))
		conn := c.Message.Section("dmvpn-responder")
		if got, want := conn.List("proposals"), []string{"aes256-sha384-modp3072"}; !cmp.Equal(got, want) {
			t.Errorf("IKE proposals (-want +got):\n%s", cmp.Diff(want, got))
		}
		esp := conn.Section("children").Section("gre").List("esp_proposals")
		if want := []string{"aes256gcm16-modp3072"}; !cmp.Equal(esp, want) {
			t.Errorf("ESP proposals (-want +got):\n%s", cmp.Diff(want, esp))
		}
	})
}

// TestMessagesMarkNAT: with Config.MarkNAT the NAT tunnel-mode children
// (the responder's gre-nat, a natted peer's connection) get marks of their
// own; transport-mode children and a tunnel towards a public peer do not.
func TestMessagesMarkNAT(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cfg := pskConfig("192.0.2.50")
		cfg.NATInnerPrefixes = []netip.Prefix{netip.MustParsePrefix("172.16.0.0/12")}
		cfg.MarkNAT = true
		h := newHarness(t, cfg, []ipsec.Peer{plainHub, nattedPeer})
		h.waitCmd("initiate to the hub", isCmd("initiate", "ike", "dmvpn-peer-hub"))
		h.waitReconciled()
		var loads []vicitest.Command
		for _, c := range h.srv.Commands() {
			if c.Name == "load-conn" {
				loads = append(loads, c)
			}
		}
		golden.File(t, "psk-marknat.golden", renderCommands(loads))
	})
}
