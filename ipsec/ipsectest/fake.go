package ipsectest

import (
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/dmvpnd/dmvpnd/ipsec"
)

// Fake is an ipsec.Protector for controller tests. It records the desired
// peers; the test decides when SAs come up or go down.
type Fake struct {
	mu     sync.Mutex
	peers  map[string]ipsec.Peer
	state  map[string]ipsec.PeerState
	calls  int
	events chan ipsec.Event
	// unattributed are SAs added by AddUnattributed.
	unattributed []ipsec.SAInfo
	now          func() time.Time
	creds        []Credentials
}

// Credentials is one SetCredentials call.
type Credentials struct {
	Auth     ipsec.Auth
	IKE, ESP []string
}

var _ ipsec.Protector = (*Fake)(nil)

// NewFake returns a Fake whose events carry times from now (time.Now if nil).
func NewFake(now func() time.Time) *Fake {
	if now == nil {
		now = time.Now
	}
	return &Fake{
		peers:  map[string]ipsec.Peer{},
		state:  map[string]ipsec.PeerState{},
		events: make(chan ipsec.Event, 256),
		now:    now,
	}
}

func name(p ipsec.Peer) string {
	if p.Name != "" {
		return p.Name
	}
	if p.ClaimedNBMA.IsValid() {
		return p.ClaimedNBMA.String()
	}
	return p.RemoteNBMA.String()
}

// SetCredentials records the call (see Credentials).
func (f *Fake) SetCredentials(auth ipsec.Auth, ike, esp []string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.creds = append(f.creds, Credentials{Auth: auth, IKE: slices.Clone(ike), ESP: slices.Clone(esp)})
	return nil
}

// CredentialUpdates returns the SetCredentials calls so far.
func (f *Fake) CredentialUpdates() []Credentials {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.creds)
}

// SetPeers records the desired set. New peers start down.
func (f *Fake) SetPeers(peers []ipsec.Peer) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	want := map[string]ipsec.Peer{}
	for _, p := range peers {
		if !p.RemoteNBMA.IsValid() {
			return fmt.Errorf("ipsectest: peer without RemoteNBMA")
		}
		want[name(p)] = p
	}
	for n := range f.state {
		if _, ok := want[n]; !ok {
			delete(f.state, n)
		}
	}
	for n, p := range want {
		st, ok := f.state[n]
		if !ok {
			st = ipsec.PeerState{Name: n, Status: ipsec.StatusDown, Since: f.now()}
		}
		st.RemoteNBMA, st.ClaimedNBMA, st.Initiate = p.RemoteNBMA, p.ClaimedNBMA, p.Initiate
		f.state[n] = st
	}
	f.peers = want
	return nil
}

// Calls returns how often SetPeers was called.
func (f *Fake) Calls() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls
}

// Peers returns the desired peers sorted by name.
func (f *Fake) Peers() []ipsec.Peer {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []ipsec.Peer
	for _, n := range slices.Sorted(maps.Keys(f.peers)) {
		out = append(out, f.peers[n])
	}
	return out
}

// Text renders the desired peers one per line, sorted.
func (f *Fake) Text() string {
	var b strings.Builder
	for _, p := range f.Peers() {
		fmt.Fprintf(&b, "%s remote %s claimed %s %s\n", name(p), p.RemoteNBMA, p.ClaimedNBMA, p.Initiate)
	}
	return b.String()
}

// SetStatus changes a wanted peer's status and emits an event. It returns
// false if the peer is not wanted.
func (f *Fake) SetStatus(peer string, s ipsec.Status, observed netip.AddrPort, reason string) bool {
	f.mu.Lock()
	st, ok := f.state[peer]
	if !ok {
		f.mu.Unlock()
		return false
	}
	st.Status, st.Observed, st.Reason, st.Since = s, observed, reason, f.now()
	st.SAs = nil
	if s == ipsec.StatusUp {
		st.SAs = []ipsec.SAInfo{establishedSA(f.peers[peer], observed)}
	}
	f.state[peer] = st
	f.mu.Unlock()
	select {
	case f.events <- ipsec.Event{Peer: peer, Status: s, Reason: reason, Observed: observed, Time: f.now()}:
	default: // like the Manager: a slow reader loses events, State stays right
	}
	return true
}

// establishedSA is the IKE_SA charon would report for a peer that came up:
// transport mode to its address, or, for a peer with a claimed address
// (behind NAT), tunnel mode with the claimed address as inner selector,
// from observed. The identity is the peer's address, as with IP-SAN
// certificates.
func establishedSA(p ipsec.Peer, observed netip.AddrPort) ipsec.SAInfo {
	remote := observed
	if !remote.IsValid() {
		remote = netip.AddrPortFrom(p.RemoteNBMA, 500)
	}
	child := ipsec.ChildInfo{Name: "gre", State: "INSTALLED", Mode: "TRANSPORT"}
	id := p.RemoteNBMA
	if p.ClaimedNBMA.IsValid() {
		id = p.ClaimedNBMA
		child = ipsec.ChildInfo{Name: "gre-nat", State: "INSTALLED", Mode: "TUNNEL", Encap: true,
			RemoteTS: []string{netip.PrefixFrom(p.ClaimedNBMA, 32).String() + "[gre]"}}
	}
	return ipsec.SAInfo{State: "ESTABLISHED", Remote: remote, RemoteID: id.String(), Children: []ipsec.ChildInfo{child}}
}

// AddUnattributed adds an SA that no wanted peer owns (a peer that
// initiated to the responder connection before it registered).
func (f *Fake) AddUnattributed(sa ipsec.SAInfo) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.unattributed = append(f.unattributed, sa)
}

// State returns a snapshot.
func (f *Fake) State() ipsec.State {
	f.mu.Lock()
	defer f.mu.Unlock()
	st := ipsec.State{Connected: true, Daemon: "fake"}
	for _, n := range slices.Sorted(maps.Keys(f.state)) {
		st.Peers = append(st.Peers, f.state[n])
	}
	st.Unattributed = slices.Clone(f.unattributed)
	return st
}

// Events delivers the events SetStatus emits.
func (f *Fake) Events() <-chan ipsec.Event { return f.events }
