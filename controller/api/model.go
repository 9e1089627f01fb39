package api

import (
	"net/netip"
	"time"
)

// PeerState is a peer's overall state as "show dmvpn" reports it.
type PeerState string

// Peer states.
const (
	// PeerUp: NHRP binding valid and, with IPsec, its SA established.
	PeerUp PeerState = "UP"
	// PeerNHRP: NHRP registration or resolution in progress.
	PeerNHRP PeerState = "NHRP"
	// PeerIKE: binding known, IKE negotiating the SA.
	PeerIKE PeerState = "IKE"
)

// Attr is a peer attribute; the table shows its abbreviation (Cisco's
// "Attrb" column letters).
type Attr string

// Peer attributes.
const (
	AttrStatic         Attr = "static"          // S: configured (an NHS)
	AttrDynamic        Attr = "dynamic"         // D: learnt (registered with us, or resolved)
	AttrNAT            Attr = "nat"             // N: peer is behind NAT
	AttrRouteInstalled Attr = "route-installed" // T1: shortcut route installed
)

// Peer is one NBMA peer on the tunnel.
type Peer struct {
	// NBMA is the peer's claimed underlay address.
	NBMA netip.Addr `json:"nbma"`
	// ObservedNBMA is the post-NAT address we see, when it differs.
	ObservedNBMA netip.Addr `json:"observed_nbma,omitzero"`
	// Tunnel is the peer's tunnel (protocol) address.
	Tunnel netip.Addr `json:"tunnel"`
	State  PeerState  `json:"state"`
	// Since is when State last changed.
	Since time.Time `json:"since,omitzero"`
	// Entries counts the NHRP cache entries with this NBMA peer.
	Entries int    `json:"entries"`
	Attrs   []Attr `json:"attrs,omitempty"`
	// Group is the NHRP group the peer announces (Per-Tunnel QoS).
	Group string `json:"group,omitempty"`
}

// NHSState is the registration state with one NHS (Cisco's E/R/W).
type NHSState string

// NHS states.
const (
	NHSResponding NHSState = "responding" // R: registered, replies arriving
	NHSExpecting  NHSState = "expecting"  // E: request sent, expecting a reply
	NHSWaiting    NHSState = "waiting"    // W: waiting before the next attempt
	NHSDown       NHSState = "down"       // D: not in use (e.g. IPsec down)
)

// NHS is one next-hop server as seen by this node.
type NHS struct {
	NBMA netip.Addr `json:"nbma"`
	// Protocol is the server's tunnel address; zero while a dynamic NHS is
	// not yet learnt.
	Protocol netip.Addr `json:"protocol,omitzero"`
	// Dynamic is true when the protocol address is learnt, not configured.
	Dynamic  bool     `json:"dynamic,omitempty"`
	Priority int      `json:"priority"`
	State    NHSState `json:"state"`
	// Reason explains a state other than responding.
	Reason string    `json:"reason,omitempty"`
	Since  time.Time `json:"since,omitzero"`
	// Expires is when the current registration lapses.
	Expires time.Time `json:"expires,omitzero"`
}

// DMVPN is the "show dmvpn" view: the tunnel, its peers and its NHSs.
type DMVPN struct {
	Interface string `json:"interface"`
	// Role is "hub" or "spoke".
	Role string `json:"role"`
	// Address is the local tunnel address and prefix.
	Address netip.Prefix `json:"address,omitzero"`
	// NBMA is the local underlay address.
	NBMA  netip.Addr `json:"nbma,omitzero"`
	Peers []Peer     `json:"peers"`
	NHS   []NHS      `json:"nhs"`
}

// CacheType is the kind of an NHRP cache entry.
type CacheType string

// Cache entry types.
const (
	CacheDynamic  CacheType = "dynamic" // registered with us
	CacheNHS      CacheType = "nhs"
	CacheCached   CacheType = "cached" // from a resolution reply
	CacheNegative CacheType = "negative"
)

