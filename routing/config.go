package routing

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"
)

// Role says whether this node is a DMVPN hub or a spoke.
type Role string

// Roles.
const (
	RoleHub   Role = "hub"
	RoleSpoke Role = "spoke"
)

// HubMode selects what a hub advertises to its spokes.
type HubMode string

// Hub modes.
const (
	// HubModeReflect (DMVPN Phase 2): the hub is a route reflector for the spokes
	// and passes their LAN prefixes on with the next hop unchanged, so a spoke
	// routes to another spoke's tunnel address and the kernel's neighbor miss
	// starts NHRP resolution.
	HubModeReflect HubMode = "reflect"
	// HubModeSummary (DMVPN Phase 3): the hub advertises only what it
	// originates itself (its LAN prefixes and the configured summaries or a
	// default route) with itself as next hop; spoke routes are not passed on.
	// Spoke-to-spoke shortcuts come from NHRP redirects.
	HubModeSummary HubMode = "summary"
)

// Defaults applied by Config.withDefaults.
const (
	DefaultPort         = 179
	DefaultHoldTime     = 90 * time.Second
	DefaultConnectRetry = 10 * time.Second
	DefaultPeerGroup    = "dmvpn-spokes"
	DefaultRestartTime  = 120 * time.Second
	DefaultStaleTime    = 360 * time.Second
	// DefaultRouteMetric is the kernel metric of BGP-learned routes. NHRP
	// shortcut routes use a lower metric so that they win at equal prefix length.
	DefaultRouteMetric = 20
)

// Config is the routing configuration of one dmvpnd node.
//
// Only IPv4 unicast is carried: the DMVPN overlay is an IPv4 mGRE tunnel.
type Config struct {
	// ASN is the local autonomous system number.
	ASN uint32
	// RouterID is the BGP identifier (an IPv4 address, normally the tunnel address).
	RouterID netip.Addr
	// ListenAddress is the address the BGP listener binds to; the zero value
	// means all addresses.
	ListenAddress netip.Addr
	// ListenPort is the BGP TCP port: 0 means 179, a negative value disables
	// the listener (a spoke only initiates).
	ListenPort int
	// HoldTime, KeepaliveInterval and ConnectRetry are the BGP timers; zero
	// means DefaultHoldTime, HoldTime/3 and DefaultConnectRetry.
	HoldTime          time.Duration
	KeepaliveInterval time.Duration
	ConnectRetry      time.Duration
	// Role selects the Hub or Spoke section.
	Role Role
	// Prefixes are the LAN prefixes this node originates.
	Prefixes []netip.Prefix
	Hub      HubConfig
	Spoke    SpokeConfig
	// API is the gRPC listen address for the stock gobgp CLI: "host:port" on
	// loopback or "unix:///path". Empty disables the API. The API has no
	// authentication: non-loopback TCP addresses are refused.
	API string
	// APIWrite allows the gRPC API's modifying methods; without it only
	// List* and Get* calls are served (see ReadOnlyInterceptors).
	APIWrite bool
	// APIGroup, when > 0, is the group id given to the unix API socket,
	// whose mode is 0660; 0 keeps the daemon's group.
	APIGroup int
	// FIB describes how learned routes are handed to the kernel.
	FIB FIBConfig
	// Tunnel is the tunnel prefix. Every accepted next hop lies inside it
	// (and is neither its network nor its broadcast address); routes inside
	// or covering it are rejected.
	Tunnel netip.Prefix
	// Import is the import policy applied to every neighbor.
	Import ImportConfig
	// Protected are prefixes no learned route may overlap: the node's
	// underlay route and the configured NBMA addresses (as /32). Learned NBMA
	// addresses are added at runtime with Speaker.SetProtected.
	Protected []netip.Prefix
	// MaxPrefixes limits the prefixes accepted from one neighbor (0: no
	// limit); MaxPrefixAction says what happens beyond it.
	MaxPrefixes     uint32
	MaxPrefixAction MaxPrefixAction
	// Password is the TCP MD5 password (RFC 2385) of every session; empty
	// disables it.
	Password string
	// GracefulRestart enables BGP graceful restart (RFC 4724).
	GracefulRestart GracefulRestart
}

