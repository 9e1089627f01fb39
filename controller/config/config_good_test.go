package config

import (
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/dmvpnd/dmvpnd/ipsec"
)

func pfx(s string) netip.Prefix { return netip.MustParsePrefix(s) }
func addr(s string) netip.Addr  { return netip.MustParseAddr(s) }

// defaultsFor returns the configuration every file starts from.
func defaultsFor() Config {
	return Config{
		Tunnel: Tunnel{Name: "gre1", MTU: 1400},
		NHRP: NHRP{
			HoldingTime:  7200 * time.Second,
			Registration: RegistrationUnique,
			Limits: Limits{CacheSize: 10000, Pending: 256, PerSourceRate: 10, AddressesPerPeer: 1,
				MaxHoldingTime: 7200 * time.Second, PerSourceCache: 64},
			Multicast: Multicast{Rate: 100, Burst: 200},
		},
		IPsec: IPsec{
			ViciSocket: "/run/dmvpnd-charon/charon.vici", TunnelSourceBinding: "auto",
			NATAliasPrefix: netip.MustParsePrefix("198.18.0.0/15"),
		},
		BGP: BGP{
			GRPCListen: "unix:/run/dmvpnd/gobgp.sock", MaxPrefixAction: "teardown",
			GracefulRestart: GracefulRestart{RestartTime: 120 * time.Second, StaleTime: 360 * time.Second},
			Timers:          BGPTimers{Hold: 90 * time.Second},
		},
		Control: Control{Socket: "/run/dmvpnd/dmvpnd.sock"},
		Metrics: Metrics{Listen: "127.0.0.1:9474"},
		Log:     Log{Level: LogInfo, Format: LogJSON},
	}
}

