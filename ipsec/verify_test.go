package ipsec_test

import (
	"context"
	"net/netip"
	"path/filepath"
	"slices"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/strongswan/govici/vici"

	"github.com/dmvpnd/dmvpnd/ipsec"
	"github.com/dmvpnd/dmvpnd/ipsec/vicitest"
)

// respondPeer is a plain peer this node only responds to, so that no
// initiation timer runs beside the verification period.
var respondPeer = ipsec.Peer{Name: "s9", RemoteNBMA: netip.MustParseAddr("198.51.100.9")}

// meddler is another VICI client of the same charon (swanctl, an
// operator, strongswan.service's ExecReload).
type meddler struct {
	t *testing.T
	s *vici.Session
}

func newMeddler(t *testing.T, srv *vicitest.Server) *meddler {
	t.Helper()
	return &meddler{t: t, s: vicitest.Connect(t, srv)}
}

func (m *meddler) call(cmd string, kv ...string) *vici.Message {
	m.t.Helper()
	in := vici.NewMessage()
	for i := 0; i+1 < len(kv); i += 2 {
		if err := in.Set(kv[i], kv[i+1]); err != nil {
			m.t.Fatal(err)
		}
	}
	resp, err := m.s.Call(context.Background(), cmd, in)
	if err != nil {
		m.t.Fatalf("%s %v: %v", cmd, kv, err)
	}
	return resp
}

// loadAllEmpty does what `swanctl --load-all` does with an empty
// swanctl.conf (strongSwan 5.9.8, as observed against charon): every
// shared key, private key and connection charon lists is unloaded.
// Certificates stay unless --clear is given (then clear-creds).
func (m *meddler) loadAllEmpty(clear bool) {
	if clear {
		m.call("clear-creds")
	}
	for _, id := range m.list("get-shared", "keys") {
		m.call("unload-shared", "id", id)
	}
	for _, id := range m.list("get-keys", "keys") {
		m.call("unload-key", "id", id)
	}
	for _, c := range m.list("get-conns", "conns") {
		m.call("unload-conn", "name", c)
	}
}

func (m *meddler) list(cmd, key string) []string {
	l, _ := m.call(cmd).Get(key).([]string)
	return l
}

func x509Config(local string) ipsec.Config {
	dir := filepath.Join("testdata", "x509")
	return ipsec.Config{
		LocalNBMA: netip.MustParseAddr(local),
		Auth: ipsec.Auth{Method: ipsec.AuthX509, CAFile: filepath.Join(dir, "ca.pem"),
			CertFile: filepath.Join(dir, "cert.pem"), KeyFile: filepath.Join(dir, "key.pem")},
	}
}