// CacheFlag qualifies an NHRP cache entry.
type CacheFlag string

// Cache flags.
const (
	FlagUnique CacheFlag = "unique"
	FlagNAT    CacheFlag = "nat"
)

// CacheEntry is one NHRP cache entry.
type CacheEntry struct {
	Type   CacheType    `json:"type"`
	Prefix netip.Prefix `json:"prefix"`
	// Tunnel is the next hop's tunnel address (equal to Prefix's address for
	// host entries).
	Tunnel       netip.Addr  `json:"tunnel,omitzero"`
	NBMA         netip.Addr  `json:"nbma,omitzero"`
	ObservedNBMA netip.Addr  `json:"observed_nbma,omitzero"`
	Expires      time.Time   `json:"expires,omitzero"`
	Flags        []CacheFlag `json:"flags,omitempty"`
	// Group is the NHRP group the entry's peer announces (Per-Tunnel QoS).
	Group string `json:"group,omitempty"`
}

// Shortcut is an installed NHRP shortcut route (Phase 3).
type Shortcut struct {
	Prefix netip.Prefix `json:"prefix"`
	// Via is the egress peer's tunnel address.
	Via     netip.Addr `json:"via"`
	NBMA    netip.Addr `json:"nbma,omitzero"`
	Expires time.Time  `json:"expires,omitzero"`
}

// SAState is an IPsec SA's state.
type SAState string

// SA states.
const (
	SAEstablished SAState = "ESTABLISHED"
	SAConnecting  SAState = "CONNECTING"
	SADown        SAState = "DOWN"
)

// SA is the IPsec protection towards one peer.
type SA struct {
	// Name is the VICI connection name.
	Name     string     `json:"name"`
	PeerNBMA netip.Addr `json:"peer_nbma"`
	State    SAState    `json:"state"`
	Local    netip.Addr `json:"local,omitzero"`
	Remote   netip.Addr `json:"remote,omitzero"`
	// NATTPort is the remote UDP port when ESP is UDP-encapsulated (NAT-T),
	// zero otherwise.
	NATTPort uint16    `json:"natt_port,omitzero"`
	Since    time.Time `json:"since,omitzero"`
	// Reason explains a state other than established.
	Reason string `json:"reason,omitempty"`
	// IKESAs are the peer's IKE SAs as charon last listed them (usually
	// one; two while a duplicate is resolved).
	IKESAs []IKESA `json:"ike_sas,omitempty"`
}

// IKESA is one IKE SA with its CHILD_SAs (charon's list-sas).
type IKESA struct {
	// ID is charon's unique id of the SA.
	ID        string         `json:"id"`
	State     string         `json:"state"`
	Initiator bool           `json:"initiator,omitempty"`
	Local     netip.AddrPort `json:"local,omitzero"`
	Remote    netip.AddrPort `json:"remote,omitzero"`
	// RemoteID is the identity the peer authenticated with.
	RemoteID string `json:"remote_id,omitempty"`
	// The negotiated proposal, in charon's names.
	EncrAlg     string    `json:"encr_alg,omitempty"`
	EncrKeySize int       `json:"encr_keysize,omitempty"`
	IntegAlg    string    `json:"integ_alg,omitempty"`
	PRFAlg      string    `json:"prf_alg,omitempty"`
	DHGroup     string    `json:"dh_group,omitempty"`
	Established time.Time `json:"established,omitzero"`
	RekeyAt     time.Time `json:"rekey_at,omitzero"`
	// Terminating: dmvpnd asked charon to delete it (a duplicate, or an
	// inner address the identity may not use).
	Terminating bool      `json:"terminating,omitempty"`
	Children    []ChildSA `json:"child_sas"`
}

