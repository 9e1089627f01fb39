package config

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/dmvpnd/dmvpnd/ipsec"
)

const diffBase = `
tunnel: {local_nbma: 192.0.2.11, address: 10.0.0.11/24}
nhrp:
  role: spoke
  network_id: 1
  holding_time: 600s
  authentication: secret1
  shortcut: true
  nhs: [{nbma: 192.0.2.1, protocol: 10.0.0.1}]
ipsec:
  enabled: true
  auth: {method: psk, psk: key-one}
bgp:
  enabled: true
  asn: 65000
  neighbors: [{address: 10.0.0.1}]
  prefixes: [192.168.11.0/24]
`

func mustParse(t *testing.T, y string) *Config {
	t.Helper()
	c, err := Parse([]byte(y))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestDiff(t *testing.T) {
	tests := []struct {
		name string
		edit func(c *Config)
		want []string
	}{
		{"nothing", func(*Config) {}, nil},
		{"nhrp settings are live", func(c *Config) {
			c.NHRP.HoldingTime = 300 * time.Second
			c.NHRP.Limits.CacheSize = 500
			c.NHRP.Limits.PerSourceRate = 2.5
			c.NHRP.NHS = []NHS{{NBMA: addr("192.0.2.2")}, {NBMA: addr("192.0.2.3"), Priority: 5}}
		}, []string{
			"nhrp.holding_time: 600s -> 300s (live)",
			"nhrp.nhs[0].nbma: 192.0.2.1 -> 192.0.2.2 (live)",
			"nhrp.nhs[0].protocol: 10.0.0.1 -> dynamic (live)",
			"nhrp.nhs[1].nbma: (none) -> 192.0.2.3 (live)",
			"nhrp.nhs[1].protocol: (none) -> dynamic (live)",
			"nhrp.nhs[1].priority: (none) -> 5 (live)",
			"nhrp.limits.cache_size: 10000 -> 500 (live)",
			"nhrp.limits.per_source_rate: 10 -> 2.5 (live)",
		}},
		{"secrets show as changed", func(c *Config) {
			c.NHRP.Authentication = ipsec.NewSecret("secret2")
			c.IPsec.Auth.PSK = ipsec.NewSecret("key-two")
		}, []string{
			"nhrp.authentication: changed (live)",
			"ipsec.auth.psk: changed (live)",
		}},
		{"restart-only keys say why", func(c *Config) {
			c.Tunnel.Name = "gre2"
			c.NHRP.Role = RoleHub
			c.IPsec.ViciSocket = "/run/charon-dmvpn.vici"
			c.BGP.ASN = 65001
			c.BGP.GracefulRestart.Enabled = true
			c.Log.Format = LogConsole
			c.Log.Level = LogDebug
		}, []string{
			"tunnel.name: gre1 -> gre2 (restart: the tunnel interface is created at start)",
			"nhrp.role: spoke -> hub (restart: a hub and a spoke run different components)",
			"ipsec.vici_socket: /run/dmvpnd-charon/charon.vici -> /run/charon-dmvpn.vici (restart: charon's socket is dialled at start)",
			"bgp.asn: 65000 -> 65001 (restart: the local AS is in every OPEN and set when the BGP speaker starts)",
			"bgp.graceful_restart.enabled: false -> true (restart: graceful restart is in every OPEN and set when the BGP speaker starts)",
			"log.level: info -> debug (live)",
			"log.format: json -> console (restart: the logger is built at start)",
		}},
		{"bgp prefixes and tunnel mtu, key and host address are live", func(c *Config) {
			c.BGP.Prefixes = []netip.Prefix{pfx("192.168.11.0/24"), pfx("192.168.12.0/24")}
			c.Tunnel.MTU = 1380
			c.Tunnel.Key = 7
			c.Tunnel.HostAddress = true
		}, []string{
			"tunnel.key: 0 -> 7 (live)",
			"tunnel.mtu: 1400 -> 1380 (live)",
			"tunnel.host_address: false -> true (live)",
			"bgp.prefixes: [192.168.11.0/24] -> [192.168.11.0/24, 192.168.12.0/24] (live)",
		}},
		{"a disabled section's keys are inert", func(c *Config) {
			c.BGP.Enabled = false
			c.IPsec.Proposals.IKE = []string{"aes128-sha256-modp3072"}
		}, []string{
			"ipsec.proposals.ike: [] -> [aes128-sha256-modp3072] (live)",
			"bgp.enabled: true -> false (restart: the BGP speaker is started, or not, at start)",
		}},
		{"bgp neighbors, import policy and limits are live", func(c *Config) {
			c.BGP.Neighbors = []Neighbor{{Address: addr("10.0.0.1")}, {Address: addr("10.0.0.2"), ASN: 65002}}
			c.BGP.LANSpace = []netip.Prefix{pfx("10.0.0.0/8")}
			c.BGP.AcceptDefault = true
			c.BGP.MaxPrefixes = 100
			c.BGP.Password = ipsec.NewSecret("md5")
			c.BGP.Dynamic.Limit = 10
			c.BGP.Timers = BGPTimers{Hold: 30 * time.Second, Keepalive: 10 * time.Second}
		}, []string{
			"bgp.neighbors[1].address: (none) -> 10.0.0.2 (live)",
			"bgp.neighbors[1].asn: (none) -> 65002 (live)",
			"bgp.dynamic.limit: 0 -> 10 (live)",
			"bgp.lan_space: [] -> [10.0.0.0/8] (live)",
			"bgp.accept_default: false -> true (live)",
			"bgp.max_prefixes: 0 -> 100 (live)",
			"bgp.password: changed (live)",
			"bgp.timers.hold: 90s -> 30s (live)",
			"bgp.timers.keepalive: 30s -> 10s (live)",
		}},
		{"a certificate replaced under the same name", func(c *Config) {
			c.Files.Cert = "new"
		}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			old := mustParse(t, diffBase)
			next := mustParse(t, diffBase)
			tt.edit(next)
			var got []string
			for _, c := range Diff(old, next) {
				got = append(got, c.String())
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Diff (-want +got):\n%s", diff)
			}
		})
	}
}