// MaxPrefixAction is what happens when a neighbor exceeds MaxPrefixes.
type MaxPrefixAction string

// Max-prefix actions.
const (
	// MaxPrefixTeardown closes the session with a Cease notification
	// (RFC 4486 subcode 1, GoBGP's prefix limit); the neighbor reconnects
	// after its connect-retry time.
	MaxPrefixTeardown MaxPrefixAction = "teardown"
	// MaxPrefixDrop keeps the session and ignores the neighbor's prefixes
	// beyond the limit (the first MaxPrefixes, in prefix order, are
	// installed). Spokes only: the FIB drops the excess, but GoBGP still
	// holds it, and a hub would reflect it to the other spokes (GoBGP's
	// prefix limit has no drop mode: pkg/server/peer.go doPrefixLimit
	// always returns a Cease), so Validate refuses it on a hub.
	MaxPrefixDrop MaxPrefixAction = "drop"
)

// ImportConfig is the import policy: what a neighbor may announce.
type ImportConfig struct {
	// Accept are the prefix ranges accepted from neighbors; anything else is
	// rejected. Built-in rejections (the tunnel prefix, Protected, the
	// node's own prefixes and their more-specifics, next hops outside the
	// tunnel) apply first and cannot be turned off.
	Accept []PrefixRange
	// AcceptDefault accepts 0.0.0.0/0, from hubs only (a spoke's
	// neighbors; a hub's static peers).
	AcceptDefault bool
}

// PrefixRange matches prefixes inside Prefix whose length is within
// [GE, LE], like "ip prefix-list ... ge GE le LE": without GE and LE only
// Prefix itself; GE alone means GE..32, LE alone Prefix.Bits()..LE.
type PrefixRange struct {
	Prefix netip.Prefix
	GE, LE uint8
}

// Bounds returns the effective length range.
func (r PrefixRange) Bounds() (ge, le uint8) {
	ge, le = r.GE, r.LE
	switch {
	case ge == 0 && le == 0:
		return uint8(r.Prefix.Bits()), uint8(r.Prefix.Bits())
	case ge == 0:
		return uint8(r.Prefix.Bits()), le
	case le == 0:
		return ge, 32
	}
	return ge, le
}

// Contains reports whether p is matched by the range.
func (r PrefixRange) Contains(p netip.Prefix) bool {
	ge, le := r.Bounds()
	b := uint8(p.Bits())
	return p.Bits() >= r.Prefix.Bits() && r.Prefix.Contains(p.Addr()) && b >= ge && b <= le
}

func (r PrefixRange) String() string {
	ge, le := r.Bounds()
	return fmt.Sprintf("%s ge %d le %d", r.Prefix, ge, le)
}

// GracefulRestart configures BGP graceful restart (RFC 4724): this node
// advertises the capability, keeps a restarting neighbor's routes as stale
// for up to RestartTime until the session is back, and removes what the
// neighbor did not announce again once it sent End-of-RIB (or after
// StaleTime).
type GracefulRestart struct {
	Enabled bool
	// RestartTime is advertised to neighbors: how long they keep our routes
	// while we restart (default DefaultRestartTime, at most 4095s).
	RestartTime time.Duration
	// StaleTime bounds how long stale routes are kept after a restarted
	// neighbor is back (default DefaultStaleTime).
	StaleTime time.Duration
}

