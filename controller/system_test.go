package controller

import (
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"go.uber.org/zap"

	"github.com/dmvpnd/dmvpnd/controller/metrics"
	"github.com/dmvpnd/dmvpnd/ipsec"
)

// TestNewSystem builds controllers over the real kernel, strongSwan and
// GoBGP sides. NewSystem touches nothing (it only opens a netlink
// handle), so it runs without privileges; what a configuration asks for
// must be built, and what cannot be built is refused at once.
func TestNewSystem(t *testing.T) {
	hub := hubYAML("198.51.100.1", "10.0.0.1/24")
	for _, tc := range []struct {
		name    string
		yaml    string
		wantErr string
		// wantMetrics are metric families that only exist when NewSystem
		// built the matching part (multicast capture, GRE guard with IPsec).
		wantMetrics []string
	}{
		{name: "hub with IPsec, BGP and multicast",
			yaml: mcastHubYAML + `ipsec: {enabled: true, auth: {method: psk, psk: one-secret}}
bgp: {enabled: true, asn: 65000}
control: {group: root}
`,
			wantMetrics: []string{"dmvpnd_ipsec_cleartext_gre_dropped_total", "dmvpnd_multicast_packets_total"}},
		{name: "plain spoke", yaml: spokeYAML("198.51.100.2", "10.0.0.2/24", "198.51.100.1", "10.0.0.1")},
		{name: "certificate missing",
			yaml:    hub + "ipsec: {enabled: true, auth: {method: x509, cert: /nonexistent/cert.pem, key: /nonexistent/key.pem, ca: /nonexistent/ca.pem}}\n",
			wantErr: "ipsec: certificate"},
		{name: "control group unknown",
			yaml:    hub + "bgp: {enabled: true, asn: 65000}\ncontrol: {group: dmvpnd-no-such-group}\n",
			wantErr: "controller: control.group"},
		{name: "underlay device missing",
			yaml: `
tunnel: {name: gre1, key: 42, underlay_device: nosuchdev0, address: 10.0.0.1/24}
nhrp: {role: hub, network_id: 1, holding_time: 600s}
`,
			wantErr: "controller: tunnel.underlay_device"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := metrics.New("test")
			ctl, err := NewSystem(parseConfig(t, tc.yaml), nil, m, "test")
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("NewSystem = %v; want an error containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || ctl == nil {
				t.Fatalf("NewSystem = %v, %v", ctl, err)
			}
			names := m.Names()
			for _, n := range []string{"dmvpnd_ipsec_cleartext_gre_dropped_total", "dmvpnd_multicast_packets_total"} {
				if got, want := slices.Contains(names, n), slices.Contains(tc.wantMetrics, n); got != want {
					t.Errorf("metric family %s registered: %v, want %v", n, got, want)
				}
			}
		})
	}
}

// TestIPsecConfigX509: with certificates the IPsec side gets the files and,
// with bind_tunnel_address, presents the tunnel address as its identity and
// binds peers' certified identities; a pre-shared key carries no identity.
func TestIPsecConfigX509(t *testing.T) {
	base := hubYAML("198.51.100.1", "10.0.0.1/24")
	nbma := netip.MustParseAddr("198.51.100.1")
	for _, tc := range []struct {
		name, ipsec string
		want        ipsec.Config
	}{
		{"x509 bound", "ipsec: {enabled: true, auth: {method: x509, cert: /c.pem, key: /k.pem, ca: /ca.pem, bind_tunnel_address: true}}\n",
			ipsec.Config{Auth: ipsec.Auth{Method: ipsec.AuthX509, CertFile: "/c.pem", KeyFile: "/k.pem", CAFile: "/ca.pem"},
				LocalID: "10.0.0.1", CertifiedIdentities: true}},
		{"x509", "ipsec: {enabled: true, auth: {method: x509, cert: /c.pem, key: /k.pem, ca: /ca.pem}}\n",
			ipsec.Config{Auth: ipsec.Auth{Method: ipsec.AuthX509, CertFile: "/c.pem", KeyFile: "/k.pem", CAFile: "/ca.pem"}}},
		{"psk", "ipsec: {enabled: true, auth: {method: psk, psk: one-secret}}\n",
			ipsec.Config{Auth: ipsec.Auth{Method: ipsec.AuthPSK}}},
	} {
		got := ipsecConfig(parseConfig(t, base+tc.ipsec), nbma, zap.NewNop())
		tc.want.LocalNBMA, tc.want.NATInnerPrefixes, tc.want.MarkNAT = nbma, natInnerPrefixes(), true
		tc.want.AdoptGrace = adoptGrace // SAs a restart left are kept as long as the kernel state
		opts := cmp.Options{cmpopts.IgnoreFields(ipsec.Config{}, "Logger", "SocketPath", "IKEProposals", "ESPProposals"),
			cmpopts.IgnoreFields(ipsec.Auth{}, "PSK"), cmpopts.EquateComparable(netip.Addr{}, netip.Prefix{})}
		if d := cmp.Diff(tc.want, got, opts); d != "" {
			t.Errorf("%s: ipsec config (-want +got):\n%s", tc.name, d)
		}
		if psk := got.Auth.PSK.IsZero(); psk != (tc.want.Auth.Method == ipsec.AuthX509) {
			t.Errorf("%s: PSK set = %v with method %v", tc.name, !psk, got.Auth.Method)
		}
	}
}