// ChildSA is one CHILD_SA: the ESP SA pair carrying GRE.
type ChildSA struct {
	Name     string `json:"name"`
	ID       string `json:"id"`
	State    string `json:"state"`
	Mode     string `json:"mode"`
	Protocol string `json:"protocol,omitempty"`
	// Encap: ESP in UDP (NAT-T).
	Encap bool `json:"encap,omitempty"`
	// SPIIn and SPIOut in hex, as ip xfrm state prints them.
	SPIIn       string `json:"spi_in"`
	SPIOut      string `json:"spi_out"`
	EncrAlg     string `json:"encr_alg,omitempty"`
	EncrKeySize int    `json:"encr_keysize,omitempty"`
	// IntegAlg is empty for an AEAD cipher.
	IntegAlg   string    `json:"integ_alg,omitempty"`
	Installed  time.Time `json:"installed,omitzero"`
	RekeyAt    time.Time `json:"rekey_at,omitzero"`
	Expires    time.Time `json:"expires,omitzero"`
	BytesIn    uint64    `json:"bytes_in"`
	BytesOut   uint64    `json:"bytes_out"`
	PacketsIn  uint64    `json:"packets_in"`
	PacketsOut uint64    `json:"packets_out"`
	LocalTS    []string  `json:"local_ts,omitempty"`
	RemoteTS   []string  `json:"remote_ts,omitempty"`
}

// BGPNeighbor is one BGP session.
type BGPNeighbor struct {
	Address netip.Addr `json:"address"`
	AS      uint32     `json:"as"`
	// State is the BGP FSM state: Idle, Connect, Active, OpenSent,
	// OpenConfirm or Established.
	State string    `json:"state"`
	Since time.Time `json:"since,omitzero"`
	// Received prefixes, of which the import policy Accepted and
	// Rejected some.
	Received int  `json:"received"`
	Accepted int  `json:"accepted"`
	Rejected int  `json:"rejected"`
	Dynamic  bool `json:"dynamic,omitempty"`
	// LastDown is why the session last went down ("" if never);
	// MaxPrefixTeardowns counts teardowns for exceeding bgp.max_prefixes.
	LastDown           string `json:"last_down,omitempty"`
	MaxPrefixTeardowns uint64 `json:"max_prefix_teardowns,omitempty"`
}

// BGPSummary is the "show bgp summary" view.
type BGPSummary struct {
	Enabled   bool          `json:"enabled"`
	RouterID  netip.Addr    `json:"router_id,omitzero"`
	AS        uint32        `json:"as,omitempty"`
	Neighbors []BGPNeighbor `json:"neighbors"`
}

// Counters are named monotonic counters.
type Counters map[string]uint64

// Status is the node's readiness.
type Status struct {
	// Ready: a spoke is registered with an NHS and its sessions are up;
	// a hub has its tunnel programmed.
	Ready bool `json:"ready"`
	// State is a one-word summary, e.g. starting, registering, running.
	State string `json:"state"`
	// Reason says why the node is not ready.
	Reason  string    `json:"reason,omitempty"`
	Role    string    `json:"role,omitempty"`
	Version string    `json:"version,omitempty"`
	Started time.Time `json:"started,omitzero"`
}

// ClearResult reports how many entries a clear removed.
type ClearResult struct {
	Cleared int `json:"cleared"`
}

// LogLevel is the daemon's current minimum log level.
type LogLevel struct {
	Level string `json:"level"`
}

// PeerDetail is everything dmvpnd knows about one peer ("show dmvpn
// peer"): its show dmvpn row and what hangs off it.
type PeerDetail struct {
	Peer
	// Cache lists the NHRP cache entries of the peer.
	Cache []CacheEntry `json:"cache"`
	// Path is a resolved peer's direct path: none, validating, up, down.
	Path string `json:"path,omitempty"`
	// NHS is set when the peer is one of this node's servers.
	NHS *NHS `json:"nhs,omitempty"`
	// Neighbor is the kernel neighbor entry dmvpnd programs for the peer's
	// tunnel address; nil when there is none.
	Neighbor *Neighbor `json:"neighbor,omitempty"`
	// Routes are the routes dmvpnd installs via the peer.
	Routes []Route `json:"routes"`
	// SA is the IPsec protection towards the peer; nil with IPsec off or
	// while none is wanted.
	SA *SA `json:"sa,omitempty"`
	// BGP is the session with the peer's tunnel address, if any.
	BGP *BGPNeighbor `json:"bgp,omitempty"`
}