func TestParseGood(t *testing.T) {
	hub := defaultsFor()
	hub.Tunnel = Tunnel{Name: "gre1", Key: 42, LocalNBMA: addr("192.0.2.1"), Address: pfx("10.0.0.1/24"), MTU: 1400}
	hub.NHRP.Role = RoleHub
	hub.NHRP.NetworkID = 1
	hub.NHRP.HoldingTime = 600 * time.Second
	hub.NHRP.Limits.MaxHoldingTime = 600 * time.Second // follows holding_time
	hub.NHRP.Authentication = ipsec.NewSecret("dmvpn")
	hub.NHRP.Redirect = true
	hub.IPsec.Enabled = true
	hub.IPsec.Auth = IPsecAuth{Method: AuthPSK, PSKFile: "/etc/dmvpnd/psk"}
	hub.BGP.Enabled, hub.BGP.ASN, hub.BGP.RouterID = true, 65000, addr("10.0.0.1")
	hub.BGP.Listen = netip.MustParseAddrPort("10.0.0.1:179")
	hub.BGP.Dynamic = DynamicNeighbors{Prefix: pfx("10.0.0.0/24")}
	hub.BGP.Timers.Keepalive = 30 * time.Second // follows the hold time (90s)
	hub.BGP.Prefixes = []netip.Prefix{pfx("192.168.0.0/24")}
	hub.BGP.HubMode = HubSummary
	hub.BGP.Summaries = []netip.Prefix{pfx("192.168.0.0/16")}
	hub.Control.Group = "dmvpn"

	spoke := defaultsFor()
	spoke.Tunnel = Tunnel{Name: "tun0", UnderlayDevice: "eth0", Address: pfx("10.0.0.11/24"), MTU: 1380}
	spoke.NHRP.Role = RoleSpoke
	spoke.NHRP.NetworkID = 7
	spoke.NHRP.Registration = RegistrationNoUnique
	spoke.NHRP.Shortcut = true
	spoke.NHRP.NHS = []NHS{
		{NBMA: addr("192.0.2.1"), Protocol: NHSProtocol{Addr: addr("10.0.0.1")}},
		{NBMA: addr("198.51.100.1"), Priority: 10},
	}
	spoke.IPsec.Enabled = true
	spoke.IPsec.Auth = IPsecAuth{Method: AuthX509, Cert: "/etc/dmvpnd/spoke.pem", Key: "/etc/dmvpnd/spoke.key", CA: "/etc/dmvpnd/ca.pem"}
	spoke.IPsec.Proposals.ESP = []string{"aes128gcm16", "aes256gcm16"}
	spoke.BGP.Enabled, spoke.BGP.ASN, spoke.BGP.RouterID = true, 65000, addr("10.0.0.11")
	spoke.BGP.Neighbors = []Neighbor{{Address: addr("10.0.0.1")}, {Address: addr("10.0.0.2"), ASN: 65001}}
	spoke.BGP.Prefixes = []netip.Prefix{pfx("192.168.11.0/24")}
	spoke.BGP.Timers = BGPTimers{Hold: 30 * time.Second, Keepalive: 10 * time.Second}
	spoke.Metrics.Listen = ""
	spoke.Log = Log{Level: LogDebug, Format: LogConsole}

	tests := []struct {
		name string
		yaml string
		want Config
	}{
		{"hub", `
tunnel: {key: 42, local_nbma: 192.0.2.1, address: 10.0.0.1/24}
nhrp:
  role: hub
  network_id: 1
  holding_time: 10m
  authentication: dmvpn
  redirect: true
ipsec:
  enabled: true
  auth: {method: psk, psk_file: /etc/dmvpnd/psk}
bgp:
  enabled: true
  asn: 65000
  dynamic: {prefix: 10.0.0.0/24}
  prefixes: [192.168.0.0/24]
  hub_mode: summary
  summaries: [192.168.0.0/16]
control: {group: dmvpn}
`, hub},
		{"spoke", `
tunnel: {name: tun0, underlay_device: eth0, address: 10.0.0.11/24, mtu: 1380}
nhrp:
  role: spoke
  network_id: 7
  registration: no-unique
  shortcut: true
  nhs:
    - {nbma: 192.0.2.1, protocol: 10.0.0.1}
    - {nbma: 198.51.100.1, protocol: dynamic, priority: 10}
ipsec:
  enabled: true
  auth: {method: x509, cert: /etc/dmvpnd/spoke.pem, key: /etc/dmvpnd/spoke.key, ca: /etc/dmvpnd/ca.pem}
  proposals: {esp: [aes128gcm16, aes256gcm16]}
bgp:
  enabled: true
  asn: 65000
  neighbors: [{address: 10.0.0.1}, {address: 10.0.0.2, asn: 65001}]
  prefixes: [192.168.11.0/24]
  timers: {keepalive: 10s, hold: 30s}
metrics: {listen: ""}
log: {level: debug, format: console}
`, spoke},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse([]byte(tt.yaml))
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if diff := cmp.Diff(tt.want, *got, cmp.Comparer(func(a, b netip.Addr) bool { return a == b }),
				cmp.Comparer(func(a, b netip.Prefix) bool { return a == b }),
				cmp.Comparer(func(a, b netip.AddrPort) bool { return a == b })); diff != "" {
				t.Errorf("config (-want +got):\n%s", diff)
			}
		})
	}
}

func TestEnvOverrides(t *testing.T) {
	t.Setenv("DMVPND_NHRP_HOLDING_TIME", "300s")
	t.Setenv("DMVPND_NHRP_AUTHENTICATION", "envpw")
	t.Setenv("DMVPND_TUNNEL_MTU", "1300")
	t.Setenv("DMVPND_IPSEC_PROPOSALS_ESP", "aes128gcm16,aes256gcm16")
	t.Setenv("DMVPND_BGP_ENABLED", "true")
	t.Setenv("DMVPND_BGP_ASN", "65010")
	t.Setenv("DMVPND_BGP_PREFIXES", "192.168.1.0/24,192.168.2.0/24")
	t.Setenv("DMVPND_LOG_LEVEL", "warn")
	path := filepath.Join(t.TempDir(), "dmvpnd.yml")
	if err := os.WriteFile(path, []byte(minimalHub), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := Load(path)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	type view struct {
		HoldingTime time.Duration
		Auth        string
		MTU         int
		ESP         []string
		ASN         uint32
		Prefixes    []string
		Level       LogLevel
	}
	got := view{c.NHRP.HoldingTime, c.NHRP.Authentication.Reveal(), c.Tunnel.MTU, c.IPsec.Proposals.ESP,
		c.BGP.ASN, nil, c.Log.Level}
	for _, p := range c.BGP.Prefixes {
		got.Prefixes = append(got.Prefixes, p.String())
	}
	want := view{300 * time.Second, "envpw", 1300, []string{"aes128gcm16", "aes256gcm16"},
		65010, []string{"192.168.1.0/24", "192.168.2.0/24"}, LogWarn}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("env overrides (-want +got):\n%s", diff)
	}
}

