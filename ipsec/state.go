package ipsec

import (
	"net/netip"
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
	SAs         []SAInfo
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
}

// Protected reports whether an established IKE_SA with an installed
// CHILD_SA covers the peer whose NBMA address (claimed or as reachable) is
// nbma. The controller uses it so that NHRP from an unprotected peer
// changes nothing, even if a packet slipped past the kernel's policies.
func (s State) Protected(nbma netip.Addr) bool {
	for _, p := range s.Peers {
		if p.Status == StatusUp && (p.RemoteNBMA == nbma || p.ClaimedNBMA == nbma) {
			return true
		}
	}
	for _, sa := range s.Unattributed {
		if sa.State != ikeStateUp || sa.Terminating {
			continue
		}
		for _, c := range sa.Children {
			if c.State != childStateUp {
				continue
			}
			if key := saKey(sa); key == nbma.String() {
				return true
			}
		}
	}
	return false
}

// ProtectedAddrs returns every NBMA address Protected reports true for, as
// a set, so that a caller checking each packet does constant work per
// packet instead of scanning all peers.
func (s State) ProtectedAddrs() map[netip.Addr]bool {
	out := make(map[netip.Addr]bool, len(s.Peers))
	for _, p := range s.Peers {
		if p.Status != StatusUp {
			continue
		}
		if p.RemoteNBMA.IsValid() {
			out[p.RemoteNBMA] = true
		}
		if p.ClaimedNBMA.IsValid() {
			out[p.ClaimedNBMA] = true
		}
	}
	for _, sa := range s.Unattributed {
		if sa.State != ikeStateUp || sa.Terminating {
			continue
		}
		for _, c := range sa.Children {
			if c.State != childStateUp {
				continue
			}
			if a, err := netip.ParseAddr(saKey(sa)); err == nil {
				out[a] = true
			}
		}
	}
	return out
}

// NATOuters maps the claimed NBMA address of each peer behind NAT with an
// established tunnel-mode SA (the GRE source of its packets, the SA's inner
// address) to the SA's remote, post-NAT address.
func (s State) NATOuters() map[netip.Addr]netip.Addr {
	out := map[netip.Addr]netip.Addr{}
	for _, p := range s.Peers {
		if p.Status == StatusUp && p.NATRemote && p.ClaimedNBMA.IsValid() && p.Observed.IsValid() {
			out[p.ClaimedNBMA] = p.Observed.Addr()
		}
	}
	for _, sa := range s.Unattributed {
		if !sa.NATRemote || sa.Terminating || !strings.EqualFold(sa.State, ikeStateUp) {
			continue
		}
		for _, ch := range sa.Children {
			for _, ts := range ch.RemoteTS {
				if a, ok := tsHost(ts); ok && a != sa.Remote.Addr() {
					out[a] = sa.Remote.Addr()
				}
			}
		}
	}
	return out
}
