package config

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// minimalSpoke is the smallest valid spoke; cases append whole sections.
const minimalSpoke = `
tunnel: {local_nbma: 192.0.2.10, address: 10.0.0.10/24}
nhrp:
  role: spoke
  network_id: 1
  nhs: [{nbma: 192.0.2.1, protocol: 10.0.0.1}]
`

const minimalHub = `
tunnel: {local_nbma: 192.0.2.1, address: 10.0.0.1/24}
nhrp: {role: hub, network_id: 1}
`

func TestParseBad(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		want []string
	}{
		{"unknown top-level key", minimalSpoke + "bogus: 1\n", []string{
			"config: bogus: unknown key"}},
		{"unknown nested keys", `
tunnel: {local_nbma: 192.0.2.10, address: 10.0.0.10/24, remote: 1.2.3.4}
nhrp:
  role: spoke
  network_id: 1
  holdtime: 600s
  nhs: [{nbma: 192.0.2.1, prio: 1}]
`, []string{
			"config: tunnel.remote: unknown key",
			"config: nhrp.nhs[0].prio: unknown key",
			"config: nhrp.holdtime: unknown key"}},
		{"bad NHS address", `
tunnel: {local_nbma: 192.0.2.10, address: 10.0.0.10/24}
nhrp:
  role: spoke
  network_id: 1
  nhs: [{nbma: 192.0.2.1}, {nbma: 300.1.1.1}]
`, []string{`config: nhrp.nhs[1].nbma: "300.1.1.1" is not an IPv4 or IPv6 address`}},
		{"bad NHS protocol", `
tunnel: {local_nbma: 192.0.2.10, address: 10.0.0.10/24}
nhrp: {role: spoke, network_id: 1, nhs: [{nbma: 192.0.2.1, protocol: auto}]}
`, []string{`config: nhrp.nhs[0].protocol: "auto" is neither "dynamic" nor an IPv4 or IPv6 address`}},
		{"NHS outside tunnel, duplicate, priority", `
tunnel: {local_nbma: 192.0.2.10, address: 10.0.0.10/24}
nhrp:
  role: spoke
  network_id: 1
  nhs:
    - {nbma: 192.0.2.1, protocol: 10.9.0.1}
    - {nbma: 192.0.2.1, protocol: 10.0.0.10, priority: 256}
`, []string{
			"config: nhrp.nhs[0].protocol: 10.9.0.1 is outside the tunnel prefix 10.0.0.0/24",
			"config: nhrp.nhs[1].nbma: 192.0.2.1 is already nhrp.nhs[0]",
			"config: nhrp.nhs[1].protocol: 10.0.0.10 is this node's own tunnel address",
			"config: nhrp.nhs[1].priority: 256 is out of range (0..255)"}},
		{"IPv6 NBMA", `
tunnel: {local_nbma: "2001:db8::1", address: 10.0.0.10/24}
nhrp: {role: spoke, network_id: 1, nhs: [{nbma: 192.0.2.1}]}
`, []string{"config: tunnel.local_nbma: 2001:db8::1 is not IPv4 (the GRE underlay is IPv4 only)"}},
		{"spoke without NHS", `
tunnel: {local_nbma: 192.0.2.10, address: 10.0.0.10/24}
nhrp: {role: spoke, network_id: 1}
`, []string{"config: nhrp.nhs: a spoke needs at least one NHS"}},
		{"missing everything", "log: {level: info}\n", []string{
			"config: tunnel: set local_nbma or underlay_device (or both)",
			"config: tunnel.address: required (this node's tunnel address with prefix length, like 10.0.0.1/24)",
			"config: nhrp.role: required (hub or spoke)",
			"config: nhrp.network_id: required (1..4294967295)"}},
		{"tunnel fields", `
tunnel: {name: averyveryverylongname, underlay_device: "eth 0", address: 10.0.0.0/24, mtu: 100}
nhrp: {role: hub, network_id: 1}
`, []string{
			`config: tunnel.name: "averyveryverylongname" is longer than 15 bytes`,
			`config: tunnel.underlay_device: "eth 0" is not a valid interface name`,
			"config: tunnel.address: 10.0.0.0/24 is the network or broadcast address of its prefix",
			"config: tunnel.mtu: 100 is out of range (576..9000)"}},
		{"tunnel address not a prefix", `
tunnel: {local_nbma: 192.0.2.1, address: 10.0.0.1}
nhrp: {role: hub, network_id: 1}
`, []string{`config: tunnel.address: "10.0.0.1" is not an address prefix (like 10.0.0.1/24)`}},
		{"host address without a tunnel prefix", `
tunnel: {local_nbma: 192.0.2.1, address: 10.0.0.1/32, host_address: true}
nhrp: {role: hub, network_id: 1}
`, []string{"config: tunnel.host_address: tunnel.address 10.0.0.1/32 has no tunnel prefix to route (give its prefix length, like 10.0.0.1/24)"}},
		{"tunnel key out of range", `
tunnel: {local_nbma: 192.0.2.1, address: 10.0.0.1/24, key: 4294967296}
nhrp: {role: hub, network_id: 1}
`, []string{"config: tunnel.key: 4294967296 is out of range (0..4294967295)"}},
		{"wrong shapes", `
tunnel: 5
nhrp: {role: spoke, network_id: one, nhs: 7, authentication: 12345678}
`, []string{
			"config: tunnel: expected a mapping, got number",
			`config: nhrp.network_id: "one" is not a number`,
			"config: nhrp.nhs: expected a list, got number",
			"config: nhrp.authentication: expected a string, got number (quote the value)"}},
		{"holding time without unit", `
tunnel: {local_nbma: 192.0.2.1, address: 10.0.0.1/24}
nhrp: {role: hub, network_id: 1, holding_time: 600}
`, []string{"config: nhrp.holding_time: 600 has no unit (write 600s)"}},
		{"holding time range", `
tunnel: {local_nbma: 192.0.2.1, address: 10.0.0.1/24}
nhrp: {role: hub, network_id: 1, holding_time: 20h}
`, []string{"config: nhrp.holding_time: 20h0m0s is out of range (1s..65535s)"}},
		{"holding time fraction", `
tunnel: {local_nbma: 192.0.2.1, address: 10.0.0.1/24}
nhrp: {role: hub, network_id: 1, holding_time: 1500ms}
`, []string{"config: nhrp.holding_time: 1.5s is not a whole number of seconds"}},
		{"nhrp enums and flags", `
tunnel: {local_nbma: 192.0.2.1, address: 10.0.0.1/24}
nhrp: {role: hub, network_id: 1, registration: sometimes, shortcut: true, authentication: "123456789"}
`, []string{
			`config: nhrp.registration: "sometimes" is not unique or no-unique`,
			"config: nhrp.authentication: is 9 bytes long; the NHRP cleartext password is at most 8",
			"config: nhrp.shortcut: only a spoke installs shortcuts (role is hub)"}},
		{"role and redirect", `
tunnel: {local_nbma: 192.0.2.10, address: 10.0.0.10/24}
nhrp: {role: router, network_id: 1, redirect: yes}
`, []string{`config: nhrp.redirect: "yes" is not a boolean (true or false)`}},
		{"unknown role", `
tunnel: {local_nbma: 192.0.2.10, address: 10.0.0.10/24}
nhrp: {role: router, network_id: 1}
`, []string{`config: nhrp.role: "router" is not hub or spoke`}},
		{"registration interval too short", minimalSpoke[:len(minimalSpoke)-1] + "\n  registration_interval: 50ms\n", []string{
			"config: nhrp.registration_interval: 50ms is below 100ms"}},
		{"registration interval beyond the refresh", minimalSpoke[:len(minimalSpoke)-1] + "\n  holding_time: 30s\n  registration_interval: 11s\n", []string{
			"config: nhrp.registration_interval: 11s is longer than a third of nhrp.holding_time (30s), the default refresh"}},
		{"registration interval without NHS", minimalHub[:len(minimalHub)-2] + ", registration_interval: 1s}\n", []string{
			"config: nhrp.registration_interval: only a node with nhrp.nhs registers"}},
		{"spoke redirect", minimalSpoke[:len(minimalSpoke)-1] + "\n  redirect: true\n", []string{
			"config: nhrp.redirect: only a hub sends redirects (role is spoke)"}},
		{"limits", minimalHub[:len(minimalHub)-2] + ", limits: {cache_size: 0, pending: -1, per_source_rate: 0}}\n", []string{
			"config: nhrp.limits.cache_size: 0 must be at least 1",
			"config: nhrp.limits.pending: -1 must be at least 1",
			"config: nhrp.limits.per_source_rate: 0 must be greater than 0"}},
		{"ownership limits", minimalHub[:len(minimalHub)-2] + ", limits: {addresses_per_peer: 0, per_source_cache: -2, max_holding_time: 1500ms}}\n", []string{
			"config: nhrp.limits.addresses_per_peer: 0 must be at least 1",
			"config: nhrp.limits.per_source_cache: -2 must be at least 1",
			"config: nhrp.limits.max_holding_time: 1.5s is not whole seconds from 1s to 65535s"}},
		{"holding clamp too long", minimalHub[:len(minimalHub)-2] + ", limits: {max_holding_time: 65536s}}\n", []string{
			"config: nhrp.limits.max_holding_time: 18h12m16s is not whole seconds from 1s to 65535s"}},
		{"vaulted psk", minimalSpoke + "ipsec: {enabled: true, auth: {method: psk, psk: \"$ANSIBLE_VAULT;1.1;AES256 3365\"}}\n", []string{
			"config: ipsec.auth.psk: is Ansible Vault ciphertext, not the key (decrypt it when templating)"}},
		{"bind without x509", minimalSpoke + "ipsec: {enabled: true, auth: {method: psk, psk: k, bind_tunnel_address: true}}\n", []string{
			"config: ipsec.auth.bind_tunnel_address: needs method x509: a pre-shared key proves no identity"}},
		{"nat alias prefix overlaps the tunnel", minimalHub + "ipsec: {enabled: true, auth: {method: psk, psk: k}, nat_alias_prefix: 10.0.0.128/25}\n", []string{
			"config: ipsec.nat_alias_prefix: 10.0.0.128/25 overlaps the tunnel prefix 10.0.0.0/24"}},
		{"nat alias prefix holds an NBMA", minimalSpoke + "ipsec: {enabled: true, auth: {method: psk, psk: k}, nat_alias_prefix: 192.0.2.0/24}\n", []string{
			"config: ipsec.nat_alias_prefix: 192.0.2.0/24 contains the NBMA address 192.0.2.10",
			"config: ipsec.nat_alias_prefix: 192.0.2.0/24 contains the NBMA address 192.0.2.1"}},
		{"nat alias prefix too small", minimalHub + "ipsec: {enabled: true, auth: {method: psk, psk: k}, nat_alias_prefix: 198.18.0.0/31}\n", []string{
			"config: ipsec.nat_alias_prefix: 198.18.0.0/31 is not an IPv4 prefix of at least 4 addresses"}},
		{"nat alias prefix with host bits", minimalHub + "ipsec: {enabled: true, auth: {method: psk, psk: k}, nat_alias_prefix: 198.18.0.1/15}\n", []string{
			"config: ipsec.nat_alias_prefix: 198.18.0.1/15 has host bits set (198.18.0.0/15)"}},
		{"ipsec without auth", minimalSpoke + "ipsec: {enabled: true}\n", []string{
			"config: ipsec.auth.method: required (psk or x509)"}},
		{"ipsec psk missing", minimalSpoke + "ipsec: {enabled: true, auth: {method: psk}}\n", []string{
			"config: ipsec.auth: method psk needs psk or psk_file"}},
		{"ipsec psk both", minimalSpoke + "ipsec: {enabled: true, auth: {method: psk, psk: s3cret, psk_file: /etc/psk, cert: /c.pem}}\n", []string{
			"config: ipsec.auth: set psk or psk_file, not both",
			"config: ipsec.auth.cert: only used with method x509"}},
		{"ipsec x509 incomplete", minimalSpoke + "ipsec: {enabled: true, vici_socket: charon.vici, auth: {method: x509, cert: c.pem, psk: x}}\n", []string{
			`config: ipsec.vici_socket: "charon.vici" is not an absolute path`,
			`config: ipsec.auth.cert: "c.pem" is not an absolute path`,
			"config: ipsec.auth.key: required with method x509",
			"config: ipsec.auth.ca: required with method x509",
			"config: ipsec.auth: psk and psk_file are only used with method psk"}},
		{"ipsec bad method and proposals", minimalSpoke + "ipsec: {enabled: true, auth: {method: rsa}, proposals: {ike: [], esp: [\"aes 256\"]}}\n", []string{
			`config: ipsec.auth.method: "rsa" is not psk or x509`,
			`config: ipsec.proposals.esp[0]: "aes 256" is not a strongSwan proposal (like aes256gcm16-prfsha256-ecp256)`}},
		{"ipsec disabled is not checked", minimalSpoke + "ipsec: {enabled: false, auth: {method: rsa}}\nbgp: {enabled: false, asn: 0}\n", nil},
		{"bgp spoke", minimalSpoke + `
bgp:
  enabled: true
  asn: 23456
  listen: 10.0.0.10:0
  dynamic: {prefix: 10.0.0.1/24}
  prefixes: [192.168.10.1/24]
  hub_mode: summary
  summaries: [192.168.0.0/16]
  grpc_listen: 0.0.0.0:50051
`, []string{
			"config: bgp.asn: 23456 is AS_TRANS and cannot be used",
			"config: bgp.listen: 10.0.0.10:0 has port 0",
			"config: bgp.dynamic.prefix: only a hub accepts dynamic neighbors (role is spoke)",
			"config: bgp.dynamic.prefix: 10.0.0.1/24 has host bits set (did you mean 10.0.0.0/24?)",
			"config: bgp.neighbors: a spoke needs at least one BGP neighbor (its hubs)",
			"config: bgp.prefixes[0]: 192.168.10.1/24 has host bits set (did you mean 192.168.10.0/24?)",
			"config: bgp.hub_mode: only applies to a hub (role is spoke)",
			"config: bgp.grpc_listen: 0.0.0.0 is not a loopback address (the gRPC API has no authentication)"}},
		{"bgp hub", minimalHub + `
bgp:
  enabled: true
  router_id: "2001:db8::1"
  neighbors: [{address: 10.0.0.2}, {address: 10.0.0.2}, {address: 10.1.0.1}, {asn: 1}]
  dynamic: {asn: 65000}
  hub_mode: summary
  grpc_listen: unix:run/gobgp.sock
`, []string{
			"config: bgp.asn: required (1..4294967295)",
			"config: bgp.router_id: 2001:db8::1 is not an IPv4 address",
			"config: bgp.neighbors[1].address: 10.0.0.2 is already bgp.neighbors[0]",
			"config: bgp.neighbors[2].address: 10.1.0.1 is outside the tunnel prefix 10.0.0.0/24",
			"config: bgp.neighbors[3].address: required",
			"config: bgp.dynamic.prefix: required when bgp.dynamic.asn is set",
			"config: bgp.summaries: hub_mode summary needs at least one summary prefix",
			`config: bgp.grpc_listen: "unix:run/gobgp.sock": unix socket path is not absolute`}},
		{"bgp hub mode", minimalHub + "bgp: {enabled: true, asn: 65000, hub_mode: mirror, summaries: [10.1.0.0/16], grpc_listen: localhost:1}\n", []string{
			`config: bgp.hub_mode: "mirror" is not reflect or summary`,
			"config: bgp.summaries: only used with hub_mode summary",
			`config: bgp.grpc_listen: "localhost:1" is not address:port or unix:/path`}},
		{"bgp policy and limits", minimalSpoke + `
bgp:
  enabled: true
  asn: 65000
  neighbors: [{address: 10.0.0.1}]
  lan_space: [192.168.1.0/16]
  accept: [{prefix: 192.168.0.0/16, ge: 8}, {prefix: 10.0.0.0/8, ge: 24, le: 16}, {ge: 24}]
  max_prefix_action: shout
  dynamic: {limit: -1}
  graceful_restart: {restart_time: 5000s, stale_time: 1500ms}
`, []string{
			"config: bgp.lan_space[0]: 192.168.1.0/16 has host bits set (did you mean 192.168.0.0/16?)",
			"config: bgp.accept[0]: need 16 <= ge <= le <= 32, got ge 8 le 0",
			"config: bgp.accept[1]: need 8 <= ge <= le <= 32, got ge 24 le 16",
			"config: bgp.accept[2].prefix: required",
			`config: bgp.max_prefix_action: "shout" is not teardown or drop`,
			"config: bgp.dynamic.limit: must not be negative",
			"config: bgp.dynamic: limit and require_registration only apply to a hub (role is spoke)",
			"config: bgp.graceful_restart.restart_time: 1h23m20s is not whole seconds within 0..4095s",
			"config: bgp.graceful_restart.stale_time: 1.5s is not whole seconds"}},
		{"bgp timers", minimalHub + "bgp: {enabled: true, asn: 65000, timers: {hold: 2s, keepalive: 1500ms}}\n", []string{
			"config: bgp.timers.hold: 2s is not whole seconds within 3s..65535s (RFC 4271)",
			"config: bgp.timers.keepalive: 1.5s is not whole seconds below the hold time 2s"}},
		{"bgp keepalive not below hold", minimalHub + "bgp: {enabled: true, asn: 65000, timers: {hold: 30s, keepalive: 30s}}\n", []string{
			"config: bgp.timers.keepalive: 30s is not whole seconds below the hold time 30s"}},
		{"bgp drop on a hub", minimalHub + "bgp: {enabled: true, asn: 65000, max_prefixes: 10, max_prefix_action: drop}\n", []string{
			"config: bgp.max_prefix_action: drop is not supported on a hub (the excess routes would still be reflected to the other spokes); use teardown"}},
		{"control, metrics, log", minimalSpoke + `
control: {socket: dmvpnd.sock, group: "net admins"}
metrics: {listen: "example.com:80"}
log: {level: verbose, format: xml}
`, []string{
			`config: control.socket: "dmvpnd.sock" is not an absolute path`,
			`config: control.group: "net admins" is not a valid group name`,
			`config: metrics.listen: "example.com:80": host "example.com" is not an IP address`,
			`config: log.level: "verbose" is not debug, info, warn or error`,
			`config: log.format: "xml" is not json or console`}},
		{"metrics port", minimalSpoke + "metrics: {listen: \":http\"}\n", []string{
			`config: metrics.listen: ":http": port "http" is not 1..65535`}},
		{"multicast dynamic on a spoke", minimalSpoke + "  multicast: {dynamic: true}\n", []string{
			"config: nhrp.multicast.dynamic: only a hub has registered spokes to copy multicast to (role is spoke)"}},
		{"multicast nhs without NHS", "tunnel: {local_nbma: 192.0.2.1, address: 10.0.0.1/24}\nnhrp: {role: hub, network_id: 1, multicast: {nhs: true}}\n", []string{
			"config: nhrp.multicast.nhs: no NHS is configured (nhrp.nhs)"}},
		{"multicast static", minimalSpoke + "  multicast: {nhs: true, static: [192.0.2.9, 224.0.0.1, 192.0.2.9, 192.0.2.10]}\n", []string{
			"config: nhrp.multicast.static[1]: 224.0.0.1 is not a unicast address",
			"config: nhrp.multicast.static[2]: 192.0.2.9 is already nhrp.multicast.static[0]",
			"config: nhrp.multicast.static[3]: 192.0.2.10 is this node's own NBMA address"}},
		{"multicast groups", minimalSpoke + "  multicast: {nhs: true, groups: [10.0.0.0/8, 224.0.0.0/3]}\n", []string{
			"config: nhrp.multicast.groups[0]: 10.0.0.0/8 is not an IPv4 multicast prefix (inside 224.0.0.0/4)",
			"config: nhrp.multicast.groups[1]: 224.0.0.0/3 is not an IPv4 multicast prefix (inside 224.0.0.0/4)"}},
		{"multicast groups without targets", minimalSpoke + "  multicast: {groups: [239.1.0.0/16]}\n", []string{
			"config: nhrp.multicast.groups: no peer receives multicast: set nhrp.multicast.dynamic, nhs or static"}},
		{"multicast rate and burst", minimalSpoke + "  multicast: {nhs: true, rate: 0, burst: 0}\n", []string{
			"config: nhrp.multicast.rate: 0 must be greater than 0",
			"config: nhrp.multicast.burst: 0 must be at least 1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.yaml))
			var got []string
			if err != nil {
				got = strings.Split(err.Error(), "\n")
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("errors (-want +got):\n%s", diff)
			}
			if err != nil && len(FieldErrors(err)) != len(tt.want) {
				t.Errorf("FieldErrors = %d, want %d", len(FieldErrors(err)), len(tt.want))
			}
		})
	}
}

func TestParseSyntaxError(t *testing.T) {
	_, err := Parse([]byte("tunnel: [\n"))
	if err == nil || !strings.HasPrefix(err.Error(), "config: parse: ") {
		t.Fatalf("err = %v, want a config: parse: error", err)
	}
}

func TestLoadMissingFile(t *testing.T) {
	_, err := Load(t.TempDir() + "/missing.yaml")
	if err == nil || !strings.HasPrefix(err.Error(), "config: read ") {
		t.Fatalf("err = %v, want a config: read error", err)
	}
}