// TestVerifyRepairs: whatever another VICI client removes or replaces of
// what the Manager loaded is loaded again within one VerifyInterval, each
// repair counted; nothing is reloaded while charon holds it all.
func TestVerifyRepairs(t *testing.T) {
	const period = 10 * time.Second
	allConns := []string{"dmvpn-peer-172.16.0.2", "dmvpn-peer-s9", "dmvpn-responder"}
	for _, tc := range []struct {
		name   string
		cfg    ipsec.Config
		tamper func(m *meddler)
		// want: repaired connections and credentials, and the reload
		// commands (name and, for load-conn, the connection) after it.
		conns, creds uint64
		reloads      []string
	}{
		{name: "untouched", cfg: pskConfig("192.0.2.50"), tamper: func(*meddler) {}},
		{name: "unload-conn", cfg: pskConfig("192.0.2.50"),
			tamper: func(m *meddler) { m.call("unload-conn", "name", "dmvpn-peer-s9") },
			conns:  1, reloads: []string{"load-conn dmvpn-peer-s9"}},
		{name: "conn replaced under the same name", cfg: pskConfig("192.0.2.50"),
			tamper: func(m *meddler) {
				c := vici.NewMessage()
				_ = c.Set("remote_addrs", []string{"203.0.113.66"})
				_ = c.Set("children", vici.NewMessage())
				in := vici.NewMessage()
				_ = in.Set("dmvpn-peer-s9", c)
				if _, err := m.s.Call(context.Background(), "load-conn", in); err != nil {
					m.t.Fatal(err)
				}
			},
			conns: 1, reloads: []string{"load-conn dmvpn-peer-s9"}},
		{name: "unload-shared", cfg: pskConfig("192.0.2.50"),
			tamper: func(m *meddler) { m.call("unload-shared", "id", "dmvpn-psk") },
			creds:  1, reloads: []string{"load-shared"}},
		{name: "swanctl --load-all, empty swanctl.conf (psk)", cfg: pskConfig("192.0.2.50"),
			tamper: func(m *meddler) { m.loadAllEmpty(false) },
			conns:  3, creds: 1,
			reloads: []string{"load-shared", "load-conn dmvpn-responder", "load-conn dmvpn-peer-172.16.0.2", "load-conn dmvpn-peer-s9"}},
		{name: "swanctl --load-all, empty swanctl.conf (x509)", cfg: x509Config("192.0.2.50"),
			tamper: func(m *meddler) { m.loadAllEmpty(false) },
			conns:  3, creds: 1,
			reloads: []string{"load-cert", "load-cert", "load-key", "load-conn dmvpn-responder", "load-conn dmvpn-peer-172.16.0.2", "load-conn dmvpn-peer-s9"}},
		{name: "swanctl --load-all --clear (x509)", cfg: x509Config("192.0.2.50"),
			tamper: func(m *meddler) { m.loadAllEmpty(true) },
			conns:  3, creds: 3, // key, CA, certificate
			reloads: []string{"load-cert", "load-cert", "load-key", "load-conn dmvpn-responder", "load-conn dmvpn-peer-172.16.0.2", "load-conn dmvpn-peer-s9"}},
	} {
		syncRun(t, tc.name, func(t *testing.T) {
			cfg := tc.cfg
			cfg.VerifyInterval = period
			h := newHarness(t, cfg, []ipsec.Peer{nattedPeer, respondPeer})
			// Idle: connected, loaded, verified once, waiting for the period.
			synctest.Wait()
			if st := h.m.State(); st.RepairedConns != 0 || st.RepairedCreds != 0 {
				t.Fatalf("repairs right after connecting: %d connections, %d credentials", st.RepairedConns, st.RepairedCreds)
			}
			tc.tamper(newMeddler(t, h.srv))
			h.srv.ResetCommands()

			// Just before the period (from the connection, at the
			// bubble's start) nothing is due; at it, verify runs, and the
			// reconcile after it is done once the bubble is idle.
			h.after(period-time.Since(t0), "verification", func() bool { return h.count(isCmd("list-conns")) > 0 })
			var got []string
			for _, c := range h.srv.Commands() {
				switch c.Name {
				case "load-conn":
					got = append(got, c.Name+" "+c.Message.Keys()[0])
				case "load-shared", "load-key", "load-cert", "unload-conn", "initiate", "terminate":
					got = append(got, c.Name)
				}
			}
			if diff := cmp.Diff(tc.reloads, got); diff != "" {
				t.Errorf("commands after the period (-want +got):\n%s\nall commands:\n%s", diff, renderCommands(h.srv.Commands()))
			}
			st := h.m.State()
			if st.RepairedConns != tc.conns || st.RepairedCreds != tc.creds {
				t.Errorf("repairs: %d connections, %d credentials; want %d, %d", st.RepairedConns, st.RepairedCreds, tc.conns, tc.creds)
			}
			if got := h.srv.Conns(); !slices.Equal(got, allConns) {
				t.Errorf("charon's connections %v, want %v", got, allConns)
			}
			if cfg.Auth.Method == ipsec.AuthPSK && !slices.Contains(h.srv.Shared(), "dmvpn-psk") {
				t.Errorf("charon's shared keys %v lack dmvpn-psk", h.srv.Shared())
			}
			if n := h.logs.FilterMessageSnippet("reloading").Len(); (n > 0) != (tc.conns+tc.creds > 0) {
				t.Errorf("%d warnings about reloading for %d repairs", n, tc.conns+tc.creds)
			}
			// Repaired means repaired: the next period finds nothing to do.
			h.srv.ResetCommands()
			h.advance(period)
			h.waitCmd("second verification", isCmd("list-conns"))
			if st2 := h.m.State(); st2.RepairedConns != st.RepairedConns || st2.RepairedCreds != st.RepairedCreds {
				t.Errorf("second period repaired again: %+v", st2)
			}
		})
	}
}

// TestVerifyTracksLoads: a peer added or removed after the verification
// is not reported as a repair at the next one.
func TestVerifyTracksLoads(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const period = 10 * time.Second
		cfg := pskConfig("192.0.2.50")
		cfg.VerifyInterval = period
		h := newHarness(t, cfg, []ipsec.Peer{nattedPeer, respondPeer})
		synctest.Wait() // connected, loaded, verified once
		if err := h.m.SetPeers([]ipsec.Peer{respondPeer, {Name: "s10", RemoteNBMA: netip.MustParseAddr("198.51.100.10")}}); err != nil {
			t.Fatal(err)
		}
		h.waitCmd("load s10", func(c vicitest.Command) bool { return c.Name == "load-conn" && c.Message.Keys()[0] == "dmvpn-peer-s10" })
		h.waitCmd("unload natted peer", isCmd("unload-conn", "name", "dmvpn-peer-172.16.0.2"))
		h.srv.ResetCommands()
		h.advance(period)
		h.waitCmd("verification", isCmd("get-shared"))
		if st := h.m.State(); st.RepairedConns != 0 || st.RepairedCreds != 0 {
			t.Errorf("repairs after SetPeers: %+v", st)
		}
		if n := h.count(isCmd("load-conn")); n != 0 {
			t.Errorf("%d load-conn at verification:\n%s", n, renderCommands(h.srv.Commands()))
		}
	})
}
