package ipsec

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"time"

	"go.uber.org/zap"
)

// AuthMethod selects how IKE peers authenticate.
type AuthMethod int

const (
	// AuthPSK is a pre-shared key common to the DMVPN.
	AuthPSK AuthMethod = iota
	// AuthX509 is certificates: own certificate and key, peers checked against a CA.
	AuthX509
)

var authMethodNames = [...]string{AuthPSK: "psk", AuthX509: "x509"}

func (a AuthMethod) String() string { return enumName(authMethodNames[:], a, "AuthMethod") }

// Auth is the IKE authentication configuration.
type Auth struct {
	Method AuthMethod
	// PSK is the pre-shared key (AuthPSK).
	PSK Secret
	// CertFile, KeyFile and CAFile name PEM or DER files (AuthX509). They
	// are read by New and passed to charon as blobs.
	CertFile, KeyFile, CAFile string
}

// Config configures a Manager.
type Config struct {
	// SocketPath is charon's VICI socket (default DefaultSocketPath).
	SocketPath string
	// LocalNBMA is this node's own (claimed, pre-NAT) NBMA address: the IKE
	// local address, the GRE tunnel source and, with PSK, the IKE identity.
	LocalNBMA netip.Addr
	// LocalID overrides the local IKE identity (default: LocalNBMA for PSK,
	// the certificate subject for X.509).
	LocalID string
	// BehindNAT says that this node reaches peers through a NAT: its
	// per-peer connections then use tunnel mode with inner selectors
	// LocalNBMA/32[gre] (docs/strongswan.md, "Spokes behind NAT"). Without
	// it, the Manager switches to tunnel mode (and restarts its SAs) as
	// soon as charon reports a NAT in front of this node on an IKE_SA;
	// setting it saves that first failed attempt.
	BehindNAT bool
	// NATInnerPrefixes, if set, lets the responder connection accept
	// initiators behind NAT whose claimed NBMA address lies in one of these
	// prefixes (tunnel mode). The Manager terminates any such SA whose inner
	// address is not bound to the peer's IKE identity (see doc.go).
	NATInnerPrefixes []netip.Prefix
	// CertifiedIdentities (X.509): every peer authenticates with whatever
	// identity its certificate carries (remote id %any, also behind NAT),
	// and a tunnel-mode child's inner address from NATInnerPrefixes is
	// not tied to the identity; the caller binds each identity to what it
	// may claim (dmvpnd: its tunnel address). An inner address stays with
	// the first peer that carries it (see doc.go).
	CertifiedIdentities bool
	// MarkNAT gives every tunnel-mode child with a peer behind NAT (the
	// responder's "gre-nat" child, per-peer connections of natted peers)
	// XFRM marks of its own: mark_in = %unique, set_mark_in = %same,
	// mark_out = %unique. Two such SAs with the same inner address then
	// install distinct policies, and an inner address no longer stays with
	// the first peer that carries it: the caller tells the SAs apart by
	// their marks (ChildInfo.MarkIn, MarkOut) and must steer GRE into each
	// (docs/strongswan.md, "Two spokes behind different NATs with the same
	// private address"). Without a mark on its packets GRE to such a peer
	// matches no policy. The responder connection then enforces no
	// uniqueness by identity (unique = never): such peers may assert one
	// identity (a group PSK); duplicates from one address are still
	// removed (enforce).
	MarkNAT bool
	Auth    Auth
	// IKEProposals and ESPProposals override the defaults (swanctl syntax).
	IKEProposals, ESPProposals []string

	// FallbackDelay is how long the higher-addressed side of an
	// InitiateTieBreak pair waits for the other side before initiating
	// itself (default 3s).
	FallbackDelay time.Duration
	// ConnectTimeout bounds one initiation attempt (default 30s).
	ConnectTimeout time.Duration
	// RetryMin and RetryMax bound the backoff between attempts for one
	// peer (defaults 1s and 60s).
	RetryMin, RetryMax time.Duration
	// ReconnectMin and ReconnectMax bound the backoff for reconnecting to
	// the VICI socket (defaults 200ms and 30s).
	ReconnectMin, ReconnectMax time.Duration
	// ResyncInterval is the period of a full resync with list-sas (default 60s).
	ResyncInterval time.Duration
	// VerifyInterval is the period at which the Manager checks that
	// charon still holds the connections and credentials it loaded, and
	// reloads what is missing or different (default DefaultVerifyInterval;
	// also done after every reconnection). See verify.go.
	VerifyInterval time.Duration
	// AdoptGrace is how long the dmvpn- connections that an earlier run
	// left in charon, and that are not wanted when the Manager first
	// connects, are kept with their SAs: one the desired set names before
	// it ends is taken over as it is (its SAs keep carrying traffic), the
	// others are terminated and unloaded then. Zero unloads them at once.
	// Only the first connection of a Run adopts: a reconnection prunes.
	AdoptGrace time.Duration
	// CommandTimeout bounds every VICI command (default 10s).
	CommandTimeout time.Duration
	// Dial, if set, opens each connection to charon instead of dialling
	// SocketPath. Tests use it to reach a fake charon over an in-memory
	// pipe (vicitest.NewPipeServer), which testing/synctest can run. Not
	// part of a Config's JSON.
	Dial func(ctx context.Context) (net.Conn, error) `json:"-"`

	Logger *zap.Logger
}