func TestEnvOverrideInvalid(t *testing.T) {
	t.Setenv("DMVPND_TUNNEL_KEY", "forty-two")
	t.Setenv("DMVPND_NHRP_REDIRECT", "maybe")
	_, err := Parse([]byte(minimalHub))
	want := "config: tunnel.key: \"forty-two\" is not a number\nconfig: nhrp.redirect: \"maybe\" is not a boolean (true or false)"
	if err == nil || err.Error() != want {
		t.Fatalf("err = %v, want %q", err, want)
	}
}

func TestEnvKeysCoverScalars(t *testing.T) {
	keys := map[string]bool{}
	for _, k := range EnvKeys() {
		keys[k] = true
	}
	for _, k := range []string{"tunnel.local_nbma", "nhrp.holding_time", "nhrp.limits.per_source_rate",
		"ipsec.auth.psk", "ipsec.proposals.ike", "bgp.dynamic.prefix", "bgp.summaries", "control.group", "log.level"} {
		if !keys[k] {
			t.Errorf("EnvKeys lacks %s", k)
		}
	}
	for _, k := range []string{"nhrp.nhs", "bgp.neighbors", "tunnel", "nhrp.limits"} {
		if keys[k] {
			t.Errorf("EnvKeys has non-scalar %s", k)
		}
	}
	all := strings.Join(Keys(), " ")
	if !strings.Contains(all, "nhrp.nhs[].nbma") || !strings.Contains(all, "bgp.neighbors[].asn") {
		t.Errorf("Keys lacks list element fields: %s", all)
	}
	if got := EnvName("nhrp.limits.cache_size"); got != "DMVPND_NHRP_LIMITS_CACHE_SIZE" {
		t.Errorf("EnvName = %s", got)
	}
}

func TestReadSecretFiles(t *testing.T) {
	dir := t.TempDir()
	psk := filepath.Join(dir, "psk")
	if err := os.WriteFile(psk, []byte("  topsecret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c := &Config{IPsec: IPsec{Enabled: true, Auth: IPsecAuth{Method: AuthPSK, PSKFile: psk}}}
	if err := c.ReadSecretFiles(nil); err != nil {
		t.Fatal(err)
	}
	if c.IPsec.Auth.PSK.Reveal() != "topsecret" {
		t.Errorf("PSK = %q", c.IPsec.Auth.PSK.Reveal())
	}
	c = &Config{IPsec: IPsec{Enabled: true, Auth: IPsecAuth{Method: AuthX509,
		Cert: filepath.Join(dir, "c.pem"), Key: psk, CA: filepath.Join(dir, "ca.pem")}}}
	err := c.ReadSecretFiles(nil)
	var paths []string
	for _, fe := range FieldErrors(err) {
		paths = append(paths, fe.Path)
	}
	if diff := cmp.Diff([]string{"ipsec.auth.cert", "ipsec.auth.ca"}, paths); diff != "" {
		t.Errorf("failing paths (-want +got):\n%s", diff)
	}

	// A PSK file holding Ansible Vault ciphertext (copied, not decrypted)
	// is refused, not taken as the key.
	if err := os.WriteFile(psk, []byte("$ANSIBLE_VAULT;1.1;AES256\n3365383039\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c = &Config{IPsec: IPsec{Enabled: true, Auth: IPsecAuth{Method: AuthPSK, PSKFile: psk}}}
	err = c.ReadSecretFiles(nil)
	want := "config: ipsec.auth.psk_file: " + psk + " holds Ansible Vault ciphertext, not the key (decrypt it when templating)"
	if err == nil || err.Error() != want || !c.IPsec.Auth.PSK.IsZero() {
		t.Errorf("vaulted PSK file: err %v, PSK set %v; want %q and no PSK", err, !c.IPsec.Auth.PSK.IsZero(), want)
	}
}
