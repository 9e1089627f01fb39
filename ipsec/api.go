package ipsec

// Protector is what the controller uses; *Manager and ipsectest.Fake
// implement it.
type Protector interface {
	SetPeers(peers []Peer) error
	State() State
	Events() <-chan Event
}

var _ Protector = (*Manager)(nil)
