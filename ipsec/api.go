package ipsec

// Protector is what the controller uses; *Manager and ipsectest.Fake
// implement it.
type Protector interface {
	SetPeers(peers []Peer) error
	State() State
	Events() <-chan Event
	// SetCredentials replaces the authentication material and the
	// proposals (a reload): new SAs use them, established SAs keep theirs
	// until they rekey.
	SetCredentials(auth Auth, ike, esp []string) error
}

var _ Protector = (*Manager)(nil)