// HubConfig configures a hub.
type HubConfig struct {
	// DynamicRange is the tunnel prefix from which spokes are accepted as
	// dynamic (passive) neighbors; no per-spoke configuration is needed.
	DynamicRange netip.Prefix
	// PeerGroup names the peer group of the dynamic spokes (DefaultPeerGroup if empty).
	PeerGroup string
	// EBGPSpokes makes the spoke sessions eBGP: each spoke has its own AS,
	// which the hub learns from the spoke's OPEN (the peer group has no fixed
	// peer AS). In reflect mode an export policy keeps the originating spoke's
	// next hop. Without it spokes must use ASN (iBGP) and are route-reflector
	// clients. Spokes sharing one AS are not supported in reflect mode: GoBGP
	// never sends a path to an eBGP peer whose AS is in its AS path, and its
	// API has no as-override for peer groups.
	EBGPSpokes bool
	// ClusterID is the route-reflector cluster id; the zero value means RouterID.
	ClusterID netip.Addr
	// Mode is HubModeReflect (default) or HubModeSummary.
	Mode HubMode
	// Summaries are extra prefixes the hub originates (for example 0.0.0.0/0 or
	// the aggregate of all spoke LANs). In summary mode they and Prefixes are
	// all the spokes learn.
	Summaries []netip.Prefix
	// Peers are statically configured neighbors, typically the other hubs.
	// They are not route-reflector clients.
	Peers []Neighbor
	// DynamicLimit caps the number of spoke sessions (0: no limit); a spoke
	// beyond it is refused, like Cisco's "bgp listen limit".
	DynamicLimit int
	// RequireRegistration accepts a spoke's session only from a tunnel
	// address that is registered with this hub's NHRP server
	// (Speaker.SetRegistered).
	RequireRegistration bool
}

// SpokeConfig configures a spoke.
type SpokeConfig struct {
	// Hubs are the BGP sessions to the hubs' tunnel addresses.
	Hubs []Neighbor
}

// Neighbor is one statically configured BGP neighbor.
type Neighbor struct {
	// Address is the neighbor's tunnel address.
	Address netip.Addr
	// PeerAS is the neighbor's AS; 0 means the local ASN (iBGP).
	PeerAS uint32
	// Port is the neighbor's BGP port; 0 means 179.
	Port uint16
	// LocalAddress is the source address of the session (normally our own
	// tunnel address); the zero value lets the kernel choose.
	LocalAddress netip.Addr
	// AllowOwnAS accepts routes carrying the local AS this many times.
	AllowOwnAS uint8
	// Password is the session's TCP MD5 password; empty means
	// Config.Password.
	Password string
}

// FIBConfig describes the kernel routes built from BGP best paths.
type FIBConfig struct {
	// Metric is the route metric (DefaultRouteMetric if 0).
	Metric int
}

// ConfigError reports an invalid Config field.
type ConfigError struct {
	Field  string
	Reason string
}

func (e *ConfigError) Error() string {
	return fmt.Sprintf("routing: config %s: %s", e.Field, e.Reason)
}

func cfgErr(field, format string, args ...any) error {
	return &ConfigError{Field: field, Reason: fmt.Sprintf(format, args...)}
}

// Validate checks the configuration and returns all problems found, joined.
func (c Config) Validate() error {
	var errs []error
	add := func(err error) { errs = append(errs, err) }
	if c.ASN == 0 {
		add(cfgErr("asn", "must be set"))
	}
	if !c.RouterID.Is4() {
		add(cfgErr("router_id", "must be an IPv4 address, got %q", c.RouterID))
	}
	if c.ListenAddress.IsValid() && !c.ListenAddress.Is4() {
		add(cfgErr("listen_address", "must be IPv4, got %s", c.ListenAddress))
	}
	if c.ListenPort > 65535 {
		add(cfgErr("listen_port", "out of range: %d", c.ListenPort))
	}
	if c.HoldTime < 0 || c.KeepaliveInterval < 0 || c.ConnectRetry < 0 {
		add(cfgErr("timers", "must not be negative"))
	}
	d := c.withDefaults()
	if d.HoldTime < 3*time.Second {
		add(cfgErr("hold_time", "must be at least 3s, got %s", d.HoldTime))
	}
	if d.KeepaliveInterval >= d.HoldTime {
		add(cfgErr("keepalive_interval", "%s must be below hold time %s", d.KeepaliveInterval, d.HoldTime))
	}
	for i, p := range c.Prefixes {
		if err := checkPrefix(p); err != nil {
			add(cfgErr(fmt.Sprintf("prefixes[%d]", i), "%v", err))
		}
	}
	if err := validateAPI(c.API); err != nil {
		add(err)
	}
	if c.FIB.Metric < 0 {
		add(cfgErr("fib", "metric must not be negative"))
	}
	errs = append(errs, c.validatePolicy()...)
	switch c.Role {
	case RoleHub:
		errs = append(errs, c.Hub.validate()...)
		if len(c.Spoke.Hubs) != 0 {
			add(cfgErr("spoke.hubs", "set on a hub"))
		}
	case RoleSpoke:
		if len(c.Spoke.Hubs) == 0 {
			add(cfgErr("spoke.hubs", "a spoke needs at least one hub"))
		}
		for i, n := range c.Spoke.Hubs {
			if err := n.validate(fmt.Sprintf("spoke.hubs[%d]", i)); err != nil {
				add(err)
			}
		}
		if c.Hub.DynamicRange.IsValid() || len(c.Hub.Summaries) != 0 || len(c.Hub.Peers) != 0 {
			add(cfgErr("hub", "set on a spoke"))
		}
	default:
		add(cfgErr("role", "must be %q or %q, got %q", RoleHub, RoleSpoke, c.Role))
	}
	return errors.Join(errs...)
}

