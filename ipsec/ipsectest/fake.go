// Package ipsectest has fakes for code that uses package ipsec: a Protector
// that records the desired peers, and a test PKI.
package ipsectest

import (
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strconv"
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
	// ids numbers the SAs SetStatus creates, as charon's unique ids.
	ids     int
	creds   []Credentials
	refused uint64
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
		f.ids++
		st.SAs = []ipsec.SAInfo{establishedSA(f.peers[peer], observed, f.ids, f.now())}
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
// certificates. The proposal is dmvpnd's default (AES-GCM-256, X25519)
// with strongSwan's default lifetimes; SPIs derive from the id, and the
// counters start at zero (SetTraffic moves them).
func establishedSA(p ipsec.Peer, observed netip.AddrPort, id int, now time.Time) ipsec.SAInfo {
	remote := observed
	if !remote.IsValid() {
		remote = netip.AddrPortFrom(p.RemoteNBMA, 500)
	}
	child := ipsec.ChildInfo{Name: "gre", State: "INSTALLED", Mode: "TRANSPORT"}
	ident := p.RemoteNBMA
	if p.ClaimedNBMA.IsValid() {
		ident = p.ClaimedNBMA
		child = ipsec.ChildInfo{Name: "gre-nat", State: "INSTALLED", Mode: "TUNNEL", Encap: true,
			RemoteTS: []string{netip.PrefixFrom(p.ClaimedNBMA, 32).String() + "[gre]"}}
	}
	child.UniqueID = strconv.Itoa(2*id + 1)
	child.Protocol = "ESP"
	child.SPIIn, child.SPIOut = fmt.Sprintf("c%07x", 2*id), fmt.Sprintf("c%07x", 2*id+1)
	child.EncrAlg, child.EncrKeySize = "AES_GCM_16", 256
	child.Installed, child.RekeyAt, child.Expires = now, now.Add(time.Hour), now.Add(66*time.Minute)
	return ipsec.SAInfo{UniqueID: strconv.Itoa(2 * id), State: "ESTABLISHED", Remote: remote, RemoteID: ident.String(),
		EncrAlg: "AES_GCM_16", EncrKeySize: 256, PRFAlg: "PRF_HMAC_SHA2_256", DHGroup: "CURVE_25519",
		Established: now, RekeyAt: now.Add(4 * time.Hour), Children: []ipsec.ChildInfo{child}}
}

// SetTraffic sets the counters of a wanted peer's CHILD_SAs, as charon
// would list them after traffic. It returns false if the peer has no SA.
func (f *Fake) SetTraffic(peer string, bytesIn, bytesOut, packetsIn, packetsOut uint64) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	st, ok := f.state[peer]
	if !ok || len(st.SAs) == 0 {
		return false
	}
	sas := slices.Clone(st.SAs)
	for i := range sas {
		ch := slices.Clone(sas[i].Children)
		for j := range ch {
			ch[j].BytesIn, ch[j].BytesOut, ch[j].PacketsIn, ch[j].PacketsOut = bytesIn, bytesOut, packetsIn, packetsOut
		}
		sas[i].Children = ch
	}
	st.SAs = sas
	f.state[peer] = st
	return true
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
	st.LoadsRefused = f.refused
	return st
}

// Refuse records charon refusing a wanted peer's connection, as the
// Manager does: the peer is down with reason, its refusals in a row and
// State.LoadsRefused grow. It returns false if the peer is not wanted.
func (f *Fake) Refuse(peer, reason string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	st, ok := f.state[peer]
	if !ok {
		return false
	}
	st.Status, st.Reason, st.SAs = ipsec.StatusDown, reason, nil
	st.LoadFailures++
	f.state[peer] = st
	f.refused++
	return true
}

// Events delivers the events SetStatus emits.
func (f *Fake) Events() <-chan ipsec.Event { return f.events }