// DefaultVerifyInterval is Config.VerifyInterval's default: how long a
// connection or credential that someone else unloaded from charon can stay
// missing.
const DefaultVerifyInterval = 30 * time.Second

func (c *Config) setDefaults() {
	if c.SocketPath == "" {
		c.SocketPath = DefaultSocketPath
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&c.FallbackDelay, 3*time.Second)
	def(&c.ConnectTimeout, 30*time.Second)
	def(&c.RetryMin, time.Second)
	def(&c.RetryMax, 60*time.Second)
	def(&c.ReconnectMin, 200*time.Millisecond)
	def(&c.ReconnectMax, 30*time.Second)
	def(&c.ResyncInterval, 60*time.Second)
	def(&c.VerifyInterval, DefaultVerifyInterval)
	def(&c.CommandTimeout, 10*time.Second)
	if c.Logger == nil {
		c.Logger = zap.NewNop()
	}
}

// ErrInvalidConfig is wrapped by configuration and peer validation errors.
var ErrInvalidConfig = errors.New("ipsec: invalid configuration")

func (c *Config) validate() error {
	if !c.LocalNBMA.IsValid() || !c.LocalNBMA.Is4() {
		return fmt.Errorf("%w: LocalNBMA must be an IPv4 address", ErrInvalidConfig)
	}
	switch c.Auth.Method {
	case AuthPSK:
		if c.Auth.PSK.IsZero() {
			return fmt.Errorf("%w: PSK authentication without a key", ErrInvalidConfig)
		}
	case AuthX509:
		if c.Auth.CertFile == "" || c.Auth.KeyFile == "" || c.Auth.CAFile == "" {
			return fmt.Errorf("%w: X.509 authentication needs cert, key and CA files", ErrInvalidConfig)
		}
	default:
		return fmt.Errorf("%w: unknown auth method %v", ErrInvalidConfig, c.Auth.Method)
	}
	for _, p := range c.NATInnerPrefixes {
		if !p.IsValid() || !p.Addr().Is4() {
			return fmt.Errorf("%w: NAT inner prefix %v", ErrInvalidConfig, p)
		}
	}
	for _, p := range append(append([]string{}, c.IKEProposals...), c.ESPProposals...) {
		if p == "" || strings.ContainsAny(p, " ,\n") {
			return fmt.Errorf("%w: proposal %q", ErrInvalidConfig, p)
		}
	}
	if c.ReconnectMax < c.ReconnectMin || c.RetryMax < c.RetryMin {
		return fmt.Errorf("%w: backoff maximum below minimum", ErrInvalidConfig)
	}
	return nil
}

