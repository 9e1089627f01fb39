package ipsec

import (
	"cmp"
	"net/netip"
	"slices"
	"strings"
	"time"
)

// Status is the protection state of one peer.
type Status int

const (
	// StatusDown: no established SA.
	StatusDown Status = iota
	// StatusConnecting: an initiation is in progress, or an IKE SA is up
	// without its child yet.
	StatusConnecting
	// StatusUp: an IKE SA with an installed CHILD_SA exists.
	StatusUp
)

func (s Status) String() string {
	switch s {
	case StatusDown:
		return "down"
	case StatusConnecting:
		return "connecting"
	case StatusUp:
		return "up"
	}
	return "unknown"
}

// MarshalText implements encoding.TextMarshaler (for dmvpnctl JSON output).
func (s Status) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// Event reports a change of a peer's protection state to the controller.
type Event struct {
	Peer   string
	Status Status
	// Reason says why the peer went down (empty otherwise).
	Reason string
	// Observed is the peer's IKE endpoint as charon sees it (post-NAT
	// address and port); invalid unless an IKE SA is up.
	Observed netip.AddrPort
	// NATRemote is set when charon detected a NAT in front of the peer.
	NATRemote bool
	Time      time.Time
}

// SAInfo describes one IKE SA (with its children) as last reported by charon.
type SAInfo struct {
	Conn      string
	UniqueID  string
	State     string
	Initiator bool
	Local     netip.AddrPort
	Remote    netip.AddrPort
	LocalID   string
	RemoteID  string
	NATLocal  bool
	NATRemote bool
	// Terminating is set once dmvpnd asked charon to delete the SA (a
	// duplicate, or an inner address not bound to the identity); it no
	// longer counts as protection.
	Terminating bool
	// IKE proposal in use, as charon names it (e.g. AES_GCM_16, 256,
	// PRF_HMAC_SHA2_256, CURVE_25519); empty when not negotiated yet.
	EncrAlg     string
	EncrKeySize int
	IntegAlg    string
	PRFAlg      string
	DHGroup     string
	// Established is when the IKE SA came up; RekeyAt and ReauthAt when
	// charon rekeys or re-authenticates it (zero: not scheduled). Charon
	// reports them relative to the listing; they are anchored to the
	// Manager's clock when parsed.
	Established time.Time
	RekeyAt     time.Time
	ReauthAt    time.Time
	Children    []ChildInfo
}

// ChildInfo describes one CHILD_SA.
type ChildInfo struct {
	Name     string
	UniqueID string
	State    string
	Mode     string
	Encap    bool
	LocalTS  []string
	RemoteTS []string
	// Protocol is ESP or AH.
	Protocol string
	// SPIIn and SPIOut are the inbound and outbound SPIs in hex, as
	// charon (and ip xfrm state) print them.
	SPIIn, SPIOut string
	// ReqID is the CHILD_SA's reqid (its policies' templates name it).
	ReqID uint32
	// MarkIn and MarkOut are the XFRM marks of its inbound and outbound
	// policies (Config.MarkNAT; 0: unmarked). The mask is all ones.
	MarkIn, MarkOut uint32
	EncrAlg         string
	EncrKeySize     int
	// IntegAlg is empty for an AEAD cipher (AES-GCM).
	IntegAlg   string
	DHGroup    string
	BytesIn    uint64
	BytesOut   uint64
	PacketsIn  uint64
	PacketsOut uint64
	// Installed is when the CHILD_SA was installed; RekeyAt when charon
	// rekeys it and Expires when it is deleted unless rekeyed (zero: not
	// scheduled). Counters and times are as of the last listing or event.
	Installed time.Time
	RekeyAt   time.Time
	Expires   time.Time
}

// PeerState is a snapshot of one wanted peer.
type PeerState struct {
	Name        string
	Conn        string
	RemoteNBMA  netip.Addr
	ClaimedNBMA netip.Addr
	Initiate    Initiation
	Tunnel      bool
	Status      Status
	Reason      string
	Since       time.Time
	Observed    netip.AddrPort
	NATRemote   bool
	Attempts    int
	NextAttempt time.Time
	// LoadFailures counts charon's refusals of the peer's connection in a
	// row (0: loaded); LoadRetry is when it is sent again.
	LoadFailures int
	LoadRetry    time.Time
	SAs          []SAInfo
}