// TestDiffFileContent: a certificate or key replaced under the same name
// is a change (ReadSecretFiles keeps the digests); the key's content is
// never shown.
func TestDiffFileContent(t *testing.T) {
	y := strings.Replace(diffBase, "{method: psk, psk: key-one}", "{method: x509, cert: /c.pem, key: /k.pem, ca: /ca.pem}", 1)
	files := map[string]string{"/c.pem": "cert", "/k.pem": "key", "/ca.pem": "ca"}
	read := func(p string) ([]byte, error) { return []byte(files[p]), nil }
	old := mustParse(t, y)
	if err := old.ReadSecretFiles(read); err != nil {
		t.Fatal(err)
	}
	files["/c.pem"], files["/k.pem"] = "cert2", "key2"
	next := mustParse(t, strings.Replace(y, "ca: /ca.pem", "ca: /ca2.pem", 1))
	files["/ca2.pem"] = "ca"
	if err := next.ReadSecretFiles(read); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, c := range Diff(old, next) {
		got = append(got, c.String())
	}
	want := []string{
		"ipsec.auth.cert: /c.pem -> /c.pem (new content) (live)",
		"ipsec.auth.key: /k.pem -> /k.pem (new content) (live)",
		"ipsec.auth.ca: /ca.pem -> /ca2.pem (live)",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Diff (-want +got):\n%s", diff)
	}
}

// TestEffective: a reload puts next's live keys in effect and keeps the
// running value of every restart-only key, so that the next Diff still
// reports them; live keys that contradict the kept ones are refused.
func TestEffective(t *testing.T) {
	old := mustParse(t, diffBase)
	next := mustParse(t, strings.NewReplacer("holding_time: 600s", "holding_time: 300s",
		"local_nbma: 192.0.2.11", "local_nbma: 192.0.2.12", "asn: 65000", "asn: 65001").Replace(diffBase))
	eff, err := Effective(old, next)
	if err != nil {
		t.Fatal(err)
	}
	if eff.NHRP.HoldingTime != 300*time.Second || eff.Tunnel.LocalNBMA != old.Tunnel.LocalNBMA || eff.BGP.ASN != 65000 {
		t.Errorf("Effective: holding %v, local_nbma %v, asn %v; want 300s, the running NBMA and ASN",
			eff.NHRP.HoldingTime, eff.Tunnel.LocalNBMA, eff.BGP.ASN)
	}
	var got []string
	for _, c := range Diff(eff, next) {
		got = append(got, c.String())
	}
	if len(got) != 2 || !strings.HasPrefix(got[0], "tunnel.local_nbma") || !strings.HasPrefix(got[1], "bgp.asn") {
		t.Errorf("Diff(effective, file) = %q, want the two restart-only keys still pending", got)
	}

	hub := mustParse(t, strings.NewReplacer("role: spoke", "role: hub", "shortcut: true", "redirect: true").Replace(diffBase))
	if _, err := Effective(old, hub); err == nil || !strings.Contains(err.Error(), "nhrp.redirect: only a hub sends redirects") {
		t.Errorf("Effective(spoke, hub file) = %v, want the redirect refused on the running spoke", err)
	}
}