func (h HubConfig) validate() []error {
	var errs []error
	if !h.DynamicRange.IsValid() || !h.DynamicRange.Addr().Is4() {
		errs = append(errs, cfgErr("hub.dynamic_range", "must be an IPv4 prefix, got %q", h.DynamicRange))
	} else if h.DynamicRange != h.DynamicRange.Masked() {
		errs = append(errs, cfgErr("hub.dynamic_range", "%s has host bits set", h.DynamicRange))
	}
	if h.ClusterID.IsValid() && !h.ClusterID.Is4() {
		errs = append(errs, cfgErr("hub.cluster_id", "must be IPv4"))
	}
	switch h.Mode {
	case "", HubModeReflect, HubModeSummary:
	default:
		errs = append(errs, cfgErr("hub.mode", "must be %q or %q, got %q", HubModeReflect, HubModeSummary, h.Mode))
	}
	if h.Mode == HubModeSummary && len(h.Summaries) == 0 {
		errs = append(errs, cfgErr("hub.summaries", "summary mode needs at least one summary (0.0.0.0/0 for a default route)"))
	}
	for i, p := range h.Summaries {
		if err := checkPrefix(p); err != nil {
			errs = append(errs, cfgErr(fmt.Sprintf("hub.summaries[%d]", i), "%v", err))
		}
	}
	for i, n := range h.Peers {
		if err := n.validate(fmt.Sprintf("hub.peers[%d]", i)); err != nil {
			errs = append(errs, err)
		}
	}
	return errs
}

func (n Neighbor) validate(field string) error {
	if !n.Address.Is4() {
		return cfgErr(field+".address", "must be IPv4, got %q", n.Address)
	}
	if n.LocalAddress.IsValid() && !n.LocalAddress.Is4() {
		return cfgErr(field+".local_address", "must be IPv4, got %s", n.LocalAddress)
	}
	return nil
}

func checkPrefix(p netip.Prefix) error {
	if !p.IsValid() || !p.Addr().Is4() {
		return fmt.Errorf("must be an IPv4 prefix, got %q", p)
	}
	if p != p.Masked() {
		return fmt.Errorf("%s has host bits set", p)
	}
	return nil
}

// validateAPI accepts "", "unix:///abs/path" or a loopback "ip:port".
func validateAPI(api string) error {
	if api == "" {
		return nil
	}
	if path, ok := strings.CutPrefix(api, "unix://"); ok {
		if !strings.HasPrefix(path, "/") {
			return cfgErr("api", "unix socket path must be absolute, got %q", path)
		}
		return nil
	}
	ap, err := netip.ParseAddrPort(api)
	if err != nil {
		return cfgErr("api", "want loopback ip:port or unix:///path: %v", err)
	}
	if !ap.Addr().IsLoopback() {
		return cfgErr("api", "%s is not a loopback address (the gobgp API has no authentication)", ap.Addr())
	}
	return nil
}

