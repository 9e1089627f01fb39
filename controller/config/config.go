package config

import (
	"net/netip"
	"time"

	"github.com/dmvpnd/dmvpnd/ipsec"
)

// Config is one node's configuration: the root of the YAML file.
type Config struct {
	Tunnel  Tunnel  `mapstructure:"tunnel"`
	NHRP    NHRP    `mapstructure:"nhrp"`
	IPsec   IPsec   `mapstructure:"ipsec"`
	BGP     BGP     `mapstructure:"bgp"`
	Control Control `mapstructure:"control"`
	Metrics Metrics `mapstructure:"metrics"`
	Log     Log     `mapstructure:"log"`
	QoS     QoS     `mapstructure:"qos"`

	// Files are digests of the files the configuration names, filled by
	// ReadSecretFiles, so that Diff sees a certificate or key replaced
	// under the same name. Not part of the file.
	Files FileDigests `mapstructure:"-"`
}

// FileDigests are SHA-256 digests (hex) of the X.509 files.
type FileDigests struct {
	Cert, Key, CA string
}

// digests maps the keys naming the files to their digests.
func (f FileDigests) digests() map[string]string {
	return map[string]string{"ipsec.auth.cert": f.Cert, "ipsec.auth.key": f.Key, "ipsec.auth.ca": f.CA}
}

// Tunnel describes the mGRE tunnel interface.
type Tunnel struct {
	// Name is the kernel interface name (default gre1).
	Name string `mapstructure:"name"`
	// Key is the GRE key; 0 sends no key.
	Key uint32 `mapstructure:"key"`
	// LocalNBMA is the underlay (NBMA) source address. At least one of
	// LocalNBMA and UnderlayDevice must be set.
	LocalNBMA netip.Addr `mapstructure:"local_nbma"`
	// UnderlayDevice binds the tunnel to an underlay interface; the NBMA
	// address is then taken from it (useful behind DHCP).
	UnderlayDevice string `mapstructure:"underlay_device"`
	// Address is this node's tunnel address with the tunnel prefix length,
	// e.g. 10.0.0.1/24.
	Address netip.Prefix `mapstructure:"address"`
	// MTU of the tunnel interface (default 1400).
	MTU int `mapstructure:"mtu"`
	// HostAddress puts Address on the interface as a host address
	// (10.0.0.1/32) and routes the tunnel prefix through the tunnel
	// instead of the kernel's connected route: the layout FRR's nhrpd
	// uses, which FRR's ospfd needs on a point-to-multipoint hub facing
	// nhrpd spokes (deploy/OSPF.md). NHRP, BGP and IPsec still use
	// Address and its prefix. Default false.
	HostAddress bool `mapstructure:"host_address"`
}

// NHRP configures the NHRP engine.
type NHRP struct {
	Role Role `mapstructure:"role"`
	// NetworkID is the NHRP network id (required, 1..4294967295, as
	// Cisco's "ip nhrp network-id"). RFC 2332 keeps it local: it is never
	// sent. dmvpnd runs one NHRP network per tunnel, so it only names the
	// network in the start log; nodes need not agree on it.
	NetworkID uint32 `mapstructure:"network_id"`
	// HoldingTime advertised in registrations and replies (default 7200s;
	// 600s is recommended). Whole seconds, at most 65535s.
	HoldingTime time.Duration `mapstructure:"holding_time"`
	// NHS lists the next-hop servers a spoke registers with.
	NHS []NHS `mapstructure:"nhs"`
	// RegistrationInterval, when set, is how often this node registers
	// with each NHS and resends an unanswered registration (Cisco: ip nhrp
	// registration timeout); default a third of the holding time. Three
	// unanswered registrations in a row mark the NHS down and its routes
	// fall over to the next NHS, so a failed hub is noticed within four
	// intervals whatever the holding time. Each interval costs every NHS
	// one registration from this node.
	RegistrationInterval time.Duration `mapstructure:"registration_interval"`
	// Registration is "unique" (default) or "no-unique". A unique
	// registration pins the tunnel address to the NBMA address that
	// registered it until the entry expires: a spoke coming back from
	// another address is refused (code 14) for up to the holding time.
	// Spokes whose underlay address can change (DHCP, mobile) must use
	// no-unique: the NHS then replaces the entry and purges the clients
	// that resolved the old address.
	Registration Registration `mapstructure:"registration"`
	// Authentication is the Cisco cleartext password (at most 8 bytes);
	// empty disables authentication.
	Authentication ipsec.Secret `mapstructure:"authentication"`
	// Redirect makes a hub send traffic indications (Phase 3).
	Redirect bool `mapstructure:"redirect"`
	// Shortcut makes a spoke act on traffic indications and install
	// shortcut routes (Phase 3).
	Shortcut bool `mapstructure:"shortcut"`
	// Group is a spoke's NHRP group (Cisco "ip nhrp group"), announced in
	// its registrations and resolutions: it selects which of a hub's
	// qos.groups policies shapes the traffic toward this spoke.
	Group  string `mapstructure:"group"`
	Limits Limits `mapstructure:"limits"`
	// Multicast replicates multicast sent into the tunnel (routing
	// protocols: OSPF, EIGRP, RIP) as one unicast GRE copy per peer.
	Multicast Multicast `mapstructure:"multicast"`
}

