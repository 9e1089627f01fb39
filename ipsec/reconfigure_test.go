package ipsec_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"testing/synctest"

	"github.com/google/go-cmp/cmp"

	"github.com/dmvpnd/dmvpnd/ipsec"
	"github.com/dmvpnd/dmvpnd/ipsec/vicitest"
)

// TestSetCredentialsRotatesPSKAndProposals: a PSK rotation and new
// proposals reach charon over VICI (load-shared with the same id replaces
// the key; the connections are loaded again with the new proposals) while
// the established SA is neither terminated nor re-initiated: new SAs use
// the new material, the old one keeps working until it rekeys.
func TestSetCredentialsRotatesPSKAndProposals(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, pskConfig("192.0.2.50"), []ipsec.Peer{plainHub})
		h.waitCmd("initiate", isCmd("initiate", "ike", "dmvpn-peer-hub"))
		h.srv.Emit("ike-updown", vicitest.IKEUpdown(true, hubSA(1, true)))
		h.srv.Emit("child-updown", vicitest.ChildUpdown(true, hubSA(1, true, greChild(2, "INSTALLED"))))
		h.waitEvent("hub up", func(e ipsec.Event) bool { return e.Peer == "hub" && e.Status == ipsec.StatusUp })
		first := h.count(isCmd("load-shared"))
		h.srv.ResetCommands()

		const newPSK = "a new key for the whole DMVPN 2026"
		ike, esp := []string{"aes128gcm16-prfsha256-ecp256"}, []string{"aes128gcm16-ecp256"}
		if err := h.m.SetCredentials(ipsec.Auth{Method: ipsec.AuthPSK, PSK: ipsec.NewSecret(newPSK)}, ike, esp); err != nil {
			t.Fatal(err)
		}
		shared := h.waitCmd("load-shared with the new key", isCmd("load-shared", "data", newPSK))
		if first != 1 || shared.Message.String("id") == "" {
			t.Errorf("load-shared before %d, id %q; want one load and a stable id so the key is replaced", first, shared.Message.String("id"))
		}
		for _, conn := range []string{"dmvpn-peer-hub", "dmvpn-responder"} {
			c := h.waitCmd("reload of "+conn, func(c vicitest.Command) bool { return c.Name == "load-conn" && c.Message.Section(conn) != nil })
			s := c.Message.Section(conn)
			if got := s.List("proposals"); !cmp.Equal(got, ike) {
				t.Errorf("%s IKE proposals %v, want %v", conn, got, ike)
			}
			if got := s.Section("children").Section("gre").List("esp_proposals"); !cmp.Equal(got, esp) {
				t.Errorf("%s ESP proposals %v, want %v", conn, got, esp)
			}
		}
		for _, c := range h.srv.Commands() {
			if c.Name == "terminate" || c.Name == "initiate" || c.Name == "unload-conn" {
				t.Errorf("%s after a credential change: established SAs must stay\n%s", c.Name, renderCommands(h.srv.Commands()))
			}
		}
		if st := h.m.State(); len(st.Peers) != 1 || st.Peers[0].Status != ipsec.StatusUp {
			t.Errorf("state after the change: %+v, want hub still up", st.Peers)
		}
		for _, e := range h.logs.All() {
			if strings.Contains(e.Message+fmt.Sprint(e.ContextMap()), newPSK) {
				t.Errorf("log %q reveals the key", e.Message)
			}
		}
	})
}

// TestSetCredentialsRefusesWhatNeedsARestart: the method cannot change and
// an unreadable certificate is refused before anything is sent.
func TestSetCredentialsRefusesWhatNeedsARestart(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, pskConfig("192.0.2.50"), nil)
		h.waitCmd("responder", isCmd("load-conn"))
		err := h.m.SetCredentials(ipsec.Auth{Method: ipsec.AuthX509, CertFile: "/nonexistent/c.pem", KeyFile: "/k", CAFile: "/ca"}, nil, nil)
		if !errors.Is(err, ipsec.ErrInvalidConfig) || !strings.Contains(err.Error(), "authentication method cannot change") {
			t.Errorf("SetCredentials(x509) on a PSK manager = %v", err)
		}
		if err := h.m.SetCredentials(ipsec.Auth{Method: ipsec.AuthPSK}, nil, nil); !errors.Is(err, ipsec.ErrInvalidConfig) {
			t.Errorf("SetCredentials without a key = %v", err)
		}
		if err := h.m.SetCredentials(ipsec.Auth{Method: ipsec.AuthPSK, PSK: ipsec.NewSecret("k")}, []string{"bad proposal"}, nil); !errors.Is(err, ipsec.ErrInvalidConfig) {
			t.Errorf("SetCredentials with a bad proposal = %v", err)
		}
	})
}