// withDefaults returns a copy with zero values replaced by defaults.
func (c Config) withDefaults() Config {
	if c.ListenPort == 0 {
		c.ListenPort = DefaultPort
	}
	if c.HoldTime == 0 {
		c.HoldTime = DefaultHoldTime
	}
	if c.KeepaliveInterval == 0 {
		c.KeepaliveInterval = c.HoldTime / 3
	}
	if c.ConnectRetry == 0 {
		c.ConnectRetry = DefaultConnectRetry
	}
	if c.Role == RoleHub {
		if c.Hub.PeerGroup == "" {
			c.Hub.PeerGroup = DefaultPeerGroup
		}
		if c.Hub.Mode == "" {
			c.Hub.Mode = HubModeReflect
		}
		if !c.Hub.ClusterID.IsValid() {
			c.Hub.ClusterID = c.RouterID
		}
	}
	if c.FIB.Metric == 0 {
		c.FIB.Metric = DefaultRouteMetric
	}
	if c.MaxPrefixAction == "" {
		c.MaxPrefixAction = MaxPrefixTeardown
	}
	if c.GracefulRestart.RestartTime == 0 {
		c.GracefulRestart.RestartTime = DefaultRestartTime
	}
	if c.GracefulRestart.StaleTime == 0 {
		c.GracefulRestart.StaleTime = DefaultStaleTime
	}
	return c
}

// Originated returns the prefixes the node advertises: its LAN prefixes and,
// on a hub, the summaries; sorted and without duplicates. Pass it to
// Speaker.SetPrefixes after a reload.
func (c Config) Originated() []netip.Prefix {
	out := slices.Clone(c.Prefixes)
	if c.Role == RoleHub {
		out = append(out, c.Hub.Summaries...)
	}
	return sortPrefixes(out)
}

func sortPrefixes(ps []netip.Prefix) []netip.Prefix {
	slices.SortFunc(ps, comparePrefix)
	return slices.Compact(ps)
}

func comparePrefix(a, b netip.Prefix) int {
	if c := a.Addr().Compare(b.Addr()); c != 0 {
		return c
	}
	return a.Bits() - b.Bits()
}

func (c Config) validatePolicy() []error {
	var errs []error
	add := func(err error) { errs = append(errs, err) }
	if !c.Tunnel.IsValid() || !c.Tunnel.Addr().Is4() || c.Tunnel != c.Tunnel.Masked() || c.Tunnel.Bits() > 30 {
		add(cfgErr("tunnel", "must be a masked IPv4 prefix of at most /30, got %q", c.Tunnel))
	}
	for i, r := range c.Import.Accept {
		ge, le := r.Bounds()
		switch {
		case checkPrefix(r.Prefix) != nil:
			add(cfgErr(fmt.Sprintf("import.accept[%d]", i), "%v", checkPrefix(r.Prefix)))
		case int(ge) < r.Prefix.Bits() || ge > le || le > 32:
			add(cfgErr(fmt.Sprintf("import.accept[%d]", i), "need %d <= ge <= le <= 32, got %s", r.Prefix.Bits(), r))
		}
	}
	for i, p := range c.Protected {
		if err := checkPrefix(p); err != nil {
			add(cfgErr(fmt.Sprintf("protected[%d]", i), "%v", err))
		}
	}
	switch c.MaxPrefixAction {
	case "", MaxPrefixTeardown:
	case MaxPrefixDrop:
		if c.Role == RoleHub {
			add(cfgErr("max_prefix_action", "%q is not supported on a hub: GoBGP's prefix limit can only tear the session down, "+
				"so the excess routes would stay in the hub's RIB and be reflected to the other spokes; use %q", MaxPrefixDrop, MaxPrefixTeardown))
		}
	default:
		add(cfgErr("max_prefix_action", "must be %q or %q, got %q", MaxPrefixTeardown, MaxPrefixDrop, c.MaxPrefixAction))
	}
	if c.Hub.DynamicLimit < 0 {
		add(cfgErr("hub.dynamic_limit", "must not be negative"))
	}
	gr := c.GracefulRestart
	if gr.RestartTime < 0 || gr.RestartTime > 4095*time.Second || gr.StaleTime < 0 {
		add(cfgErr("graceful_restart", "restart time must be within 0..4095s and stale time not negative"))
	}
	return errs
}