// Multicast selects the peers that receive a copy of each multicast packet
// this node sends into the tunnel (Cisco: ip nhrp map multicast). With none
// selected multicast is not captured and the kernel sends it as it would
// (towards the group address, which no underlay routes).
type Multicast struct {
	// Dynamic sends a copy to every registered spoke (hub; Cisco: ip nhrp
	// map multicast dynamic).
	Dynamic bool `mapstructure:"dynamic"`
	// NHS sends a copy to each NHS this node is registered with (spoke;
	// Cisco: ip nhrp map multicast <hub NBMA>).
	NHS bool `mapstructure:"nhs"`
	// Static are further NBMA addresses that always get a copy.
	Static []netip.Addr `mapstructure:"static"`
	// Groups are captured besides 224.0.0.0/24 (IPv4 multicast prefixes).
	Groups []netip.Prefix `mapstructure:"groups"`
	// Rate bounds the copies sent to one peer per second, with bursts of
	// Burst copies (default 100/s, burst 200).
	Rate  float64 `mapstructure:"rate"`
	Burst int     `mapstructure:"burst"`
}

// Enabled reports whether any peer is to receive multicast copies.
func (m Multicast) Enabled() bool { return m.Dynamic || m.NHS || len(m.Static) > 0 }

// NHS is one next-hop server.
type NHS struct {
	// NBMA is the server's underlay address.
	NBMA netip.Addr `mapstructure:"nbma"`
	// Protocol is the server's tunnel address, or "dynamic" (the default)
	// to learn it from the registration reply.
	Protocol NHSProtocol `mapstructure:"protocol"`
	// Priority orders servers: lower is preferred (0..255, default 0).
	Priority int `mapstructure:"priority"`
}

// Limits bound the NHRP engine's resources.
type Limits struct {
	// CacheSize is the maximum number of NHRP cache entries (default 10000).
	CacheSize int `mapstructure:"cache_size"`
	// Pending is the maximum number of outstanding requests (default 256).
	Pending int `mapstructure:"pending"`
	// PerSourceRate is the number of NHRP requests accepted per second from
	// one source NBMA address (default 10).
	PerSourceRate float64 `mapstructure:"per_source_rate"`
	// AddressesPerPeer is how many tunnel addresses one peer may hold
	// registered at a hub (default 1); a peer is an IKE identity with
	// IPsec, a source NBMA address without.
	AddressesPerPeer int `mapstructure:"addresses_per_peer"`
	// MaxHoldingTime clamps the holding time a hub grants a registration
	// (default: nhrp.holding_time).
	MaxHoldingTime time.Duration `mapstructure:"max_holding_time"`
	// PerSourceCache bounds the resolution cache entries one source may
	// create (default 64; configured NHSs are exempt).
	PerSourceCache int `mapstructure:"per_source_cache"`
}