// State is a snapshot of the Manager for dmvpnctl. It contains plain values only.
type State struct {
	Connected bool
	// Generation increases with every snapshot the Manager publishes.
	Generation      uint64
	Daemon          string
	Reconnects      int
	Peers           []PeerState
	Unattributed    []SAInfo // SAs on dmvpnd's connections not tied to a wanted peer
	DroppedEvents   uint64   // events the controller did not read in time
	MalformedEvents uint64   // charon events that could not be parsed
	Terminated      uint64   // SAs terminated by policy (duplicates, unbound inner address)
	// RepairedConns and RepairedCreds count the connections and
	// credentials dmvpnd had loaded that charon no longer held (or held
	// differently) and that were loaded again (verify.go).
	RepairedConns, RepairedCreds uint64
	// LoadsRefused counts the per-peer load-conn requests charon refused
	// (each refused attempt; the peer is retried with backoff).
	LoadsRefused uint64
}

// Protection is what one installed CHILD_SA proves: GRE to and from NBMA
// travels inside an SA with the peer that authenticated as Identity.
type Protection struct {
	// NBMA is the GRE address the SA carries: in transport mode the IKE
	// peer's address; in tunnel mode (a peer behind NAT) the child's
	// single-host remote traffic selector, the peer's private address.
	NBMA netip.Addr
	// Outer is the IKE peer's (post-NAT) address in tunnel mode; zero in
	// transport mode.
	Outer netip.Addr
	// Identity is the peer's IKE identity as charon authenticated it.
	Identity string
	// ReqID, MarkIn and MarkOut are the CHILD_SA's reqid and policy marks
	// (Config.MarkNAT; zero marks: unmarked). Two tunnel-mode SAs with
	// the same NBMA differ in their marks.
	ReqID           uint32
	MarkIn, MarkOut uint32
}

// Protections lists what the established SAs prove, derived from the SAs
// alone (never from the peers dmvpnd wants, which follow NHRP claims):
// every IKE_SA that is ESTABLISHED and not being terminated, each of its
// INSTALLED children once. A tunnel-mode child whose remote selector is
// not exactly one host proves nothing. The result is sorted and has no
// duplicates.
func (s State) Protections() []Protection {
	var out []Protection
	add := func(sa SAInfo) {
		if sa.State != ikeStateUp || sa.Terminating || !sa.Remote.IsValid() {
			return
		}
		for _, c := range sa.Children {
			if c.State != childStateUp {
				continue
			}
			p := Protection{NBMA: sa.Remote.Addr(), Identity: sa.RemoteID, ReqID: c.ReqID, MarkIn: c.MarkIn, MarkOut: c.MarkOut}
			if strings.EqualFold(c.Mode, childModeTunnel) {
				if len(c.RemoteTS) != 1 {
					continue
				}
				inner, ok := tsHost(c.RemoteTS[0])
				if !ok {
					continue
				}
				if inner != p.NBMA {
					p.NBMA, p.Outer = inner, sa.Remote.Addr()
				}
			}
			out = append(out, p)
		}
	}
	for _, p := range s.Peers {
		for _, sa := range p.SAs {
			add(sa)
		}
	}
	for _, sa := range s.Unattributed {
		add(sa)
	}
	slices.SortFunc(out, func(a, b Protection) int {
		if c := a.NBMA.Compare(b.NBMA); c != 0 {
			return c
		}
		if c := a.Outer.Compare(b.Outer); c != 0 {
			return c
		}
		if c := strings.Compare(a.Identity, b.Identity); c != 0 {
			return c
		}
		return cmp.Or(cmp.Compare(a.MarkIn, b.MarkIn), cmp.Compare(a.MarkOut, b.MarkOut), cmp.Compare(a.ReqID, b.ReqID))
	})
	return slices.Compact(out)
}