// Initiation says who brings up the SA with a peer.
type Initiation int

const (
	// Respond: load the connection and wait for the peer to initiate
	// (for example a hub towards spokes, or any node towards a peer behind NAT).
	Respond Initiation = iota
	// Initiate at once (a spoke towards its hub; a node behind NAT towards anyone).
	Initiate
	// InitiateTieBreak: both ends may want the SA at the same moment
	// (spoke-to-spoke shortcuts). The end with the lower NBMA address
	// initiates at once; the other initiates only if no SA exists after
	// Config.FallbackDelay.
	InitiateTieBreak
)

// MarshalText implements encoding.TextMarshaler (for dmvpnctl JSON output).
func (i Initiation) MarshalText() ([]byte, error) { return []byte(i.String()), nil }

var initiationNames = [...]string{Respond: "respond", Initiate: "initiate", InitiateTieBreak: "tie-break"}

func (i Initiation) String() string { return enumName(initiationNames[:], i, "Initiation") }

// enumName returns the name of v, which indexes names, or typ(v) for a
// value without one.
func enumName[T ~int](names []string, v T, typ string) string {
	if v < 0 || int(v) >= len(names) {
		return fmt.Sprintf("%s(%d)", typ, int(v))
	}
	return names[v]
}

// Peer is one peer the controller wants protected.
type Peer struct {
	// Name identifies the peer in State and events (default: the claimed
	// NBMA address, or RemoteNBMA). Letters, digits, '.', '-' and '_' only.
	Name string
	// RemoteNBMA is where IKE and ESP go: the peer's address as reachable
	// from here (post-NAT for a peer behind NAT).
	RemoteNBMA netip.Addr
	// ClaimedNBMA is the peer's own NBMA address when it differs from
	// RemoteNBMA (peer behind NAT). The SA then uses tunnel mode with inner
	// selectors ClaimedNBMA/32[gre], bound to the peer's identity.
	ClaimedNBMA netip.Addr
	// RemoteID is the peer's expected IKE identity. Default: ClaimedNBMA
	// (or RemoteNBMA) for PSK and for X.509 peers behind NAT; any identity
	// certified by the CA for other X.509 peers.
	RemoteID string
	// Initiate says who brings the SA up.
	Initiate Initiation
}

// claimed returns the peer's own NBMA address.
func (p Peer) claimed() netip.Addr {
	if p.ClaimedNBMA.IsValid() {
		return p.ClaimedNBMA
	}
	return p.RemoteNBMA
}

// natted reports whether the peer sits behind NAT as seen from here.
func (p Peer) natted() bool {
	return p.ClaimedNBMA.IsValid() && p.ClaimedNBMA != p.RemoteNBMA
}

func (p Peer) name() string {
	if p.Name != "" {
		return p.Name
	}
	return p.claimed().String()
}

func validName(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for _, c := range s {
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '-' || c == '_'
		if !ok {
			return false
		}
	}
	return true
}

func (p Peer) validate() error {
	if !p.RemoteNBMA.IsValid() || !p.RemoteNBMA.Is4() {
		return fmt.Errorf("%w: peer %q: RemoteNBMA must be an IPv4 address", ErrInvalidConfig, p.Name)
	}
	if p.ClaimedNBMA.IsValid() && !p.ClaimedNBMA.Is4() {
		return fmt.Errorf("%w: peer %q: ClaimedNBMA must be IPv4", ErrInvalidConfig, p.Name)
	}
	if !validName(p.name()) {
		return fmt.Errorf("%w: peer name %q", ErrInvalidConfig, p.name())
	}
	if p.Initiate < Respond || p.Initiate > InitiateTieBreak {
		return fmt.Errorf("%w: peer %q: initiation %v", ErrInvalidConfig, p.name(), p.Initiate)
	}
	return nil
}