// IPsec configures protection of the GRE traffic through strongSwan (VICI).
type IPsec struct {
	Enabled bool `mapstructure:"enabled"`
	// ViciSocket is charon's VICI socket (default DefaultViciSocket, the
	// charon dedicated to dmvpnd).
	ViciSocket string    `mapstructure:"vici_socket"`
	Auth       IPsecAuth `mapstructure:"auth"`
	Proposals  Proposals `mapstructure:"proposals"`
	// TunnelSourceBinding binds the inner source of tunnel-sourced GRE to
	// the NBMA (and so the SA) its tunnel address is registered from, in
	// the kernel guard: "auto" (default: on for a hub, off for a spoke),
	// "on" or "off" (docs/security.md, "Tunnel-source binding").
	TunnelSourceBinding string `mapstructure:"tunnel_source_binding"`
	// NATAliasPrefix holds the local stand-in addresses for the second and
	// later SAs that carry one private NBMA (spokes behind different NATs
	// with the same private address, docs/strongswan.md). The addresses
	// never leave this node; the prefix must not overlap the tunnel
	// prefix or any real NBMA (default 198.18.0.0/15, RFC 2544).
	NATAliasPrefix netip.Prefix `mapstructure:"nat_alias_prefix"`
}

// IPsecAuth selects pre-shared key or certificate authentication.
type IPsecAuth struct {
	Method AuthMethod `mapstructure:"method"`
	// PSK is the pre-shared key; PSKFile reads it from a file instead.
	PSK     ipsec.Secret `mapstructure:"psk"`
	PSKFile string       `mapstructure:"psk_file"`
	// Cert, Key and CA are PEM files for x509 authentication.
	Cert string `mapstructure:"cert"`
	Key  string `mapstructure:"key"`
	CA   string `mapstructure:"ca"`
	// BindTunnelAddress (x509 only): every node authenticates with its
	// tunnel address as IKE identity, which its certificate must carry as
	// an IP SAN, and may register only that tunnel address: even a valid
	// certificate cannot claim another spoke's address.
	BindTunnelAddress bool `mapstructure:"bind_tunnel_address"`
}

// Proposals are strongSwan proposal strings. Empty (the default) lets the
// ipsec package choose among its defaults (AES-256, PFS on ESP rekeys)
// those the running charon implements; see ipsec's package doc.
type Proposals struct {
	IKE []string `mapstructure:"ike"`
	ESP []string `mapstructure:"esp"`
}

// BGP configures the embedded BGP speaker.
type BGP struct {
	Enabled bool   `mapstructure:"enabled"`
	ASN     uint32 `mapstructure:"asn"`
	// RouterID defaults to the tunnel address.
	RouterID netip.Addr `mapstructure:"router_id"`
	// Listen is the BGP listen address; a hub defaults to its tunnel
	// address port 179, a spoke does not listen unless set.
	Listen    netip.AddrPort `mapstructure:"listen"`
	Neighbors []Neighbor     `mapstructure:"neighbors"`
	// Dynamic accepts neighbors from a prefix (hub only).
	Dynamic DynamicNeighbors `mapstructure:"dynamic"`
	// Prefixes are the LAN prefixes this node originates.
	Prefixes []netip.Prefix `mapstructure:"prefixes"`
	// HubMode is "reflect" (Phase 2, default for hubs) or "summary"
	// (Phase 3: advertise only Summaries).
	HubMode   HubMode        `mapstructure:"hub_mode"`
	Summaries []netip.Prefix `mapstructure:"summaries"`
	// GRPCListen exposes GoBGP's gRPC API for the gobgp CLI: unix:/path
	// (default gobgp.sock beside control.socket, mode 0660, group
	// control.group) or a loopback host:port; "off" disables it.
	GRPCListen string `mapstructure:"grpc_listen"`
	// GRPCWrite allows the API's modifying calls; by default only List*,
	// Get* and Watch* calls are served.
	GRPCWrite bool `mapstructure:"grpc_write"`
	// LANSpace is the address space of all DMVPN LANs; the default import
	// policy accepts any prefix inside it (default: 10.0.0.0/8,
	// 172.16.0.0/12, 192.168.0.0/16, 100.64.0.0/10).
	LANSpace []netip.Prefix `mapstructure:"lan_space"`
	// Accept replaces the default import policy: the prefix ranges
	// accepted from neighbors.
	Accept []PrefixRange `mapstructure:"accept"`
	// AcceptDefault accepts a default route, from hubs only.
	AcceptDefault bool `mapstructure:"accept_default"`
	// MaxPrefixes limits the prefixes per neighbor (0: no limit).
	MaxPrefixes uint32 `mapstructure:"max_prefixes"`
	// MaxPrefixAction is "teardown" (default) or "drop".
	MaxPrefixAction string `mapstructure:"max_prefix_action"`
	// Password is the TCP MD5 password of every BGP session.
	Password ipsec.Secret `mapstructure:"password"`
	// GracefulRestart configures BGP graceful restart.
	GracefulRestart GracefulRestart `mapstructure:"graceful_restart"`
	// Timers are the BGP keepalive and hold timers of every session
	// (Cisco's "timers bgp KEEPALIVE HOLD").
	Timers BGPTimers `mapstructure:"timers"`
}

