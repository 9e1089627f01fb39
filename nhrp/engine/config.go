package engine

import (
	"crypto/rand"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"net/netip"
	"time"

	"go.uber.org/zap"

	"github.com/dmvpnd/dmvpnd/nhrp"
)

// NHSConfig names one Next Hop Server of a client (spoke).
type NHSConfig struct {
	// NBMA is the server's NBMA address (required).
	NBMA netip.Addr
	// Proto is the server's protocol (tunnel) address; zero means
	// "dynamic": learnt from the Responder Address of the first reply.
	Proto netip.Addr
	// Priority orders servers: lower is preferred. Equal priorities keep
	// configuration order.
	Priority int
}

// Config configures an Engine. Zero durations and limits take the
// defaults documented on each field.
type Config struct {
	// Proto and NBMA are this node's tunnel address and (claimed) NBMA
	// address. Required.
	Proto netip.Addr
	NBMA  netip.Addr

	// Server enables the NHS role: accept registrations, answer and
	// forward resolutions for registered clients.
	Server bool
	// AcceptPrefixes limits the protocol addresses the NHS accepts in
	// registrations (code 4 otherwise). Empty accepts every address.
	AcceptPrefixes []netip.Prefix
	// TunnelPrefix is the tunnel interface's prefix. When set, the NHS
	// accepts registrations only for host addresses inside it, never its
	// network or (IPv4) broadcast address. The NHS's own address and
	// configured NHSs' addresses are refused in any case.
	TunnelPrefix netip.Prefix
	// AddressesPerPeer is how many tunnel addresses one peer may hold
	// registered (required, see Limits); a registration that would exceed
	// it is refused as a whole. A peer is an IKE identity with IPsec (with
	// its SA's post-NAT address behind NAT), a source NBMA address
	// (post-NAT) without.
	AddressesPerPeer int
	// MaxHolding clamps the holding time of accepted registrations
	// (default HoldingTime); the reply carries the clamped value.
	MaxHolding time.Duration
	// MaxCachePerSource bounds the cache entries other than registrations
	// (requester and resolved entries) one source may create (required,
	// see Limits); configured NHSs are exempt.
	MaxCachePerSource int

	// NHSs are the servers this node registers with (client role).
	NHSs []NHSConfig
	// MaxActiveNHS is how many servers to stay registered with at the same
	// time; the preferred ones are retried while a less preferred one
	// serves. 0 = all.
	MaxActiveNHS int
	// Unique sets the U flag on registrations.
	Unique bool
	// Group is this node's NHRP group (Cisco's Per-Tunnel QoS), sent in
	// its registrations, resolution requests and the resolution replies
	// it answers for itself, in Cisco's Vendor-Private extension. Empty
	// sends none. It is a claim about this node only: it selects which of
	// a hub's QoS policies applies to traffic toward it.
	Group string

	// HoldingTime is advertised in registrations and replies (default
	// 7200 s, at most 65535 s).
	HoldingTime time.Duration
	// MTU is advertised in CIEs (0 = default).
	MTU uint16
	// HopCount for packets this node originates (default 64).
	HopCount uint8

	// AuthPassword enables Cisco cleartext authentication (at most 8
	// octets): sent on every packet, required on every received one.
	AuthPassword []byte
	// IPsec: NHRP is protected by IPsec (transport mode, or tunnel mode
	// whose inner selectors are the claimed NBMA addresses behind NAT; see
	// the package doc). The engine takes packets from and sends to only
	// the NBMA addresses an SA proves (SetProtections), requires claims to
	// match the proof, keys peers by IKE identity, and addresses peers
	// behind NAT by their claimed NBMA.
	IPsec bool

	// Limits. MaxCache (registrations, resolved and requester entries;
	// negative entries count separately against the same limit),
	// MaxPending outstanding requests, the per-source token bucket
	// SourceRate CIEs/s (a packet costs its number of CIEs, at least one;
	// a negative SourceRate disables the limit, for tests and
	// benchmarks), AddressesPerPeer and MaxCachePerSource have no default
	// here: New refuses a Config without them. Their one source of
	// defaults is dmvpnd's configuration (controller/config, the
	// nhrp.limits keys), so that the engine cannot run on numbers that
	// disagree with it. SourceBurst defaults to twice SourceRate;
	// MaxFlows (hub flows, default 16384) and MaxSources (sources the
	// bucket tracks, default 65536) have no configuration key and their
	// defaults here.
	MaxCache        int
	MaxPending      int
	MaxFlows        int
	SourceRate      float64
	SourceBurst     float64
	MaxSources      int
	NegativeTTL     time.Duration // negative cache entry lifetime (default 10 s)
	IndicationEvery time.Duration // hub: min interval per flow (default 10 s)

	// Retransmission of requests: first retry after RetryMin, doubling up
	// to RetryMax (defaults 1 s and 64 s as FRR). Resolutions are retried
	// ResolveTries times (default 4) before failing.
	RetryMin, RetryMax time.Duration
	ResolveTries       int
	// RegisterFailAfter unanswered registration tries mark an NHS down
	// (default 3).
	RegisterFailAfter int
	// RegistrationInterval, when set, is how often a client registers
	// with each NHS (instead of a third of the holding time) and how long
	// it waits before resending an unanswered registration while the NHS
	// has not failed (instead of RetryMin doubling): NHS liveness
	// independent of the holding time, as Cisco's "ip nhrp registration
	// timeout". An NHS that stops answering is marked failed, and its
	// routes fall over to the next NHS, RegisterFailAfter intervals after
	// the first unanswered request: within (RegisterFailAfter+1) intervals
	// of its failure. Every interval costs each NHS one registration per
	// client.
	RegistrationInterval time.Duration

	// Direct path liveness for shortcuts: a probe every KeepaliveInterval
	// (default 5 s) answered within ProbeTimeout (default 1 s);
	// ProbeTries unanswered probes in a row (default 3) fall back to the
	// hub path, retried after PathRetryMin doubling to PathRetryMax
	// (defaults 4 s and 128 s).
	KeepaliveInterval time.Duration
	ProbeTimeout      time.Duration
	ProbeTries        int
	PathRetryMin      time.Duration
	PathRetryMax      time.Duration

	// RequestIDs returns request ids. Nil (the default) draws them from a
	// ChaCha8 generator seeded from crypto/rand, so that an off-path
	// attacker cannot predict them; tests may inject a sequence. Zero and
	// ids of outstanding requests are skipped.
	RequestIDs func() uint32

	Clock  Clock
	Conn   Conn
	Router Router
	Binder Binder
	// Events receives every event synchronously, on the goroutine calling
	// the engine. It must not call back into the engine. Nil drops events.
	Events func(Event)
	Logger *zap.Logger
}

