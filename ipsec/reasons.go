package ipsec

// Reasons a peer is down (PeerState.Reason, Event.Reason) that the
// controller classifies; any other reason is an error message from charon.
const (
	ReasonTimeout      = "initiation timed out"
	ReasonIKEDeleted   = "IKE_SA deleted"
	ReasonChildDeleted = "CHILD_SA deleted"
	ReasonCharonLost   = "charon connection lost"
	ReasonPeerRemoved  = "peer removed"
)