// BGPTimers are the keepalive and hold times this node offers; a session
// uses the lower hold time of the two ends (RFC 4271 4.2).
type BGPTimers struct {
	// Hold is the hold time (default 90s, at least 3s).
	Hold time.Duration `mapstructure:"hold"`
	// Keepalive is the keepalive interval (default a third of Hold).
	Keepalive time.Duration `mapstructure:"keepalive"`
}

// PrefixRange is one bgp.accept entry: prefixes inside Prefix whose
// length is within ge..le ("ip prefix-list" semantics).
type PrefixRange struct {
	Prefix netip.Prefix `mapstructure:"prefix"`
	GE     uint8        `mapstructure:"ge"`
	LE     uint8        `mapstructure:"le"`
}

// GracefulRestart configures BGP graceful restart (RFC 4724).
type GracefulRestart struct {
	Enabled bool `mapstructure:"enabled"`
	// RestartTime is how long neighbors keep our routes while we restart
	// (default 120s, at most 4095s).
	RestartTime time.Duration `mapstructure:"restart_time"`
	// StaleTime bounds how long a restarted neighbor's stale routes are
	// kept (default 360s).
	StaleTime time.Duration `mapstructure:"stale_time"`
}

// Neighbor is a static BGP neighbor.
type Neighbor struct {
	Address netip.Addr `mapstructure:"address"`
	// ASN defaults to the local ASN (iBGP).
	ASN uint32 `mapstructure:"asn"`
}

// DynamicNeighbors accepts passive BGP sessions from a prefix.
type DynamicNeighbors struct {
	Prefix netip.Prefix `mapstructure:"prefix"`
	// ASN defaults to the local ASN (iBGP).
	ASN uint32 `mapstructure:"asn"`
	// Limit caps the number of dynamic neighbors (0: no limit).
	Limit int `mapstructure:"limit"`
	// RequireRegistration accepts a dynamic neighbor only from a tunnel
	// address registered with this hub's NHRP server.
	RequireRegistration bool `mapstructure:"require_registration"`
}

// Control configures the control API socket used by dmvpnctl.
type Control struct {
	// Socket path (default /run/dmvpnd/dmvpnd.sock), mode 0660.
	Socket string `mapstructure:"socket"`
	// Group owning the socket; empty keeps the daemon's group.
	Group string `mapstructure:"group"`
}

// Metrics configures the Prometheus endpoint.
type Metrics struct {
	// Listen is host:port for /metrics (default 127.0.0.1:9474); empty
	// disables the endpoint.
	Listen string `mapstructure:"listen"`
}

// Log configures logging.
type Log struct {
	Level  LogLevel  `mapstructure:"level"`
	Format LogFormat `mapstructure:"format"`
}