// Defaults.
const (
	DefaultHoldingTime = 7200 * time.Second
	defaultHopCount    = 64
)

func (c *Config) setDefaults() error {
	if !c.Proto.IsValid() || !c.NBMA.IsValid() {
		return errors.New("engine: config: Proto and NBMA are required")
	}
	if c.Clock == nil || c.Conn == nil {
		return errors.New("engine: config: Clock and Conn are required")
	}
	if len(c.AuthPassword) > 8 {
		return fmt.Errorf("engine: config: authentication password of %d octets exceeds 8", len(c.AuthPassword))
	}
	if c.Group != "" {
		if err := nhrp.ValidGroup(c.Group); err != nil {
			return fmt.Errorf("engine: config: group: %w", err)
		}
	}
	for i, n := range c.NHSs {
		if !n.NBMA.IsValid() {
			return fmt.Errorf("engine: config: NHS %d: NBMA address required", i)
		}
	}
	if c.MaxCache <= 0 || c.MaxPending <= 0 || c.SourceRate == 0 || c.AddressesPerPeer <= 0 || c.MaxCachePerSource <= 0 {
		return fmt.Errorf("engine: config: MaxCache (%d), MaxPending (%d), SourceRate (%v), AddressesPerPeer (%d) and MaxCachePerSource (%d) are required",
			c.MaxCache, c.MaxPending, c.SourceRate, c.AddressesPerPeer, c.MaxCachePerSource)
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	defi := func(d *int, v int) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&c.HoldingTime, DefaultHoldingTime)
	if c.HoldingTime > 65535*time.Second {
		c.HoldingTime = 65535 * time.Second
	}
	if c.HopCount == 0 {
		c.HopCount = defaultHopCount
	}
	def(&c.NegativeTTL, 10*time.Second)
	def(&c.IndicationEvery, 10*time.Second)
	def(&c.RetryMin, time.Second)
	def(&c.RetryMax, 64*time.Second)
	defi(&c.ResolveTries, 4)
	defi(&c.RegisterFailAfter, 3)
	def(&c.KeepaliveInterval, 5*time.Second)
	def(&c.ProbeTimeout, time.Second)
	defi(&c.ProbeTries, 3)
	def(&c.PathRetryMin, 4*time.Second)
	def(&c.PathRetryMax, 128*time.Second)
	defi(&c.MaxFlows, 16384)
	defi(&c.MaxSources, 65536)
	def(&c.MaxHolding, c.HoldingTime)
	if c.MaxHolding > 65535*time.Second {
		c.MaxHolding = 65535 * time.Second
	}
	if c.SourceBurst <= 0 {
		c.SourceBurst = 2 * c.SourceRate
	}
	if c.RequestIDs == nil {
		var seed [32]byte
		if _, err := rand.Read(seed[:]); err != nil {
			return fmt.Errorf("engine: config: seeding request ids: %w", err)
		}
		c.RequestIDs = mrand.New(mrand.NewChaCha8(seed)).Uint32
	}
	if c.Logger == nil {
		c.Logger = zap.NewNop()
	}
	return nil
}

func (c *Config) holdingSeconds() uint16 { return uint16(c.HoldingTime / time.Second) }