// Neighbor is a kernel neighbor entry on the tunnel: the GRE destination
// for a tunnel address.
type Neighbor struct {
	Tunnel netip.Addr `json:"tunnel"`
	NBMA   netip.Addr `json:"nbma"`
}

// RouteSource says who wants a route.
type RouteSource string

// Route sources.
const (
	RouteShortcut RouteSource = "nhrp" // an NHRP shortcut (Phase 3)
	RouteBGP      RouteSource = "bgp"  // a BGP best path
)

// Route is a route dmvpnd installs on the tunnel.
type Route struct {
	Prefix netip.Prefix `json:"prefix"`
	Via    netip.Addr   `json:"via"`
	Source RouteSource  `json:"source"`
	Metric int          `json:"metric,omitempty"`
	// Expires is when a shortcut lapses unless refreshed.
	Expires time.Time `json:"expires,omitzero"`
}

// PeerClear reports what "clear dmvpn peer" did.
type PeerClear struct {
	// Actions says what was cleared or kept, one line each.
	Actions []string `json:"actions"`
	// Registrations, Resolved and Shortcuts count what went.
	Registrations int `json:"registrations"`
	Resolved      int `json:"resolved"`
	Shortcuts     int `json:"shortcuts"`
	// Released lists the NBMA addresses whose IPsec peer is no longer
	// wanted: their SAs are deleted.
	Released []netip.Addr `json:"released,omitempty"`
}

// QoSPeer is the per-tunnel QoS toward one peer ("show qos"): the shaper
// of its policy and each class, with the kernel's counters.
type QoSPeer struct {
	// Tunnel is the peer's tunnel address; zero for a shaper a previous
	// run installed whose peer has not registered again yet.
	Tunnel netip.Addr `json:"tunnel,omitzero"`
	// NBMA is the GRE destination the shaper classifies on (the peer's
	// NBMA address, or its post-NAT address).
	NBMA netip.Addr `json:"nbma"`
	// Group is the policy: the peer's NHRP group as qos.groups spells it,
	// or "qos.egress" for a spoke's inline upload policy.
	Group string `json:"group"`
	// Ifindex is the underlay device the shaper sits on.
	Ifindex int      `json:"ifindex,omitempty"`
	Shaper  QoSClass `json:"shaper"`
	// Classes are the policy's classes in order, then "default".
	Classes []QoSClass `json:"classes"`
}

// QoSClass is one class of a per-tunnel QoS policy and its counters.
type QoSClass struct {
	Name string `json:"name"`
	// DSCP lists the class's code points (empty: the default class).
	DSCP []string `json:"dscp,omitempty"`
	// Priority: strict priority, policed at Rate.
	Priority bool `json:"priority,omitempty"`
	// Rate is the guaranteed (priority: the policed) bit/s, Ceil what the
	// class may borrow up to.
	Rate uint64 `json:"rate"`
	Ceil uint64 `json:"ceil"`
	// Bytes and Packets were sent; Drops dropped by the class's queue;
	// Overlimits counts the times the rate held a packet back.
	Bytes      uint64 `json:"bytes"`
	Packets    uint64 `json:"packets"`
	Drops      uint64 `json:"drops"`
	Overlimits uint64 `json:"overlimits"`
	// Backlog (bytes) and Qlen (packets) are queued now.
	Backlog uint64 `json:"backlog"`
	Qlen    uint64 `json:"qlen"`
}
